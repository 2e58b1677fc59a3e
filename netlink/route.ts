/**
 * Route operations (`ip route`), grouped on a handle as `h.routes`.
 *
 * @module
 */

import { linkText, naming } from "./errors.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Family, LinkRef, Route } from "./types.ts";
import * as C from "./wire/constants.ts";
import { afOf, beginMessage, decodeRoute, encodeRoute } from "./wire/message.ts";

/**
 * Filter for {@linkcode RouteOps.list}; fields left out match all.
 *
 * @example IPv4 routes out of lo in table 1000, like `ip -4 route show dev lo table 1000`
 * ```ts
 * import { NetlinkHandle, type RouteFilter } from "./mod.ts";
 *
 * const filter: RouteFilter = { family: 4, oif: "lo", table: 1000 };
 * using h = NetlinkHandle.open();
 * console.log(h.routes.list(filter));
 * ```
 */
export interface RouteFilter {
  /** Only IPv4 or IPv6 routes (`ip -4`/`ip -6`). */
  family?: Family;
  /** Table to list; default `ROUTE_TABLES.main`. `ROUTE_TABLES.all` (0) lists every table. */
  table?: number;
  /** Only routes out of this link, by ifindex or name (`dev X`). */
  oif?: LinkRef;
  /** Only this exact destination, canonical form (`10.0.0.0/8`, `fd00::/64`). */
  dst?: string;
}

/**
 * A route to add or delete: a {@linkcode Route} whose output link may also
 * be given by name, like links are.
 *
 * @example A host route out of a link given by name, like `ip route add 10.1.0.7 dev mvt0 metric 100`
 * ```ts
 * import type { RouteSpec } from "./mod.ts";
 *
 * const spec: RouteSpec = { family: 4, dst: "10.1.0.7", oif: "mvt0", metric: 100 };
 * ```
 */
export type RouteSpec = Omit<Route, "oif"> & {
  /** Output link, by ifindex or name (`dev X`). */
  oif?: LinkRef;
};

/** `10.0.0.0/8 via 10.0.0.1 dev eth0 table 1000`, as `ip route` writes a route. */
function routeText(r: RouteSpec): string {
  return [
    r.dst,
    ...(r.gw ? ["via", r.gw] : []),
    ...(r.oif !== undefined ? ["dev", linkText(r.oif)] : []),
    ...(r.table !== undefined && r.table !== C.RT_TABLE_MAIN ? ["table", String(r.table)] : []),
    ...(r.metric !== undefined ? ["metric", String(r.metric)] : []),
  ].join(" ");
}

/**
 * Route operations of one namespace (`ip route`). Obtain through
 * `NetlinkHandle.routes`.
 *
 * @example The main table, like `ip route show`
 * ```ts
 * import { NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * for (const r of h.routes.list()) console.log(r.dst, r.gw ?? "", r.oif ?? "");
 * ```
 */
export class RouteOps {
  #sock: () => NetlinkSocket;
  #ifindex: (ref: LinkRef) => number;

  /** @internal */
  constructor(sock: () => NetlinkSocket, ifindex: (ref: LinkRef) => number) {
    this.#sock = sock;
    this.#ifindex = ifindex;
  }

