/**
 * What every plugin command receives besides the config: the CNI
 * environment, already validated by the skel.
 *
 * @module
 */

/** The CNI invocation environment of one command. */
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
