/**
 * The CNI protocol's data for Deno automation: result types, parsing and
 * formatting results for any supported `cniVersion`, the error type with its
 * codes, and the versions this plugin speaks. Pure TypeScript, no
 * permissions needed.
 *
 * @example Convert a 1.1.0 result for a 0.4.0 runtime
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatResult, parseResult } from "./cni.ts";
 *
 * const result = parseResult({
 *   cniVersion: "1.1.0",
 *   interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: "/run/netns/a" }],
 *   ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 0 }],
 * });
 * const old = formatResult(result, "0.4.0") as { ips: { version?: string }[] };
 * assert.equal(old.ips[0]?.version, "4");
 * ```
 *
 * @module
 */

export { CniError, ErrorCode } from "./cni/errors.ts";
export type { CniErrorJson, ErrorCodeValue } from "./cni/errors.ts";
export { formatResult, parseResult } from "./cni/result.ts";
export type { Dns, Interface, IPConfig, ParseResultOptions, Result, Route } from "./cni/result.ts";
export { CURRENT_VERSION, SUPPORTED_VERSIONS } from "./cni/version.ts";
export type { CniCommand } from "./cni/version.ts";
export { defaultToCniError, MAX_STDIN_BYTES, runSkel, runSkelMain } from "./cni/skel.ts";
export type { CniContext, SkelHandlers, SkelIo, SkelRequest } from "./cni/skel.ts";
