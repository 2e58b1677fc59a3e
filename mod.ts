/**
 * macvtap networking for Deno automation: the netlink library (links,
 * addresses, routes, namespaces, sysctls, link events over libmnl) and the
 * macvtap CNI plugin's commands as functions.
 *
 * The same API is split by audience: `@macvtap/cni/netlink` (the netlink
 * library), `@macvtap/cni/cni` (CNI result types and errors) and
 * `@macvtap/cni/plugin` (the commands).
 *
 * Permissions: `--allow-ffi` for netlink (with `--allow-read` to open a
 * namespace by path, `--allow-read --allow-write` to create one); the plugin
 * commands need `--allow-ffi --allow-run --allow-env --allow-read
 * --allow-write`. Root or CAP_NET_ADMIN to change anything.
 *
 * @example A macvtap in bridge mode directly inside a second namespace
 * ```ts
 * import { createNetns, NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function lab(): void {
 *   using a = createNetns("demo-a"); // ip netns add demo-a (deleted at the end of the scope)
 *   using b = createNetns("demo-b"); // ip netns add demo-b
 *   using ha = NetlinkHandle.open({ netns: a });
 *   ha.links.add({ kind: "veth", name: "eth1", peer: { name: "eth1p" }, up: true });
 *   const eth0 = ha.links.add({
 *     kind: "macvtap", name: "eth0", parent: "eth1", mode: "bridge", netns: b, up: true,
 *   });
 *   using hb = NetlinkHandle.open({ netns: b });
 *   hb.addrs.add(eth0.index, "192.168.122.10/24");
 *   hb.routes.add({ family: 4, dst: "0.0.0.0/0", gw: "192.168.122.1", oif: eth0.index });
 *   console.log(eth0, hb.addrs.list({ link: "eth0" }), hb.routes.list());
 * }
 * ```
 *
 * @module
 */

// The netlink library: its one export list is netlink/mod.ts (netlink.ts
// re-exports it too), so the entries cannot drift apart.
export * from "./netlink/mod.ts";

export {
  cmdAdd,
  cmdCheck,
  cmdDel,
  cmdGc,
  cmdStatus,
  ConfigError,
  PluginError,
  toCniError,
} from "./plugin.ts";
export type {
  CniContext,
  CommandOptions,
  ConfigureOptions,
  DelegateOptions,
  ExecIpamOptions,
  Ipam,
  IpamCommand,
} from "./plugin.ts";
export {
  checkInterface,
  configureInterface,
  execIpam,
  ipamDelegate,
  resolveRoutes,
} from "./plugin.ts";

export {
  CniError,
  CURRENT_VERSION,
  defaultToCniError,
  ErrorCode,
  formatResult,
  MAX_STDIN_BYTES,
  parseResult,
  runSkel,
  runSkelMain,
  SUPPORTED_VERSIONS,
} from "./cni.ts";
export type {
  CniCommand,
  CniErrorJson,
  Dns,
  ErrorCodeValue,
  Interface,
  IPConfig,
  ParseResultOptions,
  Result,
  Route as ResultRoute,
  SkelHandlers,
  SkelIo,
  SkelRequest,
} from "./cni.ts";
