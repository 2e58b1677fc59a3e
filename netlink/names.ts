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
 * ```ts
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
 * ```ts
 * import { ADDR_FLAGS, NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function example(): void {
 *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
 *   h.addrs.add("eth0", "fd00::2/64", { flags: ADDR_FLAGS.nodad });
 * }
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
 * `RT_SCOPE_*` scopes of addresses and routes (`ip … scope NAME`): the one
 * table between the names {@linkcode Scope} uses and the kernel's values.
 *
 * @example The kernel value of a scope name
 * ```ts
 * import assert from "node:assert/strict";
 * import { SCOPES } from "./mod.ts";
 *
 * assert.equal(SCOPES.link, 253); // RT_SCOPE_LINK
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
 * A scope as routes and addresses carry it (`Route.scope`, `Address.scope`):
 * the name `SCOPES` gives it, or the number for a scope without one (from
 * `/etc/iproute2/rt_scopes`). Either is accepted on input.
 *
 * @example Print a route's scope as `ip route` does
 * ```ts
 * import type { Scope } from "./mod.ts";
 *
 * const scope: Scope = "link";
 * console.log(`scope ${scope}`);
 * ```
 */
export type Scope = keyof typeof SCOPES | number;

/**
 * `RTPROT_*` route protocols (`ip route … proto NAME`): the one table
 * between the names {@linkcode RouteProtocol} uses and the kernel's values.
 * Other numbers are free for routing daemons and tools.
 *
 * @example The kernel value of a protocol name
 * ```ts
 * import assert from "node:assert/strict";
 * import { ROUTE_PROTOCOLS } from "./mod.ts";
 *
 * assert.equal(ROUTE_PROTOCOLS.static, 4); // RTPROT_STATIC
 * ```
 */
export const ROUTE_PROTOCOLS = {
  /** `RTPROT_UNSPEC`. */
  unspec: C.RTPROT_UNSPEC,
  /** `RTPROT_REDIRECT`: from an ICMP redirect. */
  redirect: C.RTPROT_REDIRECT,
  /** `RTPROT_KERNEL`: made by the kernel (connected routes). */
  kernel: C.RTPROT_KERNEL,
  /** `RTPROT_BOOT`: the default for `ip route add`. */
  boot: C.RTPROT_BOOT,
  /** `RTPROT_STATIC`: an administrator's route. */
  static: C.RTPROT_STATIC,
  /** `RTPROT_RA`: from an IPv6 router advertisement. */
  ra: C.RTPROT_RA,
  /** `RTPROT_DHCP`: from a DHCP client. */
  dhcp: C.RTPROT_DHCP,
} as const;

/**
 * A route's protocol (`Route.protocol`): the name `ROUTE_PROTOCOLS` gives
 * it, or the number for one without (a daemon's or a tool's, e.g. 249).
 * Either is accepted on input.
 *
 * @example Routes the kernel made, like `ip route show proto kernel`
 * ```ts
 * import { NetlinkHandle, type RouteProtocol } from "./mod.ts";
 *
 * const kernel: RouteProtocol = "kernel";
 * using h = NetlinkHandle.open();
 * console.log(h.routes.list().filter((r) => r.protocol === kernel));
 * ```
 */
export type RouteProtocol = keyof typeof ROUTE_PROTOCOLS | number;

function nameOf<T extends Record<string, number>>(table: T, value: number): keyof T | number {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return value;
}

function valueOf<T extends Record<string, number>>(
  table: T,
  what: string,
  ref: keyof T | number,
): number {
  if (typeof ref === "number") {
    if (!Number.isInteger(ref) || ref < 0 || ref > 255) {
      throw new TypeError(`Invalid ${what} ${ref} (expected a name or 0-255)`);
    }
    return ref;
  }
  const v = Object.hasOwn(table, ref) ? table[ref] : undefined;
  if (v === undefined) {
    throw new TypeError(
      `Unknown ${what} "${String(ref)}" (expected ${Object.keys(table).join(", ")} or 0-255)`,
    );
  }
  return v;
}

/**
 * The name of a scope value, or the value when `SCOPES` names none.
 *
 * @param value `RT_SCOPE_*` (0–255).
 * @returns E.g. `"link"` for 253, `200` → `"site"`, `42` → `42`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scopeName } from "./mod.ts";
 *
 * assert.equal(scopeName(253), "link");
 * assert.equal(scopeName(42), 42);
 * ```
 */
export function scopeName(value: number): Scope {
  return nameOf(SCOPES, value);
}

/**
 * The kernel value of a scope (a name from `SCOPES`, or a number).
 *
 * @param scope The scope.
 * @returns 0–255.
 * @throws {TypeError} for an unknown name or a number out of range.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scopeValue } from "./mod.ts";
 *
 * assert.equal(scopeValue("host"), 254);
 * assert.throws(() => scopeValue("planet" as "host"), TypeError);
 * ```
 */
export function scopeValue(scope: Scope): number {
  return valueOf(SCOPES, "scope", scope);
}

/**
 * The name of a route protocol value, or the value when `ROUTE_PROTOCOLS`
 * names none.
 *
 * @param value `RTPROT_*` (0–255).
 * @returns E.g. `"kernel"` for 2, `249` → `249`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { routeProtocolName } from "./mod.ts";
 *
 * assert.equal(routeProtocolName(3), "boot");
 * assert.equal(routeProtocolName(249), 249);
 * ```
 */
export function routeProtocolName(value: number): RouteProtocol {
  return nameOf(ROUTE_PROTOCOLS, value);
}

/**
 * The kernel value of a route protocol (a name from `ROUTE_PROTOCOLS`, or a number).
 *
 * @param protocol The protocol.
 * @returns 0–255.
 * @throws {TypeError} for an unknown name or a number out of range.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { routeProtocolValue } from "./mod.ts";
 *
 * assert.equal(routeProtocolValue("static"), 4);
 * assert.equal(routeProtocolValue(249), 249);
 * ```
 */
export function routeProtocolValue(protocol: RouteProtocol): number {
  return valueOf(ROUTE_PROTOCOLS, "route protocol", protocol);
}

/**
 * `RTN_*` route types (`ip route add TYPE …`).
 *
 * @example Blackhole routes of the main table, like `ip route show type blackhole`
 * ```ts
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
 * ```ts
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
 * ```ts
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
