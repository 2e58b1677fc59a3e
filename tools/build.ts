// deno-lint-ignore-file no-console -- a command-line tool: stdout is its output
/**
 * `deno task build`: bundle `cmd/main.ts` and write `dist/macvtap`, one
 * executable file (shebang launcher + bundle) that runs with the pinned Deno
 * installed on the machine.
 *
 * `deno task compile` (`--compile`): additionally run `deno compile` on the
 * bundle into `bin/macvtap`. That needs `denort` for Deno 2.9.6: either
 * downloadable, in `$DENO_DIR/dl/release/v2.9.6/`, or named by `DENORT_BIN`.
 *
 * Options: `--deno PATH` (the Deno the launcher runs; default: this one),
 * `--deno-dir DIR` (its cache directory; default /var/cache/macvtap/deno),
 * `--out FILE` (where the executable goes; default dist/macvtap; the image
 * build uses it to build the node's launcher without touching dist/macvtap).
 *
 * @module
 */

import { CNI_BYTES_DIGITS, CNI_BYTES_MARKER, DP_MARKER } from "../cmd/_embedded.ts";
import { seedCodeCache } from "./_code_cache.ts";
import { launcherCheck } from "../internal/_trusted_dir.ts";

/** Base64 of bytes, in chunks (no node:buffer). */
function encodeBase64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(out);
}

/** gzip with the web CompressionStream. */
async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const args = Deno.args;
function option(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

const deno = option("--deno", Deno.realPathSync(Deno.execPath()));
const denoDir = option("--deno-dir", "/var/cache/macvtap/deno");
const out = option("--out", `${root}/dist/macvtap`);
const outDir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) || "/" : ".";

/**
 * V8 flags: one platform thread (faster start), a bounded heap, and eager
 * compilation (`--no-lazy`): every function is compiled with the script, so
 * the code cache Deno writes after the first run holds the whole hot path
 * (lazily compiled functions never reach it). A change here changes the file,
 * hence the cache key (see internal/_exit.ts).
 */
const V8_FLAGS = "--single-threaded,--max-old-space-size=128,--no-lazy";

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

const bundle = await Deno.readTextFile(`${root}/build/macvtap.js`);
// The device plugin rides along as one comment line (see cmd/_embedded.ts).
// A data: URL module has no file URL for createRequire(); node built-ins resolve from any base.
const dpSource = (await Deno.readTextFile(`${root}/build/deviceplugin.js`))
  .replace(
    "__deno_internal_createRequire(import.meta.url)",
    '__deno_internal_createRequire("file:///")',
  );
const dp = await gzip(new TextEncoder().encode(dpSource));
const payload = `\n${DP_MARKER}${encodeBase64(dp)}\n`;
/**
 * The launcher: lines 1 and 2 are a POSIX shell script, the rest the bundle.
 * `/bin/sh` runs line 2 (`":"` is the shell's no-op), which checks the cache
 * dir by the rule of internal/_trusted_dir.ts and execs Deno on this same
 * file; Deno skips line 1 (`#!`) and reads line 2 as a string and a comment.
 * `umask 022`: Deno makes its cache subdirectories 0777 minus the umask.
 */
const launcher = `#!/bin/sh\n":" //; umask 022; ${launcherCheck(denoDir)}; ` +
  `DENO_DIR=$d DENO_NO_UPDATE_CHECK=1 exec ${deno} run -A -q --no-config --no-lock --cached-only $n ` +
  `--ext=js --v8-flags=${V8_FLAGS} "$0" "$@"\n`;
if (!/^\/[A-Za-z0-9._/@+-]+$/.test(deno)) {
  console.error(
    `the Deno path "${deno}" must be made of [A-Za-z0-9._/@+-] (it is written into a shell line)`,
  );
  Deno.exit(1);
}
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

// Line 3 holds the length of the CNI part (see cniPart() in cmd/_embedded.ts).
const cniBody = asciiOnly(bundle.replace(/^#!.*\n/, ""));
const lengthLine = (n: number) =>
  `${CNI_BYTES_MARKER}${String(n).padStart(CNI_BYTES_DIGITS, "0")}\n`;
const cniLength = new TextEncoder().encode(launcher + lengthLine(0) + cniBody).length;
const executable = launcher + lengthLine(cniLength) + cniBody + payload.slice(1);
if (!cniBody.endsWith("\n")) throw new Error("the bundle does not end with a newline");
await Deno.mkdir(outDir, { recursive: true });
const tmp = `${outDir}/.${out.slice(out.lastIndexOf("/") + 1)}.tmp${Deno.pid}`;
await Deno.writeTextFile(tmp, executable, { mode: 0o755 });
await Deno.chmod(tmp, 0o755);
await Deno.rename(tmp, out);
const size = (await Deno.stat(out)).size;
console.log(`${out.replace(`${root}/`, "")}: ${(size / 1024).toFixed(1)} KiB, runs ${deno}`);
{
  const problem = await seedCodeCache(out);
  if (problem) console.error(`warning: cannot seed the code cache in ${denoDir}: ${problem}`);
}

if (args.includes("--compile")) {
  // The same program as dist/macvtap (bundle + device-plugin payload line),
  // so the compiled binary finds the payload in its embedded main module.
  await Deno.writeTextFile(
    `${root}/build/macvtap.full.js`,
    bundle.replace(/^#!.*\n/, "") + payload,
  );
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  await run(Deno.execPath(), [
    "compile",
    "--no-config",
    "-A",
    `--v8-flags=${V8_FLAGS}`,
    "-o",
    "bin/macvtap",
    "build/macvtap.full.js",
  ]).catch((err) => {
    console.error(
      `${err.message}\ndeno compile needs denort ${Deno.version.deno}: set DENORT_BIN to an unpacked ` +
        `denort of exactly this version, or place denort-x86_64-unknown-linux-gnu.zip in ` +
        `$DENO_DIR/dl/release/v${Deno.version.deno}/. dist/macvtap (deno task build) works without it.`,
    );
    Deno.exit(1);
  });
}
