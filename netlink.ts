/**
 * Netlink for Deno over libmnl (`Deno.dlopen`): links, addresses, routes,
 * neighbours, network namespaces, sysctls and link events, with the names `ip` uses for
 * flags and scopes. Needs `--allow-ffi` (`--allow-read` and `--allow-write`
 * for namespaces and sysctls) and root or CAP_NET_ADMIN for changes.
 *
 * Every operation is synchronous (one request, one reply) except waiting
 * for link events. Errors are {@linkcode NetlinkError}s naming the
 * operation, what it was about and the errno:
 * `RTM_NEWLINK eth9: File exists (EEXIST)`.
 *
 * @example Links of a namespace, like `ip -n lab link show`
 * ```ts ignore
 * import { NetlinkHandle } from "@macvtap/cni/netlink";
 *
 * using h = NetlinkHandle.open({ netns: "/run/netns/lab" });
 * for (const l of h.links.list()) console.log(l.index, l.name, l.kind ?? "");
 * ```
 *
 * @module
 */

export { NetlinkHandle } from "./netlink/handle.ts";
export type { HandleOptions } from "./netlink/handle.ts";
export type { LinkOps } from "./netlink/link.ts";
export type { AddrFilter, AddrOps, AddrOptions } from "./netlink/addr.ts";
export type { RouteFilter, RouteOps, RouteSpec } from "./netlink/route.ts";
export {
  createNetns,
  currentNetns,
  currentNetnsId,
  deleteNetns,
  inNetns,
  Netns,
  NETNS_RUN_DIR,
  openNetns,
} from "./netlink/netns.ts";
export { readSysctl, writeSysctl } from "./netlink/sysctl.ts";
export { subscribeLinks } from "./netlink/events.ts";
export type { LinkSubscription } from "./netlink/events.ts";
export {
  DumpInterruptedError,
  errnoName,
  isErrno,
  LinkNotFoundError,
  NetlinkError,
  NetnsNotFoundError,
} from "./netlink/errors.ts";
export type { NetlinkErrorOptions } from "./netlink/errors.ts";
export { LibraryLoadError } from "./netlink/_ffi.ts";
export {
  ADDR_FLAGS,
  LINK_FLAGS,
  LINK_TYPES,
  NEIGH_STATES,
  ROUTE_PROTOCOLS,
  ROUTE_TABLES,
  ROUTE_TYPES,
  SCOPES,
} from "./netlink/names.ts";
export type { NeighFilter, NeighOps, NeighSpec } from "./netlink/neigh.ts";
export { MACVLAN_MODES, macvlanModeName } from "./netlink/wire/message.ts";
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
} from "./netlink/types.ts";
