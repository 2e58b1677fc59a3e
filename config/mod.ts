/**
 * The macvtap plugin's configuration: the network config and `CNI_ARGS`.
 *
 * @module
 */

export {
  type CniArgs,
  isIpOrCidr,
  KNOWN_CNI_ARGS,
  parseCniArgs,
  type ParseCniArgsOptions,
} from "./cni_args.ts";
export { ConfigError } from "./errors.ts";
export {
  type Attachment,
  DEFAULT_HOSTROUTE_METRIC,
  DEFAULT_IPAM_TIMEOUT_MS,
  DEFAULT_STATE_DIR,
  type IpamConf,
  MACVTAP_MODES,
  type MacvtapMode,
  type NetConf,
  type NetConfContext,
  parseNetConf,
  parseNetConfForDel,
} from "./netconf.ts";
