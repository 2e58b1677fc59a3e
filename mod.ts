/**
 * macvtap networking for Deno automation: the netlink library (links,
 * addresses, routes, namespaces, sysctls, link events over libmnl) and the
 * macvtap CNI plugin's commands as functions.
 *
 * Needs `--allow-ffi` for netlink (plus `--allow-run`, `--allow-env`,
 * `--allow-read`, `--allow-write` for the plugin commands), and root or
 * CAP_NET_ADMIN to change anything.
 *
 * @example A macvtap in bridge mode directly inside a second namespace
 * ```ts ignore
 * import { createNetns, deleteNetns, NetlinkHandle } from "./mod.ts";
 *
 * using a = createNetns("demo-a");   // ip netns add demo-a
 * using b = createNetns("demo-b");   // ip netns add demo-b
 * try {
 *   using ha = NetlinkHandle.open({ netns: a });
 *   ha.links.add({ kind: "veth", name: "eth1", peer: { name: "eth1p" }, up: true });
 *   ha.links.add({ kind: "macvtap", name: "eth0", parent: "eth1", mode: "bridge", netns: b, up: true });
 *   using hb = NetlinkHandle.open({ netns: b });
 *   const eth0 = hb.links.get("eth0");
 *   hb.addrs.add(eth0.index, "192.168.122.10/24");
 *   hb.routes.add({ family: 4, dst: "0.0.0.0/0", gw: "192.168.122.1", oif: eth0.index });
 *   console.log(eth0, hb.addrs.list({ index: eth0.index }), hb.routes.list());
 * } finally {
 *   deleteNetns("demo-a");
 *   deleteNetns("demo-b");
 * }
 * ```
 *
 * @module
 */

export {
  createNetns,
  currentNetns,
  currentNetnsId,
  deleteNetns,
  DumpInterruptedError,
  errnoName,
  inNetns,
  isErrno,
  LIBC_ENV,
  LIBMNL_ENV,
  LibraryLoadError,
  LinkNotFoundError,
  MACVLAN_MODES,
  macvlanModeName,
  NetlinkError,
  NetlinkHandle,
  Netns,
  NETNS_RUN_DIR,
  NetnsNotFoundError,
  openNetns,
  readSysctl,
  subscribeLinks,
  writeSysctl,
} from "./netlink/mod.ts";
export type {
  Address,
  AddrOps,
  AddrOptions,
  Family,
  HandleOptions,
  Link,
  LinkChange,
  LinkEvent,
  LinkOps,
  LinkRef,
  LinkSpec,
  LinkSubscription,
  MacvlanMode,
  NetlinkSocket,
  NotPromise,
  Route,
  RouteFilter,
  RouteOps,
  SocketOptions,
} from "./netlink/mod.ts";

export { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus } from "./plugin/commands.ts";
export type { CommandOptions } from "./plugin/commands.ts";
export type { Ipam } from "./ipam/mod.ts";
export type { CniContext } from "./plugin/context.ts";
export { PluginError, toCniError } from "./plugin/errors.ts";
export { CniError, ErrorCode, formatResult, parseResult, SUPPORTED_VERSIONS } from "./cni/mod.ts";
export type {
  CniErrorJson,
  Dns,
  Interface,
  IPConfig,
  ParseResultOptions,
  Result,
  Route as ResultRoute,
} from "./cni/mod.ts";
export { ConfigError } from "./config/mod.ts";
