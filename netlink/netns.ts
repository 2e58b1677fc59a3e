/**
 * Network namespaces: open by path, create and delete named ones (as
 * `ip netns add/del` do), and run a synchronous section inside one.
 *
 * `setns` moves only the calling thread. Synchronous FFI and sync ops run on
 * the main thread; async ops, timers and `nonblocking` FFI run on pool
 * threads, and a pool thread started while the main thread is inside a
 * namespace stays there. So {@linkcode inNetns} takes a synchronous callback
 * and refuses anything that returns a promise.
 *
 * @module
 */

import { ERRNO } from "../internal/_errno.ts";
import {
  cstr,
  errno,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDONLY,
  type PathStat,
  statPath,
} from "../internal/_libc.ts";
import { NetlinkError, NetnsNotFoundError } from "./errors.ts";

const CLONE_NEWNET = 0x40000000;
const NS_GET_NSTYPE = 0xb703n;
const MS_BIND = 4096;
const MS_REC = 16384;
const MS_SHARED = 1 << 20;
const MNT_DETACH = 2;

/**
 * Where named namespaces live, as with iproute2 (`ip netns add x` makes
 * `/run/netns/x`).
 *
 * @example The path of a named namespace
 * ```ts
 * import { NETNS_RUN_DIR } from "./mod.ts";
 * console.log(`${NETNS_RUN_DIR}/ctr1`); // what `ip netns exec ctr1` opens
 * ```
 */
export const NETNS_RUN_DIR = "/run/netns";

/**
 * An open network namespace (an fd on its nsfs file). Pass it (or a path:
 * {@linkcode NetnsRef}) as `netns` to {@linkcode NetlinkHandle.open},
 * `subscribe`, a `LinkSpec` or `LinkChange`, a sysctl, or {@linkcode inNetns}.
 *
 * One lifecycle, whoever made it: `close()` closes the fd (the namespace
 * lives on while mounted or used), and {@linkcode Netns.delete} also
 * removes a namespace this process created with {@linkcode createNetns}.
 * Disposing (`using`) undoes the call that made the object:
 * {@linkcode openNetns} opened an fd, so `using` closes it;
 * {@linkcode createNetns} created a namespace, so `using` deletes it (like
 * `ip netns del`). Keep a created namespace by holding it with `const` and
 * calling `close()`.
 *
 * @example Open one, like `ip netns exec ctr1 …` does while it runs
 * ```ts
 * import assert from "node:assert/strict";
 * import { openNetns } from "./mod.ts";
 *
 * using ns = openNetns("/proc/self/ns/net"); // closed at the end of the scope
 * assert.ok(ns.fd >= 0 && !ns.created);
 * ```
 */
export class Netns implements Disposable {
  #fd: number;
  #created: boolean;
  /** The path it was opened from. */
  readonly path: string;

  /**
   * Wrap an open nsfs fd; it is closed with this object. Use
   * {@linkcode openNetns} or {@linkcode createNetns} instead.
   *
   * @param fd An fd on a network namespace.
   * @param path The path it was opened from.
   * @param created Whether this process created the named namespace at
   *   `path` (then {@linkcode Netns.delete} removes it).
   */
  constructor(fd: number, path: string, created = false) {
    this.#fd = fd;
    this.path = path;
    this.#created = created;
  }

