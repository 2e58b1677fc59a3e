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

/**
 * The symbolic name of an errno (`17` ⇒ `"EEXIST"`), `E<n>` when unknown.
 *
 * @param errno A positive errno.
 * @returns Its name.
 * @example `ip` prints "RTNETLINK answers: File exists" for this one
 * ```ts
 * import assert from "node:assert/strict";
 * import { errnoName } from "./mod.ts";
 *
 * assert.equal(errnoName(17), "EEXIST");
 * ```
 */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/**
 * Options for {@linkcode NetlinkError}'s constructor.
 *
 * @example An error about a link, as the link operations throw it
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetlinkError } from "./mod.ts";
 *
 * const err = new NetlinkError("RTM_DELLINK", 1, undefined, { subject: "eth0" });
 * assert.equal(err.message, "RTM_DELLINK eth0: Operation not permitted (EPERM)");
 * ```
 */
export interface NetlinkErrorOptions {
  /** Prefix for the message: what was being done. */
  context?: string;
  /** What the operation was about, written after `op`: `RTM_NEWLINK eth9: …`. */
  subject?: string;
}

/**
 * A failed netlink or namespace operation.
 *
 * `message` reads like `RTM_NEWLINK eth9: File exists (EEXIST)`: the
 * operation, what it was about (when known), the errno, then the extended
 * ACK text when the kernel sent one (what `ip` prints after "Error:").
 *
 * @example Branch on the code, as after `ip link add` fails with "File exists"
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetlinkError } from "./mod.ts";
 *
 * const err = new NetlinkError("RTM_NEWLINK", 17, undefined, { subject: "eth9" });
 * assert.equal(err.code, "EEXIST");
 * assert.equal(err.message, "RTM_NEWLINK eth9: File exists (EEXIST)");
 * ```
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

  /** What the operation was about (`"eth9"`, `"10.0.0.2/24 dev eth0"`), when known. */
  readonly subject: string | undefined;

  /**
   * Build the error.
   *
   * @param op The operation, e.g. `"RTM_NEWLINK"`.
   * @param errno The positive errno.
   * @param extAck The kernel's extended-ACK text.
   * @param context Prefix for the message (what was being done), or options
   *   with that prefix and the `subject` the operation was about.
   */
  constructor(
    op: string,
    errno: number,
    extAck?: string,
    context?: string | NetlinkErrorOptions,
  ) {
    const o: NetlinkErrorOptions = typeof context === "string" ? { context } : context ?? {};
    const code = errnoName(errno);
    const text = ERRNO_TEXT[errno] ?? code;
    const what = o.subject ? `${op} ${o.subject}` : op;
    super(
      `${o.context ? o.context + ": " : ""}${what}: ${text} (${code})${
        extAck ? `: ${extAck}` : ""
      }`,
    );
    this.name = "NetlinkError";
    this.errno = errno;
    this.code = code;
    this.op = op;
    this.extAck = extAck;
    this.subject = o.subject;
  }
}

/**
 * A link lookup found nothing (`ENODEV`), as `ip link show nope0` reports
 * "Device "nope0" does not exist."
 *
 * @example Tell "not there" from other failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { LinkNotFoundError, NetlinkError } from "./mod.ts";
 *
 * const err = new LinkNotFoundError("nope0");
 * assert.ok(err instanceof NetlinkError);
 * assert.equal(err.code, "ENODEV");
 * ```
 */
export class LinkNotFoundError extends NetlinkError {
  /** The name or index looked up. */
  readonly link: string | number;
  /**
   * Build the error.
   *
   * @param link The name or index looked up.
   * @param op The operation that failed.
   */
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

/**
 * A dump stayed inconsistent (`NLM_F_DUMP_INTR`) after retries: the tables
 * kept changing while being read (`ip` prints "Dump was interrupted").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DumpInterruptedError } from "./mod.ts";
 *
 * assert.equal(new DumpInterruptedError("RTM_GETLINK").code, "EINTR");
 * ```
 */
export class DumpInterruptedError extends NetlinkError {
  /**
   * Build the error.
   *
   * @param op The dump's operation, e.g. `"RTM_GETROUTE"`.
   */
  constructor(op: string) {
    super(op, 4, "dump interrupted by concurrent changes, retries exhausted");
    this.name = "DumpInterruptedError";
  }
}

/**
 * A network namespace path does not exist (`ip -n nope link` says "Cannot
 * open network namespace "nope": No such file or directory").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetnsNotFoundError } from "./mod.ts";
 *
 * assert.equal(new NetnsNotFoundError("/run/netns/nope").code, "ENOENT");
 * ```
 */
export class NetnsNotFoundError extends NetlinkError {
  /** The path opened. */
  readonly path: string;
  /**
   * Build the error.
   *
   * @param path The path that does not exist.
   */
  constructor(path: string) {
    super("open", 2, undefined, `Network namespace "${path}" not found`);
    this.name = "NetnsNotFoundError";
    this.path = path;
  }
}

/**
 * Whether `err` is a NetlinkError with one of the given codes.
 *
 * @param err Anything caught.
 * @param codes Symbolic errnos, e.g. `"EEXIST"`.
 * @returns `true` when it matches (and narrows `err`).
 * @example Ignore "exists", as `ip link add … 2>/dev/null || true` would
 * ```ts
 * import assert from "node:assert/strict";
 * import { isErrno, NetlinkError } from "./mod.ts";
 *
 * assert.ok(isErrno(new NetlinkError("RTM_NEWLINK", 17), "EEXIST"));
 * assert.ok(!isErrno(new Error("EEXIST"), "EEXIST"));
 * ```
 */
export function isErrno(err: unknown, ...codes: string[]): err is NetlinkError {
  return err instanceof NetlinkError && codes.includes(err.code);
}

/**
 * Name what a failed request was about: a plain {@linkcode NetlinkError}
 * without a subject comes back as the same error with `subject` (errno,
 * `op` and ext-ack kept; no `cause`, which would only repeat it in a CNI
 * error's `details`); anything else, including the typed subclasses,
 * unchanged.
 *
 * @param err What the request threw.
 * @param subject The link, address or route, as `ip` would write it.
 * @returns The error to throw.
 */
export function naming(err: unknown, subject: string): unknown {
  if (!(err instanceof NetlinkError) || err.constructor !== NetlinkError || err.subject) {
    return err;
  }
  return new NetlinkError(err.op, err.errno, err.extAck, { subject });
}

/**
 * A link reference as `ip` would write it in a message: the name, or
 * `#index`; a name with characters no interface name has is quoted.
 *
 * @param ref An ifindex or a name.
 * @returns The text.
 */
export function linkText(ref: number | string): string {
  if (typeof ref === "number") return `#${ref}`;
  return /^[\w.@:+-]{1,15}$/.test(ref) ? ref : JSON.stringify(ref);
}
