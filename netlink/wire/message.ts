/**
 * rtnetlink messages: the netlink header, the fixed per-family headers
 * (`ifinfomsg`, `ifaddrmsg`, `rtmsg`) and decoders into the plain types of
 * `../types.ts`. Pure: no I/O, no FFI.
 *
 * @module
 */

import { type Cidr, formatIP, formatMac, parseIP, parseMac } from "../../internal/_ip.ts";
import type {
  Address,
  Family,
  Link,
  LinkChange,
  LinkRef,
  LinkSpec,
  MacvlanMode,
  NextHop,
  Route,
} from "../types.ts";
import { align4, type Attr, attrMap, AttrWriter, parseAttrs, readStr, readU32 } from "./attr.ts";
import * as C from "./constants.ts";
import {
  type RouteProtocol,
  routeProtocolName,
  routeProtocolValue,
  type Scope,
  scopeName,
  scopeValue,
} from "../names.ts";
import type { NetnsRef } from "../netns.ts";

/** The fd of a resolved namespace; a path must have been opened by the caller (links.ts). */
function nsFd(ns: NetnsRef): number {
  if (typeof ns === "string") throw new TypeError(`netns "${ns}" was not opened`);
  return ns.fd;
}

/**
 * The one table between mode names (as `ip link add … type macvtap mode
 * NAME` spells them) and the kernel's `MACVLAN_MODE_*` bit values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MACVLAN_MODES } from "../mod.ts";
 *
 * assert.equal(MACVLAN_MODES.bridge, 4);
 * ```
 */
export const MACVLAN_MODES = {
  private: C.MACVLAN_MODE_PRIVATE,
  vepa: C.MACVLAN_MODE_VEPA,
  bridge: C.MACVLAN_MODE_BRIDGE,
  passthru: C.MACVLAN_MODE_PASSTHRU,
  source: C.MACVLAN_MODE_SOURCE,
} as const satisfies Record<MacvlanMode, number>;

/**
 * Mode name for a kernel value, as `ip -d link show` prints it.
 *
 * @param value `IFLA_MACVLAN_MODE`.
 * @returns The name; `undefined` for values outside the table.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { macvlanModeName } from "../mod.ts";
 *
 * assert.equal(macvlanModeName(8), "passthru");
 * ```
 */
export function macvlanModeName(value: number): MacvlanMode | undefined {
  for (const [name, v] of Object.entries(MACVLAN_MODES)) {
    if (v === value) return name as MacvlanMode;
  }
  return undefined;
}

