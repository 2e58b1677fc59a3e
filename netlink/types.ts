/**
 * Plain data types of the netlink API: what links, addresses and routes look
 * like, and the specs that create or change them.
 *
 * @module
 */

import type { IpFamily } from "../internal/_ip.ts";
import type { MacvlanMode as Mode } from "../internal/_macvtap_mode.ts";
import type { RouteProtocol, Scope } from "./names.ts";
import type { NetnsRef } from "./netns.ts";

/**
 * macvlan/macvtap modes, spelled as in iproute2 and in the CNI config. The
 * names are declared once in `internal/` (the config, a leaf, parses them
 * too); their kernel values are `MACVLAN_MODES`.
 *
 * @example The kernel value of a mode, like `ip link add … type macvtap mode vepa`
 * ```ts
 * import assert from "node:assert/strict";
 * import { MACVLAN_MODES, type MacvlanMode } from "./mod.ts";
 *
 * const mode: MacvlanMode = "vepa";
 * assert.equal(MACVLAN_MODES[mode], 2);
 * ```
 */
export type MacvlanMode = Mode;

/**
 * Address family of an address or route.
 *
 * @example Only IPv6 addresses, like `ip -6 addr`
 * ```ts
 * import { type Family, NetlinkHandle } from "./mod.ts";
 *
 * const family: Family = 6;
 * using h = NetlinkHandle.open();
 * console.log(h.addrs.list({ family }));
 * ```
 */
export type Family = IpFamily;

/**
 * A link reference: ifindex or name.
 *
 * @example The same link by name and by index, like `ip link show lo` and `ip link show index 1`
 * ```ts
 * import { type LinkRef, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * const refs: LinkRef[] = ["lo", h.links.get("lo").index];
 * for (const ref of refs) console.log(h.links.get(ref).name);
 * ```
 */
export type LinkRef = number | string;

/**
 * A network interface as the kernel reports it (`ip -d link show`).
 *
 * @example Is a link a macvtap, and is it up, like `ip -d link show dev eth0`
 * ```ts
 * import { type Link, LINK_FLAGS, NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function example(): void {
 *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
 *   const l: Link = h.links.get("eth0");
 *   console.log(l.kind === "macvtap", l.mode, Boolean(l.flags & LINK_FLAGS.lowerUp));
 * }
 * ```
 */
export interface Link {
  /** ifindex in the namespace it was read from. */
  index: number;
  /** `IFLA_IFNAME`, at most 15 bytes. */
  name: string;
  /** `IFLA_INFO_KIND` (`"macvtap"`, `"veth"`, `"bridge"` …); absent for physical NICs and lo. */
  kind?: string;
  /** `IFLA_INFO_SLAVE_KIND`, e.g. `"bridge"` or `"bond"` when enslaved. */
  slaveKind?: string;
  /** MAC address, lower-case `aa:bb:cc:dd:ee:ff` (absent for links without one). */
  mac?: string;
  /** `IFLA_MTU` (0 when the kernel did not report one). */
  mtu: number;
  /** `ifi_flags` (IFF_*). */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** IFF_PROMISC set on the link itself. */
  promisc: boolean;
  /** `IFLA_OPERSTATE` as iproute2 spells it: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN" … */
  operState: string;
  /** `IFLA_CARRIER`. */
  carrier?: boolean;
  /** `IFLA_LINK`: ifindex of the lower device (parent), possibly in another namespace. */
  parentIndex?: number;
  /** `IFLA_LINK_NETNSID`: set when the parent lives in another namespace. */
  linkNetnsId?: number;
  /** `IFLA_MASTER`: ifindex of the bridge or bond this link is enslaved to. */
  masterIndex?: number;
  /** `IFLA_TXQLEN`. */
  txQueueLen?: number;
  /** macvlan/macvtap mode. */
  mode?: MacvlanMode;
  /** `ifi_type` (`ARPHRD_*`, named in `LINK_TYPES`): 1 ether, 772 loopback … */
  type: number;
  /** `IFLA_IFALIAS` (`ip link set X alias TEXT`), when set. */
  alias?: string;
}

