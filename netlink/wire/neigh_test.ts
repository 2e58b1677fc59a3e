import assert from "node:assert/strict";
import * as C from "./constants.ts";
import { finishMessage, parseMessages } from "./message.ts";
import { decodeNeigh, encodeNeigh, encodeNeighDump } from "./neigh.ts";

// The payload `strace -x ip neigh add 10.1.0.1 lladdr 02:00:0a:01:00:01 dev eth1 nud permanent`
// shows iproute2 6.1 sending (flags REQUEST|ACK|CREATE|EXCL), with eth1's ifindex 3 here 7.
Deno.test("encodeNeigh() writes ndmsg, NDA_DST and NDA_LLADDR as `ip neigh add` does", () => {
  const w = encodeNeigh(C.RTM_NEWNEIGH, 0x605, {
    index: 7,
    ip: "10.1.0.1",
    mac: "02:00:0A:01:00:01",
    state: C.NUD_PERMANENT,
  });
  const [m] = parseMessages(finishMessage(w, 42));
  assert.ok(m);
  assert.equal(m.type, C.RTM_NEWNEIGH);
  assert.equal(m.seq, 42);
  assert.deepEqual(
    [...m.payload],
    [
      ...[2, 0, 0, 0], // AF_INET, pad
      ...[7, 0, 0, 0], // ifindex 7
      ...[0x80, 0, 0, 0], // NUD_PERMANENT, flags 0, type 0
      ...[8, 0, 1, 0, 10, 1, 0, 1], // NDA_DST 10.1.0.1
      ...[10, 0, 2, 0, 2, 0, 10, 1, 0, 1, 0, 0], // NDA_LLADDR, padded to 4
    ],
  );
});

Deno.test("decodeNeigh() reads back what encodeNeigh() wrote, IPv6 in RFC 5952 form", () => {
  const w = encodeNeigh(C.RTM_NEWNEIGH, 0x605, {
    index: 3,
    ip: "fd00:0:0::1",
    mac: "02:00:0a:01:00:01",
    state: C.NUD_REACHABLE,
  });
  const [m] = parseMessages(finishMessage(w, 1));
  assert.deepEqual(decodeNeigh(m!.payload), {
    index: 3,
    family: 6,
    ip: "fd00::1",
    mac: "02:00:0a:01:00:01",
    state: C.NUD_REACHABLE,
  });
});

Deno.test("encodeNeigh() refuses malformed input; a delete carries no MAC", () => {
  assert.throws(() => encodeNeigh(C.RTM_NEWNEIGH, 0, { index: 1, ip: "10.1.0.300" }), TypeError);
  assert.throws(
    () => encodeNeigh(C.RTM_NEWNEIGH, 0, { index: 1, ip: "10.1.0.1", mac: "02:00" }),
    TypeError,
  );
  const [m] = parseMessages(
    finishMessage(encodeNeigh(C.RTM_DELNEIGH, 5, { index: 1, ip: "10.1.0.1" }), 1),
  );
  assert.equal(m!.payload.length, 12 + 8, "ndmsg and NDA_DST only");
});

Deno.test("decodeNeigh() skips bridge FDB entries and short messages", () => {
  const fdb = new Uint8Array(12 + 8);
  fdb[0] = 7; // AF_BRIDGE
  assert.equal(decodeNeigh(fdb), undefined);
  assert.equal(decodeNeigh(new Uint8Array(4)), undefined);
  const [dump] = parseMessages(finishMessage(encodeNeighDump(C.AF_INET6), 1));
  assert.equal(dump!.flags & C.NLM_F_DUMP, C.NLM_F_DUMP);
  assert.equal(dump!.payload[0], C.AF_INET6);
});
