import assert from "node:assert/strict";
import { installPlugin, parseArgs } from "./install.ts";
import { pruneCodeCache } from "./_code_cache.ts";
import { codeCacheStampPath } from "../internal/_exit.ts";
import { DatabaseSync } from "node:sqlite";
import { untrustedReason } from "../internal/_trusted_dir.ts";

const script = new URL("./install.ts", import.meta.url).pathname;

Deno.test("installPlugin() copies atomically with mode 0755 and replaces the old file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "install-test-" });
  try {
    const src = `${dir}/src`;
    await Deno.writeTextFile(src, "#!/bin/sh\necho v1\n", { mode: 0o600 });
    const bin = `${dir}/cni/bin`; // created on demand
    const dest = await installPlugin({ from: src, cniBinDir: `${bin}/` });
    assert.deepStrictEqual(dest, `${bin}/macvtap`, "installed path");
    assert.deepStrictEqual(await Deno.readTextFile(dest), "#!/bin/sh\necho v1\n", "content");
    assert.deepStrictEqual((await Deno.stat(dest)).mode! & 0o777, 0o755, "mode");

    const before = (await Deno.stat(dest)).ino;
    await Deno.writeTextFile(src, "#!/bin/sh\necho v2\n");
    await installPlugin({ from: src, cniBinDir: bin });
    assert.deepStrictEqual(
      await Deno.readTextFile(dest),
      "#!/bin/sh\necho v2\n",
      "replaced content",
    );
    assert((await Deno.stat(dest)).ino !== before, "replaced by rename (new inode), not rewritten");
    const names = [...Deno.readDirSync(bin)].map((e) => e.name);
    assert.deepStrictEqual(names, ["macvtap"], "no temp file left");
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
    assert.deepStrictEqual([...Deno.readDirSync(dir)].length, 0, "nothing created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseArgs() reads --cni-bin-dir and --from in both spellings", () => {
  assert.deepStrictEqual(parseArgs(["--cni-bin-dir", "/x"]), { cniBinDir: "/x" });
  assert.deepStrictEqual(parseArgs(["--cni-bin-dir=/y", "--from=/f"]), {
    cniBinDir: "/y",
    from: "/f",
  });
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
    assert.deepStrictEqual(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.deepStrictEqual((await Deno.stat(`${dir}/bin/macvtap`)).mode! & 0o777, 0o755, "mode");

    const missing = await cli("--from", `${dir}/absent`, "--cni-bin-dir", `${dir}/bin2`);
    assert.deepStrictEqual(missing.code, 1, "exit code");
    const msg = new TextDecoder().decode(missing.stderr);
    assert(msg.includes("run `deno task build`"), msg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "dist/macvtap is the CNI plugin alone; dist/macvtap-deviceplugin is the device plugin",
  ignore: !(() => {
    try {
      return Deno.statSync(new URL("../dist/macvtap-deviceplugin", import.meta.url)).isFile;
    } catch {
      return false;
    }
  })(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "install-test-" });
    try {
      const from = new URL("../dist/macvtap", import.meta.url).pathname;
      const dest = await installPlugin({ from, cniBinDir: dir });
      const cni = await Deno.readTextFile(dest);
      assert.deepStrictEqual(cni, await Deno.readTextFile(from), "installed as built");
      // No device-plugin code rides along: no gRPC in the CNI file, no payload line.
      assert(!cni.includes("DevicePlugin/ListAndWatch"), "no gRPC service in the CNI file");
      assert(!/^\/\/# /m.test(cni), "no marker or payload comment line");
      const dec = new TextDecoder();
      const version = await new Deno.Command(dest, {
        env: { CNI_COMMAND: "VERSION" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepStrictEqual(version.code, 0, dec.decode(version.stderr));
      assert(JSON.parse(dec.decode(version.stdout)).supportedVersions.includes("1.1.0"));
      const dp = await new Deno.Command(dest, {
        args: ["deviceplugin", "--help"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepStrictEqual(dp.code, 2, "deviceplugin refused");
      assert(dec.decode(dp.stderr).includes("run macvtap-deviceplugin"), dec.decode(dp.stderr));

      const dpFile = new URL("../dist/macvtap-deviceplugin", import.meta.url).pathname;
      const dpText = await Deno.readTextFile(dpFile);
      assert(dpText.includes("DevicePlugin/ListAndWatch"), "the device plugin's bundle");
      const help = await new Deno.Command(dpFile, {
        args: ["--help"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepStrictEqual(help.code, 0, dec.decode(help.stderr));
      assert(dec.decode(help.stdout).includes("--socket-dir"), dec.decode(help.stdout));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("pruneCodeCache() drops the entries of scripts that are gone, and only those", async () => {
  // Below /run (root's, 0755): a cache dir in /tmp fails the launcher's rule.
  const dir = await Deno.makeTempDir({ dir: "/run", prefix: "prune-test-" });
  try {
    const denoDir = `${dir}/deno`;
    await Deno.mkdir(denoDir, { mode: 0o755 });
    const launcher = `${dir}/macvtap`;
    await Deno.writeTextFile(
      launcher,
      `#!/bin/sh\n":" //; umask 022; d=${denoDir} n=; exec /deno run -A "$0" "$@"\n`,
    );
    const db = new DatabaseSync(`${denoDir}/v8_code_cache_v2`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(
      "CREATE TABLE codecache (specifier TEXT NOT NULL, type INTEGER NOT NULL, " +
        "source_hash INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (specifier, type))",
    );
    const put = db.prepare("INSERT INTO codecache VALUES (?, ?, 1, ?)");
    // The gone file's entries are most of the database: compacted once deleted.
    const big = new Uint8Array(64 << 10);
    put.run(`file://${launcher}`, 1, new Uint8Array(1));
    put.run(`file://${dir}/gone`, 1, big);
    put.run(`file://${dir}/gone`, 2, big);
    put.run("https://example.com/mod.js", 1, new Uint8Array(1));
    db.exec("PRAGMA wal_autocheckpoint = 0");
    // Deno's dependency analysis database, with a log nobody folded back.
    const dep = new DatabaseSync(`${denoDir}/dep_analysis_cache_v2`);
    dep.exec("PRAGMA journal_mode = WAL");
    dep.exec("PRAGMA wal_autocheckpoint = 0");
    dep.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)");
    dep.prepare("INSERT INTO t VALUES ('a', ?)").run(big);
    const logs = () =>
      ["v8_code_cache_v2", "dep_analysis_cache_v2"].map((n) => {
        try {
          return Deno.statSync(`${denoDir}/${n}-wal`).size;
        } catch {
          return 0;
        }
      });
    const stampOf = (file: string) => codeCacheStampPath(denoDir, file);
    await Deno.mkdir(`${denoDir}/macvtap_code_cache`);
    for (const f of [launcher, `${dir}/gone`]) await Deno.writeTextFile(stampOf(f), "[]");

    assert.ok(logs().every((n) => n > 0), `both logs hold frames: ${logs()}`);
    assert.deepStrictEqual(pruneCodeCache(launcher), 2, "both entries of the missing file");
    dep.close();
    db.close();
    assert.deepStrictEqual(logs(), [0, 0], "both logs folded back");
    const sizeAfter = Deno.statSync(`${denoDir}/v8_code_cache_v2`).size;
    // 128 KiB of deleted entries went through the log into the file: compacted away.
    assert.ok(sizeAfter < 32 << 10, `compacted: ${sizeAfter} bytes`);
    const check = new DatabaseSync(`${denoDir}/v8_code_cache_v2`);
    const left = (check.prepare("SELECT specifier FROM codecache ORDER BY specifier").all() as {
      specifier: string;
    }[]).map((r) => r.specifier);
    check.close();
    assert.deepStrictEqual(left, [`file://${launcher}`, "https://example.com/mod.js"]);
    assert.deepStrictEqual(
      [...Deno.readDirSync(`${denoDir}/macvtap_code_cache`)].map((e) => e.name),
      [stampOf(launcher).split("/").at(-1)],
      "the gone file's stamp goes with its entry (its launcher would rewrite the cache)",
    );
    assert.deepStrictEqual(pruneCodeCache(launcher), 0, "nothing more to drop");

    await Deno.writeTextFile(launcher, "#!/bin/sh\n");
    assert.deepStrictEqual(pruneCodeCache(launcher), 0, "no DENO_DIR in the launcher: nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Run `argv` under strace; the paths it opened (every process), its exit code, stdout, stderr. */
async function tracedRun(
  argv: string[],
  env: Record<string, string>,
): Promise<{ opened: string[]; code: number; stdout: string; stderr: string }> {
  const log = await Deno.makeTempFile({ prefix: "launcher-strace-" });
  try {
    const out = await new Deno.Command("strace", {
      args: ["-f", "-qq", "-e", "trace=openat,mkdir", "-o", log, ...argv],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const opened = [...(await Deno.readTextFile(log)).matchAll(/(?:openat|mkdir)\([^"]*"([^"]*)"/g)]
      .map((m) => m[1]!);
    const dec = new TextDecoder();
    return {
      opened,
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } finally {
    await Deno.remove(log);
  }
}

Deno.test({
  name: "the launcher never lets Deno read a cache dir that is not root's alone, and still works",
  ignore: Deno.uid() !== 0 ||
    !new Deno.Command("sh", { args: ["-c", "command -v strace"], stdout: "null" }).outputSync()
      .success,
  async fn() {
    // Below /run (root's, 0755): the chain above the cache dir passes the rule.
    const base = await Deno.makeTempDir({ dir: "/run", prefix: "launcher-test-" });
    try {
      const denoDir = `${base}/cache/deno`;
      const launcher = `${base}/bin/macvtap`;
      const build = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "tools/build.ts", "--deno-dir", denoDir, "--out", launcher],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepStrictEqual(build.code, 0, new TextDecoder().decode(build.stderr));
      assert.deepStrictEqual(
        new TextDecoder().decode(build.stderr),
        "",
        "the build seeded the cache without warnings",
      );
      const env = { CNI_COMMAND: "VERSION", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
      const version = (r: { code: number; stdout: string; stderr: string }, what: string) => {
        assert.deepStrictEqual(r.code, 0, `${what}: ${r.stderr}`);
        assert(JSON.parse(r.stdout).supportedVersions.includes("1.1.0"), `${what}: ${r.stdout}`);
      };
      const inCache = (opened: string[]) => opened.filter((p) => p.startsWith(`${denoDir}/`));

      // Trusted (as the build made it): Deno reads its code cache there.
      let r = await tracedRun([launcher], env);
      version(r, "trusted");
      assert(inCache(r.opened).includes(`${denoDir}/v8_code_cache_v2`), r.opened.join("\n"));
      assert.deepStrictEqual(r.stderr, "", "no warning");
      assert.deepStrictEqual(untrustedReason(denoDir, { entries: true }), undefined);

      const cases: [string, () => Promise<void>, () => Promise<void>][] = [
        ["cache dir 0777", () => Deno.chmod(denoDir, 0o777), () => Deno.chmod(denoDir, 0o755)],
        ["cache dir 0775", () => Deno.chmod(denoDir, 0o775), () => Deno.chmod(denoDir, 0o755)],
        [
          "cache dir owned by uid 4242",
          () => Deno.chown(denoDir, 4242, 0),
          () => Deno.chown(denoDir, 0, 0),
        ],
        [
          "its parent 0777",
          () => Deno.chmod(`${base}/cache`, 0o777),
          () => Deno.chmod(`${base}/cache`, 0o755),
        ],
        [
          "its parent owned by uid 4242",
          () => Deno.chown(`${base}/cache`, 4242, 4242),
          () => Deno.chown(`${base}/cache`, 0, 0),
        ],
        [
          "the code cache file owned by uid 4242",
          () => Deno.chown(`${denoDir}/v8_code_cache_v2`, 4242, 0),
          () => Deno.chown(`${denoDir}/v8_code_cache_v2`, 0, 0),
        ],
        [
          "the code cache file 0666",
          () => Deno.chmod(`${denoDir}/v8_code_cache_v2`, 0o666),
          () => Deno.chmod(`${denoDir}/v8_code_cache_v2`, 0o644),
        ],
        [
          "the cache dir a symlink to a good one",
          async () => {
            await Deno.rename(denoDir, `${base}/cache/real`);
            await Deno.symlink(`${base}/cache/real`, denoDir);
          },
          async () => {
            await Deno.remove(denoDir);
            await Deno.rename(`${base}/cache/real`, denoDir);
          },
        ],
      ];
      for (const [what, spoil, repair] of cases) {
        await spoil();
        try {
          assert.notDeepStrictEqual(
            untrustedReason(denoDir, { entries: true }),
            undefined,
            `${what}: the TypeScript rule refuses it too`,
          );
          r = await tracedRun([launcher], env);
          version(r, what);
          assert.deepStrictEqual(inCache(r.opened), [], `${what}: Deno opened nothing in it`);
          assert(!r.opened.some((p) => p.startsWith(`${base}/cache/real/`)), what);
          assert(r.stderr.includes(`not using the code cache ${denoDir}`), `${what}: ${r.stderr}`);
        } finally {
          await repair();
        }
      }
      r = await tracedRun([launcher], env);
      assert(inCache(r.opened).includes(`${denoDir}/v8_code_cache_v2`), "used again once repaired");

      // A missing cache dir: not made by Deno (under the runtime's umask), not used.
      await Deno.remove(`${base}/cache`, { recursive: true });
      r = await tracedRun(["sh", "-c", `umask 000; exec ${launcher}`], env);
      version(r, "missing cache dir");
      assert.deepStrictEqual(inCache(r.opened), [], "nothing opened or made there");
      await assert.rejects(() => Deno.lstat(`${base}/cache`), Deno.errors.NotFound);

      // The install under umask 000: every directory 0755 root, the cache usable again.
      await Deno.mkdir(`${base}/cache`, { mode: 0o777 });
      await Deno.chmod(`${base}/cache`, 0o777); // as a first Deno run under umask 000 left it
      await Deno.writeTextFile(`${base}/cache/planted`, "x");
      await Deno.chown(`${base}/cache/planted`, 4242, 4242);
      const install = await new Deno.Command("sh", {
        args: [
          "-c",
          `umask 000; exec "$0" run -A tools/install.ts --from "$1" --cni-bin-dir "$2"`,
          Deno.execPath(),
          launcher,
          `${base}/node/opt/cni/bin`,
        ],
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.deepStrictEqual(install.code, 0, new TextDecoder().decode(install.stderr));
      assert.deepStrictEqual(new TextDecoder().decode(install.stderr), "", "no warning");
      for (
        const d of [
          `${base}/node`,
          `${base}/node/opt`,
          `${base}/node/opt/cni`,
          `${base}/node/opt/cni/bin`,
          `${base}/cache`,
          denoDir,
          ...[...Deno.readDirSync(denoDir)].filter((e) => e.isDirectory).map((e) =>
            `${denoDir}/${e.name}`
          ),
        ]
      ) {
        const st = await Deno.lstat(d);
        assert(st.isDirectory, d);
        assert.deepStrictEqual([st.uid, st.mode! & 0o7777], [0, 0o755], d);
      }
      assert.deepStrictEqual(untrustedReason(denoDir, { entries: true }), undefined);
      r = await tracedRun([`${base}/node/opt/cni/bin/macvtap`], env);
      version(r, "installed");
      assert(inCache(r.opened).includes(`${denoDir}/v8_code_cache_v2`), "the install's cache");
      assert.deepStrictEqual(r.stderr, "");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
