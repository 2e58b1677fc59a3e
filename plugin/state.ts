/**
 * Attachment records: what ADD did, so DEL and GC can undo it when the
 * namespace (and with it the container's view) is gone — and only that.
 *
 * One JSON file per attachment, `<stateDir>/<network>/<containerId>@<ifname>`
 * (each part percent-encoded outside `[A-Za-z0-9_.-]`, so two attachments
 * never share a file). It is created exclusively (`link(2)` of a complete
 * temporary file) before the first side effect: a second ADD of the same
 * attachment finds it and stops before doing anything. It is updated before
 * each further effect (an intent log) and removed once they are undone.
 *
 * The state directory lies inside the state root (see `stateDir` in the
 * config); every directory below the root is ours (0700, no symlinks) and
 * every file 0600. Read back, a record is input like any other: a file whose
 * name and content disagree, or whose values are not what ADD writes, is
 * not acted on.
 *
 * @module
 */

import { CNI_ID_RE } from "../cni/mod.ts";
import type { HostRoute } from "../hostroute/mod.ts";
import { fnv1a64 } from "../internal/_fnv.ts";
import { ifnameProblem } from "../internal/_ifname.ts";
import { canonicalCidr } from "../internal/_ip.ts";
import { isJsonObject } from "../internal/_json.ts";
import { ensureOwnedDir, outsideRoot, stateRoot } from "../internal/_owned_path.ts";
import { errorText } from "../internal/_error_text.ts";
import { lstatIfPresent, processExists, removeDirIfEmpty, statPath } from "../internal/_libc.ts";

/** What one ADD set up. */
export interface AttachmentRecord {
  containerId: string;
  ifname: string;
  /** CNI_NETNS at ADD time. */
  netns: string;
  /** Inode of that namespace at ADD time: GC touches links there only while it is the same. */
  netnsIno?: number;
  /** The alias ADD gave the container link (`linkMarker()`): DEL and GC require it. */
  linkAlias?: string;
  /** IPAM plugin type, when IPAM was used. */
  ipamType?: string;
  /** CNI_ARGS at ADD time (IPAM DEL from GC passes them back). */
  cniArgs?: string;
  /** Addresses IPAM returned (CIDR). */
  ips: string[];
  /** hostrouteif name and the host routes added through it. */
  hostrouteif?: string;
  /** ifindex of the hostrouteif the routes go out of. */
  hostrouteIndex?: number;
  /**
   * Inode of the host network namespace the routes are in (the plugin's
   * own at ADD): claims count only among records of the same host.
   */
  hostNetnsIno?: number;
  /**
   * The host routes of this attachment. `pending`: written before they were
   * added (a killed ADD may or may not have added them); `added`: every one
   * of them was added by this attachment's ADD.
   */
  hostRoutes: HostRoute[];
  hostRoutesState?: "pending" | "added";
}

/** A record that already exists: the attachment is there (a second ADD). */
export class AttachmentExistsError extends Error {
  constructor(network: string, containerId: string, ifname: string) {
    super(
      `Attachment ${containerId}/${ifname} of network "${network}" already exists; ` +
        `DEL it before adding it again`,
    );
    this.name = "AttachmentExistsError";
  }
}

/** The state directory (and network directory) could not be written. */
export class StateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StateError";
  }
}

/** A record and the file it was read from. */
export interface StoredRecord {
  record: AttachmentRecord;
  /** The file name (the key) inside the network directory. */
  key: string;
}

const TMP_RE = /\.tmp(\d+)$/;

