/**
 * The one errno table (Linux, x86-64 and aarch64): names, numbers and
 * strerror-like texts, so that no FFI is needed to format an error.
 *
 * @module
 */

/**
 * errno numbers by C name, for the errors rtnetlink, namespaces, mknod and
 * spawning return.
 *
 * @example
 * ```ts
 * import { ERRNO } from "./_errno.ts";
 * if (ERRNO.EEXIST !== 17) throw new Error("not Linux numbering");
 * ```
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  ENOSPC: 28,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  EOVERFLOW: 75,
  EMSGSIZE: 90,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
} as const;

/** A C errno name known to {@linkcode ERRNO}. */
export type ErrnoName = keyof typeof ERRNO;

/** strerror(3) texts; typed by {@linkcode ErrnoName} so the two cannot drift apart. */
const TEXT: Readonly<Record<ErrnoName, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EINTR: "Interrupted system call",
  EIO: "Input/output error",
  ENXIO: "No such device or address",
  E2BIG: "Argument list too long",
  ENOEXEC: "Exec format error",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EFAULT: "Bad address",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  EXDEV: "Invalid cross-device link",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENFILE: "Too many open files in system",
  EMFILE: "Too many open files",
  ENOTTY: "Inappropriate ioctl for device",
  ETXTBSY: "Text file busy",
  ENOSPC: "No space left on device",
  EPIPE: "Broken pipe",
  ERANGE: "Numerical result out of range",
  ENOSYS: "Function not implemented",
  ENODATA: "No data available",
  EPROTO: "Protocol error",
  EOVERFLOW: "Value too large for defined data type",
  EMSGSIZE: "Message too long",
  EPROTONOSUPPORT: "Protocol not supported",
  EOPNOTSUPP: "Operation not supported",
  EAFNOSUPPORT: "Address family not supported by protocol",
  EADDRINUSE: "Address already in use",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENETDOWN: "Network is down",
  ENETUNREACH: "Network is unreachable",
  ENOBUFS: "No buffer space available",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
};

const NAMES: ReadonlyMap<number, ErrnoName> = new Map(
  (Object.entries(ERRNO) as [ErrnoName, number][]).map(([name, n]) => [n, name]),
);

/**
 * The C name of an errno (`17` ⇒ `"EEXIST"`), `E<n>` when unknown.
 *
 * @param errno A positive errno.
 * @returns Its name.
 * @example `ip` prints "RTNETLINK answers: File exists" for this one
 * ```ts
 * import assert from "node:assert/strict";
 * import { errnoName } from "./_errno.ts";
 *
 * assert.equal(errnoName(17), "EEXIST");
 * assert.equal(errnoName(999), "E999");
 * ```
 */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `E${errno}`;
}

/**
 * strerror(3)'s text for an errno (`17` ⇒ `"File exists"`), its name when
 * unknown.
 *
 * @param errno A positive errno.
 * @returns The text.
 */
export function errnoText(errno: number): string {
  const name = NAMES.get(errno);
  return name ? TEXT[name] : `E${errno}`;
}
