/**
 * macvtap networking for Deno automation: the netlink library (links,
 * addresses, routes, namespaces, sysctls, link events over libmnl) and the
 * macvtap CNI plugin's commands as functions.
 *
 * The same API is split by audience: `@macvtap/cni/netlink` (the netlink
 * library), `@macvtap/cni/cni` (CNI result types and errors) and
 * `@macvtap/cni/plugin` (the commands).
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
 *   hb.addrs.add("eth0", "192.168.122.10/24");
 *   hb.routes.add({ family: 4, dst: "0.0.0.0/0", gw: "192.168.122.1", oif: "eth0" });
 *   console.log(eth0, hb.addrs.list({ link: "eth0" }), hb.routes.list());
 * } finally {
 *   deleteNetns("demo-a");
 *   deleteNetns("demo-b");
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
export type { CniContext, CommandOptions, Ipam } from "./plugin.ts";

export {
  CniError,
  CURRENT_VERSION,
  ErrorCode,
  formatResult,
  parseResult,
  SUPPORTED_VERSIONS,
} from "./cni.ts";
export type {
  CniErrorJson,
  Dns,
  ErrorCodeValue,
  Interface,
  IPConfig,
  ParseResultOptions,
  Result,
  Route as ResultRoute,
} from "./cni.ts";