/** Percent-encode everything outside `[A-Za-z0-9_.-]` (so `@`, `%` and `/` never appear raw). */
function encodePart(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.\-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * The record file name of an attachment: `<containerId>@<ifname>`, each
 * encoded by {@linkcode encodePart}. Injective: `a-b`+`c` and `a`+`b-c`
 * differ.
 */
export function recordKey(containerId: string, ifname: string): string {
  return `${encodePart(containerId)}@${encodePart(ifname)}`;
}

/** Reads and writes attachment records under one state directory. */
export class StateStore {
  readonly dir: string;
  readonly root: string;

  /**
   * @param dir The state directory (inside `root`).
   * @param root The state root; default the process's (`MACVTAP_STATE_ROOT`).
   */
  readonly readOnly: boolean;
  /** Directories this store's writes created (a failed ADD removes them again). */
  #created: string[] = [];

  constructor(dir: string, root: string = stateRoot(), options: { readOnly?: boolean } = {}) {
    this.dir = dir;
    this.root = root;
    this.readOnly = options.readOnly ?? false;
  }

  #writable(what: string): void {
    if (this.readOnly) {
      throw new StateError(`${this.dir} is outside the state root ${this.root}: cannot ${what}`);
    }
  }

  #netDir(network: string): string {
    if (!CNI_ID_RE.test(network)) throw new StateError(`Invalid network name "${network}"`);
    return `${this.dir}/${network}`;
  }

  #file(network: string, containerId: string, ifname: string): string {
    return `${this.#netDir(network)}/${recordKey(containerId, ifname)}`;
  }

  /** The file of the pre-0.2 naming (`<containerId>-<ifname>`), read for upgrades only. */
  #legacyFile(network: string, containerId: string, ifname: string): string | undefined {
    const name = `${containerId}-${ifname}`;
    return name.includes("/") || name.includes("@")
      ? undefined
      : `${this.#netDir(network)}/${name}`;
  }

  /**
   * Write `body` to a temporary file of this process next to `file` and call
   * `commit(tmp)`; the temporary file never outlives the call. Retries when
   * a concurrent DEL removed the (empty) network directory meanwhile.
   */
  #withTemp(network: string, file: string, body: string, commit: (tmp: string) => void): void {
    const tmp = `${file}.tmp${Deno.pid}`;
    for (let attempt = 0;; attempt++) {
      try {
        this.#created.push(...ensureOwnedDir(this.root, this.#netDir(network)));
        try {
          try {
            Deno.writeTextFileSync(tmp, body, { mode: 0o600, createNew: true });
          } catch (err) {
            if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
            // Ours from an earlier process with this pid: it is dead.
            Deno.removeSync(tmp);
            Deno.writeTextFileSync(tmp, body, { mode: 0o600, createNew: true });
          }
          commit(tmp);
        } finally {
          // Also after a failed write (a full disk leaves a partial file).
          removeQuietly(tmp);
        }
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound && attempt < 3) continue;
        if (err instanceof AttachmentExistsError) throw err;
        throw new StateError(
          `Cannot write the record ${file}: ${errorText(err)}`,
          { cause: err },
        );
      }
    }
  }

  /**
   * Create the record of a new attachment, exclusively.
   *
   * @throws {AttachmentExistsError} when the attachment has a record already.
   * @throws {StateError} when the state directory cannot be written.
   */
  create(network: string, rec: AttachmentRecord): void {
    this.#writable("create a record");
    // Registered and written under the registry's lock: pruning never sees it half done.
    using _registered = rec.hostRoutes.length ? this.#registered() : undefined;
    const file = this.#file(network, rec.containerId, rec.ifname);
    const legacy = this.#legacyFile(network, rec.containerId, rec.ifname);
    if (legacy && this.#readFile(legacy, rec.containerId, rec.ifname)) {
      throw new AttachmentExistsError(network, rec.containerId, rec.ifname);
    }
    this.#withTemp(network, file, JSON.stringify(rec), (tmp) => {
      try {
        Deno.linkSync(tmp, file);
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) {
          throw new AttachmentExistsError(network, rec.containerId, rec.ifname);
        }
        throw err;
      }
    });
  }

  /**
   * Replace the record of an attachment this call created (temp file +
   * rename, so a reader sees the old or the new one).
   *
   * @throws {StateError} when the state directory cannot be written.
   */
  update(network: string, rec: AttachmentRecord): void {
    this.#writable("update a record");
    // Before the routes are claimed, so other state directories' ADDs see them;
    // registered and written under the registry's lock (see #registered).
    using _registered = rec.hostRoutes.length ? this.#registered() : undefined;
    const file = this.#file(network, rec.containerId, rec.ifname);
    this.#withTemp(network, file, JSON.stringify(rec), (tmp) => Deno.renameSync(tmp, file));
  }

  /** The record of an attachment, or `undefined` (absent, unreadable or not valid). */
  read(network: string, containerId: string, ifname: string): AttachmentRecord | undefined {
    const rec = this.#readFile(this.#file(network, containerId, ifname), containerId, ifname);
    if (rec) return rec;
    const legacy = this.#legacyFile(network, containerId, ifname);
    return legacy ? this.#readFile(legacy, containerId, ifname) : undefined;
  }

  #readFile(file: string, containerId: string, ifname: string): AttachmentRecord | undefined {
    try {
      if (!lstatIfPresent(file)?.isFile) return undefined;
      const rec = parseRecord(Deno.readTextFileSync(file));
      return rec && rec.containerId === containerId && rec.ifname === ifname ? rec : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Remove the record of an attachment (missing is fine), and the network
   * directory when that was its last record.
   *
   * @throws {StateError} when it exists but cannot be removed.
   */
  remove(network: string, containerId: string, ifname: string): void {
    if (this.readOnly) return; // records outside the root are never touched
    const files = [this.#file(network, containerId, ifname)];
    const legacy = this.#legacyFile(network, containerId, ifname);
    // A legacy file is removed only when it really is this attachment's.
    if (legacy && this.#readFile(legacy, containerId, ifname)) files.push(legacy);
    for (const file of files) {
      try {
        Deno.removeSync(file);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw new StateError(
          `Cannot remove the record ${file}: ${errorText(err)}`,
          { cause: err },
        );
      }
    }
    // A temporary file of this attachment that a killed writer left.
    this.#sweepTemps(network, recordKey(containerId, ifname));
    this.pruneNetworkDir(network);
  }

  /** Remove the network directory if it is empty (a concurrent ADD re-creates it). */
  pruneNetworkDir(network: string): void {
    if (!this.readOnly) removeDirIfEmpty(this.#netDir(network));
  }

  /**
   * Undo a failed ADD's record: remove it, and the directories this store
   * created for it when they are empty again.
   */
  abandon(network: string, containerId: string, ifname: string): void {
    this.remove(network, containerId, ifname);
    for (const dir of this.#created.reverse()) {
      try {
        Deno.removeSync(dir);
      } catch {
        // not empty (someone else's records), or gone
      }
    }
    this.#created = [];
  }

  /**
   * Remove temporary files whose writer is gone (a process killed between
   * write and link/rename). Only names of the form `<key>.tmp<pid>`.
   */
  sweepTemps(network: string): void {
    if (!this.readOnly) this.#sweepTemps(network);
  }

  #sweepTemps(network: string, onlyKey?: string): void {
    for (const e of this.#entries(network)) {
      const pid = TMP_RE.exec(e.name)?.[1];
      if (!e.isFile || pid === undefined) continue;
      const key = e.name.replace(TMP_RE, "");
      if (onlyKey !== undefined ? key !== onlyKey : !decodeKey(key)) continue;
      if (Number(pid) === Deno.pid || processAlive(Number(pid))) continue;
      removeQuietly(`${this.#netDir(network)}/${e.name}`);
    }
  }

  #entries(network: string): Deno.DirEntry[] {
    try {
      return [...Deno.readDirSync(this.#netDir(network))];
    } catch {
      return [];
    }
  }

  /**
   * Every valid record of a network: a file whose name is a record key and
   * whose content is a valid record of exactly that attachment. Anything
   * else in the directory is skipped (and never removed).
   */
  list(network: string): StoredRecord[] {
    const out: StoredRecord[] = [];
    for (const e of this.#entries(network)) {
      if (!e.isFile) continue;
      const id = decodeKey(e.name);
      if (!id) continue;
      const rec = this.#readFile(`${this.#netDir(network)}/${e.name}`, id[0], id[1]);
      if (rec) out.push({ record: rec, key: e.name });
    }
    return out;
  }

  /** The path of an attachment's record (its identity when comparing claims). */
  recordPath(network: string, containerId: string, ifname: string): string {
    return this.#file(network, containerId, ifname);
  }

  /**
   * Take the registry's lock and make sure this state directory is
   * registered; the caller writes its record before it disposes the lock.
   * Pruning takes the same lock and removes only an entry whose directory
   * does not exist: a record that claims routes exists only with its entry.
   */
  #registered(): Disposable {
    const lock = lockRegistry(this.root);
    try {
      this.#register();
      return lock;
    } catch (err) {
      lock[Symbol.dispose]();
      throw err;
    }
  }

  /**
   * Note this state directory in the root's registry (`<root>/.statedirs/`),
   * once, so that host-route claims can be read across every state
   * directory of the node (see {@linkcode hostRouteClaims}). Done by the
   * first write of a record that lists host routes, before it is written:
   * a directory whose records claim none needs no entry, and an ADD that
   * fails before routing leaves none. The registry's lock is held.
   */
  #register(): void {
    const reg = `${this.root}/${REGISTRY}`;
    let file: string | undefined;
    for (const name of registryNames(this.dir)) {
      const at = `${reg}/${name}`;
      let st: Deno.FileInfo | undefined;
      let held: string | undefined;
      try {
        st = lstatIfPresent(at);
        held = st?.isFile ? Deno.readTextFileSync(at) : undefined;
      } catch {
        // unreadable: ours to write again
      }
      if (st && !st.isFile) continue; // not an entry, and not ours to remove
      if (held === this.dir) return;
      // The first free (or cut short) slot, unless a later one already holds this directory.
      if (!file && (held === undefined || outsideRoot(held, this.root))) file = at;
    }
    if (!file) throw new StateError(`Cannot register the state directory in ${reg}: no free slot`);
    // A new entry: drop those of directories that are gone, so the registry
    // holds the live ones (each test of a suite, each short-lived stateDir
    // would otherwise leave one for good).
    pruneLocked(this.root);
    // Whole or not at all (temporary file, then rename): an entry cut short
    // by a full disk would hide this directory's claims from every ADD.
    const tmp = `${file}.tmp${Deno.pid}`;
    try {
      ensureOwnedDir(this.root, reg);
      removeQuietly(tmp);
      Deno.writeTextFileSync(tmp, this.dir, { createNew: true, mode: 0o600 });
      Deno.renameSync(tmp, file);
    } catch (err) {
      throw new StateError(
        `Cannot register the state directory in ${reg}: ${errorText(err)}`,
        { cause: err },
      );
    } finally {
      removeQuietly(tmp);
    }
  }

  /** Names of the network directories in the state directory. */
  networks(): string[] {
    try {
      return [...Deno.readDirSync(this.dir)]
        .filter((e) => e.isDirectory && CNI_ID_RE.test(e.name))
        .map((e) => e.name);
    } catch {
      return [];
    }
  }
}

/** The registry of state directories, inside the state root. */
const REGISTRY = ".statedirs";
/** Entries per hash in the registry (`<hash>`, `<hash>.1`, …), for long paths. */
const REGISTRY_SLOTS = 8;
/** The longest path (bytes) named by its own hex in the registry: 2 × 120 + 1 fits a file name. */
const REGISTRY_HEX_MAX = 120;
/** The name of a registry entry; anything else there (a writer's temporary file) is not one. */
const REGISTRY_ENTRY_RE = /^(d[0-9a-f]{2,240}|[0-9a-f]{16}(\.[1-7])?)$/;
/** A registrant's temporary file: an entry's name, `.tmp` and its pid. */
const REGISTRY_TMP_RE = /^(d[0-9a-f]{2,240}|[0-9a-f]{16}(\.[1-7])?)\.tmp(\d+)$/;
/** The registry's lock file (not an entry name). */
const REGISTRY_LOCK = ".lock";

/**
 * Take the registry's lock (flock(2) on `<root>/.statedirs/.lock`, created
 * 0600 in the registry, which is ours): held by every write of a record
 * that claims routes, with the registration before it, and by pruning.
 * Released on dispose, or by the kernel when the process dies. The file is
 * opened for reading (flock needs no more), so a registry that is there
 * already needs no write access to be locked.
 *
 * @throws {StateError} when the registry or its lock cannot be made or taken.
 */
function lockRegistry(root: string): Disposable {
  const reg = `${root}/${REGISTRY}`;
  const path = `${reg}/${REGISTRY_LOCK}`;
  let file: Deno.FsFile | undefined;
  try {
    ensureOwnedDir(root, reg);
    try {
      file = Deno.openSync(path, { read: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      try {
        Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err; // made meanwhile
      }
      file = Deno.openSync(path, { read: true });
    }
    // The registry is 0700 and ours: nothing else can have put a link there,
    // but lock only the regular file that is at the path.
    const st = file.statSync();
    const at = lstatIfPresent(path);
    if (!st.isFile || !at?.isFile || at.ino !== st.ino || at.dev !== st.dev) {
      throw new Error(`${path} is not a regular file of the registry`);
    }
    file.lockSync(true);
  } catch (err) {
    file?.close();
    throw new StateError(`Cannot lock the registry ${reg}: ${errorText(err)}`, { cause: err });
  }
  const held = file;
  let open = true;
  return {
    [Symbol.dispose]() {
      if (!open) return;
      open = false;
      held.close(); // releases the lock
    },
  };
}

/**
 * Remove the registry entries of state directories that are gone (their
 * path does not exist: no record can be there), and temporary files of
 * registrants that are dead. An entry naming a path outside the root (cut
 * short) is left to {@linkcode StateStore}'s registration, anything that is
 * not a file is not an entry. The registry's lock must be held: a
 * registrant writes its entry and then its record under it, so a directory
 * seen gone here has no record that claims routes, and none can appear
 * before the entry is gone.
 *
 * @returns The paths whose entries were removed.
 */
function pruneLocked(root: string): string[] {
  const reg = `${root}/${REGISTRY}`;
  const pruned: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(reg)];
  } catch {
    return pruned;
  }
  for (const e of entries) {
    if (!e.isFile) continue;
    const at = `${reg}/${e.name}`;
    const tmpPid = REGISTRY_TMP_RE.exec(e.name)?.[3];
    if (tmpPid !== undefined) {
      if (Number(tmpPid) !== Deno.pid && !processAlive(Number(tmpPid))) removeQuietly(at);
      continue;
    }
    if (!REGISTRY_ENTRY_RE.test(e.name)) continue;
    let dir: string;
    try {
      dir = Deno.readTextFileSync(at);
    } catch {
      continue;
    }
    if (outsideRoot(dir, root)) continue;
    let gone: boolean;
    try {
      gone = lstatIfPresent(dir) === undefined; // ENOENT or ENOTDIR, nothing else
    } catch {
      continue; // cannot tell (EACCES, …): keep it
    }
    if (gone) {
      removeQuietly(at);
      pruned.push(dir);
    }
  }
  return pruned;
}

/**
 * Remove the registry entries of the state directories under `root` that
 * no longer exist (see {@linkcode pruneLocked}), under the registry's lock.
 * A new registration does this; {@linkcode hostRouteClaims} does it when it
 * meets a registered directory that is gone.
 *
 * @returns The directories whose entries were removed.
 * @throws {StateError} when the registry's lock cannot be taken.
 */
export function pruneRegistry(root: string): string[] {
  using _lock = lockRegistry(root);
  return pruneLocked(root);
}

/**
 * Where the registry may note `dir`: `d` and the path's bytes in hex, a name
 * no other directory has, so no tenant can take it (stateDir is a tenant's
 * choice); for a path too long for that, a 64-bit hash and up to 7 more
 * slots for other directories with the same hash.
 */
function registryNames(dir: string): string[] {
  const bytes = new TextEncoder().encode(dir);
  if (bytes.length <= REGISTRY_HEX_MAX) {
    return [`d${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`];
  }
  const hash = fnv1a64(dir).toString(16).padStart(16, "0");
  return Array.from({ length: REGISTRY_SLOTS }, (_, i) => (i ? `${hash}.${i}` : hash));
}

/**
 * Which records, in any state directory of the node (every one registered
 * under `root`), claim host routes to the destinations `dsts`: destination
 * ⇒ the record files claiming it. A record claims its routes from the
 * moment it lists them (pending), before they are added.
 */
export function hostRouteClaims(
  root: string,
  dsts: ReadonlySet<string>,
  hostNetnsIno: number | undefined = currentNetnsIno(),
): Map<string, Set<string>> {
  const claims = new Map<string, Set<string>>();
  if (dsts.size === 0) return claims;
  const dirs = new Set<string>();
  try {
    for (const e of Deno.readDirSync(`${root}/${REGISTRY}`)) {
      if (!e.isFile || !REGISTRY_ENTRY_RE.test(e.name)) continue;
      try {
        const dir = Deno.readTextFileSync(`${root}/${REGISTRY}/${e.name}`);
        if (!outsideRoot(dir, root)) dirs.add(dir);
      } catch {
        // unreadable entry
      }
    }
  } catch {
    // no registry: no records anywhere
  }
  const needles = [...dsts].map((d) => `"${d}"`);
  let gone = false;
  for (const dir of dirs) {
    let networks: Deno.DirEntry[];
    try {
      networks = [...Deno.readDirSync(dir)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) gone = true;
      continue;
    }
    for (const n of networks) {
      if (!n.isDirectory || !CNI_ID_RE.test(n.name)) continue;
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(`${dir}/${n.name}`)];
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isFile) continue;
        const id = decodeKey(e.name);
        if (!id) continue;
        const path = `${dir}/${n.name}/${e.name}`;
        let text: string;
        try {
          text = Deno.readTextFileSync(path);
        } catch {
          continue;
        }
        // Most records name none of the destinations: skip parsing them.
        if (!needles.some((x) => text.includes(x))) continue;
        const rec = parseRecord(text);
        if (!rec || rec.containerId !== id[0] || rec.ifname !== id[1]) continue;
        // Another host namespace's routes (a node in a container, a lab) are not these.
        if (rec.hostNetnsIno !== undefined && rec.hostNetnsIno !== hostNetnsIno) continue;
        for (const r of rec.hostRoutes) {
          if (!dsts.has(r.dst)) continue;
          const set = claims.get(r.dst);
          if (set) set.add(path);
          else claims.set(r.dst, new Set([path]));
        }
      }
    }
  }
  if (gone) {
    try {
      pruneRegistry(root); // re-checks each directory under the lock
    } catch {
      // a read-only root, say: the entry only costs a failed read next time
    }
  }
  return claims;
}

