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

/** Options for {@linkcode AddrOps.add}. */
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

/**
 * Address operations of one namespace (`ip addr`). Obtain through
 * `NetlinkHandle.addrs`.
 *
 * @example Addresses of a link, like `ip addr show dev eth0`
 * ```ts ignore
 * import { NetlinkHandle } from "./mod.ts";
 *
 * using h = NetlinkHandle.open();
 * console.log(h.addrs.list({ index: h.links.get("eth0").index }).map((a) => a.cidr));
 * ```
 */
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
   * Add an address to the link with ifindex `index`. Like iproute2, it sends
   * no broadcast address (the kernel derives none; `ip addr add … brd +` would).
   *
   * @param index The link's ifindex.
   * @param cidr Address with prefix, e.g. `10.99.0.2/24` or `fd00::2/64`.
   * @param options `IFA_F_*` flags (e.g. `IFA_F_NODAD` = 0x02) and scope.
   * @throws {NetlinkError} `EEXIST` when present, `ENODEV` for a bad index.
   * @throws {TypeError} for malformed `cidr`.
   * @example Like `ip addr add 10.99.0.2/24 dev eth0` and `ip addr add fd00::2/64 dev eth0 nodad`
   * ```ts ignore
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   * const { index } = h.links.get("eth0");
   * h.addrs.add(index, "10.99.0.2/24");
   * h.addrs.add(index, "fd00::2/64", { flags: 0x02 });
   * ```
   */
  add(index: number, cidr: string, options: AddrOptions = {}): void {
    this.#modify(C.RTM_NEWADDR, FLAGS.add, index, cidr, options);
  }

  /**
   * Remove an address.
   *
   * @param index The link's ifindex.
   * @param cidr Address with prefix, as added.
   * @throws {NetlinkError} `EADDRNOTAVAIL` when absent.
   * @throws {TypeError} for malformed `cidr`.
   * @example Like `ip addr del 10.99.0.2/24 dev eth0`
   * ```ts ignore
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   * h.addrs.del(h.links.get("eth0").index, "10.99.0.2/24");
   * ```
   */
  del(index: number, cidr: string): void {
    this.#modify(C.RTM_DELADDR, FLAGS.change, index, cidr, {});
  }

  /**
   * List addresses, optionally of one link and/or one family.
   *
   * @param filter Link index and/or family; default all.
   * @returns The addresses, IPv6 in RFC 5952 form.
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @example Like `ip -6 addr show dev eth0`
   * ```ts ignore
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * console.log(h.addrs.list({ index: h.links.get("eth0").index, family: 6 }));
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
