/**
 * Codec tests against golden bytes captured from iproute2 and the kernel
 * (`tests/testdata/*.hex`, made by `tests/testdata/capture.ts`): parse each
 * capture into the expected object, then encode the equivalent spec and
 * compare byte for byte (our attribute order and values follow iproute2's).
 */

import { Netns } from "../netns.ts";
import assert from "node:assert/strict";
import { parseCidr } from "../../internal/_ip.ts";
import { golden, goldenCommand } from "../../tests/testdata/_golden.ts";
import { FLAGS } from "../request.ts";
import type { Route } from "../types.ts";
import { AttrWriter, parseAttrs, putAttrs, readU32 } from "./attr.ts";
import * as C from "./constants.ts";
import {
  beginMessage,
  decodeAddress,
  decodeError,
  decodeLink,
  decodeLinkMsg,
  decodeRoute,
  encodeAddr,
  encodeLinkAdd,
  encodeLinkChange,
  encodeLinkRef,
  encodeRoute,
  finishMessage,
  MACVLAN_MODES,
  macvlanModeName,
  type NlMsg,
  parseMessages,
  putIfinfo,
} from "./message.ts";

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** The single message of a capture. */
function one(name: string): NlMsg {
  const msgs = parseMessages(golden(name));
  assert.equal(msgs.length, 1, `${name}: one message`);
  return msgs[0]!;
}

/** Finish `w` with the capture's seq and compare every byte with it. */
function assertSameBytes(name: string, w: AttrWriter): void {
  const want = golden(name);
  const got = finishMessage(w, one(name).seq);
  assert.equal(hex(got), hex(want), `${name}: ${goldenCommand(name)}`);
}

Deno.test("parseMessages() splits datagrams and stops at malformed headers", async (t) => {
  const a = finishMessage(encodeLinkRef(C.RTM_GETLINK, FLAGS.change, 1), 7);
  const b = finishMessage(encodeLinkRef(C.RTM_GETLINK, FLAGS.change, "eth0"), 8);
  await t.step("two messages back to back", () => {
    const buf = new Uint8Array(a.length + b.length);
    buf.set(a);
    buf.set(b, a.length);
    const msgs = parseMessages(buf);
    assert.deepEqual(msgs.map((m) => [m.type, m.flags, m.seq, m.payload.length]), [
      [C.RTM_GETLINK, FLAGS.change, 7, 16],
      [C.RTM_GETLINK, FLAGS.change, 8, 16 + 12],
    ]);
  });
  await t.step("a length beyond the buffer ends the run", () => {
    assert.equal(parseMessages(b.subarray(0, b.length - 4)).length, 0);
  });
  await t.step("a length below the header size ends the run", () => {
    const bad = a.slice();
    new DataView(bad.buffer).setUint32(0, 8, true);
    assert.equal(parseMessages(bad).length, 0);
  });
});

Deno.test("decodeLink() reads the kernel's RTM_GETLINK reply for a macvtap", () => {
  const m = one("getlink_macvtap_reply");
  assert.equal(m.type, C.RTM_NEWLINK);
  assert.deepEqual(decodeLink(m.payload), {
    index: 4,
    name: "mv0",
    kind: "macvtap",
    mode: "bridge",
    mac: "aa:76:9c:a4:3b:06",
    mtu: 1500,
    flags: C.IFF_BROADCAST | C.IFF_MULTICAST,
    up: false,
    promisc: false,
    operState: "DOWN",
    carrier: true,
    parentIndex: 3,
    txQueueLen: 500,
    type: 1, // ARPHRD_ETHER
  });
});

