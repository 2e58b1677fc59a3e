/**
 * tests/_run.ts, the runner of `deno task test`: its own state root per run
 * (removed after), the list of what was not run, and an unprivileged run
 * that fails unless accepted. No root needed, but for the run as uid 65534.
 *
 * @module
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { ALLOW_UNPRIVILEGED_ENV, makeRunRoot, skippedOf, verdict } from "./_run.ts";

const RUNNER = new URL("./_run.ts", import.meta.url).pathname;

const JUNIT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="5" failures="0" errors="0" time="0.013">
    <testsuite name="./a_test.ts" tests="5" disabled="2" errors="0" failures="0">
        <testcase name="one" classname="./a_test.ts" time="0.001" line="1" col="6">
        </testcase>
        <testcase name="two &lt;&amp;&gt; &quot;q&quot;" classname="./a_test.ts" time="0.000" line="2" col="6">
            <skipped/>
        </testcase>
        <testcase name="three" classname="./a_test.ts" time="0.001" line="3" col="6">
        </testcase>
        <testcase name="three &gt; s2" classname="./a_test.ts" time="0.000" line="3" col="73">
            <skipped/>
        </testcase>
        <testcase name="four" classname="./b_test.ts" time="0.001" line="3" col="6">
            <failure message="x">y</failure>
        </testcase>
    </testsuite>
</testsuites>`;

Deno.test("skippedOf() lists the skipped tests and steps of a junit report, unescaped", () => {
  assertEquals(skippedOf(JUNIT), {
    total: 5,
    skipped: [
      { file: "./a_test.ts", name: 'two <&> "q"' },
      { file: "./a_test.ts", name: "three > s2" },
    ],
  });
  assertEquals(skippedOf(""), { total: 0, skipped: [] });
});

Deno.test("verdict(): what was not run is listed; not root fails unless accepted", () => {
  const report = skippedOf(JUNIT);
  const asRoot = verdict({ testCode: 0, report, root: true, allowUnprivileged: false });
  assertEquals(asRoot.code, 0);
  assertEquals(asRoot.lines, [
    "NOT RUN: 2 of 5 tests and steps were ignored:",
    '  ./a_test.ts => two <&> "q"',
    "  ./a_test.ts => three > s2",
  ]);
  const all = verdict({
    testCode: 0,
    report: { total: 3, skipped: [] },
    root: true,
    allowUnprivileged: false,
  });
  assertEquals(all, { lines: ["not run: none (all 3 tests and steps ran)"], code: 0 });

  const user = verdict({ testCode: 0, report, root: false, allowUnprivileged: false });
  assertEquals(user.code, 1);
  assertMatch(user.lines.at(-1)!, /^unprivileged run: FAILED: not root, .*2 ignored above/);
  assertMatch(user.lines.at(-1)!, new RegExp(`set ${ALLOW_UNPRIVILEGED_ENV}=1`));

  const accepted = verdict({ testCode: 0, report, root: false, allowUnprivileged: true });
  assertEquals(accepted.code, 0);
  assertMatch(accepted.lines.at(-1)!, /^unprivileged run accepted .*2 tests and steps not run/);

  // A failed run keeps deno test's status, root or not.
  assertEquals(verdict({ testCode: 3, report, root: false, allowUnprivileged: false }).code, 3);
  const crashed = verdict({ testCode: 1, report: undefined, root: true, allowUnprivileged: false });
  assertEquals(crashed, {
    lines: ["no test report: deno test exited 1 before writing it"],
    code: 1,
  });
});

Deno.test("the runner gives a run its own TMPDIR (the tests' state root) and removes it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mvt-runner-" });
  try {
    const seen = `${dir}/seen`;
    Deno.writeTextFileSync(
      `${dir}/probe_test.ts`,
      `import { TEST_ROOTS } from ${JSON.stringify(new URL("../lab/cni.ts", import.meta.url).href)};
Deno.test("probe", () => {
  const tmp = Deno.env.get("TMPDIR")!;
  if (TEST_ROOTS.MACVTAP_STATE_ROOT !== tmp || TEST_ROOTS.MACVTAP_LOG_DIR !== tmp) throw new Error("roots");
  Deno.mkdirSync(tmp + "/.statedirs");
  Deno.writeTextFileSync(tmp + "/.statedirs/d00", "x");
  Deno.writeTextFileSync(${
        JSON.stringify(seen)
      }, tmp + " " + (Deno.statSync(tmp).mode! & 0o777).toString(8));
});
Deno.test({ name: "skipped one", ignore: true, fn() {} });
Deno.test({ name: "fails on demand", ignore: Deno.env.get("PROBE_FAIL") !== "1", fn() { throw new Error("asked to"); } });
`,
    );
    const run = async (env: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", RUNNER, "-A", "--no-check", `${dir}/probe_test.ts`],
        env: { NO_COLOR: "1", ...env },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
    };
    const ok = await run({ [ALLOW_UNPRIVILEGED_ENV]: "1" });
    assertEquals(ok.code, 0, ok.stdout);
    const [root, mode] = Deno.readTextFileSync(seen).split(" ") as [string, string];
    assertEquals(mode, "711", "traversable, not listable or writable by others");
    assertMatch(root, /\/mt-[0-9a-f]{4}$/);
    assertEquals(
      await Deno.lstat(root).then(() => "present", () => "gone"),
      "gone",
      "the run's root and its registry were removed",
    );
    assertMatch(ok.stdout, /NOT RUN: 2 of 3 tests and steps were ignored:/);
    assertMatch(ok.stdout, /probe_test\.ts => skipped one/);

    const failed = await run({ [ALLOW_UNPRIVILEGED_ENV]: "1", PROBE_FAIL: "1" });
    assertEquals(failed.code, 1, failed.stdout);
    assertMatch(failed.stdout, /NOT RUN: 1 of 3/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "the runner as an unprivileged user (uid 65534): a green run fails, unless accepted",
  ignore: Deno.uid() !== 0,
  async fn() {
    // In /tmp, world-readable: a file in a run's own TMPDIR (tests/_run.ts) is not.
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "mvt-unpriv-" });
    try {
      Deno.chmodSync(dir, 0o755);
      Deno.writeTextFileSync(
        `${dir}/probe_test.ts`,
        `Deno.test("runs", () => {});
Deno.test({ name: "needs root", ignore: Deno.uid() !== 0, fn() {} });
`,
      );
      Deno.mkdirSync(`${dir}/home`);
      Deno.chownSync(`${dir}/home`, 65534, 65534);
      const run = async (extra: Record<string, string>) => {
        const out = await new Deno.Command("setpriv", {
          args: [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            Deno.execPath(),
            "run",
            "-A",
            RUNNER,
            "-A",
            "--no-check",
            `${dir}/probe_test.ts`,
          ],
          clearEnv: true,
          env: { PATH: "/usr/bin:/bin", HOME: `${dir}/home`, DENO_DIR: `${dir}/home`, ...extra },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        return { code: out.code, text };
      };
      const refused = await run({ NO_COLOR: "1" });
      assertEquals(refused.code, 1, refused.text);
      assertMatch(refused.text, /ok \| 1 passed \| 0 failed \| 1 ignored/);
      assertMatch(refused.text, /probe_test\.ts => needs root/);
      assertMatch(refused.text, /\nunprivileged run: FAILED: not root/);
      const accepted = await run({ NO_COLOR: "1", [ALLOW_UNPRIVILEGED_ENV]: "1" });
      assertEquals(accepted.code, 0, accepted.text);
      assertMatch(accepted.text, /unprivileged run accepted/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("makeRunRoot(): a new short directory, 0711, never one that was there", () => {
  const tmp = Deno.makeTempDirSync({ prefix: "mvt-roots-" });
  try {
    const a = makeRunRoot(tmp);
    const b = makeRunRoot(tmp);
    assertMatch(a, new RegExp(`^${tmp}/mt-[0-9a-f]{4}$`));
    assert(a !== b, "two runs, two roots");
    assertEquals(Deno.lstatSync(a).mode! & 0o777, 0o711);
    assertEquals([...Deno.readDirSync(a)], [], "empty");
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