/**
 * What to create (`ip link add …`).
 *
 * @example Specs for a veth pair and a macvtap on it
 * ```ts
 * import type { LinkSpec } from "./mod.ts";
 *
 * const veth: LinkSpec = { kind: "veth", name: "eth1", peer: { name: "eth1p" }, up: true };
 * const tap: LinkSpec = { kind: "macvtap", name: "mvt0", parent: "eth1", mode: "bridge", mtu: 1500 };
 * ```
 */
export type LinkSpec =
  & {
    /** Interface name (≤ 15 bytes; longer is ERANGE from the kernel). */
    name: string;
    /** MTU; for macvtap/macvlan at most the parent's (EINVAL otherwise). Default: the kernel's. */
    mtu?: number;
    /** MAC address `aa:bb:cc:dd:ee:ff`; default: random. */
    mac?: string;
    /** Bring the link up in the same request. */
    up?: boolean;
    /** Ask for this ifindex (EBUSY when taken). */
    index?: number;
    /** Create the link directly in this namespace (`IFLA_NET_NS_FD`): open, or a path. */
    netns?: NetnsRef;
    /** `IFLA_TXQLEN` (`ip link add … txqueuelen N`). */
    txQueueLen?: number;
  }
  & (
    | {
      /** A macvtap (with a `/dev/tapN` character device) or a macvlan. */
      kind: "macvtap" | "macvlan";
      /** Lower device, in the handle's namespace. */
      parent: LinkRef;
      /** Default `"bridge"`. */
      mode?: MacvlanMode;
    }
    | {
      /** A veth pair; `name` is this end. */
      kind: "veth";
      /** The other end; created in `peer.netns` when given. */
      peer: { name: string; netns?: NetnsRef; mac?: string };
    }
    | {
      /** A Linux bridge. */
      kind: "bridge";
    }
    | {
      /** A dummy link (needs CONFIG_DUMMY). */
      kind: "dummy";
    }
  );

/**
 * What to change (`ip link set …`). Fields are applied in one RTM_NEWLINK.
 *
 * @example Rename and bring up in one request, like `ip link set mvt0 name eth0 up`
 * ```ts
 * import type { LinkChange } from "./mod.ts";
 *
 * const change: LinkChange = { name: "eth0", up: true, mac: "02:00:0a:01:00:02" };
 * ```
 */
export interface LinkChange {
  /** Set or clear IFF_UP (`ip link set X up|down`). */
  up?: boolean;
  /** `ip link set X mtu N`. */
  mtu?: number;
  /** `ip link set X address MAC`. */
  mac?: string;
  /**
   * Enslave the link to this bridge or bond, by ifindex or name
   * (`ip link set X master BR`, `IFLA_MASTER`); `null` releases it
   * (`ip link set X nomaster`).
   */
  master?: LinkRef | null;
  /** Rename (`ip link set X name Y`); the kernel renames before it changes flags. */
  name?: string;
  /** Set or clear IFF_PROMISC (`ip link set X promisc on|off`). */
  promisc?: boolean;
  /**
   * `ip link set X alias TEXT` (`IFLA_IFALIAS`, at most 255 bytes); `""`
   * clears it. The kernel ignores it when a link is created: set it after.
   */
  alias?: string;
  /** Move the link into this namespace (`IFLA_NET_NS_FD`): open, or a path. */
  netns?: NetnsRef;
  /**
   * With `netns`: the ifindex to take there (`IFLA_NEW_IFINDEX`; EBUSY when
   * taken). Without `netns` it is a TypeError: the kernel would ignore it.
   */
  newIndex?: number;
}

