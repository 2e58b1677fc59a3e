/**
 * Neighbour operations (`ip neigh`), grouped on a handle as `h.neighs`.
 *
 * @module
 */

import { linkText, naming } from "./errors.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Family, LinkRef, Neighbour } from "./types.ts";
import * as C from "./wire/constants.ts";
import { afOf } from "./wire/message.ts";
import { decodeNeigh, encodeNeigh, encodeNeighDump } from "./wire/neigh.ts";

/**
 * A neighbour entry to add (`ip neigh add IP lladdr MAC nud STATE`).
 *
 * @example A static ARP entry for the gateway
 * ```ts
 * import type { NeighSpec } from "./mod.ts";
 *
 * const gw: NeighSpec = { ip: "10.1.0.1", mac: "02:00:0a:01:00:01" };
 * ```
 */
export interface NeighSpec {
  /** The neighbour's IPv4 or IPv6 address. */
  ip: string;
  /** Its MAC address, `aa:bb:cc:dd:ee:ff`. */
  mac: string;
  /** `NUD_*` state from `NEIGH_STATES`; default `NEIGH_STATES.permanent`. */
  state?: number;
}

/**
 * Filter for {@linkcode NeighOps.list}; fields left out match all.
 *
 * @example IPv6 neighbours of eth0, like `ip -6 neigh show dev eth0`
 * ```ts
 * import type { NeighFilter } from "./mod.ts";
 *
 * const filter: NeighFilter = { link: "eth0", family: 6 };
 * ```
 */
export interface NeighFilter {
  /** Only entries on this link, by ifindex or name (`dev X`). */
  link?: LinkRef;
  /** Only ARP (4) or NDP (6) entries. */
  family?: Family;
}

/**
 * Neighbour (ARP/NDP) operations of one namespace (`ip neigh`). Obtain
 * through `NetlinkHandle.neighs`.
 *
 * @example The neighbour table, like `ip neigh show`
 * ```ts
 * import { NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function example(): void {
 *   using h = NetlinkHandle.open();
 *   for (const n of h.neighs.list()) console.log(n.ip, n.mac ?? "", n.state);
 * }
 * ```
 */
export class NeighOps {
  #sock: () => NetlinkSocket;
  #ifindex: (ref: LinkRef) => number;

  /** @internal */
  constructor(sock: () => NetlinkSocket, ifindex: (ref: LinkRef) => number) {
    this.#sock = sock;
    this.#ifindex = ifindex;
  }

  #modify(
    type: number,
    flags: number,
    link: LinkRef,
    n: Omit<NeighSpec, "mac"> & { mac?: string },
  ) {
    const index = this.#ifindex(link);
    const op = type === C.RTM_NEWNEIGH ? "RTM_NEWNEIGH" : "RTM_DELNEIGH";
    const w = () => encodeNeigh(type, flags, { index, ...n });
    w(); // malformed input is a TypeError before anything is sent
    try {
      request(this.#sock(), op, w);
    } catch (err) {
      throw naming(err, `${n.ip} dev ${linkText(link)}`);
    }
  }

  /**
   * Add a neighbour entry; permanent unless `spec.state` says otherwise.
   *
   * @param link The link's ifindex or name.
   * @param spec The IP, its MAC and the state.
   * @throws {NetlinkError} `EEXIST` when an entry for the IP exists on the link.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @throws {TypeError} for a malformed IP or MAC.
   * @example Like `ip neigh add 10.1.0.1 lladdr 02:00:0a:01:00:01 dev eth0 nud permanent`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.neighs.add("eth0", { ip: "10.1.0.1", mac: "02:00:0a:01:00:01" });
   * }
   * ```
   */
  add(link: LinkRef, spec: NeighSpec): void {
    this.#modify(C.RTM_NEWNEIGH, FLAGS.add, link, { state: C.NUD_PERMANENT, ...spec });
  }

  /**
   * Add, or replace the entry for the same IP on the link.
   *
   * @param link The link's ifindex or name.
   * @param spec The IP, its MAC and the state.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @throws {TypeError} for a malformed IP or MAC.
   * @example Like `ip neigh replace fd00::1 lladdr 02:00:0a:01:00:01 dev eth0`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.neighs.replace("eth0", { ip: "fd00::1", mac: "02:00:0a:01:00:01" });
   * }
   * ```
   */
  replace(link: LinkRef, spec: NeighSpec): void {
    this.#modify(C.RTM_NEWNEIGH, FLAGS.replace, link, { state: C.NUD_PERMANENT, ...spec });
  }

  /**
   * Delete the entry for `ip` on the link.
   *
   * @param link The link's ifindex or name.
   * @param ip The neighbour's address.
   * @throws {NetlinkError} `ENOENT` when there is no such entry.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @throws {TypeError} for a malformed IP.
   * @example Like `ip neigh del 10.1.0.1 dev eth0`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.neighs.del("eth0", "10.1.0.1");
   * }
   * ```
   */
  del(link: LinkRef, ip: string): void {
    this.#modify(C.RTM_DELNEIGH, FLAGS.change, link, { ip });
  }

  /**
   * List neighbour entries (ARP and NDP; bridge FDB entries are left out).
   *
   * @param filter Link (index or name) and/or family; default all.
   * @returns The entries.
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @example Like `ip -4 neigh show dev lo`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * console.log(h.neighs.list({ link: "lo", family: 4 }));
   * ```
   */
  list(filter: NeighFilter = {}): Neighbour[] {
    const index = filter.link === undefined ? undefined : this.#ifindex(filter.link);
    const af = filter.family ? afOf(filter.family) : C.AF_UNSPEC;
    const out: Neighbour[] = [];
    for (const m of request(this.#sock(), "RTM_GETNEIGH", () => encodeNeighDump(af))) {
      if (m.type !== C.RTM_NEWNEIGH) continue;
      const n = decodeNeigh(m.payload);
      if (!n) continue;
      if (index !== undefined && n.index !== index) continue;
      if (filter.family !== undefined && n.family !== filter.family) continue;
      out.push(n);
    }
    return out;
  }
}
