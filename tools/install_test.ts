import { installPlugin, parseArgs } from "./install.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed: ${msg}\n  actual:   ${a}\n  expected: ${e}`);
}

const script = new URL("./install.ts", import.meta.url).pathname;

Deno.test("installPlugin() copies atomically with mode 0755 and replaces the old file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "install-test-" });
  try {
    const src = `${dir}/src`;
    await Deno.writeTextFile(src, "#!/bin/sh\necho v1\n", { mode: 0o600 });
    const bin = `${dir}/cni/bin`; // created on demand
    const dest = await installPlugin({ from: src, cniBinDir: `${bin}/` });
    assertEquals(dest, `${bin}/macvtap`, "installed path");
    assertEquals(await Deno.readTextFile(dest), "#!/bin/sh\necho v1\n", "content");
    assertEquals((await Deno.stat(dest)).mode! & 0o777, 0o755, "mode");

    const before = (await Deno.stat(dest)).ino;
    await Deno.writeTextFile(src, "#!/bin/sh\necho v2\n");
    await installPlugin({ from: src, cniBinDir: bin });
    assertEquals(await Deno.readTextFile(dest), "#!/bin/sh\necho v2\n", "replaced content");
    assert((await Deno.stat(dest)).ino !== before, "replaced by rename (new inode), not rewritten");
    const names = [...Deno.readDirSync(bin)].map((e) => e.name);
    assertEquals(names, ["macvtap"], "no temp file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installPlugin() refuses a missing source and names deno task build", async () => {
  const dir = await Deno.makeTempDir({ prefix: "install-test-" });
  try {
    let err: unknown;
    try {
      await installPlugin({ from: `${dir}/nope`, cniBinDir: `${dir}/bin` });
    } catch (e) {
      err = e;
    }
    assert(err instanceof Deno.errors.NotFound, `NotFound expected, got ${err}`);
    assert(err.message.includes("run `deno task build`"), err.message);
    assertEquals([...Deno.readDirSync(dir)].length, 0, "nothing created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseArgs() reads --cni-bin-dir and --from in both spellings", () => {
  assertEquals(parseArgs(["--cni-bin-dir", "/x"]), { cniBinDir: "/x" });
  assertEquals(parseArgs(["--cni-bin-dir=/y", "--from=/f"]), { cniBinDir: "/y", from: "/f" });
  let threw = false;
  try {
    parseArgs(["--cni-bin-dir"]);
  } catch (e) {
    threw = e instanceof TypeError;
  }
  assert(threw, "missing value rejected");
});

Deno.test("install.ts CLI installs, and exits 1 with a hint when the source is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "install-test-" });
  try {
    const cli = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-lock", script, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    await Deno.writeTextFile(`${dir}/plugin`, "#!/bin/sh\n");
    const ok = await cli("--from", `${dir}/plugin`, "--cni-bin-dir", `${dir}/bin`);
    assertEquals(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assertEquals((await Deno.stat(`${dir}/bin/macvtap`)).mode! & 0o777, 0o755, "mode");

    const missing = await cli("--from", `${dir}/absent`, "--cni-bin-dir", `${dir}/bin2`);
    assertEquals(missing.code, 1, "exit code");
    const msg = new TextDecoder().decode(missing.stderr);
    assert(msg.includes("run `deno task build`"), msg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