  #send(type: number, flags: number, spec: RouteSpec, op: string): void {
    const { oif, ...rest } = spec;
    const route: Route = oif === undefined ? rest : { ...rest, oif: this.#ifindex(oif) };
    try {
      request(this.#sock(), op, () => encodeRoute(type, flags, route));
    } catch (err) {
      throw naming(err, routeText(spec));
    }
  }

  /**
   * Add a route. Defaults as `ip route add`: table main, protocol boot, and
   * link scope without `gw` (universe with one, host for local routes).
   *
   * @param route The route; `dst` without a prefix is a host route, `oif` an
   *   ifindex or a name.
   * @throws {NetlinkError} `EEXIST` when an identical route exists,
   *   `ENETUNREACH` for a gateway that is not reachable, `ENODEV` for a bad `oif`;
   *   the message names the route (`RTM_NEWROUTE 0.0.0.0/0 via 10.99.0.1 dev eth0: …`).
   * @throws {LinkNotFoundError} when `oif` names a link that does not exist.
   * @throws {TypeError} for a malformed address or one of the wrong family.
   * @example Like `ip route add default via 10.99.0.1 dev eth0`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.routes.add({ family: 4, dst: "0.0.0.0/0", gw: "10.99.0.1", oif: "eth0" });
   * }
   * ```
   * @example Like `ip route add 10.9.0.0/16 dev eth0 table 1000 metric 5 proto 249 scope link`
   * ```ts
   * import { NetlinkHandle, SCOPES } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   const route = { family: 4, dst: "10.9.0.0/16", oif: "eth0", table: 1000, metric: 5 } as const;
   *   h.routes.add({ ...route, protocol: 249, scope: SCOPES.link });
   * }
   * ```
   */
  add(route: RouteSpec): void {
    this.#send(C.RTM_NEWROUTE, FLAGS.add, route, "RTM_NEWROUTE");
  }

  /**
   * Add a route beside the routes to the same destination and metric through
   * other devices or gateways (no `NLM_F_EXCL`); defaults as
   * {@linkcode RouteOps.add}. IPv4 keeps each as its own route; IPv6 merges
   * gateway routes into one multipath route (see `Route.nexthops`), and a
   * nexthop leaves it again when its device goes.
   *
   * @param route The route.
   * @throws {NetlinkError} `EEXIST` only for an identical route (same
   *   destination, table, metric, nexthop and attributes), and as
   *   {@linkcode RouteOps.add} otherwise.
   * @throws {TypeError} for a malformed address.
   * @example Like `ip route prepend default via 10.99.0.1 dev eth1`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   const oif = h.links.get("eth1").index;
   *   h.routes.prepend({ family: 4, dst: "0.0.0.0/0", gw: "10.99.0.1", oif });
   * }
   * ```
   */
  prepend(route: RouteSpec): void {
    this.#send(C.RTM_NEWROUTE, FLAGS.create, route, "RTM_NEWROUTE");
  }

  /**
   * Add, or replace the route with the same destination, table and metric,
   * with the same defaults as {@linkcode RouteOps.add}.
   *
   * @param route The route.
   * @throws {NetlinkError} as {@linkcode RouteOps.add}, but never `EEXIST`.
   * @throws {TypeError} for a malformed address.
   * @example Like `ip route replace 10.1.0.0/16 via 10.99.0.254`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   h.routes.replace({ family: 4, dst: "10.1.0.0/16", gw: "10.99.0.254" });
   * }
   * ```
   */
  replace(route: RouteSpec): void {
    this.#send(C.RTM_NEWROUTE, FLAGS.replace, route, "RTM_NEWROUTE");
  }

  /**
   * Delete the first route matching the fields given. Left out, gateway,
   * `oif`, metric, scope, protocol and type match anything (as with
   * `ip route del`); the table defaults to main.
   *
   * @param route Destination and any fields that must match.
   * @throws {NetlinkError} `ESRCH` when there is no such route.
   * @throws {TypeError} for a malformed address.
   * @example Like `ip route del 192.168.122.177/32 dev macvtap1 metric 1024`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   const oif = h.links.get("macvtap1").index;
   *   h.routes.del({ family: 4, dst: "192.168.122.177/32", oif, metric: 1024 });
   * }
   * ```
   */
  del(route: RouteSpec): void {
    this.#send(C.RTM_DELROUTE, FLAGS.change, route, "RTM_DELROUTE");
  }

  /**
   * List routes (main table unless `table` says otherwise).
   *
   * @param filter Family, table (`ROUTE_TABLES.all`: all), `oif` and exact `dst`.
   * @returns The matching routes.
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @throws {LinkNotFoundError} when `oif` names a link that does not exist.
   * @example Like `ip -4 route show` and `ip route show table 1000`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * console.log(h.routes.list({ family: 4 }), h.routes.list({ table: 1000 }));
   * ```
   */
  list(filter: RouteFilter = {}): Route[] {
    const table = filter.table ?? C.RT_TABLE_MAIN;
    const oif = filter.oif === undefined ? undefined : this.#ifindex(filter.oif);
    const out: Route[] = [];
    for (
      const m of request(this.#sock(), "RTM_GETROUTE", () => {
        const w = beginMessage(C.RTM_GETROUTE, FLAGS.dump);
        const at = w.zeros(12);
        w.setU8(at, filter.family ? afOf(filter.family) : C.AF_UNSPEC);
        return w;
      })
    ) {
      if (m.type !== C.RTM_NEWROUTE) continue;
      const r = decodeRoute(m.payload);
      if (!r) continue;
      if (table !== 0 && r.table !== table) continue;
      if (filter.family && r.family !== filter.family) continue;
      if (oif !== undefined && r.oif !== oif) continue;
      if (filter.dst !== undefined && r.dst !== filter.dst) continue;
      out.push(r);
    }
    return out;
  }

  /**
   * The default unicast route of the main table (IPv4 first, then IPv6), if any.
   *
   * @param family Only this family.
   * @returns The route, or `undefined`.
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @example Like `ip route show default`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * const r = h.routes.defaultRoute();
   * console.log(r?.gw, r?.oif);
   * ```
   */
  defaultRoute(family?: Family): Route | undefined {
    for (const f of family ? [family] : [4, 6] as const) {
      const r = this.list({ family: f }).find((x) =>
        x.dst.endsWith("/0") && x.type === C.RTN_UNICAST
      );
      if (r) return r;
    }
    return undefined;
  }
}
