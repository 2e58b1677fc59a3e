/**
 * What each IPAM delegate binary answered to VERSION, remembered across
 * invocations, so that a config newer than the delegate (Debian 12's
 * host-local stops at 1.0.0) is downgraded at once instead of costing a
 * refused call and a VERSION call on every ADD, DEL and CHECK.
 *
 * One small JSON file in the launcher's cache dir (read and written only when
 * that directory passes the launcher's rule, internal/_trusted_dir.ts: it and
 * every directory above it root's, not writable by group or others, no
 * symlink), keyed on the
 * binary's path and identity (dev, inode, mtime, size): a replaced or
 * rewritten binary is a new identity and is asked again. The file is read back
 * like untrusted input: it must be a regular file (no symlink) owned by root
 * and not writable by group or others, at most {@linkcode MAX_FILE_BYTES}; any
 * entry that is not exactly a path with an identity and a short list of
 * `x.y.z` versions is ignored. A wrong entry can only cost a refused call: the
 * caller renegotiates when the delegate still refuses.
 *
 * @module
 */

import { isJsonObject } from "../internal/_json.ts";
import { untrustedReason } from "../internal/_trusted_dir.ts";

/** Largest cache file read back. */
const MAX_FILE_BYTES = 64 * 1024;
/** Most binaries remembered (the least recently written are dropped). */
const MAX_ENTRIES = 32;
/** Most versions remembered per binary. */
const MAX_VERSIONS = 16;
const VERSION_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}$/;

interface Entry {
  /** `dev:ino:mtimeMs:size` of the binary (symlinks followed). */
  id: string;
  versions: string[];
}

/** The identity of the file at `path`, or `undefined` when it cannot be read. */
export function binaryIdentity(path: string): string | undefined {
  try {
    const st = Deno.statSync(path);
    if (!st.isFile) return undefined;
    return `${st.dev}:${st.ino}:${st.mtime?.getTime() ?? "-"}:${st.size}`;
  } catch {
    return undefined;
  }
}

function parseEntries(text: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return out;
  }
  if (!isJsonObject(raw)) return out;
  for (
    const [path, value] of Object.entries(raw).slice(0, MAX_ENTRIES)
  ) {
    if (!path.startsWith("/") || path.includes("\0") || path.length > 4096) continue;
    const e = value as { id?: unknown; versions?: unknown } | null;
    if (typeof e !== "object" || e === null || typeof e.id !== "string" || e.id.length > 128) {
      continue;
    }
    if (!Array.isArray(e.versions) || e.versions.length > MAX_VERSIONS) continue;
    const versions = e.versions.filter((v): v is string =>
      typeof v === "string" && VERSION_RE.test(v)
    );
    if (versions.length !== e.versions.length) continue;
    out.set(path, { id: e.id, versions });
  }
  return out;
}

/**
 * The remembered VERSION answers of IPAM delegates, in one file.
 *
 * @example Remember host-local's versions
 * ```ts
 * import { DelegateVersionCache } from "./_version_cache.ts";
 *
 * // Needs root (the state root): type-checked, not run by `deno test --doc`.
 * export function remember(): void {
 *   const cache = new DelegateVersionCache("/var/lib/cni/macvtap/.ipam_versions.json");
 *   cache.get("/usr/lib/cni/host-local"); // undefined the first time
 *   cache.set("/usr/lib/cni/host-local", ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
 * }
 * ```
 */
export class DelegateVersionCache {
  readonly file: string;

  /** @param file The cache file; its directory must be private to root. */
  constructor(file: string) {
    this.file = file;
  }

  /** The directory must pass the launcher's rule (internal/_trusted_dir.ts). */
  #dirOk(): boolean {
    try {
      return untrustedReason(this.#dir()) === undefined && Deno.lstatSync(this.#dir()).isDirectory;
    } catch {
      return false;
    }
  }

  #dir(): string {
    return this.file.slice(0, this.file.lastIndexOf("/")) || "/";
  }

  #read(): Map<string, Entry> {
    if (!this.#dirOk()) return new Map();
    try {
      const st = Deno.lstatSync(this.file);
      if (!st.isFile || st.size > MAX_FILE_BYTES) return new Map();
      if (st.uid !== 0 || st.mode === null || (st.mode & 0o022) !== 0) return new Map();
      return parseEntries(Deno.readTextFileSync(this.file));
    } catch {
      return new Map();
    }
  }

  /**
   * The versions the binary at `path` answered, if it is still the same file.
   *
   * @param path The delegate's path as found in CNI_PATH.
   * @returns Its supported versions, or `undefined` when unknown or changed.
   */
  get(path: string): string[] | undefined {
    const entry = this.#read().get(path);
    if (!entry) return undefined;
    return entry.id === binaryIdentity(path) ? entry.versions : undefined;
  }

  /**
   * Remember what the binary at `path` answered (best effort: a cache that
   * cannot be written only means asking again next time).
   *
   * @param path The delegate's path.
   * @param versions Its VERSION answer's `supportedVersions`.
   */
  set(path: string, versions: readonly string[]): void {
    const id = binaryIdentity(path);
    const clean = versions.filter((v) => VERSION_RE.test(v)).slice(0, MAX_VERSIONS);
    if (!id || !path.startsWith("/")) return;
    const entries = this.#read();
    entries.delete(path);
    entries.set(path, { id, versions: clean });
    const kept = [...entries].slice(-MAX_ENTRIES);
    // Only into an existing directory: never through a symlink, never one of its own.
    if (!this.#dirOk()) return;
    const tmp = `${this.file}.tmp${Deno.pid}`;
    try {
      Deno.writeTextFileSync(tmp, JSON.stringify(Object.fromEntries(kept)), {
        mode: 0o600,
        createNew: true,
      });
      Deno.renameSync(tmp, this.file);
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch {
        // never written
      }
    }
  }
}