/**
 * `routes` minus those that a record other than `self` claims: another
 * attachment's, in any state directory of the node.
 */
export function unclaimedRoutes(
  root: string,
  routes: readonly HostRoute[],
  self: string,
  hostNetnsIno: number | undefined = currentNetnsIno(),
): HostRoute[] {
  const claims = hostRouteClaims(root, new Set(routes.map((r) => r.dst)), hostNetnsIno);
  return routes.filter((r) => [...(claims.get(r.dst) ?? [])].every((p) => p === self));
}

/** Inode of the calling thread's network namespace (the host's, for the plugin). */
export function currentNetnsIno(): number | undefined {
  try {
    return statPath("/proc/thread-self/ns/net").ino; // Deno.statSync of /proc needs --allow-all
  } catch {
    return undefined;
  }
}

/** `[containerId, ifname]` of a record file name, or `undefined` when it is not one. */
export function decodeKey(name: string): [string, string] | undefined {
  const at = name.indexOf("@");
  if (at < 0 || name.indexOf("@", at + 1) >= 0) return undefined;
  try {
    const id = decodeURIComponent(name.slice(0, at));
    const ifname = decodeURIComponent(name.slice(at + 1));
    if (recordKey(id, ifname) !== name) return undefined;
    return CNI_ID_RE.test(id) && !ifnameProblem(ifname) ? [id, ifname] : undefined;
  } catch {
    return undefined;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // gone already
  }
}

