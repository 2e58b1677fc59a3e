/**
 * Typed netlink errors: errno, its name, the operation and the kernel's
 * extended-ACK text.
 *
 * @module
 */

import { ERRNO, errnoName, errnoText } from "../internal/_errno.ts";

export { errnoName };

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
    const text = errnoText(errno);
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
      ERRNO.ENODEV,
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
    super(op, ERRNO.EINTR, "dump interrupted by concurrent changes, retries exhausted");
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
    super("open", ERRNO.ENOENT, undefined, `Network namespace "${path}" not found`);
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
