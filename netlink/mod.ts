/**
 * Netlink for Deno over libmnl (`Deno.dlopen`): links, addresses, routes,
 * neighbours, network namespaces, sysctls and events, with the names `ip`
 * uses for flags, scopes and protocols. This is the one list of what
 * `@macvtap/cni/netlink` exports; `netlink.ts` and `mod.ts` re-export it.
 *
 * @example The links of our own namespace, like `ip link show`
 * ```ts
 * import { NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
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
export {
  createNetns,
  currentNetns,
  currentNetnsId,
  deleteNetns,
  inNetns,
  Netns,
  NETNS_RUN_DIR,
  NetnsRestoreError,
  netnsRestoreFailure,
  openNetns,
} from "./netns.ts";
export type { NetnsRef } from "./netns.ts";
export { readSysctl, writeSysctl } from "./sysctl.ts";
export { subscribe, subscribeLinks } from "./events.ts";
export type { EventObject, LinkSubscription, SubscribeOptions, Subscription } from "./events.ts";
export {
  DumpInterruptedError,
  errnoName,
  isErrno,
  LinkNotFoundError,
  NetlinkError,
  NetnsNotFoundError,
} from "./errors.ts";
export type { NetlinkErrorOptions } from "./errors.ts";
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
  routeProtocolName,
  routeProtocolValue,
  scopeName,
  SCOPES,
  scopeValue,
} from "./names.ts";
export type { RouteProtocol, Scope } from "./names.ts";
export type { NeighFilter, NeighOps, NeighSpec } from "./neigh.ts";
export type {
  Address,
  AddrEvent,
  Family,
  Link,
  LinkChange,
  LinkEvent,
  LinkRef,
  LinkSpec,
  MacvlanMode,
  Neighbour,
  NeighEvent,
  NetlinkEvent,
  NextHop,
  Route,
  RouteEvent,
} from "./types.ts";
