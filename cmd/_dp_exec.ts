/**
 * `macvtap deviceplugin` runs under its own V8 flags. The executable's
 * launcher line carries the CNI's flags (a large young heap, eager
 * compilation: right for a process that lives 30 ms, wrong for a daemon,
 * whose heap then grows to >130 MiB). When started by that launcher, the
 * device plugin replaces itself at once (execve(2), same pid) with the same
 * `deno run` and {@linkcode DP_V8_FLAGS}; the DaemonSet, which calls Deno
 * with these flags already, is left as it is.
 *
 * @module
 */

import { cstr, cStringArray, errno, libc } from "../internal/_libc.ts";
import { errnoText } from "../internal/_errno.ts";

/** The device plugin's V8 flags: a small bounded heap, tuned for size. */
export const DP_V8_FLAGS = "--max-old-space-size=48,--max-semi-space-size=1,--optimize-for-size";

/** glibc arenas: one per thread by default (~8 MiB of RSS each under load); two suffice. */
export const DP_MALLOC_ARENA_MAX = "2";

const MARK = "MACVTAP_DP_EXEC";

/** Whether `argv` is a `deno run` without {@linkcode DP_V8_FLAGS}. */
function underOtherFlags(argv: readonly string[]): boolean {
  return argv[1] === "run" && !argv.includes(`--v8-flags=${DP_V8_FLAGS}`);
}

/**
 * The argv to exec instead of `argv` (this process's, from /proc/self/cmdline),
 * or `undefined` when it already runs with {@linkcode DP_V8_FLAGS} or is not
 * a `deno run <mainModule> …` invocation (a compiled binary, say).
 *
 * @param argv this process's arguments, `argv[0]` the runtime
 * @param mainPath the absolute path of the main module
 * @param cwd the working directory, to resolve a relative module path
 */
export function devicePluginArgv(
  argv: readonly string[],
  mainPath: string,
  cwd: string,
): string[] | undefined {
  if (!underOtherFlags(argv)) return undefined;
  const script = argv.findIndex((a, i) =>
    i >= 2 && !a.startsWith("-") && normalize(a.startsWith("/") ? a : `${cwd}/${a}`) ===
      normalize(mainPath)
  );
  if (script < 0) return undefined;
  const options = argv.slice(2, script).filter((a) => !a.startsWith("--v8-flags="));
  return [argv[0]!, "run", ...options, `--v8-flags=${DP_V8_FLAGS}`, ...argv.slice(script)];
}

/** An absolute path without `.`, `..` and repeated `/` (no symlinks resolved). */
export function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/**
 * Replace this process with the device plugin under its own flags, if it is
 * not already; returns when there is nothing to do or exec failed (then the
 * plugin runs under the launcher's flags, with a warning).
 */
export function execWithDevicePluginFlags(): void {
  if (Deno.env.get(MARK) === "1") return;
  let argv;
  try {
    const raw = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
    if (raw.at(-1) === "") raw.pop();
    // Already under our flags (the DaemonSet), or not a `deno run` (a compiled binary).
    if (!underOtherFlags(raw)) return;
    const main = decodeURIComponent(new URL(Deno.mainModule).pathname);
    argv = devicePluginArgv(raw, main, Deno.cwd());
  } catch {
    return;
  }
  if (!argv) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        "macvtap deviceplugin: cannot find the main module in this process's arguments; " +
          "running under the launcher's V8 flags\n",
      ),
    );
    return;
  }
  const env = { MALLOC_ARENA_MAX: DP_MALLOC_ARENA_MAX, ...Deno.env.toObject(), [MARK]: "1" };
  const args = cStringArray(argv);
  const envp = cStringArray(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  libc().execve(cstr(Deno.execPath()), args.array, envp.array);
  void args.block, envp.block;
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `macvtap deviceplugin: re-exec with its V8 flags failed (${
        errnoText(errno())
      }); running under the launcher's\n`,
    ),
  );
}
