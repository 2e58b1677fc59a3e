/**
 * Ending a CNI process without starving the V8 code cache.
 *
 * Deno writes the code cache of the main module only when the process ends
 * normally; `Deno.exit()` skips that, and a plugin that always exits never
 * gets a cache (every call then compiles the whole bundle: ≈8 ms). A normal
 * end costs ≈1.5 ms more than `Deno.exit()` (runtime teardown), so we end
 * normally only while the cache may be missing or stale:
 *
 * - a stamp file `$DENO_DIR/macvtap_code_cache/<hash of the path>` records
 *   the identity of the main module (path, dev, ino, mtime, size) and the
 *   Deno and V8 versions the cache was made for;
 * - when the stamp matches, the cache exists (Deno keys it on the source hash
 *   and V8 rejects it on a flag or version change, which changes the file or
 *   the versions too): exit at once;
 * - otherwise write the stamp and end normally; Deno then writes the cache.
 *   An unref'd timer still exits if something holds the event loop open.
 *
 * Only the launcher (`dist/macvtap`, which sets `DENO_DIR`) uses the stamp;
 * from source or `deno compile` this is a plain `Deno.exit()`. The stamp only
 * decides between two ways of exiting: a forged one costs the cache, nothing
 * else. A stamp naming a cache that failed to be written (read-only
 * `DENO_DIR`) leaves us where `Deno.exit()` always left us.
 *
 * @module
 */

import { flushTiming, mark } from "./_timing.ts";
import { fnv1a32 } from "./_fnv.ts";

/** How long a normal end may wait for the event loop before we exit anyway. */
const NORMAL_END_LIMIT_MS = 2000;

/**
 * Where the stamp of the script at `file` lives in `denoDir`.
 *
 * @param denoDir The launcher's `DENO_DIR`.
 * @param file The script's path.
 * @returns The stamp file's path.
 */
export function codeCacheStampPath(denoDir: string, file: string): string {
  return `${denoDir}/macvtap_code_cache/${fnv1a32(file).toString(16).padStart(8, "0")}`;
}

/** The stamp path and the identity it must hold, or `undefined` when not under the launcher. */
function stampFor(): { path: string; identity: string } | undefined {
  const dir = Deno.env.get("DENO_DIR");
  const main = Deno.mainModule;
  if (!dir || !main.startsWith("file:///")) return undefined;
  const file = decodeURIComponent(new URL(main).pathname);
  const st = Deno.statSync(file);
  const identity = JSON.stringify([
    file,
    st.dev,
    st.ino,
    st.mtime?.getTime() ?? null,
    st.size,
    Deno.version.deno,
    Deno.version.v8,
  ]);
  return { path: codeCacheStampPath(dir, file), identity };
}

/**
 * End the process with `code`: at once when the code cache is known to be in
 * place, else by letting the event loop finish so Deno writes the cache.
 * Returns only in the second case; the caller must then return too.
 *
 * @param code The exit code.
 * @param options `checkCache: false` exits at once without looking at the
 *   stamp (CNI VERSION, which runtimes call before every ADD and DEL: the
 *   look costs ~0.5 ms there, the first file access of the process; the
 *   other commands, and the install's seed, keep the cache in place).
 */
export function exitProcess(code: number, options: { checkCache?: boolean } = {}): void {
  mark("result");
  if (options.checkCache === false) {
    mark("exit");
    flushTiming();
    Deno.exit(code);
  }
  let stamp: { path: string; identity: string } | undefined;
  try {
    stamp = stampFor();
    if (!stamp || Deno.readTextFileSync(stamp.path) === stamp.identity) {
      mark("exit");
      flushTiming();
      Deno.exit(code);
    }
  } catch {
    // no stamp yet, or no permission to look: end normally
  }
  Deno.exitCode = code;
  if (stamp) {
    try {
      const dir = stamp.path.slice(0, stamp.path.lastIndexOf("/"));
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
      const tmp = `${stamp.path}.tmp${Deno.pid}`;
      Deno.writeTextFileSync(tmp, stamp.identity, { mode: 0o644 });
      Deno.renameSync(tmp, stamp.path);
    } catch {
      // read-only cache dir: the next call ends normally again
    }
  }
  mark("exit (normal end, cache stamp written)");
  flushTiming();
  const timer = setTimeout(() => Deno.exit(code), NORMAL_END_LIMIT_MS);
  Deno.unrefTimer(timer);
}
