/**
 * Typed netlink errors: errno, its name, the operation and the kernel's
 * extended-ACK text.
 *
 * @module
 */

/** errno numbers to names (Linux, x86-64) for the errors rtnetlink returns. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  25: "ENOTTY",
  23: "ENFILE",
  24: "EMFILE",
  28: "ENOSPC",
  34: "ERANGE",
  38: "ENOSYS",
  61: "ENODATA",
  71: "EPROTO",
  75: "EOVERFLOW",
  90: "EMSGSIZE",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  110: "ETIMEDOUT",
  113: "EHOSTUNREACH",
};

/** strerror-like texts for the same errnos (no FFI needed to format an error). */
const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  4: "Interrupted system call",
  5: "Input/output error",
  6: "No such device or address",
  7: "Argument list too long",
  9: "Bad file descriptor",
  11: "Resource temporarily unavailable",
  12: "Cannot allocate memory",
  13: "Permission denied",
  14: "Bad address",
  16: "Device or resource busy",
  17: "File exists",
  18: "Invalid cross-device link",
  19: "No such device",
  20: "Not a directory",
  21: "Is a directory",
  22: "Invalid argument",
  23: "Too many open files in system",
  24: "Too many open files",
  25: "Inappropriate ioctl for device",
  28: "No space left on device",
  34: "Numerical result out of range",
  38: "Function not implemented",
  61: "No data available",
  71: "Protocol error",
  75: "Value too large for defined data type",
  90: "Message too long",
  93: "Protocol not supported",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  98: "Address already in use",
  99: "Cannot assign requested address",
  100: "Network is down",
  101: "Network is unreachable",
  105: "No buffer space available",
  110: "Connection timed out",
  113: "No route to host",
};

/** The symbolic name of an errno (`17` ⇒ `"EEXIST"`). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/**
 * A failed netlink or namespace operation.
 *
 * `message` reads like `RTM_NEWLINK: File exists (EEXIST)`, followed by the
 * extended ACK text when the kernel sent one.
 */
export class NetlinkError extends Error {
  /** Positive errno. */
  readonly errno: number;
  /** Symbolic errno, e.g. `"EEXIST"`. */
  readonly code: string;
  /** The operation, e.g. `"RTM_NEWLINK"` or `"setns"`. */
  readonly op: string;
  /** The kernel's extended-ACK message, when present. */
  readonly extAck: string | undefined;

  constructor(op: string, errno: number, extAck?: string, context?: string) {
    const code = errnoName(errno);
    const text = ERRNO_TEXT[errno] ?? code;
    super(
      `${context ? context + ": " : ""}${op}: ${text} (${code})${extAck ? `: ${extAck}` : ""}`,
    );
    this.name = "NetlinkError";
    this.errno = errno;
    this.code = code;
    this.op = op;
    this.extAck = extAck;
  }
}

/** A link lookup found nothing (`ENODEV`). */
export class LinkNotFoundError extends NetlinkError {
  /** The name or index looked up. */
  readonly link: string | number;
  constructor(link: string | number, op = "RTM_GETLINK") {
    super(
      op,
      19,
      undefined,
      `Link ${typeof link === "string" ? `"${link}"` : `#${link}`} not found`,
    );
    this.name = "LinkNotFoundError";
    this.link = link;
  }
}

/** A dump stayed inconsistent (`NLM_F_DUMP_INTR`) after retries. */
export class DumpInterruptedError extends NetlinkError {
  constructor(op: string) {
    super(op, 4, "dump interrupted by concurrent changes, retries exhausted");
    this.name = "DumpInterruptedError";
  }
}

/** A network namespace path does not exist. */
export class NetnsNotFoundError extends NetlinkError {
  /** The path opened. */
  readonly path: string;
  constructor(path: string) {
    super("open", 2, undefined, `Network namespace "${path}" not found`);
    this.name = "NetnsNotFoundError";
    this.path = path;
  }
}

/** Whether `err` is a NetlinkError with one of the given codes. */
export function isErrno(err: unknown, ...codes: string[]): err is NetlinkError {
  return err instanceof NetlinkError && codes.includes(err.code);
}
