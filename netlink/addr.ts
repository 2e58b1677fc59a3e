/**
 * Address operations (`ip addr`), grouped on a handle as `h.addrs`.
 *
 * @module
 */

import { parseCidr } from "../internal/_ip.ts";
import { linkText, naming } from "./errors.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Address, Family, LinkRef } from "./types.ts";
import type { Scope } from "./names.ts";
import * as C from "./wire/constants.ts";
import { afOf, beginMessage, decodeAddress, encodeAddr, putIfaddr } from "./wire/message.ts";

/**
 * Options for {@linkcode AddrOps.add}.
 *
 * @example Without duplicate address detection, like `ip addr add fd00::2/64 dev eth0 nodad`
 * ```ts
 * import { ADDR_FLAGS, type AddrOptions, NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function example(): void {
 *   const options: AddrOptions = { flags: ADDR_FLAGS.nodad };
 *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
 *   h.addrs.add("eth0", "fd00::2/64", options);
 * }
 * ```
 */
export interface AddrOptions {
  /** `IFA_F_*` flags from `ADDR_FLAGS`, e.g. `ADDR_FLAGS.nodad`. */
  flags?: number;
  /** Scope, a name from `SCOPES` or a number (default `"universe"`). */
  scope?: Scope;
}

/**
 * Filter for {@linkcode AddrOps.list}; fields left out match all.
 *
 * @example IPv6 addresses of lo, like `ip -6 addr show dev lo`
 * ```ts
 * import { type AddrFilter, NetlinkHandle } from "./mod.ts";
 *
 * const filter: AddrFilter = { link: "lo", family: 6 };
 * using h = NetlinkHandle.open();
 * console.log(h.addrs.list(filter));
 * ```
 */
export interface AddrFilter {
  /** Only addresses of this link, by ifindex or name (`ip addr show dev X`). */
  link?: LinkRef;
  /** Only IPv4 or IPv6 addresses (`ip -4`/`ip -6`). */
  family?: Family;
}

function parse(cidr: string): { family: Family; bytes: Uint8Array; prefix: number } {
  const c = parseCidr(cidr);
  if (!c) throw new TypeError(`Invalid address "${cidr}" (expected address/prefix)`);
  return c;
}

/**
 * Address operations of one namespace (`ip addr`). Obtain through
 * `NetlinkHandle.addrs`.
 *
 * @example Addresses of a link, like `ip addr show dev lo`
 * ```ts
 * import { NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.addrs.list({ link: "lo" }).map((a) => a.cidr));
 * ```
 */
export class AddrOps {
  #sock: () => NetlinkSocket;
  #ifindex: (ref: LinkRef) => number;

  /** @internal */
  constructor(sock: () => NetlinkSocket, ifindex: (ref: LinkRef) => number) {
    this.#sock = sock;
    this.#ifindex = ifindex;
  }

  #modify(type: number, flags: number, link: LinkRef, cidr: string, o: AddrOptions): void {
    const c = parse(cidr);
    const index = this.#ifindex(link);
    const op = type === C.RTM_NEWADDR ? "RTM_NEWADDR" : "RTM_DELADDR";
    try {
      request(this.#sock(), op, () => encodeAddr(type, flags, index, c, o));
    } catch (err) {
      throw naming(err, `${cidr} dev ${linkText(link)}`);
    }
  }

  /**
   * Add an address to a link. Like iproute2, it sends no broadcast address
   * (the kernel derives none; `ip addr add … brd +` would).
   *
   * @param link The link's ifindex or name.
   * @param cidr Address with prefix, e.g. `10.99.0.2/24` or `fd00::2/64`.
   * @param options Flags from `ADDR_FLAGS` and a scope from `SCOPES`.
   * @throws {NetlinkError} `EEXIST` when present, `ENODEV` for a bad index;
   *   the message names the address and link (`RTM_NEWADDR 10.99.0.2/24 dev eth0: …`).
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @throws {TypeError} for malformed `cidr`.
   * @example Like `ip addr add 10.99.0.2/24 dev eth0` and `ip addr add fd00::2/64 dev eth0 nodad`
   * ```ts
   * import { ADDR_FLAGS, NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.addrs.add("eth0", "10.99.0.2/24");
   *   h.addrs.add("eth0", "fd00::2/64", { flags: ADDR_FLAGS.nodad });
   * }
   * ```
   */
  add(link: LinkRef, cidr: string, options: AddrOptions = {}): void {
    this.#modify(C.RTM_NEWADDR, FLAGS.add, link, cidr, options);
  }

  /**
   * Remove an address.
   *
   * @param link The link's ifindex or name.
   * @param cidr Address with prefix, as added.
   * @throws {NetlinkError} `EADDRNOTAVAIL` when absent.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @throws {TypeError} for malformed `cidr`.
   * @example Like `ip addr del 10.99.0.2/24 dev eth0`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.addrs.del("eth0", "10.99.0.2/24");
   * }
   * ```
   */
  del(link: LinkRef, cidr: string): void {
    this.#modify(C.RTM_DELADDR, FLAGS.change, link, cidr, {});
  }

  /**
   * List addresses, optionally of one link and/or one family.
   *
   * @param filter Link (index or name) and/or family; default all.
   * @returns The addresses, IPv6 in RFC 5952 form.
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @throws {LinkNotFoundError} when a link given by name does not exist.
   * @example Like `ip -6 addr show dev lo`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * console.log(h.addrs.list({ link: "lo", family: 6 }));
   * ```
   */
  list(filter: AddrFilter = {}): Address[] {
    const index = filter.link === undefined ? undefined : this.#ifindex(filter.link);
    const out: Address[] = [];
    for (
      const m of request(this.#sock(), "RTM_GETADDR", () => {
        const w = beginMessage(C.RTM_GETADDR, FLAGS.dump);
        putIfaddr(w, {
          family: filter.family ? afOf(filter.family) : C.AF_UNSPEC,
          index: index ?? 0,
        });
        return w;
      })
    ) {
      if (m.type !== C.RTM_NEWADDR) continue;
      const a = decodeAddress(m.payload);
      if (!a) continue;
      if (index !== undefined && a.index !== index) continue;
      if (filter.family !== undefined && a.family !== filter.family) continue;
      out.push(a);
    }
    return out;
  }
}