function processAlive(pid: number): boolean {
  return processExists(pid); // not Deno.statSync("/proc/<pid>"): that needs --allow-all
}

/** A host route as ADD records it: a /32 or /128 in canonical form, a u32 metric. */
function validHostRoute(v: unknown): HostRoute | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const { family, dst, metric } = v as Record<string, unknown>;
  if ((family !== 4 && family !== 6) || typeof dst !== "string") return undefined;
  if (
    typeof metric !== "number" || !Number.isInteger(metric) || metric < 0 || metric > 0xffffffff
  ) {
    return undefined;
  }
  const full = family === 4 ? "/32" : "/128";
  if (!dst.endsWith(full) || canonicalCidr(dst) !== dst || dst.includes(":") !== (family === 6)) {
    return undefined;
  }
  return { family, dst, metric };
}

/**
 * A record read back, validated field by field like input; `undefined` when
 * any field is not what ADD writes.
 */
export function parseRecord(text: string): AttachmentRecord | undefined {
  let v: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isJsonObject(parsed)) return undefined;
    v = parsed;
  } catch {
    return undefined;
  }
  const { containerId, ifname, netns, netnsIno, ipamType, cniArgs, ips, hostrouteif } = v;
  const { hostrouteIndex, hostNetnsIno, linkAlias } = v;
  if (typeof containerId !== "string" || !CNI_ID_RE.test(containerId)) return undefined;
  if (typeof ifname !== "string" || ifnameProblem(ifname)) return undefined;
  if (
    typeof netns !== "string" || (netns !== "" && !netns.startsWith("/")) || netns.includes("\0")
  ) {
    return undefined;
  }
  if (netnsIno !== undefined && !(typeof netnsIno === "number" && Number.isSafeInteger(netnsIno))) {
    return undefined;
  }
  if (ipamType !== undefined && (typeof ipamType !== "string" || !CNI_ID_RE.test(ipamType))) {
    return undefined;
  }
  if (cniArgs !== undefined && (typeof cniArgs !== "string" || cniArgs.includes("\0"))) {
    return undefined;
  }
  if (!Array.isArray(ips) || !ips.every((x) => typeof x === "string" && canonicalCidr(x))) {
    return undefined;
  }
  if (
    hostrouteif !== undefined && (typeof hostrouteif !== "string" || ifnameProblem(hostrouteif))
  ) {
    return undefined;
  }
  if (
    hostrouteIndex !== undefined &&
    (typeof hostrouteIndex !== "number" || !Number.isInteger(hostrouteIndex) || hostrouteIndex <= 0)
  ) return undefined;
  if (
    hostNetnsIno !== undefined &&
    !(typeof hostNetnsIno === "number" && Number.isSafeInteger(hostNetnsIno))
  ) return undefined;
  if (
    linkAlias !== undefined &&
    !(typeof linkAlias === "string" && /^macvtap-cni\/[0-9a-f]{16}$/.test(linkAlias))
  ) {
    return undefined;
  }
  if (!Array.isArray(v.hostRoutes)) return undefined;
  const hostRoutes = v.hostRoutes.map(validHostRoute);
  if (hostRoutes.some((r) => r === undefined)) return undefined;
  const state = v.hostRoutesState;
  if (state !== undefined && state !== "pending" && state !== "added") return undefined;
  return {
    containerId,
    ifname,
    netns,
    ...(netnsIno !== undefined ? { netnsIno } : {}),
    ...(linkAlias !== undefined ? { linkAlias } : {}),
    ...(ipamType !== undefined ? { ipamType } : {}),
    ...(cniArgs !== undefined ? { cniArgs } : {}),
    ips: ips as string[],
    ...(hostrouteif !== undefined ? { hostrouteif } : {}),
    ...(hostrouteIndex !== undefined ? { hostrouteIndex } : {}),
    ...(hostNetnsIno !== undefined ? { hostNetnsIno } : {}),
    hostRoutes: hostRoutes as HostRoute[],
    ...(state !== undefined ? { hostRoutesState: state } : {}),
  };
}