  /**
   * The fd (`IFLA_NET_NS_FD` takes it).
   *
   * @throws {Error} once closed.
   */
  get fd(): number {
    if (this.#fd < 0) throw new Error(`Network namespace "${this.path}" is closed`);
    return this.#fd;
  }

  /** Whether this object created the named namespace (with {@linkcode createNetns}). */
  get created(): boolean {
    return this.#created;
  }

  /** Close the fd. Idempotent. The namespace lives on while mounted or used. */
  close(): void {
    if (this.#fd >= 0) {
      libc().close(this.#fd);
      this.#fd = -1;
    }
  }

  /**
   * Close the fd and delete the named namespace this object created, like
   * `ip netns del NAME`; the kernel frees it, with every link inside, once
   * nothing else holds it. Idempotent (a namespace already gone is fine).
   *
   * @throws {TypeError} for a namespace opened, not created, by this object:
   *   it is someone else's to delete (use {@linkcode deleteNetns} on purpose).
   * @throws {NetlinkError} when unmounting or removing fails otherwise.
   */
  delete(): void {
    if (!this.#created) {
      throw new TypeError(
        `Network namespace "${this.path}" was opened, not created, here; not deleting it`,
      );
    }
    this.close();
    removeNamed(this.path);
  }

  /** `delete()` for a namespace {@linkcode createNetns} made, `close()` otherwise; for `using`. */
  [Symbol.dispose](): void {
    if (this.#created) this.delete();
    else this.close();
  }
}

/**
 * A network namespace as every `netns` option takes it: an open
 * {@linkcode Netns} (it stays the caller's to close) or an nsfs path
 * (`/run/netns/ctr1`, `/proc/1234/ns/net`), opened and closed by the call.
 *
 * @example The same namespace both ways
 * ```ts
 * import { type NetnsRef, openNetns } from "./mod.ts";
 *
 * using open = openNetns("/proc/self/ns/net");
 * const refs: NetnsRef[] = [open, "/proc/self/ns/net"];
 * ```
 */
export type NetnsRef = Netns | string;

/**
 * Open the network namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`,
 * a CNI `CNI_NETNS`).
 *
 * @param path The nsfs path.
 * @returns The open namespace; close it (or hold it with `using`).
 * @throws {NetnsNotFoundError} when the path does not exist.
 * @throws {NetlinkError} `EINVAL` when it is not a network namespace.
 *
 * @example The namespace of process 1, which `nsenter -t 1 -n` enters
 * ```ts
 * import { openNetns } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function initNetns(): void {
 *   using ns = openNetns("/proc/1/ns/net");
 *   console.log(ns.path, ns.fd);
 * }
 * ```
 */
export function openNetns(path: string): Netns {
  return openAt(path, false);
}

function openAt(path: string, created: boolean): Netns {
  // A namespace file is a regular (nsfs) file. Anything else is refused
  // before open(): a FIFO would block open() until a writer comes, and
  // opening a device can have effects of its own.
  // Through libc: Deno asks for --allow-all before it stats /proc/<pid>/….
  let st: PathStat;
  try {
    st = statPath(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new NetnsNotFoundError(path);
    const e = (err as { cause?: { errno?: number } }).cause?.errno ?? ERRNO.EINVAL;
    throw new NetlinkError("stat", e, undefined, `Cannot open network namespace "${path}"`);
  }
  if (!st.isFile) {
    throw new NetlinkError("stat", ERRNO.EINVAL, undefined, `"${path}" is not a network namespace`);
  }
  const c = libc();
  // O_NONBLOCK: should the path be swapped for a FIFO after the check, open()
  // still returns at once, and the ioctl below refuses it.
  const fd = c.open(cstr(path), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) throw new NetnsNotFoundError(path);
    throw new NetlinkError("open", e, undefined, `Cannot open network namespace "${path}"`);
  }
  const type = c.ioctl(fd, NS_GET_NSTYPE);
  if (type !== CLONE_NEWNET) {
    c.close(fd);
    throw new NetlinkError(
      "ioctl",
      ERRNO.EINVAL,
      undefined,
      `"${path}" is not a network namespace`,
    );
  }
  return new Netns(fd, path, created);
}

/**
 * Open the calling thread's current network namespace.
 *
 * @returns The namespace, opened from `/proc/thread-self/ns/net`.
 * @example Remember where we are, like `ip netns identify`
 * ```ts
 * import { currentNetns } from "./mod.ts";
 *
 * using here = currentNetns();
 * console.log(here.path); // "/proc/thread-self/ns/net"
 * ```
 */
export function currentNetns(): Netns {
  return openNetns("/proc/thread-self/ns/net");
}

/**
 * The calling thread's network namespace as `net:[<inode>]`, the link text of
 * `/proc/thread-self/ns/net`; equal values mean the same namespace.
 *
 * @returns E.g. `net:[4026531840]`.
 * @example Compare with another process's namespace, like `ip netns identify PID`
 * ```ts
 * import assert from "node:assert/strict";
 * import { currentNetnsId } from "./mod.ts";
 *
 * assert.match(currentNetnsId(), /^net:\[\d+\]$/); // like `readlink /proc/self/ns/net`
 * ```
 */
export function currentNetnsId(): string {
  // The inode, read through libc (Deno.readLinkSync of /proc/… needs --allow-all).
  return `net:[${statPath("/proc/thread-self/ns/net").ino}]`;
}

/**
 * `T` unless it is a promise: the return type {@linkcode inNetns} demands, so
 * an async callback fails type checking.
 */
export type NotPromise<T> = T extends PromiseLike<unknown> ? never : T;

/**
 * The main thread entered a network namespace and could not come back
 * (`setns` back failed). Whatever runs on it from then on would act on the
 * wrong namespace, so the library is poisoned: every later call that opens a
 * socket, enters a namespace or touches a sysctl throws this same error (see
 * {@linkcode netnsRestoreFailure}). Sockets opened before keep working, each
 * bound to its own namespace. The library never ends the process; a caller
 * that cannot go on should exit (the plugin's executable reports CNI error
 * 999 and exits; status 70, `EX_SOFTWARE`, is the conventional one).
 *
 * @example Stop a long-running service on it
 * ```ts
 * import { inNetns, NetnsRestoreError, readSysctl } from "./mod.ts";
 *
 * export function forwarding(ns: string): string {
 *   try {
 *     return inNetns(ns, () => readSysctl("net.ipv4.ip_forward"));
 *   } catch (err) {
 *     if (err instanceof NetnsRestoreError) Deno.exit(70); // the thread is in the wrong place
 *     throw err;
 *   }
 * }
 * ```
 */
export class NetnsRestoreError extends Error {
  /** errno of the failed `setns` back. */
  readonly errno: number;
  /** The namespace the main thread was left in. */
  readonly netns: string;

  /**
   * Build the error (the library does, when `setns` back fails).
   *
   * @param errno errno of the failed `setns`.
   * @param netns Where the thread was left.
   * @param options `cause`: the error `fn` threw, if any.
   */
  constructor(errno: number, netns: string, options?: ErrorOptions) {
    super(
      `Cannot return to the original network namespace from "${netns}" (errno ${errno}); ` +
        "netlink refuses further namespace work in this process",
      options,
    );
    this.name = "NetnsRestoreError";
    this.errno = errno;
    this.netns = netns;
  }
}

let poisoned: NetnsRestoreError | undefined;

/**
 * The {@linkcode NetnsRestoreError} that poisoned this process, if one did:
 * from then on every namespace-dependent call throws it.
 *
 * @returns The error, or `undefined` while all is well.
 * @example A health check
 * ```ts
 * import assert from "node:assert/strict";
 * import { netnsRestoreFailure } from "./mod.ts";
 *
 * assert.equal(netnsRestoreFailure(), undefined);
 * ```
 */
export function netnsRestoreFailure(): NetnsRestoreError | undefined {
  return poisoned;
}

/** Throw the poisoning error, if any: called before anything is opened in "the caller's" namespace. */
export function assertNetnsSound(): void {
  if (poisoned) throw poisoned;
}

/** setns() back to `home`, or poison the process and throw (keeping `cause`). */
function comeBack(home: number, from: string, cause?: unknown): void {
  if (libc().setns(home, CLONE_NEWNET) === 0) return;
  poisoned = new NetnsRestoreError(errno(), from, cause === undefined ? undefined : { cause });
  throw poisoned;
}

/**
 * Run the synchronous `fn` with the calling (main) thread inside `ns`, and
 * come back, always. Inside: no `await`, timers, Workers, child processes,
 * async ops or `nonblocking` FFI, since threads started there stay in `ns`.
 * An async callback is a type error; one that returns a promise anyway is
 * refused with a `TypeError` (after the namespace is restored).
 *
 * If the thread cannot return to its namespace, this throws a
 * {@linkcode NetnsRestoreError} (with `fn`'s own error as `cause`) and
 * poisons the library: later calls throw it too. It never exits the process.
 *
 * @param ns The namespace to enter (open, or a path opened and closed
 *   here); `undefined` runs `fn` in place.
 * @param fn Synchronous work: open sockets, read or write `/proc/sys`.
 * @returns What `fn` returns.
 * @throws {TypeError} when `fn` returns a promise.
 * @throws {NetnsNotFoundError} when a path does not exist.
 * @throws {NetlinkError} when `ns` cannot be entered (`setns`).
 * @throws {NetnsRestoreError} when the thread cannot come back, and ever after.
 * @example Work inside, like `ip netns exec ctr1 sysctl -n net.ipv4.ip_forward`
 * ```ts
 * import assert from "node:assert/strict";
 * import { currentNetnsId, inNetns, readSysctl } from "./mod.ts";
 *
 * const before = currentNetnsId();
 * // Our own namespace here, so it runs without root; any nsfs path works.
 * // (Deno.readTextFileSync("/proc/net/dev") would work too, with --allow-all.)
 * const inside = inNetns("/proc/self/ns/net", () => currentNetnsId());
 * assert.equal(inside, before);
 * assert.match(inNetns("/proc/self/ns/net", () => readSysctl("net.ipv4.ip_forward")), /^[01]$/);
 * assert.equal(currentNetnsId(), before);
 * ```
 */
export function inNetns<T>(
  ns: NetnsRef | undefined,
  // NotPromise<T>, spelled out: the public API does not export the helper type.
  fn: () => T extends PromiseLike<unknown> ? never : T,
): T {
  assertNetnsSound();
  if (typeof ns === "string") {
    using opened = openNetns(ns);
    return inNetns(opened, fn);
  }
  if (!ns) return checkSync(fn());
  const c = libc();
  const home = c.open(cstr("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC);
  if (home < 0) throw new NetlinkError("open", errno(), undefined, "Cannot open own netns");
  try {
    if (c.setns(ns.fd, CLONE_NEWNET) < 0) {
      throw new NetlinkError("setns", errno(), undefined, `Cannot enter "${ns.path}"`);
    }
    let result: T;
    try {
      result = fn();
    } catch (err) {
      comeBack(home, ns.path, err);
      throw err;
    }
    comeBack(home, ns.path);
    return checkSync(result);
  } finally {
    c.close(home);
  }
}

function checkSync<T>(value: T): T {
  if (
    value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  ) {
    // Its outcome is dropped with it: a later rejection must not surface as
    // an unhandled rejection that kills the process.
    Promise.resolve(value).catch(() => {});
    throw new TypeError("inNetns() callback must be synchronous; it returned a promise");
  }
  return value;
}

function mount(src: string, target: string, fstype: string, flags: number): number {
  return libc().mount(cstr(src), cstr(target), cstr(fstype), BigInt(flags), null);
}

/** Make `/run/netns` a shared mount point, as iproute2 does, so bind mounts propagate. */
function prepareRunDir(): void {
  Deno.mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  if (mount("none", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC) === 0) return;
  if (errno() !== ERRNO.EINVAL) throw new NetlinkError("mount", errno(), undefined, NETNS_RUN_DIR);
  if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC) < 0) {
    throw new NetlinkError("mount", errno(), undefined, `bind ${NETNS_RUN_DIR}`);
  }
  if (mount("none", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC) < 0) {
    throw new NetlinkError("mount", errno(), undefined, NETNS_RUN_DIR);
  }
}

/**
 * Create the named network namespace `/run/netns/<name>` (bind-mounted, as
 * `ip netns add` does, so `ip netns list` and `ip -n <name>` see it) and open
 * it. Its `lo` is down, as with iproute2. The returned {@linkcode Netns} is
 * `created`: `using` (or {@linkcode Netns.delete}) deletes the namespace again,
 * `close()` only closes the fd and leaves it for {@linkcode deleteNetns}.
 *
 * @param name Namespace name: letters, digits, `_`, `.`, `-`.
 * @returns The new namespace, open.
 * @throws {NetlinkError} `EEXIST` when it exists; `EPERM` without root.
 * @throws {TypeError} for an invalid name.
 * @throws {NetnsRestoreError} when the thread cannot return to its namespace.
 *
 * @example Like `ip netns add lab-a` … `ip netns del lab-a`
 * ```ts
 * import { createNetns, NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function lab(): void {
 *   using ns = createNetns("lab-a"); // ip netns add lab-a
 *   using h = NetlinkHandle.open({ netns: ns });
 *   h.links.set("lo", { up: true }); // ip -n lab-a link set lo up
 * } // h closed, then lab-a deleted (ip netns del lab-a)
 * ```
 */
export function createNetns(name: string): Netns {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === "." || name === "..") {
    throw new TypeError(`Invalid network namespace name "${name}"`);
  }
  assertNetnsSound();
  prepareRunDir();
  const path = `${NETNS_RUN_DIR}/${name}`;
  try {
    Deno.openSync(path, { createNew: true, write: true, mode: 0o444 }).close();
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new NetlinkError("open", ERRNO.EEXIST, undefined, `Network namespace "${name}" exists`);
    }
    throw err;
  }
  const c = libc();
  const home = c.open(cstr("/proc/thread-self/ns/net"), O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    const e = errno();
    c.unlink(cstr(path));
    throw new NetlinkError("open", e, undefined, "Cannot open own netns");
  }
  let failure: NetlinkError | undefined;
  try {
    if (c.unshare(CLONE_NEWNET) < 0) {
      failure = new NetlinkError("unshare", errno(), undefined, `Cannot create "${name}"`);
    } else {
      if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND) < 0) {
        failure = new NetlinkError("mount", errno(), undefined, `Cannot create "${name}"`);
      }
      try {
        comeBack(home, path, failure);
      } catch (err) {
        // Poisoned: the thread is elsewhere, but the mount namespace is not,
        // so the name can still go (a leftover would look like a namespace).
        try {
          removeNamed(path);
        } catch { /* the NetnsRestoreError matters more */ }
        throw err;
      }
    }
  } finally {
    c.close(home);
  }
  if (failure) {
    libc().unlink(cstr(path));
    throw failure;
  }
  try {
    return openAt(path, true);
  } catch (err) {
    removeNamed(path);
    throw err;
  }
}

