/**
 * CNI error codes and the error every failure becomes before it is printed.
 *
 * @module
 */

import { clipText } from "../internal/_json.ts";

/**
 * CNI error codes. 1–99 are the spec's (and only as specified), 999 is the
 * Go libraries' generic code, 100+ are this plugin's own:
 *
 * | code | name | meaning |
 * |---|---|---|
 * | 1 | INCOMPATIBLE_VERSION | config cniVersion not supported, or command not allowed at it |
 * | 2 | UNSUPPORTED_FIELD | a config field we know but do not support (message names key and value) |
 * | 3 | UNKNOWN_CONTAINER | container unknown; tells the runtime to skip cleanup, use with care |
 * | 4 | INVALID_ENV | a `CNI_*` variable is missing or invalid (message names it) |
 * | 5 | IO | stdin could not be read (or is too large) |
 * | 6 | DECODE | stdin (or a delegate's output) is not the expected JSON |
 * | 7 | INVALID_CONFIG | the network config is invalid |
 * | 11 | TRY_AGAIN | transient condition (EAGAIN, EBUSY, interrupted dumps, lock contention) |
 * | 50 | NOT_AVAILABLE | STATUS: cannot service ADD |
 * | 51 | LIMITED_CONNECTIVITY | STATUS: not available, existing containers affected |
 * | 100 | NETLINK | a kernel (netlink) operation failed; errno and ext-ack in the message/details |
 * | 101 | IPAM | the IPAM delegate could not be run or answered nonsense (its own errors keep their code) |
 * | 102 | TIMEOUT | an operation (IPAM exec, address settle) did not finish in time |
 * | 103 | NETNS | the container network namespace cannot be opened or is not a netns |
 * | 999 | GENERIC | anything else |
 *
 * @example Fail like the spec says for a config the plugin cannot use
 * ```ts
 * import assert from "node:assert/strict";
 * import { CniError, ErrorCode } from "./mod.ts";
 *
 * const err = new CniError(ErrorCode.INVALID_CONFIG, "master: missing");
 * assert.equal(err.toJSON("1.1.0").code, 7);
 * ```
 */
export const ErrorCode: Readonly<{
  INCOMPATIBLE_VERSION: 1;
  UNSUPPORTED_FIELD: 2;
  UNKNOWN_CONTAINER: 3;
  INVALID_ENV: 4;
  IO: 5;
  DECODE: 6;
  INVALID_CONFIG: 7;
  TRY_AGAIN: 11;
  NOT_AVAILABLE: 50;
  LIMITED_CONNECTIVITY: 51;
  NETLINK: 100;
  IPAM: 101;
  TIMEOUT: 102;
  NETNS: 103;
  GENERIC: 999;
}> = Object.freeze(
  {
    INCOMPATIBLE_VERSION: 1,
    UNSUPPORTED_FIELD: 2,
    UNKNOWN_CONTAINER: 3,
    INVALID_ENV: 4,
    IO: 5,
    DECODE: 6,
    INVALID_CONFIG: 7,
    TRY_AGAIN: 11,
    NOT_AVAILABLE: 50,
    LIMITED_CONNECTIVITY: 51,
    NETLINK: 100,
    IPAM: 101,
    TIMEOUT: 102,
    NETNS: 103,
    GENERIC: 999,
  } as const,
);

/**
 * One of the {@linkcode ErrorCode} values (any other number is allowed too, e.g. a delegate's).
 *
 * @example Only the table's codes
 * ```ts
 * import { ErrorCode, type ErrorCodeValue } from "./mod.ts";
 *
 * const code: ErrorCodeValue = ErrorCode.TRY_AGAIN;
 * ```
 */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The JSON a failing plugin prints on stdout.
 *
 * @example What a runtime reads after an ADD with a bad MTU
 * ```ts
 * import type { CniErrorJson } from "./mod.ts";
 *
 * const printed: CniErrorJson = { cniVersion: "1.1.0", code: 7, msg: "mtu: invalid MTU 10" };
 * ```
 */
export interface CniErrorJson {
  /** The config's version (absent for errors found before the config was read). */
  cniVersion?: string;
  /** The error code. */
  code: number;
  /** Short message. */
  msg: string;
  /** Longer details. */
  details?: string;
}

/** Longest `msg` printed, in UTF-16 units; longer ones are cut (`… (N characters)`). */
export const MAX_MSG_CHARS = 1024;

/** Longest `details` printed, in UTF-16 units; longer ones are cut. */
export const MAX_DETAILS_CHARS = 4096;

/**
 * A CNI error: what the skel prints as `{cniVersion, code, msg, details}`.
 *
 * @example Usage
 * ```ts
 * import { CniError, ErrorCode } from "./errors.ts";
 * const err = new CniError(ErrorCode.INVALID_CONFIG, "mtu: invalid MTU 10");
 * JSON.stringify(err.toJSON("1.0.0")); // {"cniVersion":"1.0.0","code":7,"msg":"mtu: invalid MTU 10"}
 * ```
 */
export class CniError extends Error {
  /** The CNI error code. */
  readonly code: number;
  /** Short message (`msg`). */
  readonly msg: string;
  /** Longer details, e.g. a cause chain. */
  readonly details: string | undefined;

  /**
   * A CNI error.
   *
   * @param code The CNI error code ({@linkcode ErrorCode} or a delegate's own).
   * @param msg Short message.
   * @param details Longer details.
   * @param options `cause`: the error behind it.
   */
  constructor(code: number, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "CniError";
    this.code = code;
    this.msg = msg;
    this.details = details ? details : undefined;
  }

  /**
   * The error JSON. `cniVersion` is the config's version; it is omitted when
   * not known (errors found before the config was read, as the Go skel does).
   */
  toJSON(cniVersion?: string): CniErrorJson {
    // The last guard against a message quoting a megabyte of input (an
    // IPAM child's message, a path): cut, with the whole length shown.
    return {
      ...(cniVersion ? { cniVersion } : {}),
      code: this.code,
      msg: clipText(this.msg, MAX_MSG_CHARS),
      ...(this.details ? { details: clipText(this.details, MAX_DETAILS_CHARS) } : {}),
    };
  }
}

/** The messages of `err`'s cause chain, joined with ": " (for `details`); `undefined` without causes. */
export function causeChain(err: unknown): string | undefined {
  const parts: string[] = [];
  let cur: unknown = err instanceof Error ? err.cause : undefined;
  while (cur !== undefined && cur !== null && parts.length < 8) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.length ? parts.join(": ") : undefined;
}