Deno.test("decodeLinkMsg() keeps unknown attributes, and they re-encode unchanged", () => {
  const m = one("getlink_macvtap_reply");
  const msg = decodeLinkMsg(m.payload);
  const known = new Set<unknown>(
    Object.entries(C).filter(([k]) => k.startsWith("IFLA_") && !k.startsWith("IFLA_INFO_"))
      .map(([, v]) => v),
  );
  const unknown = msg.attrs.filter((a) => !known.has(a.type));
  // e.g. IFLA_GSO_MAX_SIZE (41), IFLA_STATS64 (23), and the empty nests 62/65
  // the kernel flags with NLA_F_NESTED.
  assert.ok(unknown.length > 20, `${unknown.length} unknown attributes kept`);
  assert.ok(msg.attrs.some((a) => a.type === 0x3e && a.nested && a.data.length === 0));
  // Emit header + ifinfomsg + every attribute as parsed: the capture again.
  const w = beginMessage(m.type, m.flags);
  putIfinfo(w, msg);
  putAttrs(w, msg.attrs);
  w.setU32(12, m.pid);
  assertSameBytes("getlink_macvtap_reply", w);
});

Deno.test("decodeLink() reads a link without IFLA_LINKINFO", () => {
  const w = new AttrWriter();
  putIfinfo(w, { type: 772, index: 1, flags: C.IFF_UP | C.IFF_LOOPBACK });
  w.str(C.IFLA_IFNAME, "lo");
  w.u32(C.IFLA_MTU, 65536);
  w.u8(C.IFLA_OPERSTATE, 0);
  w.u32(C.IFLA_LINK_NETNSID, 0);
  w.u32(C.IFLA_MASTER, 9);
  assert.deepEqual(decodeLink(w.finish()), {
    index: 1,
    name: "lo",
    mtu: 65536,
    flags: C.IFF_UP | C.IFF_LOOPBACK,
    up: true,
    promisc: false,
    operState: "UNKNOWN",
    type: 772,
    linkNetnsId: 0,
    masterIndex: 9,
  });
});

Deno.test("macvlan modes map both ways through one table", () => {
  for (const [name, value] of Object.entries(MACVLAN_MODES)) {
    assert.equal(macvlanModeName(value), name);
  }
  assert.deepEqual(MACVLAN_MODES, { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 });
  assert.equal(macvlanModeName(3), undefined);
});

Deno.test("encodeLinkAdd() matches iproute2 byte for byte", async (t) => {
  await t.step("macvtap, bridge mode", () => {
    const parent = readU32(
      parseAttrs(one("link_add_macvtap").payload.subarray(16)).find((a) => a.type === C.IFLA_LINK)!
        .data,
    );
    assert.equal(parent, 3);
    const got = decodeLink(one("link_add_macvtap").payload);
    assert.equal(got.kind, "macvtap");
    assert.equal(got.mode, "bridge");
    assertSameBytes(
      "link_add_macvtap",
      encodeLinkAdd(
        { kind: "macvtap", name: "mv0", parent: "eth1", mode: "bridge" },
        FLAGS.add,
        parent,
      ),
    );
  });
  await t.step("macvlan, private mode", () => {
    assertSameBytes(
      "link_add_macvlan",
      encodeLinkAdd(
        { kind: "macvlan", name: "mvl0", parent: 3, mode: "private" },
        FLAGS.add,
        3,
      ),
    );
  });
  await t.step("veth pair", () => {
    assertSameBytes(
      "link_add_veth",
      encodeLinkAdd({ kind: "veth", name: "va", peer: { name: "vb" } }, FLAGS.add),
    );
  });
  await t.step("bridge", () => {
    assertSameBytes("link_add_bridge", encodeLinkAdd({ kind: "bridge", name: "br0" }, FLAGS.add));
  });
});

Deno.test("encodeLinkAdd() puts optional fields in the request", () => {
  const w = encodeLinkAdd(
    {
      kind: "macvtap",
      name: "eth0",
      parent: 2,
      mtu: 1400,
      mac: "02:00:00:00:00:09",
      up: true,
      index: 42,
      netns: new Netns(9, "/test/ns"),
      txQueueLen: 100,
    },
    FLAGS.add,
    2,
  );
  const [m] = parseMessages(finishMessage(w, 1));
  const link = decodeLinkMsg(m!.payload);
  assert.equal(link.index, 42);
  assert.equal(link.flags, C.IFF_UP);
  assert.equal(link.change, C.IFF_UP);
  const a = new Map(link.attrs.map((x) => [x.type, x.data]));
  assert.equal(readU32(a.get(C.IFLA_NET_NS_FD)!), 9);
  assert.equal(readU32(a.get(C.IFLA_MTU)!), 1400);
  assert.equal(readU32(a.get(C.IFLA_TXQLEN)!), 100);
  assert.deepEqual(decodeLink(m!.payload).mac, "02:00:00:00:00:09");
  assert.equal(decodeLink(m!.payload).mode, "bridge", "bridge is the default mode");
  assert.throws(
    () => encodeLinkAdd({ kind: "bridge", name: "b", mac: "nope" }, FLAGS.add),
    TypeError,
  );
});

