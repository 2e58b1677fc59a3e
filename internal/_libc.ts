/**
 * libc: the one symbol table, `errno()` and `cstr()` for every caller
 * (namespaces and sockets in netlink/, spawning IPAM plugins in ipam/,
 * `mknod` and `madvise` in deviceplugin/, `execve` in cmd/).
 *
 * One table is enough: {@linkcode openLibrary} binds each symbol on its first
 * call (internal/_native.ts), so a CNI command pays only for the symbols it
 * calls, whatever the table declares. Every symbol but `poll` is
 * synchronous, so a call made inside a netns section runs on the thread that
 * entered it, and `errno()` read right after it is that call's.
 *
 * @module
 */

import { ERRNO } from "./_errno.ts";
import { cstr, openLibrary } from "./_native.ts";

export { cstr };

/** Env var naming an alternative path for libc (default `libc.so.6`). */
export const LIBC_ENV = "MACVTAP_LIBC";

const LIBC_DEFAULT = "libc.so.6";

/** open(2) flag: read only. */
export const O_RDONLY = 0;
/** open(2) flag: write only. */
export const O_WRONLY = 1;
/** open(2) flag: never become the controlling terminal. */
export const O_NOCTTY = 0o400;
/** open(2) flag: do not block (on a FIFO, for one). */
export const O_NONBLOCK = 0o4000;
/** open(2)/pipe2(2) flag: close on exec, so IPAM children inherit nothing. */
export const O_CLOEXEC = 0o2000000;
/** poll(2) event bit: data to read (or EOF). */
export const POLLIN = 0x1;
/** poll(2) event bit: writing will not block. */
export const POLLOUT = 0x4;
/** poll(2) result bit: an error on the fd. */
export const POLLERR = 0x8;
/** poll(2) result bit: the other end hung up. */
export const POLLHUP = 0x10;

const symbols = {
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },

  // Files and descriptors.
  /** int open(const char *path, int flags) (variadic mode omitted) */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t n) */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t n) */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int pipe2(int fds[2], int flags) */
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  /** int ioctl(int fd, unsigned long request) (no argument variant) */
  ioctl: { parameters: ["i32", "u64"], result: "i32" },
  /** int unlink(const char *path) */
  unlink: { parameters: ["buffer"], result: "i32" },
  /** int rmdir(const char *path) */
  rmdir: { parameters: ["buffer"], result: "i32" },
  /** int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) */
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  /** int faccessat(int dirfd, const char *path, int mode, int flags) */
  faccessat: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** ssize_t readlink(const char *path, char *buf, size_t size) */
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  /** int lchown(const char *path, uid_t owner, gid_t group) */
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  /** int mknod(const char *path, mode_t mode, dev_t dev) */
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  /**
   * int poll(struct pollfd *fds, nfds_t nfds, int timeout), declared
   * `nonblocking`: it runs on a pool thread and only waits on fds already
   * held, so it is namespace-agnostic. Never call it inside a netns section.
   */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },

  // Sockets.
  /** int setsockopt(int fd, int level, int name, const void *val, socklen_t len) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** ssize_t recv(int fd, void *buf, size_t len, int flags) */
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },

  // Namespaces and mounts.
  /** int setns(int fd, int nstype) */
  setns: { parameters: ["i32", "i32"], result: "i32" },
  /** int unshare(int flags) */
  unshare: { parameters: ["i32"], result: "i32" },
  /** int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data) */
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
  /** int umount2(const char *target, int flags) */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },

  // Processes.
  /** uid_t geteuid(void): the effective uid, needing no `--allow-sys` as `Deno.uid()` does */
  geteuid: { parameters: [], result: "u32" },
  /** int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) */
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  /** int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  /** int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd) */
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  /** int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  /** pid_t waitpid(pid_t pid, int *status, int options) */
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** int kill(pid_t pid, int sig) */
  kill: { parameters: ["i32", "i32"], result: "i32" },
  /** int execve(const char *path, char *const argv[], char *const envp[]) */
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },

  // Memory.
  /** int madvise(void *addr, size_t len, int advice) */
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof symbols>["symbols"] | undefined;

/**
 * The libc symbols; the library is opened on first use.
 *
 * @returns The symbols, each bound on its first call.
 * @throws {LibraryLoadError} naming `libc.so.6` and {@linkcode LIBC_ENV}
 *   when libc cannot be opened.
 */
export function libc(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  return lib ??= openLibrary(LIBC_ENV, LIBC_DEFAULT, symbols);
}

/**
 * errno of the last failing libc/libmnl call on this thread. Read it right
 * away, before any other native call.
 *
 * @returns The positive errno, or 0.
 */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

