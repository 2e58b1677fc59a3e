/**
 * Plugin errors and the one mapping from any thrown value to a CNI error.
 *
 * @module
 */

import { causeChain, CniError, ErrorCode } from "../cni/mod.ts";
import { ConfigError } from "../config/mod.ts";
import { HostRouteError } from "../hostroute/mod.ts";
import { DumpInterruptedError, isErrno, NetlinkError } from "../netlink/mod.ts";

/**
 * A plugin failure with a chosen CNI code (default 999).
 *
 * @example A failure the runtime should retry
 * ```ts
 * import assert from "node:assert/strict";
 * import { PluginError, toCniError } from "./errors.ts";
 *
 * const err = new PluginError("master eth1 is busy", { code: 11 });
 * assert.equal(toCniError(err).code, 11);
 * ```
 */
export class PluginError extends Error {
  /** The CNI error code. */
  readonly code: number;
  /** Longer details for the error JSON. */
  readonly details: string | undefined;
  /**
   * A plugin error.
   *
   * @param message The `msg` of the error JSON.
   * @param options `code` (default 999), `details`, `cause`.
   */
  constructor(message: string, options: { code?: number; details?: string; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "PluginError";
    this.code = options.code ?? ErrorCode.GENERIC;
    this.details = options.details;
  }
}

/**
 * Map anything thrown by a command to a {@linkcode CniError}:
 * - a `CniError` passes through (an IPAM child's error keeps its own code);
 * - `ConfigError` ⇒ 7, or 2 when the field is unsupported;
 * - `EAGAIN`/`EBUSY` and dumps still interrupted after retries ⇒ 11;
 * - `PluginError` ⇒ its code; anything else ⇒ 999, with the cause chain in `details`.
 *
 * @param err Anything a command threw.
 * @returns The CNI error to print (`toJSON(cniVersion)`), with `err` as its cause.
 * @example Print any failure the way the CNI spec wants it
 * ```ts
 * import assert from "node:assert/strict";
 * import { toCniError } from "./errors.ts";
 *
 * const json = toCniError(new Error("boom")).toJSON("1.1.0");
 * assert.equal(json.code, 999);
 * assert.equal(json.msg, "boom");
 * ```
 */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof ConfigError) {
    return new CniError(
      err.unsupported ? ErrorCode.UNSUPPORTED_FIELD : ErrorCode.INVALID_CONFIG,
      err.message,
      undefined,
      { cause: err },
    );
  }
  if (err instanceof HostRouteError) {
    return new CniError(ErrorCode.INVALID_CONFIG, err.message, undefined, { cause: err });
  }
  if (err instanceof PluginError) {
    return new CniError(err.code, err.message, err.details ?? causeChain(err), { cause: err });
  }
  if (
    err instanceof DumpInterruptedError ||
    isErrno(err, "EAGAIN", "EBUSY")
  ) {
    return new CniError(ErrorCode.TRY_AGAIN, err.message, causeChain(err), { cause: err });
  }
  if (err instanceof NetlinkError) {
    return new CniError(ErrorCode.NETLINK, err.message, causeChain(err), { cause: err });
  }
  if (err instanceof Error) {
    return new CniError(ErrorCode.GENERIC, err.message, causeChain(err), { cause: err });
  }
  return new CniError(ErrorCode.GENERIC, String(err));
}