Deno.test("encodeLinkAdd() nests the veth peer with its namespace and MAC", () => {
  const w = encodeLinkAdd(
    {
      kind: "veth",
      name: "a",
      peer: { name: "b", netns: new Netns(5, "/test/ns"), mac: "02:00:00:00:00:02" },
    },
    FLAGS.add,
  );
  const [m] = parseMessages(finishMessage(w, 1));
  const info = decodeLinkMsg(m!.payload).attrs.find((x) => x.type === C.IFLA_LINKINFO)!;
  const data = parseAttrs(info.data).find((x) => x.type === C.IFLA_INFO_DATA)!;
  const peer = parseAttrs(data.data).find((x) => x.type === C.VETH_INFO_PEER)!;
  // The peer payload is an ifinfomsg followed by attributes, like a link message.
  const peerLink = decodeLink(peer.data);
  assert.equal(peerLink.name, "b");
  assert.equal(peerLink.mac, "02:00:00:00:00:02");
  const fd = decodeLinkMsg(peer.data).attrs.find((x) => x.type === C.IFLA_NET_NS_FD)!;
  assert.equal(readU32(fd.data), 5);
});

Deno.test("encodeLinkChange() matches iproute2 byte for byte", async (t) => {
  await t.step("up", () => {
    assertSameBytes("link_set_up", encodeLinkChange(7, { up: true }, FLAGS.change));
  });
  await t.step("mtu", () => {
    assertSameBytes("link_set_mtu", encodeLinkChange(7, { mtu: 1400 }, FLAGS.change));
  });
  await t.step("mac", () => {
    assertSameBytes(
      "link_set_mac",
      encodeLinkChange(6, { mac: "02:00:00:00:00:01" }, FLAGS.change),
    );
  });
  await t.step("name", () => {
    assertSameBytes("link_set_name", encodeLinkChange(6, { name: "vc" }, FLAGS.change));
  });
});

Deno.test("encodeLinkChange() sets flag masks, namespace and new ifindex", () => {
  const w = encodeLinkChange(
    5,
    { up: false, promisc: true, netns: new Netns(11, "/test/ns"), newIndex: 77 },
    FLAGS.change,
  );
  const [m] = parseMessages(finishMessage(w, 1));
  const link = decodeLinkMsg(m!.payload);
  assert.equal(link.index, 5);
  assert.equal(link.flags, C.IFF_PROMISC);
  assert.equal(link.change, C.IFF_UP | C.IFF_PROMISC);
  const a = new Map(link.attrs.map((x) => [x.type, x.data]));
  assert.equal(readU32(a.get(C.IFLA_NET_NS_FD)!), 11);
  assert.equal(readU32(a.get(C.IFLA_NEW_IFINDEX)!), 77);
  // The kernel would silently ignore a new index without a move.
  assert.throws(() => encodeLinkChange(5, { newIndex: 77 }, FLAGS.change), TypeError);
});

