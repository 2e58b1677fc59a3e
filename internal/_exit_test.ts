import { ok as assert } from "node:assert/strict";

const exitModule = new URL("./_exit.ts", import.meta.url).href;

/** Run a script calling exitProcess(3) with DENO_DIR set; report what it printed. */
async function runScript(
  script: string,
  denoDir: string | undefined,
): Promise<{ code: number; out: string }> {
  const env: Record<string, string> = { PATH: "/usr/bin:/bin", NO_COLOR: "1" };
  if (denoDir) env.DENO_DIR = denoDir;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "-q", "--no-lock", "--no-config", script],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, out: new TextDecoder().decode(out.stdout) };
}

Deno.test("exitProcess() ends normally until its stamp matches, then exits at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "exit-test-" });
  try {
    const script = `${dir}/main.js`;
    await Deno.writeTextFile(
      script,
      `import { exitProcess } from ${JSON.stringify(exitModule)};\n` +
        `exitProcess(3);\nconsole.log("returned");\n`,
    );
    const first = await runScript(script, `${dir}/cache`);
    assert(first.code === 3, `exit code ${first.code}`);
    assert(first.out === "returned\n", "no stamp yet: ends normally");
    const stamps = [...Deno.readDirSync(`${dir}/cache/macvtap_code_cache`)];
    assert(stamps.length === 1 && stamps[0]!.isFile, "one stamp written");

    const second = await runScript(script, `${dir}/cache`);
    assert(second.code === 3, `exit code ${second.code}`);
    assert(second.out === "", "stamp matches: Deno.exit()");

    // Another file at that path (new mtime, size): the stamp no longer matches.
    await Deno.writeTextFile(script, (await Deno.readTextFile(script)) + "// changed\n");
    const changed = await runScript(script, `${dir}/cache`);
    assert(changed.code === 3 && changed.out === "returned\n", "changed file: ends normally");
    const again = await runScript(script, `${dir}/cache`);
    assert(again.code === 3 && again.out === "", "re-stamped: Deno.exit()");

    // A forged or garbled stamp only costs the fast exit.
    const stamp = `${dir}/cache/macvtap_code_cache/${stamps[0]!.name}`;
    await Deno.writeTextFile(stamp, "garbage");
    const forged = await runScript(script, `${dir}/cache`);
    assert(forged.code === 3 && forged.out === "returned\n", "bad stamp: ends normally");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exitProcess() without DENO_DIR exits at once; a held event loop still ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "exit-test-" });
  try {
    const plain = `${dir}/plain.js`;
    await Deno.writeTextFile(
      plain,
      `import { exitProcess } from ${JSON.stringify(exitModule)};\n` +
        `exitProcess(4);\nconsole.log("returned");\n`,
    );
    const r = await runScript(plain, undefined);
    assert(r.code === 4 && r.out === "", "no launcher: Deno.exit()");

    const held = `${dir}/held.js`;
    await Deno.writeTextFile(
      held,
      `import { exitProcess } from ${JSON.stringify(exitModule)};\n` +
        `setTimeout(() => console.log("held"), 600_000);\nexitProcess(5);\n`,
    );
    const h = await runScript(held, `${dir}/cache`);
    assert(h.code === 5 && h.out === "", `a pending timer does not keep it alive (${h.code})`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exitProcess() with checkCache: false exits at once and neither reads nor writes a stamp", async () => {
  const dir = await Deno.makeTempDir({ prefix: "exit-test-" });
  try {
    const script = `${dir}/version.js`;
    await Deno.writeTextFile(
      script,
      `import { exitProcess } from ${JSON.stringify(exitModule)};\n` +
        `exitProcess(0, { checkCache: false });\nconsole.log("returned");\n`,
    );
    const r = await runScript(script, `${dir}/cache`);
    assert(r.code === 0 && r.out === "", "Deno.exit() without a stamp");
    let stamps: Deno.DirEntry[] = [];
    try {
      stamps = [...Deno.readDirSync(`${dir}/cache/macvtap_code_cache`)];
    } catch {
      // no stamp directory: nothing written
    }
    assert(stamps.length === 0, "no stamp written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
