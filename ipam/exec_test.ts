import { CniError, ErrorCode } from "../cni/mod.ts";
import { Logger, type LogSink, setLogger } from "../internal/_log.ts";
import { execIpam, type ExecIpamOptions, findPlugin, leftNothing } from "./exec.ts";

const enc = new TextEncoder();

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEquals(actual: unknown, expected: unknown, msg = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed: ${msg}\n  actual:   ${a}\n  expected: ${e}`);
}

async function rejects(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return err;
    throw new Error(`expected a CniError, got ${err}`, { cause: err });
  }
  throw new Error("expected a rejection");
}

/** A temp CNI_PATH dir with fake IPAM plugins (shell scripts). */
class FakeBin implements AsyncDisposable {
  constructor(readonly dir: string) {}
  static async create(): Promise<FakeBin> {
    return new FakeBin(await Deno.makeTempDir({ prefix: "ipam-exec-test-" }));
  }
  async script(name: string, body: string, mode = 0o755): Promise<string> {
    const path = `${this.dir}/${name}`;
    await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode });
    await Deno.chmod(path, mode);
    return path;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

const CONFIG = enc.encode(JSON.stringify({
  cniVersion: "1.0.0",
  name: "net",
  type: "macvtap",
  ipam: { type: "fake" },
}));

function opts(bin: FakeBin, extra: Partial<ExecIpamOptions> = {}): ExecIpamOptions {
  return {
    type: "fake",
    stdin: CONFIG,
    env: {
      PATH: "/usr/bin:/bin",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "ctr1",
      CNI_NETNS: "/run/netns/x",
      CNI_IFNAME: "eth0",
      CNI_ARGS: "IgnoreUnknown=1",
      CNI_PATH: bin.dir,
      FAKE_DIR: bin.dir,
      UNSET: undefined,
    },
    cniPath: [bin.dir],
    ...extra,
  };
}

Deno.test("findPlugin() returns the first executable regular file in CNI_PATH order", async () => {
  await using a = await FakeBin.create();
  await using b = await FakeBin.create();
  await using c = await FakeBin.create();
  await a.script("p", "exit 0", 0o644); // not executable: skipped
  await Deno.mkdir(`${b.dir}/p`); // a directory: skipped
  const want = await c.script("p", "exit 0");
  assertEquals(findPlugin("p", ["", "/nonexistent", a.dir, `${b.dir}/`, c.dir]), want);
  await Deno.symlink(want, `${a.dir}/q`);
  assertEquals(findPlugin("q", [a.dir, c.dir]), `${a.dir}/q`, "symlinks are followed");
});

Deno.test("findPlugin() refuses a type that is not a bare name (path traversal)", () => {
  for (
    const type of ["", "../host-local", "..", ".", "a/b", "/usr/lib/cni/host-local", "x..y", "a\0b"]
  ) {
    let err: unknown;
    try {
      findPlugin(type, ["/usr/lib/cni"]);
    } catch (e) {
      err = e;
    }
    assert(err instanceof CniError, `${JSON.stringify(type)} refused`);
    assertEquals(err.code, ErrorCode.INVALID_CONFIG, `code for ${JSON.stringify(type)}`);
  }
});

Deno.test("findPlugin() names the search path when the plugin is missing", async () => {
  await using a = await FakeBin.create();
  await a.script("p", "exit 0", 0o600);
  let err: unknown;
  try {
    findPlugin("p", [a.dir, "/nonexistent"]);
  } catch (e) {
    err = e;
  }
  assert(err instanceof CniError, "CniError");
  assertEquals(err.code, ErrorCode.IPAM);
  assert(err.msg.includes(`${a.dir}:/nonexistent`), err.msg);
  assert(err.details?.includes("not executable"), `details: ${err.details}`);
  let err2: unknown;
  try {
    findPlugin("p", [""]);
  } catch (e) {
    err2 = e;
  }
  assert(err2 instanceof CniError && /CNI_PATH is empty/.test(err2.msg), "empty CNI_PATH");
});

Deno.test("execIpam() ADD passes stdin and the CNI env and returns the parsed result", async () => {
  await using bin = await FakeBin.create();
  await bin.script(
    "fake",
    `cat > "$FAKE_DIR/stdin"
env | sort > "$FAKE_DIR/env"
printf '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'`,
  );
  const result = await execIpam("ADD", opts(bin));
  assertEquals(result, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
  assertEquals(await Deno.readFile(`${bin.dir}/stdin`), CONFIG, "whole config on stdin");
  const env = (await Deno.readTextFile(`${bin.dir}/env`)).split("\n");
  for (
    const kv of [
      "CNI_COMMAND=ADD",
      "CNI_CONTAINERID=ctr1",
      "CNI_NETNS=/run/netns/x",
      "CNI_IFNAME=eth0",
      "CNI_ARGS=IgnoreUnknown=1",
      `CNI_PATH=${bin.dir}`,
    ]
  ) {
    assert(env.includes(kv), `env has ${kv}`);
  }
  assert(!env.some((l) => l.startsWith("UNSET=") || l.startsWith("HOME=")), "only the given env");
});

Deno.test("execIpam() overrides CNI_COMMAND and resolves DEL/CHECK/STATUS/GC to undefined", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo "$CNI_COMMAND" >> "$FAKE_DIR/cmds"; echo '{"ignored":true}'`);
  for (const cmd of ["DEL", "CHECK", "STATUS", "GC"] as const) {
    assertEquals(await execIpam(cmd, opts(bin)), undefined, cmd);
  }
  assertEquals(await Deno.readTextFile(`${bin.dir}/cmds`), "DEL\nCHECK\nSTATUS\nGC\n");
});