Deno.test("decodeAddress() and encodeAddr() agree with iproute2", async (t) => {
  await t.step("IPv4 add", () => {
    assert.deepEqual(decodeAddress(one("addr_add_v4").payload), {
      index: 3,
      family: 4,
      cidr: "10.1.2.3/24",
      flags: 0,
      scope: "universe",
    });
    // iproute2 6.1 sends IFA_LOCAL and IFA_ADDRESS and no IFA_BROADCAST
    // unless `brd` is given; so do we, so the bytes match.
    assertSameBytes(
      "addr_add_v4",
      encodeAddr(C.RTM_NEWADDR, FLAGS.add, 3, parseCidr("10.1.2.3/24")!),
    );
  });
  await t.step("IPv6 add without DAD", () => {
    assert.deepEqual(decodeAddress(one("addr_add_v6").payload), {
      index: 3,
      family: 6,
      cidr: "fd00::5/64",
      flags: C.IFA_F_NODAD,
      scope: "universe",
    });
    assertSameBytes(
      "addr_add_v6",
      encodeAddr(C.RTM_NEWADDR, FLAGS.add, 3, parseCidr("fd00::5/64")!, { flags: C.IFA_F_NODAD }),
    );
  });
  await t.step("IPv4 delete", () => {
    assertSameBytes(
      "addr_del_v4",
      encodeAddr(C.RTM_DELADDR, FLAGS.change, 3, parseCidr("10.1.2.3/24")!),
    );
  });
  await t.step("flags beyond 8 bits go in IFA_FLAGS", () => {
    const w = encodeAddr(C.RTM_NEWADDR, FLAGS.add, 3, parseCidr("fd00::5/64")!, {
      flags: 0x100 | C.IFA_F_NODAD,
    });
    const a = decodeAddress(parseMessages(finishMessage(w, 1))[0]!.payload)!;
    assert.equal(a.flags, 0x102);
  });
});

Deno.test("decodeRoute() and encodeRoute() agree with iproute2", async (t) => {
  const gw: Route = { family: 4, dst: "10.0.0.0/8", gw: "10.1.2.1", oif: 3, metric: 100 };
  await t.step("IPv4 via a gateway with a metric", () => {
    assert.deepEqual(decodeRoute(one("route_add_gw").payload), {
      ...gw,
      table: C.RT_TABLE_MAIN,
      protocol: "boot",
      scope: "universe",
      type: C.RTN_UNICAST,
    });
    assertSameBytes("route_add_gw", encodeRoute(C.RTM_NEWROUTE, FLAGS.add, gw));
  });
  await t.step("table 1000 goes in RTA_TABLE; no gateway means link scope", () => {
    const r: Route = { family: 4, dst: "10.9.0.0/16", oif: 3, table: 1000 };
    assert.deepEqual(decodeRoute(one("route_add_table").payload), {
      ...r,
      protocol: "boot",
      scope: "link",
      type: C.RTN_UNICAST,
    });
    assertSameBytes("route_add_table", encodeRoute(C.RTM_NEWROUTE, FLAGS.add, r));
  });
  await t.step("IPv6 via a gateway", () => {
    const r: Route = { family: 6, dst: "fd01::/64", gw: "fd00::1", oif: 3, metric: 200 };
    assertSameBytes("route_add_v6", encodeRoute(C.RTM_NEWROUTE, FLAGS.add, r));
    assert.equal(decodeRoute(one("route_add_v6").payload)?.gw, "fd00::1");
  });
  await t.step("delete matches any scope, protocol and type", () => {
    // RT_SCOPE_NOWHERE, protocol 0 and type 0 are wildcards in the kernel.
    assertSameBytes("route_del_gw", encodeRoute(C.RTM_DELROUTE, FLAGS.change, gw));
  });
  await t.step("table below 256 stays in rtm_table; local routes get host scope", () => {
    const w = encodeRoute(C.RTM_NEWROUTE, FLAGS.add, {
      family: 4,
      dst: "10.1.2.3/32",
      table: 100,
      type: C.RTN_LOCAL,
      src: "10.1.2.3",
      mtu: 1400,
      advmss: 1360,
    });
    const r = decodeRoute(parseMessages(finishMessage(w, 1))[0]!.payload)!;
    assert.deepEqual(r, {
      family: 4,
      dst: "10.1.2.3/32",
      table: 100,
      protocol: "boot",
      scope: "host",
      type: C.RTN_LOCAL,
      src: "10.1.2.3",
      mtu: 1400,
      advmss: 1360,
    });
  });
  await t.step("default route and host route without a prefix", () => {
    const w = encodeRoute(C.RTM_NEWROUTE, FLAGS.add, { family: 6, dst: "::/0", gw: "fe80::1" });
    const r = decodeRoute(parseMessages(finishMessage(w, 1))[0]!.payload)!;
    assert.equal(r.dst, "::/0");
    const w2 = encodeRoute(C.RTM_NEWROUTE, FLAGS.add, { family: 4, dst: "192.0.2.7" });
    assert.equal(decodeRoute(parseMessages(finishMessage(w2, 1))[0]!.payload)!.dst, "192.0.2.7/32");
  });
  await t.step("bad destinations and families are TypeErrors", () => {
    for (const dst of ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "fd00::/8", "nope/8"]) {
      assert.throws(() => encodeRoute(C.RTM_NEWROUTE, FLAGS.add, { family: 4, dst }), TypeError);
    }
    assert.throws(
      () => encodeRoute(C.RTM_NEWROUTE, FLAGS.add, { family: 4, dst: "10.0.0.0/8", gw: "fd00::1" }),
      TypeError,
    );
  });
});

