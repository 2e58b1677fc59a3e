/**
 * Address operations (`ip addr`), grouped on a handle as `h.addrs`.
 *
 * @module
 */

import { parseCidr } from "../internal/_ip.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Address, Family } from "./types.ts";
import * as C from "./wire/constants.ts";
import { afOf, beginMessage, decodeAddress, encodeAddr, putIfaddr } from "./wire/message.ts";

/** Options for adding an address. */
export interface AddrOptions {
  /** `IFA_F_*` flags, e.g. `IFA_F_NODAD` (0x02). */
  flags?: number;
  /** Scope (default universe). */
  scope?: number;
}

function parse(cidr: string): { family: Family; bytes: Uint8Array; prefix: number } {
  const c = parseCidr(cidr);
  if (!c) throw new TypeError(`Invalid address "${cidr}" (expected address/prefix)`);
  return c;
}

/** Address operations of one namespace. Obtain through `NetlinkHandle.addrs`. */
export class AddrOps {
  #sock: () => NetlinkSocket;

  /** @internal */
  constructor(sock: () => NetlinkSocket) {
    this.#sock = sock;
  }

  #modify(type: number, flags: number, index: number, cidr: string, o: AddrOptions): void {
    const c = parse(cidr);
    const op = type === C.RTM_NEWADDR ? "RTM_NEWADDR" : "RTM_DELADDR";
    request(this.#sock(), op, () => encodeAddr(type, flags, index, c, o));
  }

  /**
   * Add an address to the link with ifindex `index`.
   *
   * @throws {NetlinkError} `EEXIST` when present.
   * @example Usage
   * ```ts ignore
   * h.addrs.add(link.index, "10.99.0.2/24"); // like `ip addr add 10.99.0.2/24 dev eth0`
   * ```
   */
  add(index: number, cidr: string, options: AddrOptions = {}): void {
    this.#modify(C.RTM_NEWADDR, FLAGS.add, index, cidr, options);
  }

  /**
   * Remove an address.
   *
   * @throws {NetlinkError} `EADDRNOTAVAIL` when absent.
   * @example Usage
   * ```ts ignore
   * h.addrs.del(link.index, "10.99.0.2/24"); // like `ip addr del 10.99.0.2/24 dev eth0`
   * ```
   */
  del(index: number, cidr: string): void {
    this.#modify(C.RTM_DELADDR, FLAGS.change, index, cidr, {});
  }

  /**
   * List addresses, optionally of one link and/or one family.
   *
   * @example Usage
   * ```ts ignore
   * h.addrs.list({ index: link.index, family: 6 }); // like `ip -6 addr show dev eth0`
   * ```
   */
  list(filter: { index?: number; family?: Family } = {}): Address[] {
    const out: Address[] = [];
    for (
      const m of request(this.#sock(), "RTM_GETADDR", () => {
        const w = beginMessage(C.RTM_GETADDR, FLAGS.dump);
        putIfaddr(w, {
          family: filter.family ? afOf(filter.family) : C.AF_UNSPEC,
          index: filter.index ?? 0,
        });
        return w;
      })
    ) {
      if (m.type !== C.RTM_NEWADDR) continue;
      const a = decodeAddress(m.payload);
      if (!a) continue;
      if (filter.index !== undefined && a.index !== filter.index) continue;
      if (filter.family !== undefined && a.family !== filter.family) continue;
      out.push(a);
    }
    return out;
  }
}
