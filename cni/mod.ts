/**
 * The CNI protocol: skel (entry point), versions, results, errors and the IP
 * helpers shared with IPAM and netlink. Pure TypeScript, no `node:*`, no npm:
 * loaded on every plugin invocation.
 *
 * @module
 */

export {
  causeChain,
  CniError,
  type CniErrorJson,
  ErrorCode,
  type ErrorCodeValue,
  MAX_DETAILS_CHARS,
  MAX_MSG_CHARS,
} from "./errors.ts";
export {
  bytesEqual,
  canonicalCidr,
  canonicalIP,
  type Cidr,
  cidrContains,
  cidrProblem,
  formatCidr,
  formatIP,
  type IpFamily,
  ipFamily,
  isIPv4Mapped,
  networkOf,
  parseCidr,
  parseIP,
  parseIPv4,
  parseIPv6,
  unmapIPv4,
} from "../internal/_ip.ts";
export {
  type Dns,
  formatResult,
  type Interface,
  type IPConfig,
  isEmptyDns,
  parseDns,
  parseResult,
  type ParseResultOptions,
  type Result,
  type Route,
} from "./result.ts";
export {
  CNI_ID_RE,
  type CniContext,
  defaultToCniError,
  MAX_CNI_ARGS_BYTES,
  MAX_CONTAINER_ID_BYTES,
  MAX_NETNS_BYTES,
  MAX_NETWORK_NAME_BYTES,
  MAX_STDIN_BYTES,
  runSkel,
  runSkelMain,
  type SkelHandlers,
  type SkelIo,
  type SkelRequest,
} from "./skel.ts";
export {
  type CniCommand,
  compareVersions,
  CURRENT_VERSION,
  isSupportedVersion,
  parseVersion,
  selectVersion,
  SUPPORTED_VERSIONS,
  versionAllows,
} from "./version.ts";