Deno.test("decodeError() reads errno, seq and the extended ACK text", async (t) => {
  await t.step("kernel reply with the request echoed (iproute2 sets no CAP_ACK)", () => {
    const m = one("error_mtu_reply");
    assert.equal(m.type, C.NLMSG_ERROR);
    assert.deepEqual(decodeError(m), {
      errno: 22,
      seq: m.seq,
      extAck: "mtu greater than device maximum",
    });
  });
  await t.step("capped reply, as our sockets ask for", () => {
    const w = beginMessage(C.NLMSG_ERROR, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS);
    const at = w.zeros(4 + 16);
    w.setI32(at, -34);
    w.setU32(at + 4, 60); // original length, longer than what follows
    w.setU32(at + 12, 99); // original seq
    w.str(C.NLMSGERR_ATTR_MSG, "Attribute failed policy validation");
    w.u32(C.NLMSGERR_ATTR_OFFS, 36);
    const [m] = parseMessages(finishMessage(w, 99));
    assert.deepEqual(decodeError(m!), {
      errno: 34,
      seq: 99,
      extAck: "Attribute failed policy validation",
    });
  });
  await t.step("plain ACK", () => {
    const w = beginMessage(C.NLMSG_ERROR, C.NLM_F_CAPPED);
    const at = w.zeros(20);
    w.setU32(at + 12, 5);
    assert.deepEqual(decodeError(parseMessages(finishMessage(w, 5))[0]!), { errno: 0, seq: 5 });
  });
});

Deno.test("decodeRoute() reads the next hops of a multipath route and RTA_VIA", () => {
  const attr = (type: number, data: number[]) => {
    const len = 4 + data.length;
    const out = [len & 255, len >> 8, type & 255, type >> 8, ...data];
    while (out.length % 4) out.push(0);
    return out;
  };
  const hop = (ifindex: number, gwAttr: number[]) => {
    const len = 8 + gwAttr.length;
    return [len & 255, len >> 8, 0, 0, ifindex & 255, 0, 0, 0, ...gwAttr];
  };
  const rtmsg = [2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
  const multipath = attr(C.RTA_MULTIPATH, [
    ...hop(2, attr(C.RTA_GATEWAY, [10, 0, 0, 1])),
    ...hop(3, attr(C.RTA_GATEWAY, [10, 0, 1, 1])),
  ]);
  const r = decodeRoute(new Uint8Array([...rtmsg, ...multipath]))!;
  assert.deepEqual(r.nexthops, [{ oif: 2, gw: "10.0.0.1" }, { oif: 3, gw: "10.0.1.1" }]);
  // IPv4 route via an IPv6 gateway: struct rtvia { u16 family; u8 addr[] }.
  const via = attr(C.RTA_VIA, [10, 0, 0xfe, 0x80, ...Array(13).fill(0), 1]);
  assert.equal(decodeRoute(new Uint8Array([...rtmsg, ...via]))!.gw, "fe80::1");
});
