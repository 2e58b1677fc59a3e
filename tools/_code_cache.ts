/**
 * Seeding the V8 code cache of an installed `macvtap` launcher, so that the
 * first CNI call after a build or install already starts from the cache.
 *
 * Deno keys the cache on the script's path and source, so it is seeded where
 * the file will run: `dist/macvtap` after the build, `DIR/macvtap` after the
 * install. The seed is a call without `CNI_COMMAND` (the plugin prints what
 * it is; no side effects): with no stamp yet, the plugin writes its stamp
 * and ends normally, and Deno writes the cache (see internal/_exit.ts).
 * Not VERSION: that one exits at once without looking at the stamp.
 *
 * Before seeding, the cache database is pruned: Deno keeps one entry per
 * script path and never drops one, so every launcher installed at another
 * path (test installs, old bin dirs) stays in it, and every CNI call reads
 * past them (a 20 MB database with a 7 MB write-ahead log cost ~1 ms per call
 * here against a fresh one). Entries of files that no longer exist (ENOENT;
 * any other failure to look keeps the entry) are deleted with their stamp
 * (internal/_exit.ts: a launcher whose entry went missing after all ends
 * normally on its next call and writes it again), and the log is folded back
 * into the database.
 *
 * Deno's two other caches there, the module and npm analyses, are read by
 * every start too; nothing else folds their logs back. With a 276 KB log and
 * a half-free 3.4 MB dependency-analysis database left by test runs, an
 * empty `deno run` here took 0.65 ms longer (80 interleaved rounds) and 0.7
 * MB more RSS than with the logs folded in and the files compacted. So every
 * database is checkpointed, and compacted (`VACUUM`) when a quarter or more of
 * it is free pages.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { codeCacheStampPath } from "../internal/_exit.ts";
import { ensureTrustedDir, untrustedReason } from "../internal/_trusted_dir.ts";

/** Deno's code cache database in a `DENO_DIR` (Deno 2.x). */
const CODE_CACHE_DB = "v8_code_cache_v2";
/** Deno's other databases there, read at every start (Deno 2.x). */
const ANALYSIS_DBS = ["dep_analysis_cache_v2", "node_analysis_cache_v2"];

/**
 * The cache dir (`DENO_DIR`) a launcher uses, from its shell line (`d=DIR`,
 * tools/build.ts), if it is one.
 *
 * @param file A built or installed launcher.
 * @returns The directory, or `undefined`.
 */
export function launcherDenoDir(file: string): string | undefined {
  const head = new TextDecoder().decode(Deno.readFileSync(file).subarray(0, 2048));
  return /^#!\/bin\/sh\n":" \/\/;[^\n]* d=(\/[^\s;]+) n=;/.exec(head)?.[1];
}

/** Open `path` if it is there. */
function openIfPresent(path: string): DatabaseSync | undefined {
  try {
    Deno.statSync(path);
  } catch {
    return undefined;
  }
  const db = new DatabaseSync(path);
  db.exec("PRAGMA busy_timeout = 5000");
  return db;
}

/** Fold the write-ahead log back and compact the file when a quarter or more of it is free. */
function compact(db: DatabaseSync): void {
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
  const free = (db.prepare("PRAGMA freelist_count").get() as { freelist_count: number })
    .freelist_count;
  if (free > 0 && free * 4 >= pages) {
    db.exec("VACUUM");
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
}

/**
 * Delete the code cache entries of scripts that no longer exist from the
 * `DENO_DIR` that `launcher` uses; then fold every Deno database's
 * write-ahead log back into it and compact the ones that are mostly free.
 *
 * @param launcher An installed or built launcher.
 * @returns How many entries were deleted (0 when there is no database).
 */
export function pruneCodeCache(launcher: string): number {
  const dir = launcherDenoDir(launcher);
  // Never open a database someone else could have planted (internal/_trusted_dir.ts).
  if (!dir || untrustedReason(dir, { entries: true })) return 0;
  for (const name of ANALYSIS_DBS) {
    const db = openIfPresent(`${dir}/${name}`);
    if (!db) continue;
    try {
      compact(db);
    } finally {
      db.close();
    }
  }
  const db = openIfPresent(`${dir}/${CODE_CACHE_DB}`);
  if (!db) return 0;
  try {
    const rows = db.prepare("SELECT DISTINCT specifier FROM codecache").all() as {
      specifier: string;
    }[];
    const del = db.prepare("DELETE FROM codecache WHERE specifier = ?");
    let deleted = 0;
    for (const { specifier } of rows) {
      if (!specifier.startsWith("file:///") || !gone(new URL(specifier))) continue;
      deleted += Number(del.run(specifier).changes);
      try {
        Deno.removeSync(codeCacheStampPath(dir, decodeURIComponent(new URL(specifier).pathname)));
      } catch {
        // no stamp
      }
    }
    compact(db);
    return deleted;
  } finally {
    db.close();
  }
}

/** Whether nothing is at `url` (only ENOENT says so; a denied look does not). */
function gone(url: URL): boolean {
  try {
    Deno.statSync(url);
    return false;
  } catch (err) {
    return err instanceof Deno.errors.NotFound;
  }
}

/**
 * Make the launcher's cache dir as its check wants it (root's, 0755, every
 * directory above it root's and not writable by others: internal/_trusted_dir.ts),
 * then run `file` once without `CNI_COMMAND` so Deno writes its code cache.
 *
 * @param file The installed launcher.
 * @returns `undefined` on success, else why it failed (a warning: the plugin
 *   still works, its first call writes the cache instead).
 */
export async function seedCodeCache(file: string): Promise<string | undefined> {
  const dir = launcherDenoDir(file);
  if (dir) {
    let problem;
    try {
      problem = ensureTrustedDir(dir);
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    if (problem) return `the launcher will run without its cache: ${problem}`;
  }
  try {
    pruneCodeCache(file);
  } catch {
    // Best effort: a busy or unreadable database only costs time.
  }
  try {
    const out = await new Deno.Command(file, {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return undefined;
    return `exit code ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
