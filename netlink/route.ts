/**
 * Route operations (`ip route`), grouped on a handle as `h.routes`.
 *
 * @module
 */

import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Family, Route } from "./types.ts";
import * as C from "./wire/constants.ts";
import { afOf, beginMessage, decodeRoute, encodeRoute } from "./wire/message.ts";

/** Filter for {@linkcode RouteOps.list}. */
export interface RouteFilter {
  family?: Family;
  /** Table to list; default main (254). `0` lists every table. */
  table?: number;
  oif?: number;
  dst?: string;
}

/** Route operations of one namespace. Obtain through `NetlinkHandle.routes`. */
export class RouteOps {
  #sock: () => NetlinkSocket;

  /** @internal */
  constructor(sock: () => NetlinkSocket) {
    this.#sock = sock;
  }

  #send(type: number, flags: number, route: Route, op: string): void {
    request(this.#sock(), op, () => encodeRoute(type, flags, route));
  }

  /**
   * Add a route. Without `gw` the route is link-scoped.
   *
   * @throws {NetlinkError} `EEXIST` when an identical route exists.
   * @example Usage
   * ```ts ignore
   * h.routes.add({ family: 4, dst: "0.0.0.0/0", gw: "10.99.0.1", oif: link.index });
   * // like `ip route add default via 10.99.0.1 dev eth0`
   * ```
   */
  add(route: Route): void {
    this.#send(C.RTM_NEWROUTE, FLAGS.add, route, "RTM_NEWROUTE");
  }

  /**
   * Add or replace a route.
   *
   * @example Usage
   * ```ts ignore
   * h.routes.replace({ family: 4, dst: "10.1.0.0/16", gw: "10.99.0.254" });
   * // like `ip route replace 10.1.0.0/16 via 10.99.0.254`
   * ```
   */
  replace(route: Route): void {
    this.#send(C.RTM_NEWROUTE, FLAGS.replace, route, "RTM_NEWROUTE");
  }

  /**
   * Delete a route. Fields left out match anything (kernel semantics).
   *
   * @throws {NetlinkError} `ESRCH` when there is no such route.
   * @example Usage
   * ```ts ignore
   * h.routes.del({ family: 4, dst: "192.168.122.177/32", oif: hostIf.index, metric: 1024 });
   * // like `ip route del 192.168.122.177/32 dev macvtap1 metric 1024`
   * ```
   */
  del(route: Route): void {
    this.#send(C.RTM_DELROUTE, FLAGS.change, route, "RTM_DELROUTE");
  }

  /**
   * List routes (main table unless `table` says otherwise).
   *
   * @example Usage
   * ```ts ignore
   * h.routes.list({ family: 4 }); // like `ip -4 route show`
   * ```
   */
  list(filter: RouteFilter = {}): Route[] {
    const table = filter.table ?? C.RT_TABLE_MAIN;
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
      if (filter.oif !== undefined && r.oif !== filter.oif) continue;
      if (filter.dst !== undefined && r.dst !== filter.dst) continue;
      out.push(r);
    }
    return out;
  }

  /**
   * The default route of the main table (IPv4 first, then IPv6), if any.
   *
   * @example Usage
   * ```ts ignore
   * const r = h.routes.defaultRoute(); // like `ip route show default`
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