/**
 * An interface address (`ip addr`).
 *
 * @example Host-scoped IPv4 addresses of lo, like `ip -4 addr show dev lo scope host`
 * ```ts
 * import { type Address, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * const v4: Address[] = h.addrs.list({ link: "lo", family: 4 });
 * console.log(v4.filter((a) => a.scope === "host").map((a) => a.cidr)); // ["127.0.0.1/8"] when lo is up
 * ```
 */
export interface Address {
  /** ifindex. */
  index: number;
  /** 4 or 6. */
  family: Family;
  /** Host address with prefix, e.g. `10.1.2.3/24`, `fd00::5/64`. */
  cidr: string;
  /** `IFA_F_*` flags (including `IFA_FLAGS` bits beyond 8). */
  flags: number;
  /** Scope: `"universe"` (global), `"link"`, `"host"` … (`SCOPES`), or the number when unnamed. */
  scope: Scope;
  /** `IFA_LABEL` (IPv4), e.g. `eth0:1`. */
  label?: string;
}

/**
 * A route (`ip route`).
 *
 * @example A default route as `h.routes.list()` returns it (`default via 10.1.0.1 dev eth0`)
 * ```ts
 * import { ROUTE_TABLES, ROUTE_TYPES, type Route } from "./mod.ts";
 *
 * const route: Route = {
 *   family: 4,
 *   dst: "0.0.0.0/0",
 *   gw: "10.1.0.1",
 *   oif: 2,
 *   table: ROUTE_TABLES.main,
 *   protocol: "boot",
 *   scope: "universe",
 *   type: ROUTE_TYPES.unicast,
 * };
 * ```
 */
export interface Route {
  /** 4 or 6. */
  family: Family;
  /** Destination CIDR; `0.0.0.0/0` / `::/0` for default. */
  dst: string;
  /** Gateway (`RTA_GATEWAY`, `via`). */
  gw?: string;
  /** Output ifindex (`RTA_OIF`). */
  oif?: number;
  /** `RTA_PRIORITY` (metric). */
  metric?: number;
  /** Routing table, default main (254). */
  table?: number;
  /** Scope: `"universe"`, `"link"`, `"host"` … (`SCOPES`), or the number when unnamed. */
  scope?: Scope;
  /** Protocol: `"kernel"`, `"boot"`, `"static"` … (`ROUTE_PROTOCOLS`), or the number (e.g. 249). */
  protocol?: RouteProtocol;
  /** `RTN_*`: 1 unicast, 2 local … */
  type?: number;
  /** Preferred source address (`RTA_PREFSRC`). */
  src?: string;
  /** Route MTU (`RTAX_MTU`). */
  mtu?: number;
  /** `RTAX_ADVMSS`. */
  advmss?: number;
  /**
   * Next hops of a multipath route (`RTA_MULTIPATH`, `nexthop via … dev …`),
   * as read from the kernel; not used when adding.
   */
  nexthops?: NextHop[];
}

/**
 * One next hop of a multipath route.
 *
 * @example The gateways of an IPv6 multipath default route (`ip -6 route show default`)
 * ```ts
 * import { type NextHop, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * const hops: NextHop[] = h.routes.defaultRoute(6)?.nexthops ?? [];
 * console.log(hops.map((n) => `${n.gw} dev #${n.oif}`));
 * ```
 */
export interface NextHop {
  /** Gateway (`RTA_GATEWAY`, or `RTA_VIA` of another family). */
  gw?: string;
  /** Output ifindex. */
  oif?: number;
}

/**
 * A neighbour (ARP or NDP) entry (`ip neigh`).
 *
 * @example A static entry, like `ip neigh add 10.1.0.1 lladdr 02:00:0a:01:00:01 dev eth0 nud permanent`
 * ```ts
 * import { NEIGH_STATES, type Neighbour } from "./mod.ts";
 *
 * const n: Neighbour = {
 *   index: 2,
 *   family: 4,
 *   ip: "10.1.0.1",
 *   mac: "02:00:0a:01:00:01",
 *   state: NEIGH_STATES.permanent,
 * };
 * ```
 */
