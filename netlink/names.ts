/**
 * Named constants for the numbers the netlink API reads and writes: link,
 * address and route flags, scopes, protocols, types and tables, keyed by
 * the words `ip` prints for them. Each table maps to the kernel's C-named
 * constants in `wire/constants.ts`.
 *
 * @module
 */

import * as C from "./wire/constants.ts";

/**
 * `IFF_*` link flags (`Link.flags`), as `ip link` prints them in `<…>`.
 *
 * @example Is the carrier up, like `LOWER_UP` in `ip link show`
 * ```ts
 * import assert from "node:assert/strict";
 * import { LINK_FLAGS } from "./mod.ts";
 *
 * const flags = 0x11043; // UP,BROADCAST,MULTICAST,LOWER_UP (+RUNNING)
 * assert.ok(flags & LINK_FLAGS.lowerUp);
 * assert.ok(!(flags & LINK_FLAGS.promisc));
 * ```
 */
export const LINK_FLAGS = {
  /** `IFF_UP`: administratively up. */
  up: C.IFF_UP,
  /** `IFF_BROADCAST`. */
  broadcast: C.IFF_BROADCAST,
  /** `IFF_LOOPBACK`. */
  loopback: C.IFF_LOOPBACK,
  /** `IFF_PROMISC`. */
  promisc: C.IFF_PROMISC,
  /** `IFF_MULTICAST`. */
  multicast: C.IFF_MULTICAST,
  /** `IFF_LOWER_UP`: the carrier is up. */
  lowerUp: C.IFF_LOWER_UP,
} as const;

/**
 * `ARPHRD_*` link types (`Link.type`), as `ip link` prints them after
 * `link/`.
 *
 * @example Ethernet links only, like the `link/ether` lines of `ip link`
 * ```ts ignore
 * import { LINK_TYPES, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.links.list().filter((l) => l.type === LINK_TYPES.ether));
 * ```
 */
export const LINK_TYPES = {
  /** `ARPHRD_ETHER`: Ethernet (also veth, macvtap, bond, bridge). */
  ether: C.ARPHRD_ETHER,
  /** `ARPHRD_LOOPBACK`. */
  loopback: C.ARPHRD_LOOPBACK,
} as const;

/**
 * `IFA_F_*` address flags (`AddrOptions.flags`, `Address.flags`), as
 * `ip addr` spells them.
 *
 * @example Add without duplicate address detection, like `ip addr add fd00::2/64 dev eth0 nodad`
 * ```ts ignore
 * import { ADDR_FLAGS, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
 * h.addrs.add("eth0", "fd00::2/64", { flags: ADDR_FLAGS.nodad });
 * ```
 */
export const ADDR_FLAGS = {
  /** `IFA_F_SECONDARY`. */
  secondary: C.IFA_F_SECONDARY,
  /** `IFA_F_NODAD`: skip IPv6 duplicate address detection. */
  nodad: C.IFA_F_NODAD,
  /** `IFA_F_OPTIMISTIC`. */
  optimistic: C.IFA_F_OPTIMISTIC,
  /** `IFA_F_DADFAILED`. */
  dadfailed: C.IFA_F_DADFAILED,
  /** `IFA_F_TENTATIVE`: DAD still running. */
  tentative: C.IFA_F_TENTATIVE,
  /** `IFA_F_PERMANENT`: configured, not autoconfigured. */
  permanent: C.IFA_F_PERMANENT,
} as const;

/**
 * `RT_SCOPE_*` scopes of addresses and routes (`ip … scope NAME`).
 *
 * @example A link-scoped route, like `ip route add 10.9.0.0/16 dev eth0 scope link`
 * ```ts ignore
 * import { NetlinkHandle, SCOPES } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * h.routes.add({ family: 4, dst: "10.9.0.0/16", oif: "eth0", scope: SCOPES.link });
 * ```
 */
export const SCOPES = {
  /** `RT_SCOPE_UNIVERSE` (`global`). */
  universe: C.RT_SCOPE_UNIVERSE,
  /** `RT_SCOPE_SITE`. */
  site: C.RT_SCOPE_SITE,
  /** `RT_SCOPE_LINK`. */
  link: C.RT_SCOPE_LINK,
  /** `RT_SCOPE_HOST`. */
  host: C.RT_SCOPE_HOST,
  /** `RT_SCOPE_NOWHERE`. */
  nowhere: C.RT_SCOPE_NOWHERE,
} as const;

