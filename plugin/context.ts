/**
 * What every plugin command receives besides the config: the CNI
 * environment, already validated by the skel.
 *
 * @module
 */

/**
 * The CNI invocation environment of one command.
 *
 * @example What a runtime passes for ADD (`CNI_CONTAINERID`, `CNI_NETNS`, …)
 * ```ts
 * import type { CniContext } from "./context.ts";
 *
 * const ctx: CniContext = {
 *   containerId: "task1",
 *   netns: "/run/netns/task1",
 *   ifname: "eth0",
 *   args: "IgnoreUnknown=1",
 *   path: ["/opt/cni/bin", "/usr/lib/cni"],
 * };
 * ```
 */
export interface CniContext {
  /** CNI_CONTAINERID. */
  containerId: string;
  /** CNI_NETNS (may be empty for DEL). */
  netns: string;
  /** CNI_IFNAME. */
  ifname: string;
  /** CNI_ARGS, raw. */
  args: string;
  /** CNI_PATH, split. */
  path: string[];
  /** Extra environment for delegated (IPAM) plugins; default: the process environment. */
  env?: Record<string, string>;
}