const AT_FDCWD = -100;
const F_OK = 0;
const AT_SYMLINK_NOFOLLOW = 0x100;

/**
 * `Deno.lstatSync(path)`, or `undefined` when nothing is there, without an
 * exception in that case: the first error a Deno op throws in a process
 * costs ~0.4 ms (its error machinery starts), and "not there" is the usual
 * answer on the CNI path (a legacy record, a network directory). A symlink
 * is reported as itself.
 *
 * @param path The path.
 * @returns Its lstat, or `undefined` when it does not exist.
 * @throws what `Deno.lstatSync` throws for other failures.
 */
export function lstatIfPresent(path: string): Deno.FileInfo | undefined {
  if (libc().faccessat(AT_FDCWD, cstr(path), F_OK, AT_SYMLINK_NOFOLLOW) !== 0) {
    const e = errno();
    if (e === ERRNO.ENOENT || e === ERRNO.ENOTDIR) return undefined;
  }
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined; // removed meanwhile
    throw err;
  }
}

/**
 * Remove the directory `path` if it is empty; anything else (not empty,
 * gone, not a directory) leaves it as it is, without an exception.
 *
 * @param path The directory.
 * @returns Whether it was removed.
 */
export function removeDirIfEmpty(path: string): boolean {
  return libc().rmdir(cstr(path)) === 0;
}

/**
 * A `struct pollfd[n]` for poll(2), which runs on a pool thread
 * (`nonblocking`) while the event loop goes on: the array's `ArrayBuffer` is
 * allocated explicitly, so V8 never keeps it on its moving heap.
 */
export class PollFds {
  /** How many slots. */
  readonly length: number;
  readonly #buf: Uint8Array<ArrayBuffer>;
  readonly #view: DataView;

  /**
   * Allocate `length` slots, each ignored (fd -1) until {@linkcode PollFds.set}.
   *
   * @param length How many fds to wait on at most.
   */
  constructor(length: number) {
    this.length = length;
    this.#buf = new Uint8Array(new ArrayBuffer(length * 8));
    this.#view = new DataView(this.#buf.buffer);
    for (let i = 0; i < length; i++) this.set(i, -1, 0);
  }

  /**
   * Wait on `fd` for `events` in slot `i` (a negative fd: skip the slot);
   * clears the slot's returned events.
   *
   * @param i The slot.
   * @param fd The descriptor.
   * @param events `POLLIN`, `POLLOUT`, …
   */
  set(i: number, fd: number, events: number): void {
    this.#view.setInt32(i * 8, fd, true);
    this.#view.setInt16(i * 8 + 4, events, true);
    this.#view.setInt16(i * 8 + 6, 0, true);
  }

  /**
   * The events poll(2) returned for slot `i`.
   *
   * @param i The slot.
   * @returns `revents`.
   */
  revents(i: number): number {
    return this.#view.getInt16(i * 8 + 6, true);
  }

  /**
   * poll(2) on a pool thread. Never call it inside a netns section.
   *
   * @param timeoutMs How long to wait at most.
   * @returns How many slots have events (0 on timeout, -1 on error).
   */
  poll(timeoutMs: number): Promise<number> {
    return libc().poll(this.#buf, BigInt(this.length), timeoutMs);
  }
}

/** Pack NUL-terminated strings and a NULL-terminated pointer array into one off-heap buffer. */
export function cStringArray(strings: readonly string[]): {
  block: Uint8Array<ArrayBuffer>;
  array: Uint8Array<ArrayBuffer>;
} {
  const enc = new TextEncoder();
  const parts = strings.map((s) => enc.encode(s));
  const size = parts.reduce((n, p) => n + p.length + 1, 0);
  // `new ArrayBuffer` backing stores live off the V8 heap: pointers into
  // them stay valid while we hold the buffer.
  const block = new Uint8Array(new ArrayBuffer(Math.max(size, 128)));
  const array = new Uint8Array(new ArrayBuffer(Math.max((strings.length + 1) * 8, 128)));
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(block));
  const ptrs = new BigUint64Array(array.buffer);
  let off = 0;
  parts.forEach((p, i) => {
    block.set(p, off);
    ptrs[i] = BigInt(base) + BigInt(off);
    off += p.length + 1;
  });
  ptrs[parts.length] = 0n;
  return { block, array };
}

/**
 * The effective uid (geteuid(2)). `Deno.uid()` would need `--allow-sys=uid`
 * on top of the flags the plugin documents, and it is the real uid, not the
 * one the kernel checks ownership against.
 *
 * @returns The effective uid.
 */
export function effectiveUid(): number {
  return libc().geteuid();
}

