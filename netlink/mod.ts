/**
 * Netlink for Deno over libmnl (`Deno.dlopen`): links, addresses, routes,
 * network namespaces, sysctls and link events. Needs `--allow-ffi` (and root
 * or CAP_NET_ADMIN for changes).
 *
 * @example Read the links of a namespace
 * ```ts ignore
 * import { NetlinkHandle } from "./mod.ts";
 * using h = NetlinkHandle.open({ netns: "/run/netns/lab" });
 * for (const l of h.links.list()) console.log(l.index, l.name, l.kind ?? "");
 * ```
 *
 * @module
 */

export { NetlinkHandle } from "./handle.ts";
export type { HandleOptions } from "./handle.ts";
export type { LinkOps } from "./link.ts";
export type { AddrFilter, AddrOps, AddrOptions } from "./addr.ts";
export type { RouteFilter, RouteOps, RouteSpec } from "./route.ts";
export type { NetlinkSocket, SocketOptions } from "./socket.ts";
export {
  createNetns,
  currentNetns,
  currentNetnsId,
  deleteNetns,
  inNetns,
  Netns,
  NETNS_RUN_DIR,
  openNetns,
} from "./netns.ts";
export { readSysctl, writeSysctl } from "./sysctl.ts";
export { subscribeLinks } from "./events.ts";
export type { LinkSubscription } from "./events.ts";
export {
  DumpInterruptedError,
  errnoName,
  isErrno,
  LinkNotFoundError,
  NetlinkError,
  NetnsNotFoundError,
} from "./errors.ts";
export { LIBMNL_ENV, LibraryLoadError } from "./_ffi.ts";
export { MACVLAN_MODES, macvlanModeName } from "./wire/message.ts";
export {
  ADDR_FLAGS,
  LINK_FLAGS,
  LINK_TYPES,
  NEIGH_STATES,
  ROUTE_PROTOCOLS,
  ROUTE_TABLES,
  ROUTE_TYPES,
  SCOPES,
} from "./names.ts";
export type { NeighFilter, NeighOps, NeighSpec } from "./neigh.ts";
export type {
  Address,
  Family,
  Link,
  LinkChange,
  LinkEvent,
  LinkRef,
  LinkSpec,
  MacvlanMode,
  Neighbour,
  NextHop,
  Route,
} from "./types.ts";