/**
 * `RTPROT_*` route protocols (`ip route … proto NAME`); numbers above 4 are
 * free for routing daemons and tools.
 *
 * @example Routes the kernel made, like `ip route show proto kernel`
 * ```ts ignore
 * import { NetlinkHandle, ROUTE_PROTOCOLS } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.routes.list().filter((r) => r.protocol === ROUTE_PROTOCOLS.kernel));
 * ```
 */
export const ROUTE_PROTOCOLS = {
  /** `RTPROT_UNSPEC`. */
  unspec: C.RTPROT_UNSPEC,
  /** `RTPROT_KERNEL`: made by the kernel (connected routes). */
  kernel: C.RTPROT_KERNEL,
  /** `RTPROT_BOOT`: the default for `ip route add`. */
  boot: C.RTPROT_BOOT,
  /** `RTPROT_STATIC`: an administrator's route. */
  static: C.RTPROT_STATIC,
} as const;

/**
 * `RTN_*` route types (`ip route add TYPE …`).
 *
 * @example Blackhole routes of the main table, like `ip route show type blackhole`
 * ```ts ignore
 * import { NetlinkHandle, ROUTE_TYPES } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.routes.list().filter((r) => r.type === ROUTE_TYPES.blackhole));
 * ```
 */
export const ROUTE_TYPES = {
  /** `RTN_UNICAST`: the default. */
  unicast: C.RTN_UNICAST,
  /** `RTN_LOCAL`: an address of this host (table local). */
  local: C.RTN_LOCAL,
  /** `RTN_BROADCAST`. */
  broadcast: C.RTN_BROADCAST,
  /** `RTN_MULTICAST`. */
  multicast: C.RTN_MULTICAST,
  /** `RTN_BLACKHOLE`: drop silently. */
  blackhole: C.RTN_BLACKHOLE,
  /** `RTN_UNREACHABLE`: drop with ICMP unreachable. */
  unreachable: C.RTN_UNREACHABLE,
  /** `RTN_PROHIBIT`: drop with ICMP prohibited. */
  prohibit: C.RTN_PROHIBIT,
} as const;

/**
 * Routing tables with names (`ip route show table NAME`); any other number
 * up to 2³²−1 is a table too.
 *
 * @example Every table, like `ip route show table all`
 * ```ts ignore
 * import { NetlinkHandle, ROUTE_TABLES } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.routes.list({ table: ROUTE_TABLES.all }));
 * ```
 */
export const ROUTE_TABLES = {
  /** `RT_TABLE_UNSPEC`: in a filter, every table. */
  all: C.RT_TABLE_UNSPEC,
  /** `RT_TABLE_DEFAULT`. */
  default: C.RT_TABLE_DEFAULT,
  /** `RT_TABLE_MAIN`: where routes go by default. */
  main: C.RT_TABLE_MAIN,
  /** `RT_TABLE_LOCAL`: local and broadcast routes the kernel keeps. */
  local: C.RT_TABLE_LOCAL,
} as const;

/**
 * `NUD_*` neighbour states (`ip neigh … nud NAME`, `Neighbour.state`).
 *
 * @example Static entries only, like `ip neigh show nud permanent`
 * ```ts ignore
 * import { NEIGH_STATES, NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.neighs.list().filter((n) => n.state & NEIGH_STATES.permanent));
 * ```
 */
export const NEIGH_STATES = {
  /** `NUD_INCOMPLETE`: resolution in progress. */
  incomplete: C.NUD_INCOMPLETE,
  /** `NUD_REACHABLE`: confirmed recently. */
  reachable: C.NUD_REACHABLE,
  /** `NUD_STALE`: usable, to be confirmed. */
  stale: C.NUD_STALE,
  /** `NUD_DELAY`. */
  delay: C.NUD_DELAY,
  /** `NUD_PROBE`. */
  probe: C.NUD_PROBE,
  /** `NUD_FAILED`: resolution failed. */
  failed: C.NUD_FAILED,
  /** `NUD_NOARP`: needs no resolution. */
  noarp: C.NUD_NOARP,
  /** `NUD_PERMANENT`: static, never expires. */
  permanent: C.NUD_PERMANENT,
} as const;