Deno.test("execIpam() VERSION returns the plugin's version JSON", async () => {
  await using bin = await FakeBin.create();
  await bin.script(
    "fake",
    `printf '{"cniVersion":"1.0.0","supportedVersions":["%s"]}' "$CNI_COMMAND"`,
  );
  assertEquals(await execIpam("VERSION", opts(bin)), {
    cniVersion: "1.0.0",
    supportedVersions: ["VERSION"],
  });
});

Deno.test("execIpam() passes the child's error through with its own code", async () => {
  await using bin = await FakeBin.create();
  await bin.script(
    "fake",
    `cat >/dev/null; echo 'log line' >&2
echo '{"code":11,"msg":"try again","details":"lock held"}'; exit 1`,
  );
  const err = await rejects(execIpam("ADD", opts(bin)));
  assertEquals([err.code, err.msg, err.details], [11, "try again", "lock held"]);

  await bin.script("fake", `echo '{"cniVersion":"0.4.0","code":7,"msg":"no ranges"}'; exit 1`);
  const err2 = await rejects(execIpam("DEL", opts(bin)));
  assertEquals([err2.code, err2.msg, err2.details], [7, "no ranges", undefined]);
});

Deno.test("execIpam() reports a silent failure with our code and the child's stderr", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo 'panic: boom' >&2; exit 2`);
  const err = await rejects(execIpam("ADD", opts(bin)));
  assertEquals(err.code, ErrorCode.IPAM);
  assert(err.code >= 100, "our own code");
  assert(/exited with code 2/.test(err.msg), err.msg);
  assertEquals(err.details, "panic: boom");

  await bin.script("fake", `echo 'not json'; exit 1`);
  const err2 = await rejects(execIpam("ADD", opts(bin)));
  assertEquals([err2.code, err2.details], [ErrorCode.IPAM, "not json"]);

  await bin.script("fake", `echo '{"msg":"no code"}'; exit 1`);
  assertEquals((await rejects(execIpam("ADD", opts(bin)))).code, ErrorCode.IPAM);
});

Deno.test("execIpam() ADD with unparsable or empty output fails with DECODE", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo '{"ips": ['`);
  assertEquals((await rejects(execIpam("ADD", opts(bin)))).code, ErrorCode.DECODE);
  await bin.script("fake", `exit 0`);
  assertEquals((await rejects(execIpam("ADD", opts(bin)))).code, ErrorCode.DECODE);
});

