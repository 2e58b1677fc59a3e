// deno-lint-ignore-file no-console -- a command-line tool: stdout is its output
/**
 * `deno task build`: bundle the two programs and write two executables that
 * run with the pinned Deno installed on the machine:
 *
 * - `dist/macvtap`: the CNI plugin (`cmd/main.ts`), under the CNI's V8 flags
 *   ({@linkcode V8_FLAGS}); the file a CNI bin dir gets;
 * - `dist/macvtap-deviceplugin`: the Kubernetes device plugin
 *   (`cmd/deviceplugin.ts`), under its own flags (`DP_V8_FLAGS`,
 *   `MALLOC_ARENA_MAX=2`, cmd/_dp_exec.ts); the file the DaemonSet's
 *   container runs.
 *
 * Each starts with the same two-line `/bin/sh` launcher (see
 * {@linkcode launcher}), then its bundle.
 *
 * `deno task compile` (`--compile`): additionally run `deno compile` on each
 * bundle: `bin/macvtap` with the CNI's flags and `bin/macvtap-deviceplugin`
 * with the device plugin's (`MALLOC_ARENA_MAX` cannot be baked in: set it in
 * the environment). That needs `denort` for Deno 2.9.6: either downloadable,
 * in `$DENO_DIR/dl/release/v2.9.6/`, or named by `DENORT_BIN`.
 *
 * Options: `--deno PATH` (the Deno the launchers run; default: this one),
 * `--dp-deno PATH` (the device plugin's, default `--deno`), `--deno-dir DIR`
 * (the cache directory; default /var/cache/macvtap/deno), `--libmnl PATH`
 * (the libmnl the CNI plugin loads unless `MACVTAP_LIBMNL` says otherwise;
 * default: none, the loader's search), `--out FILE` (the CNI executable;
 * default dist/macvtap), `--dp-out FILE` (default: `--out` + `-deviceplugin`).
 * The image build builds the node's launcher with them without touching
 * dist/.
 *
 * @module
 */

import { seedCodeCache } from "./_code_cache.ts";
import { launcherCheck } from "../internal/_trusted_dir.ts";
import { DP_MALLOC_ARENA_MAX, DP_V8_FLAGS } from "../cmd/_dp_exec.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const args = Deno.args;
function option(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

const deno = option("--deno", Deno.realPathSync(Deno.execPath()));
const dpDeno = option("--dp-deno", deno);
const denoDir = option("--deno-dir", "/var/cache/macvtap/deno");
const libmnl = option("--libmnl", "");
const out = option("--out", `${root}/dist/macvtap`);
const dpOut = option("--dp-out", `${out}-deviceplugin`);

/**
 * The CNI's V8 flags: one platform thread (faster start), a bounded heap, and
 * eager compilation (`--no-lazy`): every function is compiled with the
 * script, so the code cache Deno writes after the first run holds the whole
 * hot path (lazily compiled functions never reach it). A change here changes
 * the file, hence the cache key (see internal/_exit.ts). Wrong for a daemon
 * (its heap grows past 130 MiB under them): the device plugin has its own.
 */
const V8_FLAGS = "--single-threaded,--max-old-space-size=128,--no-lazy";

/** Paths written into a shell line unquoted. */
const SHELL_SAFE_PATH = /^\/[A-Za-z0-9._/@+-]+$/;

/**
 * The launcher: lines 1 and 2 are a POSIX shell script, the rest the bundle.
 * `/bin/sh` runs line 2 (`":"` is the shell's no-op), which checks the cache
 * dir by the rule of internal/_trusted_dir.ts and execs Deno on this same
 * file (`$0`); Deno skips line 1 (`#!`) and reads line 2 as a string and a
 * comment. `umask 022`: Deno makes its cache subdirectories 0777 minus the
 * umask.
 *
 * @param denoPath The Deno to exec.
 * @param v8Flags Its `--v8-flags`.
 * @param env Shell assignments made before the exec, each `NAME=${NAME:-default}`-style.
 */
function launcher(denoPath: string, v8Flags: string, env: string[]): string {
  for (const p of [denoPath, ...(libmnl ? [libmnl] : [])]) {
    if (!SHELL_SAFE_PATH.test(p)) {
      console.error(`"${p}" must be made of [A-Za-z0-9._/@+-] (it is written into a shell line)`);
      Deno.exit(1);
    }
  }
  const exports = env.length
    ? `${env.join(" ")}; export ${env.map((e) => e.split("=")[0]).join(" ")}; `
    : "";
  return `#!/bin/sh\n":" //; umask 022; ${launcherCheck(denoDir)}; ${exports}` +
    `DENO_DIR=$d DENO_NO_UPDATE_CHECK=1 exec ${denoPath} run -A -q --no-config --no-lock ` +
    `--cached-only $n --ext=js --v8-flags=${v8Flags} "$0" "$@"\n`;
}

async function run(
  cmd: string,
  cmdArgs: string[],
  env: Record<string, string> = {},
): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: root,
    env,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")} failed with exit code ${out.code}`);
  }
}

