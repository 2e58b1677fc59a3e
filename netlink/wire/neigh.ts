/**
 * The neighbour (ARP/NDP) messages: `ndmsg` plus `NDA_DST` and
 * `NDA_LLADDR`, as `ip neigh` sends and reads them. Pure; no I/O.
 *
 * @module
 */

import { formatIP, formatMac, parseIP, parseMac } from "../../internal/_ip.ts";
import type { Family, Neighbour } from "../types.ts";
import type { AttrWriter } from "./attr.ts";
import { attrMap } from "./attr.ts";
import * as C from "./constants.ts";
import { afOf, beginMessage } from "./message.ts";

/**
 * `struct ndmsg` (12 bytes): u8 family, u8 pad, u16 pad, i32 ifindex,
 * u16 state, u8 flags, u8 type.
 */
function putNdmsg(w: AttrWriter, h: { family: number; index: number; state: number }): void {
  const at = w.zeros(12);
  w.setU8(at, h.family);
  w.setI32(at + 4, h.index);
  w.setU16(at + 8, h.state);
}

/**
 * An `RTM_NEWNEIGH`/`RTM_DELNEIGH` for `ip` on ifindex `index`, like
 * `ip neigh add IP lladdr MAC dev X nud STATE` (the MAC is left out when
 * absent, as for a delete).
 */
export function encodeNeigh(
  type: number,
  flags: number,
  n: { index: number; ip: string; mac?: string; state?: number },
): AttrWriter {
  const ip = parseIP(n.ip);
  if (!ip) throw new TypeError(`Invalid IP address "${n.ip}"`);
  const family: Family = ip.length === 4 ? 4 : 6;
  const w = beginMessage(type, flags);
  putNdmsg(w, { family: afOf(family), index: n.index, state: n.state ?? 0 });
  w.attr(C.NDA_DST, ip);
  if (n.mac !== undefined) {
    const mac = parseMac(n.mac);
    if (!mac) throw new TypeError(`Invalid MAC address "${n.mac}"`);
    w.attr(C.NDA_LLADDR, mac);
  }
  return w;
}

/** An `RTM_GETNEIGH` dump of `family` (`AF_UNSPEC`: both). */
export function encodeNeighDump(family: number): AttrWriter {
  const w = beginMessage(C.RTM_GETNEIGH, C.NLM_F_REQUEST | C.NLM_F_DUMP);
  putNdmsg(w, { family, index: 0, state: 0 });
  return w;
}

/** Decode an `RTM_NEWNEIGH`; `undefined` for other families (bridge FDB entries) or no address. */
export function decodeNeigh(payload: Uint8Array): Neighbour | undefined {
  if (payload.length < 12) return undefined;
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const af = v.getUint8(0);
  if (af !== C.AF_INET && af !== C.AF_INET6) return undefined;
  const a = attrMap(payload.subarray(12));
  const dst = a.get(C.NDA_DST);
  if (!dst) return undefined;
  const out: Neighbour = {
    index: v.getInt32(4, true),
    family: af === C.AF_INET ? 4 : 6,
    ip: formatIP(dst),
    state: v.getUint16(8, true),
  };
  const mac = a.get(C.NDA_LLADDR);
  if (mac && mac.length === 6) out.mac = formatMac(mac);
  return out;
}