export interface Neighbour {
  /** ifindex of the link it is on. */
  index: number;
  /** 4 (ARP) or 6 (NDP). */
  family: Family;
  /** The neighbour's IP address (`NDA_DST`), IPv6 in RFC 5952 form. */
  ip: string;
  /** Its link-layer address (`NDA_LLADDR`), absent while unresolved. */
  mac?: string;
  /** `NUD_*` state bits; compare with `NEIGH_STATES`. */
  state: number;
}

/**
 * A link notification from RTNLGRP_LINK.
 *
 * @example Wait until a link is deleted, like `ip monitor link`
 * ```ts
 * import { type LinkEvent, subscribeLinks } from "./mod.ts";
 *
 * export async function waitForDelete(name: string): Promise<LinkEvent> {
 *   using events = subscribeLinks({ netns: "/run/netns/ctr1" });
 *   for await (const e of events) if (e.type === "del" && e.link.name === name) return e;
 *   throw new Error("subscription ended");
 * }
 * ```
 */
export interface LinkEvent {
  /** What the event is about. */
  object: "link";
  /** `RTM_NEWLINK` (created or changed) or `RTM_DELLINK`. */
  type: "new" | "del";
  /** The link as the notification describes it. */
  link: Link;
}

/**
 * An address notification (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR).
 *
 * @example
 * ```ts
 * import type { AddrEvent } from "./mod.ts";
 *
 * const e: AddrEvent = {
 *   object: "addr",
 *   type: "new",
 *   addr: { index: 2, family: 4, cidr: "10.1.0.2/24", flags: 0x80, scope: "universe" },
 * };
 * ```
 */
export interface AddrEvent {
  /** What the event is about. */
  object: "addr";
  /** `RTM_NEWADDR` or `RTM_DELADDR`. */
  type: "new" | "del";
  /** The address. */
  addr: Address;
}

/**
 * A route notification (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE), of any table.
 *
 * @example
 * ```ts
 * import type { RouteEvent } from "./mod.ts";
 *
 * const e: RouteEvent = { object: "route", type: "del", route: { family: 6, dst: "fd00::/64" } };
 * ```
 */
export interface RouteEvent {
  /** What the event is about. */
  object: "route";
  /** `RTM_NEWROUTE` or `RTM_DELROUTE`. */
  type: "new" | "del";
  /** The route. */
  route: Route;
}

/**
 * A neighbour notification (RTNLGRP_NEIGH).
 *
 * @example
 * ```ts
 * import type { NeighEvent } from "./mod.ts";
 *
 * const e: NeighEvent = {
 *   object: "neigh",
 *   type: "new",
 *   neigh: { index: 2, family: 4, ip: "10.1.0.1", mac: "02:00:0a:01:00:01", state: 0x02 },
 * };
 * ```
 */
export interface NeighEvent {
  /** What the event is about. */
  object: "neigh";
  /** `RTM_NEWNEIGH` or `RTM_DELNEIGH`. */
  type: "new" | "del";
  /** The entry. */
  neigh: Neighbour;
}

/**
 * Any event `subscribe()` yields; `object` tells which.
 *
 * @example
 * ```ts
 * import type { NetlinkEvent } from "./mod.ts";
 *
 * function describe(e: NetlinkEvent): string {
 *   switch (e.object) {
 *     case "link": return `${e.type} link ${e.link.name}`;
 *     case "addr": return `${e.type} addr ${e.addr.cidr}`;
 *     case "route": return `${e.type} route ${e.route.dst}`;
 *     case "neigh": return `${e.type} neigh ${e.neigh.ip}`;
 *   }
 * }
 * console.log(describe({ object: "route", type: "new", route: { family: 4, dst: "10.0.0.0/8" } }));
 * ```
 */
export type NetlinkEvent = LinkEvent | AddrEvent | RouteEvent | NeighEvent;