await Deno.mkdir(`${root}/build`, { recursive: true });
await Deno.mkdir(`${root}/dist`, { recursive: true });
await run(Deno.execPath(), [
  "bundle",
  "--quiet",
  "--platform",
  "deno",
  "-o",
  "build/macvtap.js",
  "cmd/main.ts",
]);

await run(Deno.execPath(), [
  "bundle",
  "--quiet",
  "--platform",
  "deno",
  "--minify",
  "-o",
  "build/deviceplugin.js",
  "cmd/deviceplugin.ts",
]);

/**
 * Non-ASCII characters (in messages and comments) as `\uXXXX` escapes, valid
 * in strings, templates, regular expressions, comments and identifiers alike:
 * a pure-ASCII source is a one-byte string to V8, which Deno loads without a
 * UTF-16 conversion (≈0.3 ms less per call, measured with the timing marks).
 */
function asciiOnly(source: string): string {
  return source.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Write `text` to `path` atomically, mode 0755. */
async function writeExecutable(path: string, text: string): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/.${path.slice(path.lastIndexOf("/") + 1)}.tmp${Deno.pid}`;
  await Deno.writeTextFile(tmp, text, { mode: 0o755 });
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, path);
  const size = (await Deno.stat(path)).size;
  console.log(`${path.replace(`${root}/`, "")}: ${(size / 1024).toFixed(1)} KiB`);
}

/** A bundle's text after the launcher: no `#!` line, ASCII only, ending in a newline. */
async function body(file: string): Promise<string> {
  const text = asciiOnly((await Deno.readTextFile(file)).replace(/^#!.*\n/, ""));
  if (!text.endsWith("\n")) throw new Error(`${file} does not end with a newline`);
  // Line 2 ends in a comment; a bundle starting with `(`, `[` or a template would
  // continue its `":"` string as a call or an index.
  if (!/^[A-Za-z_$/]/.test(text)) throw new Error(`${file} starts with "${text.slice(0, 20)}"`);
  return text;
}

// The CNI plugin: every CNI call runs this file (libmnl: the shipped copy, if named).
const cniEnv = libmnl ? [`MACVTAP_LIBMNL=\${MACVTAP_LIBMNL:-${libmnl}}`] : [];
await writeExecutable(
  out,
  launcher(deno, V8_FLAGS, cniEnv) + await body(`${root}/build/macvtap.js`),
);
console.log(`  runs ${deno}${libmnl ? `, libmnl ${libmnl}` : ""}`);
{
  const problem = await seedCodeCache(out);
  if (problem) console.error(`warning: cannot seed the code cache in ${denoDir}: ${problem}`);
}
// The device plugin: a daemon, under its own flags and glibc arenas.
await writeExecutable(
  dpOut,
  launcher(dpDeno, DP_V8_FLAGS, [`MALLOC_ARENA_MAX=\${MALLOC_ARENA_MAX:-${DP_MALLOC_ARENA_MAX}}`]) +
    await body(`${root}/build/deviceplugin.js`),
);
console.log(`  runs ${dpDeno}`);

if (args.includes("--compile")) {
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  for (
    const [input, output, flags] of [
      ["build/macvtap.js", "bin/macvtap", V8_FLAGS],
      ["build/deviceplugin.js", "bin/macvtap-deviceplugin", DP_V8_FLAGS],
    ]
  ) {
    await run(Deno.execPath(), [
      "compile",
      "--no-config",
      "-A",
      `--v8-flags=${flags}`,
      "-o",
      output!,
      input!,
    ]).catch((err) => {
      console.error(
        `${err.message}\ndeno compile needs denort ${Deno.version.deno}: set DENORT_BIN to an unpacked ` +
          `denort of exactly this version, or place denort-x86_64-unknown-linux-gnu.zip in ` +
          `$DENO_DIR/dl/release/v${Deno.version.deno}/. dist/macvtap (deno task build) works without it.`,
      );
      Deno.exit(1);
    });
  }
}