/** A decoded netlink message. `payload` excludes the 16-byte header. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** Split a receive buffer into messages; stops at a malformed header. */
export function parseMessages(buf: Uint8Array): NlMsg[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NlMsg[] = [];
  let off = 0;
  while (off + C.NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(off, true);
    if (len < C.NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: view.getUint16(off + 4, true),
      flags: view.getUint16(off + 6, true),
      seq: view.getUint32(off + 8, true),
      pid: view.getUint32(off + 12, true),
      payload: buf.subarray(off + C.NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Start a message: header with type and flags; length, seq and pid are set by {@linkcode finishMessage}. */
export function beginMessage(type: number, flags: number): AttrWriter {
  const w = new AttrWriter();
  w.zeros(C.NLMSG_HDRLEN);
  w.setU16(4, type);
  w.setU16(6, flags);
  return w;
}

/** Patch the length and sequence number and return the bytes to send. */
export function finishMessage(w: AttrWriter, seq: number): Uint8Array {
  w.setU32(0, w.length);
  w.setU32(8, seq);
  return w.finish();
}

/** Decoded `NLMSG_ERROR`: `errno` 0 is an ACK. */
export interface NlError {
  errno: number;
  extAck?: string;
  /** Sequence number of the request this answers. */
  seq: number;
}

/** Decode an `NLMSG_ERROR` payload, including the extended ACK message. */
export function decodeError(msg: NlMsg): NlError {
  const p = msg.payload;
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const errno = 0 - view.getInt32(0, true); // not `-x`: an ACK would read -0
  const origLen = p.length >= 8 ? view.getUint32(4, true) : 0;
  const seq = p.length >= 16 ? view.getUint32(12, true) : msg.seq;
  const out: NlError = { errno, seq };
  if (msg.flags & C.NLM_F_ACK_TLVS) {
    const start = 4 + ((msg.flags & C.NLM_F_CAPPED) ? C.NLMSG_HDRLEN : align4(origLen));
    if (start <= p.length) {
      const text = attrMap(p.subarray(start)).get(C.NLMSGERR_ATTR_MSG);
      if (text) out.extAck = readStr(text);
    }
  }
  return out;
}

// ---------------------------------------------------------------- links

/** Write an `ifinfomsg`. */
export function putIfinfo(
  w: AttrWriter,
  h: { family?: number; type?: number; index?: number; flags?: number; change?: number },
): void {
  const at = w.zeros(16);
  w.setU8(at, h.family ?? C.AF_UNSPEC);
  w.setU16(at + 2, h.type ?? 0);
  w.setI32(at + 4, h.index ?? 0);
  w.setU32(at + 8, h.flags ?? 0);
  w.setU32(at + 12, h.change ?? 0);
}

function macBytes(mac: string): Uint8Array {
  const b = parseMac(mac);
  if (!b) throw new TypeError(`Invalid MAC address "${mac}"`);
  return b;
}

/**
 * Attributes of a link spec (everything but `IFLA_LINK`, which needs a
 * resolved parent index: pass it as `parentIndex`).
 */
export function putLinkSpec(w: AttrWriter, spec: LinkSpec, parentIndex?: number): void {
  if (parentIndex !== undefined) w.u32(C.IFLA_LINK, parentIndex);
  w.str(C.IFLA_IFNAME, spec.name);
  if (spec.mtu) w.u32(C.IFLA_MTU, spec.mtu);
  if (spec.mac) w.attr(C.IFLA_ADDRESS, macBytes(spec.mac));
  if (spec.txQueueLen !== undefined) w.u32(C.IFLA_TXQLEN, spec.txQueueLen);
  if (spec.netns !== undefined) w.u32(C.IFLA_NET_NS_FD, nsFd(spec.netns));
  w.begin(C.IFLA_LINKINFO);
  w.chars(C.IFLA_INFO_KIND, spec.kind); // without NUL, as iproute2 sends it
  switch (spec.kind) {
    case "macvtap":
    case "macvlan":
      w.begin(C.IFLA_INFO_DATA);
      w.u32(C.IFLA_MACVLAN_MODE, MACVLAN_MODES[spec.mode ?? "bridge"]);
      w.end();
      break;
    case "veth": {
      w.begin(C.IFLA_INFO_DATA);
      w.begin(C.VETH_INFO_PEER);
      putIfinfo(w, {});
      w.str(C.IFLA_IFNAME, spec.peer.name);
      if (spec.peer.mac) w.attr(C.IFLA_ADDRESS, macBytes(spec.peer.mac));
      if (spec.peer.netns !== undefined) w.u32(C.IFLA_NET_NS_FD, nsFd(spec.peer.netns));
      w.end();
      w.end();
      break;
    }
    case "bridge":
    case "dummy":
      break;
  }
  w.end();
}

/**
 * The `RTM_NEWLINK` that creates `spec` (`ip link add …`); `parentIndex` is the
 * resolved lower device of a macvtap/macvlan.
 */
export function encodeLinkAdd(spec: LinkSpec, flags: number, parentIndex?: number): AttrWriter {
  const w = beginMessage(C.RTM_NEWLINK, flags);
  putIfinfo(w, {
    index: spec.index ?? 0,
    flags: spec.up ? C.IFF_UP : 0,
    change: spec.up ? C.IFF_UP : 0,
  });
  putLinkSpec(w, spec, parentIndex);
  return w;
}

/**
 * The `RTM_NEWLINK` that changes link `index` (`ip link set …`);
 * `masterIndex` is `change.master` resolved (0 for `nomaster`).
 */
export function encodeLinkChange(
  index: number,
  change: LinkChange,
  flags: number,
  masterIndex?: number,
): AttrWriter {
  let ifFlags = 0, mask = 0;
  if (change.up !== undefined) {
    mask |= C.IFF_UP;
    if (change.up) ifFlags |= C.IFF_UP;
  }
  if (change.promisc !== undefined) {
    mask |= C.IFF_PROMISC;
    if (change.promisc) ifFlags |= C.IFF_PROMISC;
  }
  const w = beginMessage(C.RTM_NEWLINK, flags);
  putIfinfo(w, { index, flags: ifFlags, change: mask });
  if (change.name !== undefined) w.str(C.IFLA_IFNAME, change.name);
  if (change.mtu !== undefined) w.u32(C.IFLA_MTU, change.mtu);
  if (change.mac !== undefined) w.attr(C.IFLA_ADDRESS, macBytes(change.mac));
  if (change.alias !== undefined) {
    if (new TextEncoder().encode(change.alias).length > 255) {
      throw new TypeError("LinkChange.alias is longer than 255 bytes (IFALIASZ - 1)");
    }
    w.str(C.IFLA_IFALIAS, change.alias);
  }
  if (change.master !== undefined) {
    if (masterIndex === undefined) throw new TypeError("LinkChange.master was not resolved");
    w.u32(C.IFLA_MASTER, masterIndex);
  }
  if (change.netns !== undefined) {
    w.u32(C.IFLA_NET_NS_FD, nsFd(change.netns));
    if (change.newIndex !== undefined) w.i32(C.IFLA_NEW_IFINDEX, change.newIndex);
  } else if (change.newIndex !== undefined) {
    // The kernel accepts IFLA_NEW_IFINDEX without a namespace and ignores it.
    throw new TypeError("LinkChange.newIndex needs netns: an ifindex changes only with a move");
  }
  return w;
}

/** An `RTM_GETLINK`/`RTM_DELLINK` naming one link by index or name. */
export function encodeLinkRef(type: number, flags: number, ref: LinkRef): AttrWriter {
  const w = beginMessage(type, flags);
  putIfinfo(w, { index: typeof ref === "number" ? ref : 0 });
  if (typeof ref === "string") w.str(C.IFLA_IFNAME, ref);
  return w;
}

/** A link message with every attribute kept (for round trips and unknown attributes). */
export interface LinkMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
  attrs: Attr[];
}

/** Decode the fixed part and attributes of an `RTM_NEWLINK`/`RTM_DELLINK`. */
export function decodeLinkMsg(payload: Uint8Array): LinkMsg {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    family: v.getUint8(0),
    type: v.getUint16(2, true),
    index: v.getInt32(4, true),
    flags: v.getUint32(8, true),
    change: v.getUint32(12, true),
    attrs: parseAttrs(payload.subarray(16)),
  };
}

/** Decode a link message into a {@linkcode Link}. */
export function decodeLink(payload: Uint8Array): Link {
  const m = decodeLinkMsg(payload);
  const a = new Map(m.attrs.map((x) => [x.type, x.data]));
  const link: Link = {
    index: m.index,
    name: readStr(a.get(C.IFLA_IFNAME) ?? new Uint8Array()),
    mtu: a.has(C.IFLA_MTU) ? readU32(a.get(C.IFLA_MTU)!) : 0,
    flags: m.flags,
    up: (m.flags & C.IFF_UP) !== 0,
    promisc: (m.flags & C.IFF_PROMISC) !== 0,
    operState: C.OPER_STATES[a.get(C.IFLA_OPERSTATE)?.[0] ?? 0] ?? "UNKNOWN",
    type: m.type,
  };
  const alias = a.get(C.IFLA_IFALIAS);
  if (alias && alias.length > 0 && alias[0] !== 0) link.alias = readStr(alias);
  const mac = a.get(C.IFLA_ADDRESS);
  if (mac && mac.length === 6) link.mac = formatMac(mac);
  const carrier = a.get(C.IFLA_CARRIER);
  if (carrier) link.carrier = carrier[0] !== 0;
  const parent = a.get(C.IFLA_LINK);
  if (parent) link.parentIndex = readU32(parent);
  const nsid = a.get(C.IFLA_LINK_NETNSID);
  if (nsid) link.linkNetnsId = readU32(nsid);
  const master = a.get(C.IFLA_MASTER);
  if (master) link.masterIndex = readU32(master);
  const txq = a.get(C.IFLA_TXQLEN);
  if (txq) link.txQueueLen = readU32(txq);
  const info = a.get(C.IFLA_LINKINFO);
  if (info) {
    const im = attrMap(info);
    const kind = im.get(C.IFLA_INFO_KIND);
    if (kind) link.kind = readStr(kind);
    const slave = im.get(C.IFLA_INFO_SLAVE_KIND);
    if (slave) link.slaveKind = readStr(slave);
    const data = im.get(C.IFLA_INFO_DATA);
    if (data && (link.kind === "macvtap" || link.kind === "macvlan")) {
      const mode = attrMap(data).get(C.IFLA_MACVLAN_MODE);
      const name = mode ? macvlanModeName(readU32(mode)) : undefined;
      if (name) link.mode = name;
    }
  }
  return link;
}

// ---------------------------------------------------------------- addresses

/** Family number ⇄ 4/6. */
export function afOf(family: Family): number {
  return family === 4 ? C.AF_INET : C.AF_INET6;
}

/** Write an `ifaddrmsg`. */
export function putIfaddr(
  w: AttrWriter,
  h: { family: number; prefix?: number; flags?: number; scope?: number; index?: number },
): void {
  const at = w.zeros(8);
  w.setU8(at, h.family);
  w.setU8(at + 1, h.prefix ?? 0);
  w.setU8(at + 2, h.flags ?? 0);
  w.setU8(at + 3, h.scope ?? 0);
  w.setU32(at + 4, h.index ?? 0);
}

/**
 * An `RTM_NEWADDR`/`RTM_DELADDR` for `cidr` on link `index`, attributes as
 * iproute2 orders them: `IFA_LOCAL`, `IFA_ADDRESS`, then `IFA_FLAGS` only for
 * flags beyond the 8 bits of `ifa_flags`.
 */
export function encodeAddr(
  type: number,
  flags: number,
  index: number,
  cidr: Cidr,
  options: { flags?: number; scope?: Scope } = {},
): AttrWriter {
  const w = beginMessage(type, flags);
  const ifaFlags = options.flags ?? 0;
  putIfaddr(w, {
    family: afOf(cidr.family),
    prefix: cidr.prefix,
    flags: ifaFlags & 0xff,
    scope: options.scope === undefined ? 0 : scopeValue(options.scope),
    index,
  });
  w.attr(C.IFA_LOCAL, cidr.bytes);
  w.attr(C.IFA_ADDRESS, cidr.bytes);
  if (ifaFlags > 0xff) w.u32(C.IFA_FLAGS, ifaFlags);
  return w;
}

/** Decode an `RTM_NEWADDR`. */
export function decodeAddress(payload: Uint8Array): Address | undefined {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const af = v.getUint8(0);
  if (af !== C.AF_INET && af !== C.AF_INET6) return undefined;
  const a = attrMap(payload.subarray(8));
  const ip = a.get(C.IFA_LOCAL) ?? a.get(C.IFA_ADDRESS);
  if (!ip) return undefined;
  const flags32 = a.get(C.IFA_FLAGS);
  const out: Address = {
    index: v.getUint32(4, true),
    family: af === C.AF_INET ? 4 : 6,
    cidr: `${formatIP(ip)}/${v.getUint8(1)}`,
    flags: flags32 ? readU32(flags32) : v.getUint8(2),
    scope: scopeName(v.getUint8(3)),
  };
  const label = a.get(C.IFA_LABEL);
  if (label) out.label = readStr(label);
  return out;
}

// ---------------------------------------------------------------- routes

/** Parse an IP for a route/address attribute, checking the family. */
export function ipBytes(text: string, family: Family): Uint8Array {
  const b = parseIP(text);
  if (!b || (b.length === 4 ? 4 : 6) !== family) {
    throw new TypeError(`Invalid IPv${family} address "${text}"`);
  }
  return b;
}

/**
 * Write a route request (`rtmsg` + attributes) as iproute2 does:
 *
 * - `rtm_table` holds tables below 256; larger ones go in `RTA_TABLE` with
 *   `rtm_table` = `RT_TABLE_UNSPEC`.
 * - Scope defaults: host for local routes, link for unicast routes without a
 *   gateway, universe otherwise; a delete uses `RT_SCOPE_NOWHERE`, which the
 *   kernel treats as "any scope" (universe would only match universe routes).
 * - A delete leaves protocol and type unspecified (0: match any) unless given.
 * - Attribute order: `RTA_DST`, `RTA_GATEWAY`, `RTA_PREFSRC`, `RTA_PRIORITY`,
 *   `RTA_TABLE`, `RTA_METRICS`, and `RTA_OIF` last, as `ip route add DST via
 *   GW dev IF metric N` emits them.
 */
export function putRoute(
  w: AttrWriter,
  r: Route,
  options: { protocol: RouteProtocol; del?: boolean },
): void {
  const slash = r.dst.indexOf("/");
  const dstIp = slash < 0 ? r.dst : r.dst.slice(0, slash);
  const max = r.family === 4 ? 32 : 128;
  const lenText = slash < 0 ? undefined : r.dst.slice(slash + 1);
  const dstLen = lenText === undefined ? max : /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(dstLen <= max)) throw new TypeError(`Invalid route destination "${r.dst}"`);
  const table = r.table ?? C.RT_TABLE_MAIN;
  const type = r.type ?? (options.del ? 0 : C.RTN_UNICAST);
  const scope = r.scope !== undefined
    ? scopeValue(r.scope)
    : (options.del
      ? C.RT_SCOPE_NOWHERE
      : type === C.RTN_LOCAL
      ? C.RT_SCOPE_HOST
      : r.gw
      ? C.RT_SCOPE_UNIVERSE
      : C.RT_SCOPE_LINK);
  const protocol = routeProtocolValue(r.protocol ?? options.protocol);
  const at = w.zeros(12);
  w.setU8(at, afOf(r.family));
  w.setU8(at + 1, dstLen);
  w.setU8(at + 4, table < 256 ? table : C.RT_TABLE_UNSPEC);
  w.setU8(at + 5, protocol);
  w.setU8(at + 6, scope);
  w.setU8(at + 7, type);
  if (dstLen > 0) w.attr(C.RTA_DST, ipBytes(dstIp, r.family));
  if (r.gw) w.attr(C.RTA_GATEWAY, ipBytes(r.gw, r.family));
  if (r.src) w.attr(C.RTA_PREFSRC, ipBytes(r.src, r.family));
  if (r.metric !== undefined) w.u32(C.RTA_PRIORITY, r.metric);
  if (table >= 256) w.u32(C.RTA_TABLE, table);
  if (r.mtu !== undefined || r.advmss !== undefined) {
    w.begin(C.RTA_METRICS);
    if (r.mtu !== undefined) w.u32(C.RTAX_MTU, r.mtu);
    if (r.advmss !== undefined) w.u32(C.RTAX_ADVMSS, r.advmss);
    w.end();
  }
  if (r.oif !== undefined) w.u32(C.RTA_OIF, r.oif);
}

/**
 * An `RTM_NEWROUTE`/`RTM_DELROUTE` for `route`. New routes default to protocol
 * `boot` (as `ip route add`); deletes match any protocol, scope and type
 * unless the route names them.
 */
export function encodeRoute(type: number, flags: number, route: Route): AttrWriter {
  const w = beginMessage(type, flags);
  const del = type === C.RTM_DELROUTE;
  putRoute(w, route, { protocol: del ? C.RTPROT_UNSPEC : C.RTPROT_BOOT, del });
  return w;
}

/** Decode an `RTM_NEWROUTE`. */
/** The address of an `RTA_VIA` (`struct rtvia`: u16 family, then the address). */
function viaAddress(via: Uint8Array | undefined): Uint8Array | undefined {
  return via && via.length > 2 ? via.subarray(2) : undefined;
}

/** `RTA_MULTIPATH`: `struct rtnexthop` (len u16, flags u8, hops u8, ifindex i32) + attributes. */
function decodeNextHops(data: Uint8Array): NextHop[] {
  const out: NextHop[] = [];
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  while (off + 8 <= data.length) {
    const len = v.getUint16(off, true);
    if (len < 8 || off + len > data.length) break;
    const hop: NextHop = {};
    const oif = v.getInt32(off + 4, true);
    if (oif > 0) hop.oif = oif;
    const a = attrMap(data.subarray(off + 8, off + len));
    const gw = a.get(C.RTA_GATEWAY) ?? viaAddress(a.get(C.RTA_VIA));
    if (gw) hop.gw = formatIP(gw);
    out.push(hop);
    off += (len + 3) & ~3;
  }
  return out;
}

export function decodeRoute(payload: Uint8Array): Route | undefined {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const af = v.getUint8(0);
  if (af !== C.AF_INET && af !== C.AF_INET6) return undefined;
  const family: Family = af === C.AF_INET ? 4 : 6;
  const a = attrMap(payload.subarray(12));
  const dstLen = v.getUint8(1);
  const dst = a.get(C.RTA_DST);
  const route: Route = {
    family,
    dst: `${dst ? formatIP(dst) : family === 4 ? "0.0.0.0" : "::"}/${dstLen}`,
    table: a.has(C.RTA_TABLE) ? readU32(a.get(C.RTA_TABLE)!) : v.getUint8(4),
    protocol: routeProtocolName(v.getUint8(5)),
    scope: scopeName(v.getUint8(6)),
    type: v.getUint8(7),
  };
  const gw = a.get(C.RTA_GATEWAY) ?? viaAddress(a.get(C.RTA_VIA));
  if (gw) route.gw = formatIP(gw);
  const multipath = a.get(C.RTA_MULTIPATH);
  if (multipath) route.nexthops = decodeNextHops(multipath);
  const oif = a.get(C.RTA_OIF);
  if (oif) route.oif = readU32(oif);
  const prio = a.get(C.RTA_PRIORITY);
  if (prio) route.metric = readU32(prio);
  const src = a.get(C.RTA_PREFSRC);
  if (src) route.src = formatIP(src);
  const metrics = a.get(C.RTA_METRICS);
  if (metrics) {
    const mm = attrMap(metrics);
    if (mm.has(C.RTAX_MTU)) route.mtu = readU32(mm.get(C.RTAX_MTU)!);
    if (mm.has(C.RTAX_ADVMSS)) route.advmss = readU32(mm.get(C.RTAX_ADVMSS)!);
  }
  return route;
}
