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
import { cstr, errno, libc, O_CLOEXEC, O_NOCTTY, O_NONBLOCK, O_RDONLY } from "../internal/_libc.ts";
import { NetlinkError, NetnsNotFoundError } from "./errors.ts";
import { errorText } from "../internal/_error_text.ts";

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
 * An open network namespace (an fd on its nsfs file). Pass it as `netns` to
 * create or move links into it, or to {@linkcode inNetns}.
 *
 * @example Hold one with `using`, like `ip netns exec ctr1 …` does while it runs
 * ```ts ignore
 * import { openNetns } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * console.log(ns.path, ns.fd);
 * ```
 */
export class Netns implements Disposable {
  #fd: number;
  /** The path it was opened from. */
  readonly path: string;

  /**
   * Wrap an open nsfs fd; it is closed with this object. Use
   * {@linkcode openNetns} or {@linkcode createNetns} instead.
   *
   * @param fd An fd on a network namespace.
   * @param path The path it was opened from.
   */
  constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /**
   * The fd (`IFLA_NET_NS_FD` takes it).
   *
   * @throws {Error} once closed.
   */
  get fd(): number {
    if (this.#fd < 0) throw new Error(`netns ${this.path} is closed`);
    return this.#fd;
  }

  /** Close the fd. Idempotent. The namespace lives on while mounted or used. */
  close(): void {
    if (this.#fd >= 0) {
      libc().close(this.#fd);
      this.#fd = -1;
    }
  }

  /** Same as {@linkcode Netns.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Open the network namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`,
 * a CNI `CNI_NETNS`).
 *
 * @param path The nsfs path.
 * @returns The open namespace; close it (or hold it with `using`).
 * @throws {NetnsNotFoundError} when the path does not exist.
 * @throws {NetlinkError} `EINVAL` when it is not a network namespace.
 *
 * @example The namespace `ip netns exec ctr1 …` enters
 * ```ts ignore
 * import { openNetns } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * ```
 */
export function openNetns(path: string): Netns {
  // A namespace file is a regular (nsfs) file. Anything else is refused
  // before open(): a FIFO would block open() until a writer comes, and
  // opening a device can have effects of its own.
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new NetnsNotFoundError(path);
    const why = errorText(err);
    throw new NetlinkError(
      "stat",
      ERRNO.EINVAL,
      undefined,
      `Cannot open network namespace "${path}" (${why})`,
    );
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
  return new Netns(fd, path);
}

/**
 * Open the calling thread's current network namespace.
 *
 * @returns The namespace, opened from `/proc/thread-self/ns/net`.
 * @example Remember where we are, like `ip netns identify`
 * ```ts ignore
 * import { currentNetns } from "./mod.ts";
 *
 * using here = currentNetns();
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
 * @example Compare with a named namespace, like `ip netns identify`
 * ```ts ignore
 * import { currentNetnsId } from "./mod.ts";
 *
 * const inCtr1 = currentNetnsId() === `net:[${Deno.statSync("/run/netns/ctr1").ino}]`;
 * ```
 */
export function currentNetnsId(): string {
  return Deno.readLinkSync("/proc/thread-self/ns/net");
}

/**
 * `T` unless it is a promise: the return type {@linkcode inNetns} demands, so
 * an async callback fails type checking.
 */
export type NotPromise<T> = T extends PromiseLike<unknown> ? never : T;

/**
 * Run the synchronous `fn` with the calling (main) thread inside `ns`, and
 * come back, always. Inside: no `await`, timers, Workers, child processes,
 * async ops or `nonblocking` FFI, since threads started there stay in `ns`.
 * An async callback is a type error; one that returns a promise anyway is
 * refused with a `TypeError` (after the namespace is restored).
 *
 * If restoring the original namespace fails the process exits (status 70):
 * continuing in the wrong namespace would act on the wrong host.
 *
 * @param ns The namespace to enter (open, or a path opened and closed
 *   here); `undefined` runs `fn` in place.
 * @param fn Synchronous work: open sockets, read or write `/proc/sys`.
 * @returns What `fn` returns.
 * @throws {TypeError} when `fn` returns a promise.
 * @throws {NetnsNotFoundError} when a path does not exist.
 * @throws {NetlinkError} when `ns` cannot be entered (`setns`).
 * @example Read a file inside, like `ip netns exec ctr1 cat /proc/net/dev`
 * ```ts ignore
 * import { inNetns, openNetns } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * const dev = inNetns(ns, () => Deno.readTextFileSync("/proc/net/dev"));
 * ```
 */
export function inNetns<T>(
  ns: Netns | string | undefined,
  // NotPromise<T>, spelled out: the public API does not export the helper type.
  fn: () => T extends PromiseLike<unknown> ? never : T,
): T {
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
    try {
      return checkSync(fn());
    } finally {
      if (c.setns(home, CLONE_NEWNET) < 0) {
        Deno.stderr.writeSync(
          new TextEncoder().encode("fatal: cannot return to the original network namespace\n"),
        );
        Deno.exit(70);
      }
    }
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
 * it. Its `lo` is down, as with iproute2.
 *
 * @param name Namespace name: letters, digits, `_`, `.`, `-`.
 * @returns The new namespace, open.
 * @throws {NetlinkError} `EEXIST` when it exists; `EPERM` without root.
 * @throws {TypeError} for an invalid name.
 *
 * @example Like `ip netns add lab-a`
 * ```ts ignore
 * import { createNetns, deleteNetns } from "./mod.ts";
 *
 * using ns = createNetns("lab-a");
 * // … later, like `ip netns del lab-a`
 * deleteNetns("lab-a");
 * ```
 */
export function createNetns(name: string): Netns {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === "." || name === "..") {
    throw new TypeError(`Invalid network namespace name "${name}"`);
  }
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
  let failure: NetlinkError | undefined;
  try {
    if (c.unshare(CLONE_NEWNET) < 0) {
      failure = new NetlinkError("unshare", errno(), undefined, `Cannot create "${name}"`);
    } else if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND) < 0) {
      failure = new NetlinkError("mount", errno(), undefined, `Cannot create "${name}"`);
    }
  } finally {
    if (c.setns(home, CLONE_NEWNET) < 0) {
      Deno.stderr.writeSync(new TextEncoder().encode("fatal: cannot return to own netns\n"));
      Deno.exit(70);
    }
    c.close(home);
  }
  if (failure) {
    libc().unlink(cstr(path));
    throw failure;
  }
  return openNetns(path);
}

/**
 * Delete the named network namespace (unmount and remove its file). Missing is
 * fine. The kernel frees it, with every link inside, once nothing holds it
 * (an open `Netns`, a process, a socket).
 *
 * @param name A name under `/run/netns`, or a path.
 * @throws {NetlinkError} when unmounting or removing fails otherwise.
 *
 * @example Like `ip netns del lab-a`
 * ```ts ignore
 * import { deleteNetns } from "./mod.ts";
 *
 * deleteNetns("lab-a");
 * ```
 */
export function deleteNetns(name: string): void {
  const path = name.includes("/") ? name : `${NETNS_RUN_DIR}/${name}`;
  if (libc().umount2(cstr(path), MNT_DETACH) < 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) return;
    if (e !== ERRNO.EINVAL) throw new NetlinkError("umount2", e, undefined, path);
  }
  if (libc().unlink(cstr(path)) < 0 && errno() !== ERRNO.ENOENT) {
    throw new NetlinkError("unlink", errno(), undefined, path);
  }
}
