/**
 * IPAM: the delegate (the plugin named by `ipam.type`, run from CNI_PATH,
 * with version negotiation) and the interface configuration from its result.
 *
 * @example Release an allocation
 * ```ts
 * import { execIpam } from "./mod.ts";
 *
 * // Needs root, net.json and CNI_PATH: type-checked, not run by `deno test --doc`.
 * export async function release(): Promise<void> {
 *   await execIpam("DEL", {
 *     type: "host-local",
 *     stdin: new TextEncoder().encode(Deno.readTextFileSync("net.json")),
 *     env: Deno.env.toObject(),
 *     cniPath: (Deno.env.get("CNI_PATH") ?? "").split(":"),
 *   });
 * }
 * ```
 *
 * @module
 */

export { binaryIdentity, DelegateVersionCache } from "./_version_cache.ts";
export { ALLOCATION_ONLY_IPAM, IPAM_VERSIONS_FILE, ipamDelegate } from "./delegate.ts";
export type { DelegateOptions, Ipam } from "./delegate.ts";
export { checkInterface, configureInterface } from "./configure.ts";
export {
  ETXTBSY_RETRY_DELAYS_MS,
  execIpam,
  findPlugin,
  IPAM_TIMEOUT_MS,
  leftNothing,
} from "./exec.ts";
export type { ExecIpamOptions, IpamCommand } from "./exec.ts";
