/**
 * The IPAM client: run the IPAM plugin named by `ipam.type` from CNI_PATH.
 *
 * @example Release an allocation
 * ```ts ignore
 * import { execIpam } from "./mod.ts";
 * await execIpam("DEL", {
 *   type: "host-local",
 *   stdin: new TextEncoder().encode(Deno.readTextFileSync("net.json")),
 *   env: Deno.env.toObject(),
 *   cniPath: (Deno.env.get("CNI_PATH") ?? "").split(":"),
 * });
 * ```
 *
 * @module
 */

export { binaryIdentity, DelegateVersionCache } from "./_version_cache.ts";
export { ETXTBSY_RETRY_DELAYS_MS, execIpam, findPlugin, IPAM_TIMEOUT_MS } from "./exec.ts";
export type { ExecIpamOptions, IpamCommand } from "./exec.ts";