/**
 * Delete a named network namespace (unmount and remove its file), like
 * `ip netns del`. Missing is fine. The kernel frees it, with every link
 * inside, once nothing holds it (an open `Netns`, a process, a socket).
 * Given the {@linkcode Netns} {@linkcode createNetns} returned, it is
 * {@linkcode Netns.delete}; given one opened from a path, the namespace at
 * that path is deleted and the fd stays the caller's to close.
 *
 * @param netns A name under `/run/netns`, a path, or a `Netns`.
 * @throws {NetlinkError} when unmounting or removing fails otherwise.
 *
 * @example Like `ip netns del lab-a`
 * ```ts
 * import { deleteNetns } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function cleanUp(): void {
 *   deleteNetns("lab-a");
 * }
 * ```
 */
export function deleteNetns(netns: NetnsRef): void {
  if (netns instanceof Netns) {
    if (netns.created) netns.delete();
    else removeNamed(netns.path);
    return;
  }
  removeNamed(netns.includes("/") ? netns : `${NETNS_RUN_DIR}/${netns}`);
}

/** Unmount and unlink a named namespace's file; missing is fine. */
function removeNamed(path: string): void {
  if (libc().umount2(cstr(path), MNT_DETACH) < 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) return;
    if (e !== ERRNO.EINVAL) throw new NetlinkError("umount2", e, undefined, path);
  }
  if (libc().unlink(cstr(path)) < 0 && errno() !== ERRNO.ENOENT) {
    throw new NetlinkError("unlink", errno(), undefined, path);
  }
}
