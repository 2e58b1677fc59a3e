/**
 * Paths the plugin owns: its state root and its log root.
 *
 * A network config is written by whoever may write a conflist or a
 * NetworkAttachmentDefinition, so a path from it is input, not trust. The
 * plugin writes only below a root the node's administrator chose (an
 * environment variable of the runtime, else a default), in directories it
 * created itself (0700, owned by the effective user, no symlink anywhere
 * below the root) and in files it created exclusively.
 *
 * @module
 */

import { effectiveUid, lstatIfPresent } from "./_libc.ts";

/** Why `path` is not an absolute, normalized path below (or at) `root`; `undefined` when it is. */
export function outsideRoot(path: string, root: string): string | undefined {
  if (!path.startsWith("/")) return "is not an absolute path";
  if (path.includes("\0")) return "contains a NUL byte";
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.some((p) => p === "." || p === "..")) return "contains a '.' or '..' component";
  const norm = normalizePath(root);
  const full = "/" + parts.join("/");
  if (full !== norm && !full.startsWith(norm === "/" ? "/" : `${norm}/`)) {
    return `is not inside ${norm}`;
  }
  return undefined;
}

/** `path` without empty components or a trailing slash (`/a//b/` ⇒ `/a/b`). */
export function normalizePath(path: string): string {
  return "/" + path.split("/").filter((p) => p !== "").join("/");
}

/** A path below a root that is not safe to use, with the reason. */
export class UnsafePathError extends Error {
  /** The offending path. */
  readonly path: string;
  /**
   * @param path The offending path.
   * @param problem Why it is not safe.
   */
  constructor(path: string, problem: string) {
    super(`"${path}" ${problem}; refusing to use it`);
    this.name = "UnsafePathError";
    this.path = path;
  }
}

/**
 * Why the directory `st` is not one only we control, or `undefined`: a
 * symlink, not a directory, owned by another user, or writable by group or
 * others.
 */
function dirProblem(st: Deno.FileInfo): string | undefined {
  if (st.isSymlink) return "is a symlink";
  if (!st.isDirectory) return "is not a directory";
  const uid = effectiveUid();
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not ${uid}`;
  if ((st.mode ?? 0) & 0o022) return "is writable by group or others";
  return undefined;
}

/**
 * Make sure `dir` (below or at `root`) exists and that it and every
 * directory between it and `root` is a plain directory only we control,
 * creating missing ones 0700. `root` itself is created when missing and
 * must be a directory.
 *
 * @returns the directories this call created, outermost first.
 *
 * @throws {UnsafePathError} when a component is a symlink, foreign or shared.
 */
export function ensureOwnedDir(root: string, dir: string): string[] {
  const problem = outsideRoot(dir, root);
  if (problem) throw new UnsafePathError(dir, problem);
  const base = normalizePath(root);
  const rest = normalizePath(dir).slice(base.length).split("/").filter((p) => p !== "");
  let path = base;
  // The root is the administrator's choice: it must be a directory (it may
  // be reached through a symlink). Everything below it must be ours.
  try {
    if (!Deno.statSync(path).isDirectory) throw new UnsafePathError(path, "is not a directory");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
  }
  const created: string[] = [];
  for (const part of rest) {
    path = path === "/" ? `/${part}` : `${path}/${part}`;
    if (ensureOne(path)) created.push(path);
  }
  return created;
}

/** Make sure `path` is a directory only we control; `true` when this call made it. */
function ensureOne(path: string): boolean {
  let made = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    const st = lstatIfPresent(path);
    if (!st) {
      try {
        Deno.mkdirSync(path, { mode: 0o700 });
        // The umask may have narrowed it; never widened it.
        made = true;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      continue;
    }
    const problem = dirProblem(st);
    if (problem) throw new UnsafePathError(path, problem);
    return made;
  }
  throw new UnsafePathError(path, "keeps changing");
}

/**
 * Open `path` for appending: a regular file we own with a single link,
 * created 0600 (exclusively) when missing. A symlink, a hard link to
 * another file, or a file of another user is refused.
 *
 * @throws {UnsafePathError} when the file is not one we can prove is ours.
 */
export function openOwnedFileForAppend(path: string): Deno.FsFile {
  for (let attempt = 0; attempt < 3; attempt++) {
    let before: Deno.FileInfo;
    try {
      before = Deno.lstatSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      try {
        // O_CREAT|O_EXCL never follows a symlink planted meanwhile.
        return Deno.openSync(path, { createNew: true, write: true, append: true, mode: 0o600 });
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) continue;
        throw e;
      }
    }
    const problem = fileProblem(before);
    if (problem) throw new UnsafePathError(path, problem);
    const file = Deno.openSync(path, { write: true, append: true });
    const after = file.statSync();
    if (after.ino !== before.ino || after.dev !== before.dev || fileProblem(after)) {
      file.close();
      continue;
    }
    return file;
  }
  throw new UnsafePathError(path, "keeps changing");
}

function fileProblem(st: Deno.FileInfo): string | undefined {
  if (st.isSymlink) return "is a symlink";
  if (!st.isFile) return "is not a regular file";
  const uid = effectiveUid();
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not ${uid}`;
  if ((st.nlink ?? 1) !== 1) return `has ${st.nlink} hard links`;
  return undefined;
}

/** Environment variable naming the state root (the runtime's, not the network config's). */
export const STATE_ROOT_ENV = "MACVTAP_STATE_ROOT";
/** Default state root, and default `stateDir`. */
export const DEFAULT_STATE_ROOT = "/var/lib/cni/macvtap";
/** Environment variable naming the log root. */
export const LOG_ROOT_ENV = "MACVTAP_LOG_DIR";
/** Default log root: `logFile` must be inside it. */
export const DEFAULT_LOG_ROOT = "/var/log/macvtap";

function rootFrom(env: string, fallback: string): string {
  let v: string | undefined;
  try {
    v = Deno.env.get(env);
  } catch {
    v = undefined; // no --allow-env: the default
  }
  return normalizePath(v && v.startsWith("/") ? v : fallback);
}

/** The state root: `$MACVTAP_STATE_ROOT`, else {@linkcode DEFAULT_STATE_ROOT}. */
export function stateRoot(): string {
  return rootFrom(STATE_ROOT_ENV, DEFAULT_STATE_ROOT);
}

/** The log root: `$MACVTAP_LOG_DIR`, else {@linkcode DEFAULT_LOG_ROOT}. */
export function logRoot(): string {
  return rootFrom(LOG_ROOT_ENV, DEFAULT_LOG_ROOT);
}