Deno.test("execIpam() kills a hanging child at the timeout", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo $$ > "$FAKE_DIR/pid"; exec sleep 30`);
  const t0 = performance.now();
  const err = await rejects(execIpam("ADD", opts(bin, { timeoutMs: 300 })));
  const elapsed = performance.now() - t0;
  assertEquals(err.code, ErrorCode.TIMEOUT);
  assert(/timed out after 300 ms/.test(err.msg), err.msg);
  assert(elapsed >= 290 && elapsed < 3000, `killed on time (${elapsed} ms)`);
  const pid = Number((await Deno.readTextFile(`${bin.dir}/pid`)).trim());
  let alive = true;
  try {
    Deno.kill(pid, "SIGCONT");
  } catch {
    alive = false;
  }
  assert(!alive, `child ${pid} is gone`);
});

Deno.test("execIpam() does not wait for a grandchild that keeps stdout open", async () => {
  await using bin = await FakeBin.create();
  await bin.script(
    "fake",
    `sleep 30 & echo $! > "$FAKE_DIR/gc"
printf '{"cniVersion":"1.0.0","ips":[]}'; exit 0`,
  );
  const t0 = performance.now();
  try {
    assertEquals(await execIpam("ADD", opts(bin)), { cniVersion: "1.0.0", ips: [] });
    assert(performance.now() - t0 < 5000, "returned after the grace period");
  } finally {
    const gc = Number((await Deno.readTextFile(`${bin.dir}/gc`)).trim());
    try {
      Deno.kill(gc, "SIGKILL");
    } catch {
      // gone
    }
  }
});

Deno.test("execIpam() retries while the plugin file is still open for writing (ETXTBSY)", async () => {
  await using bin = await FakeBin.create();
  const path = `${bin.dir}/fake`;
  const file = await Deno.open(path, { write: true, create: true, mode: 0o755 });
  await file.write(enc.encode(`#!/bin/sh\nprintf '{"cniVersion":"1.0.0"}'\n`));
  const t0 = performance.now();
  const pending = execIpam("ADD", opts(bin));
  setTimeout(() => file.close(), 250);
  assertEquals(await pending, { cniVersion: "1.0.0" });
  assert(performance.now() - t0 >= 250, "it waited for the writer to close");
});

Deno.test("execIpam() gives up on ETXTBSY after the retries", async () => {
  await using bin = await FakeBin.create();
  const path = `${bin.dir}/fake`;
  using file = await Deno.open(path, { write: true, create: true, mode: 0o755 });
  await file.write(enc.encode(`#!/bin/sh\nexit 0\n`));
  const err = await rejects(execIpam("DEL", opts(bin)));
  assertEquals(err.code, ErrorCode.IPAM);
  assert(/Text file busy/.test(err.msg), err.msg);
});

Deno.test("execIpam() refuses path traversal without running anything", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `touch "$FAKE_DIR/ran"`);
  await Deno.mkdir(`${bin.dir}/sub`);
  for (const type of ["../fake", "sub/../fake", `${bin.dir}/fake`]) {
    const err = await rejects(execIpam("ADD", opts(bin, { type, cniPath: [`${bin.dir}/sub`] })));
    assertEquals(err.code, ErrorCode.INVALID_CONFIG, type);
  }
  let ran = true;
  try {
    await Deno.stat(`${bin.dir}/ran`);
  } catch {
    ran = false;
  }
  assert(!ran, "the plugin never ran");
});