const STATX_TYPE = 0x1;
const STATX_INO = 0x100;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/** What {@linkcode statPath} reports. */
export interface PathStat {
  /** `st_mode` (type and permission bits). */
  mode: number;
  /** The inode number. */
  ino: number;
  /** `st_rdev` of a device file (as `makedev(major, minor)`; 0 otherwise). */
  rdev: number;
  /** A character device. */
  isCharDevice: boolean;
  /** A regular file (a namespace file on nsfs is one). */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
}

/**
 * stat(2) (following symlinks) through libc's statx. Deno asks for
 * `--allow-all` before it stats or reads a link under `/proc/<pid>` (also
 * `/proc/self` and `/proc/thread-self`), which namespace paths are;
 * `--allow-ffi` covers this.
 *
 * Device files (`/dev/tapN`) too: Deno asks for `--allow-all` before it
 * stats them.
 *
 * @param path The path.
 * @param options `follow: false` stats a symlink itself (lstat).
 * @returns Its type, inode and device number.
 * @throws {Deno.errors.NotFound} when nothing is there.
 * @throws {Error} with the errno in the message otherwise (`cause.errno` holds it).
 */
export function statPath(path: string, options: { follow?: boolean } = {}): PathStat {
  const buf = new Uint8Array(256);
  const flags = options.follow === false ? AT_SYMLINK_NOFOLLOW : 0;
  if (libc().statx(AT_FDCWD, cstr(path), flags, STATX_TYPE | STATX_INO, buf) < 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) throw new Deno.errors.NotFound(`No such file: ${path}`);
    throw new Error(`Cannot stat ${path} (errno ${e})`, { cause: { errno: e } });
  }
  const v = new DataView(buf.buffer);
  const mode = v.getUint16(28, true);
  return {
    mode,
    ino: Number(v.getBigUint64(32, true)),
    // stx_rdev_major, stx_rdev_minor, as glibc's makedev() packs them.
    rdev: makedev(v.getUint32(128, true), v.getUint32(132, true)),
    isCharDevice: (mode & S_IFMT) === S_IFCHR,
    isFile: (mode & S_IFMT) === S_IFREG,
    isDirectory: (mode & S_IFMT) === S_IFDIR,
  };
}

/**
 * Linux `makedev()`: the `dev_t` of `major:minor` (as `st_rdev` reports it).
 *
 * @example Usage
 * ```ts
 * import { makedev } from "./_libc.ts";
 * makedev(246, 1); // 62977
 * ```
 */
export function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) + (minor & 0xff) + (minor & ~0xff) * 2 ** 12 +
    (major & ~0xfff) * 2 ** 32;
}

const S_IFCHR = 0o020000;

/**
 * readlink(2) through libc (Deno asks for `--allow-all` under `/proc`,
 * `/sys` and `/dev`).
 *
 * @throws {Deno.errors.NotFound} when nothing is there; {@linkcode Error} with the errno otherwise.
 */
export function readLinkPath(path: string): string {
  const buf = new Uint8Array(4096);
  const n = Number(libc().readlink(cstr(path), buf, BigInt(buf.length)));
  if (n < 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) throw new Deno.errors.NotFound(`No such file: ${path}`);
    throw new Error(`Cannot read the link ${path} (errno ${e})`, { cause: { errno: e } });
  }
  return new TextDecoder().decode(buf.subarray(0, n));
}

/**
 * lchown(2) through libc: the owner of `path` itself, never of a symlink's
 * target (Deno asks for `--allow-all` for device files).
 *
 * @throws {Deno.errors.NotFound} when nothing is there; {@linkcode Error} with the errno otherwise.
 */
export function lchownPath(path: string, uid: number, gid: number): void {
  if (libc().lchown(cstr(path), uid, gid) !== 0) {
    const e = errno();
    if (e === ERRNO.ENOENT) throw new Deno.errors.NotFound(`No such file: ${path}`);
    throw new Error(`Cannot change the owner of ${path} (errno ${e})`, { cause: { errno: e } });
  }
}

/**
 * unlink(2) through libc (device files: Deno asks for `--allow-all`).
 * Nothing there is no error.
 */
export function unlinkPath(path: string): void {
  if (libc().unlink(cstr(path)) !== 0 && errno() !== ERRNO.ENOENT) {
    throw new Error(`Cannot remove ${path} (errno ${errno()})`);
  }
}

/**
 * Whether process `pid` exists (kill(2) with signal 0: ESRCH means gone).
 * `Deno.statSync("/proc/<pid>")` would need `--allow-all`.
 *
 * @param pid The process id.
 * @returns `false` only when no such process exists.
 */
export function processExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false; // 0 and -1 would mean groups
  if (libc().kill(pid, 0) === 0) return true;
  return errno() !== ERRNO.ESRCH;
}
