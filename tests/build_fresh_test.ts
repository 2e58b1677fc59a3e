/**
 * `dist/macvtap` is refused when it is older than a file it is built from
 * (lab/cni.ts `buildProblem`), and that list of files covers what the build
 * really reads. No root needed.
 *
 * @module
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { BUILD_INPUTS, buildInputs, buildProblem } from "../lab/mod.ts";

const CHECKOUT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The local modules of `entry`'s graph, as `deno info` resolves them (absolute paths). */
async function moduleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: CHECKOUT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, `deno info ${entry}: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file://")).map((s) =>
    decodeURIComponent(new URL(s).pathname)
  );
}

Deno.test("buildInputs() holds every local module of the build's two entry points", async () => {
  const inputs = new Set(buildInputs());
  const graph = [
    ...await moduleGraph("cmd/main.ts"),
    ...await moduleGraph("cmd/deviceplugin.ts"),
  ];
  assert(graph.length > 50, `deno info found only ${graph.length} modules`);
  assertEquals(graph.filter((m) => !inputs.has(m)), [], "modules the build reads, not checked");
  for (const f of BUILD_INPUTS.files) assert(inputs.has(`${CHECKOUT}/${f}`), f);
});

Deno.test("buildProblem() names a missing build, then a source newer than the build", () => {
  const root = Deno.makeTempDirSync({ prefix: "mvt-fresh-" });
  try {
    for (const d of BUILD_INPUTS.dirs) Deno.mkdirSync(`${root}/${d}/sub`, { recursive: true });
    Deno.mkdirSync(`${root}/tools`);
    const old = new Date("2026-01-01T00:00:00Z");
    const touch = (rel: string, when: Date) => {
      Deno.writeTextFileSync(`${root}/${rel}`, "//");
      Deno.utimeSync(`${root}/${rel}`, when, when);
    };
    for (const f of BUILD_INPUTS.files) touch(f, old);
    touch("plugin/sub/deep.ts", old);
    touch("plugin/x_test.ts", new Date("2026-03-01T00:00:00Z")); // a test: not an input
    touch("netlink/notes.md", new Date("2026-03-01T00:00:00Z")); // not a module
    const bin = `${root}/macvtap`;
    assertMatch(buildProblem(bin, root)!, /macvtap is missing: run "deno task build" first/);
    touch("macvtap", new Date("2026-02-01T00:00:00Z"));
    assertEquals(buildProblem(bin, root), undefined);
    touch("plugin/sub/deep.ts", new Date("2026-02-02T00:00:00Z"));
    touch("deno.lock", new Date("2026-02-03T00:00:00Z"));
    assertMatch(
      buildProblem(bin, root)!,
      /macvtap is older than deno\.lock \(built 2026-02-01T00:00:00\.000Z, source modified 2026-02-03T00:00:00\.000Z\).*run "deno task build"/,
    );
    touch("deno.lock", old);
    assertMatch(buildProblem(bin, root)!, /older than plugin\/sub\/deep\.ts/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