Deno.test("execIpam() starts the child before it returns", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo started > "$FAKE_DIR/started"; cat >/dev/null; echo '{}'`);
  const pending = execIpam("ADD", opts(bin));
  // Block the event loop: only an already-spawned child can write the file now.
  const deadline = Date.now() + 2000;
  let started = false;
  while (!started && Date.now() < deadline) {
    try {
      Deno.statSync(`${bin.dir}/started`);
      started = true;
    } catch {
      // not yet
    }
  }
  assert(started, "the child ran while we never yielded");
  await pending;
});

Deno.test("execIpam() logs the child's stderr, or passes it through on request", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `echo 'lease acquired' >&2; echo '{}'`);
  const lines: string[] = [];
  const sink: LogSink = { write: (l) => void lines.push(l) };
  setLogger(new Logger({ level: "info", sink }));
  try {
    await execIpam("ADD", opts(bin));
    assert(
      lines.some((l) => JSON.parse(l).msg === 'IPAM plugin "fake" ADD: lease acquired'),
      lines.join(""),
    );
    lines.length = 0;
    await execIpam("ADD", opts(bin, { stderr: "inherit" }));
    assertEquals(lines, [], "inherited stderr is not logged");
  } finally {
    setLogger(new Logger());
  }
});

Deno.test("execIpam() kills the child when the signal aborts", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", `exec sleep 30`);
  const ac = new AbortController();
  const pending = execIpam("ADD", opts(bin, { signal: ac.signal }));
  setTimeout(() => ac.abort(new Error("cancelled")), 100);
  let err: unknown;
  try {
    await pending;
  } catch (e) {
    err = e;
  }
  assert(err instanceof Error && err.message === "cancelled", `rejects with the reason: ${err}`);
});

const HOST_LOCAL_DIR = "/usr/lib/cni";
const haveHostLocal = (() => {
  try {
    return Deno.statSync(`${HOST_LOCAL_DIR}/host-local`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "execIpam() drives the real host-local: ADD, duplicate ADD error code, DEL [1.0.0]",
  ignore: !haveHostLocal,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "ipam-exec-hl-" });
    try {
      const stdin = enc.encode(JSON.stringify({
        cniVersion: "1.0.0",
        name: "hlnet",
        type: "macvtap",
        ipam: { type: "host-local", subnet: "10.77.0.0/24", dataDir },
      }));
      const o: ExecIpamOptions = {
        type: "host-local",
        stdin,
        cniPath: [HOST_LOCAL_DIR],
        env: {
          CNI_CONTAINERID: "c1",
          CNI_NETNS: "/run/netns/none",
          CNI_IFNAME: "eth0",
          CNI_ARGS: "",
          CNI_PATH: HOST_LOCAL_DIR,
        },
      };
      const r = await execIpam("ADD", o) as { ips: { address: string; gateway: string }[] };
      assertEquals(r.ips, [{ address: "10.77.0.2/24", gateway: "10.77.0.1" }]);
      const dup = await rejects(execIpam("ADD", o));
      assert(
        dup.code !== ErrorCode.IPAM && /duplicate allocation/.test(dup.msg),
        `${dup.code} ${dup.msg}`,
      );
      await execIpam("DEL", o);
      await execIpam("DEL", o); // idempotent
      const left = [...Deno.readDirSync(`${dataDir}/hlnet`)].map((e) => e.name);
      assert(!left.includes("10.77.0.2"), `released: ${left}`);
      const noEnv = await rejects(execIpam("ADD", { ...o, env: { CNI_PATH: HOST_LOCAL_DIR } }));
      assertEquals(noEnv.code, ErrorCode.INVALID_ENV, "host-local's own code 4");
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test("leftNothing(): only a delegate that never ran, ran VERSION or answered with its own error holds nothing", async () => {
  await using bin = await FakeBin.create();
  await Deno.writeTextFile(`${bin.dir}/badinterp`, "#!/nonexistent/sh\n", { mode: 0o755 });
  await Deno.chmod(`${bin.dir}/badinterp`, 0o755);
  const failure = async (command: "ADD" | "VERSION", body: string | undefined, extra = {}) => {
    if (body !== undefined) await bin.script("fake", body);
    try {
      await execIpam(command, opts(bin, extra));
    } catch (err) {
      return err;
    }
    throw new Error(`${command} ${body}: expected a rejection`);
  };
  const cases: [string, unknown, boolean][] = [
    ["its own error result", await failure("ADD", `printf '{"code":11,"msg":"no"}'; exit 1`), true],
    ["killed at the time limit", await failure("ADD", "exec sleep 30", { timeoutMs: 300 }), false],
    ["killed by a signal", await failure("ADD", "kill -9 $$"), false],
    ["exit 1 without an error result", await failure("ADD", "exit 1"), false],
    ["exit 0 without a result", await failure("ADD", "exit 0"), false],
    ["exit 0 with garbled output", await failure("ADD", `echo '{"ips": ['`), false],
    [
      "a VERSION killed at the time limit",
      await failure("VERSION", "exec sleep 30", { timeoutMs: 300 }),
      true,
    ],
    ["not executable", await failure("ADD", undefined, { type: "missing" }), true],
  ];
  cases.push([
    "a missing interpreter",
    await failure("ADD", undefined, { type: "badinterp" }),
    true,
  ]);
  await Deno.chmod(`${bin.dir}/fake`, 0o644);
  cases.push(["not runnable", await failure("ADD", undefined), true]);
  for (const [what, err, expected] of cases) {
    assertEquals(leftNothing(err), expected, `${what}: ${err}`);
  }
  assertEquals(leftNothing(new Error("any other error")), false, "an unrelated error");
});

Deno.test("leftNothing(): an abort's reason, shared by a VERSION and an ADD, is never marked", async () => {
  await using bin = await FakeBin.create();
  await bin.script("fake", "exec sleep 30");
  const ac = new AbortController();
  const version = execIpam("VERSION", opts(bin, { signal: ac.signal }));
  const add = execIpam("ADD", opts(bin, { signal: ac.signal }));
  setTimeout(() => ac.abort(new Error("cancelled")), 100);
  const [v, a] = await Promise.allSettled([version, add]);
  assert(v.status === "rejected" && a.status === "rejected", "both rejected");
  assert(a.reason === ac.signal.reason, "the ADD rejects with the reason");
  assertEquals(leftNothing(a.reason), false, "a killed ADD may have allocated");
});
