import assert from "node:assert/strict";
import { macFilter } from "./mac_guard.ts";

const PACKET_BROADCAST = 1;
const PACKET_OTHERHOST = 3;
const PACKET_OUTGOING = 4;

/**
 * A classic BPF interpreter for the instructions {@linkcode macFilter} emits
 * (absolute loads, the pkttype extension, jeq, jset, ret), as the kernel runs
 * them: the result is how many bytes of the frame pass (0 = dropped).
 */
function runFilter(prog: Uint8Array, frame: Uint8Array, pkttype: number): number {
  const v = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  const f = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let a = 0;
  for (let pc = 0; pc < prog.length / 8;) {
    const code = v.getUint16(pc * 8, true);
    const jt = v.getUint8(pc * 8 + 2);
    const jf = v.getUint8(pc * 8 + 3);
    const k = v.getUint32(pc * 8 + 4, true);
    switch (code) {
      case 0x20: // ld [k]
        a = k === 0xfffff004 ? pkttype : f.getUint32(k);
        pc++;
        break;
      case 0x28: // ldh [k]
        a = f.getUint16(k);
        pc++;
        break;
      case 0x30: // ldb [k]
        a = f.getUint8(k);
        pc++;
        break;
      case 0x15: // jeq #k
        pc += 1 + (a === k ? jt : jf);
        break;
      case 0x45: // jset #k
        pc += 1 + ((a & k) !== 0 ? jt : jf);
        break;
      case 0x06: // ret #k
        return k;
      default:
        throw new Error(`unexpected BPF code 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error("fell off the end of the program");
}

function frame(dst: string, src: string): Uint8Array {
  const b = new Uint8Array(60);
  const put = (mac: string, at: number) =>
    mac.split(":").forEach((h, i) => b[at + i] = parseInt(h, 16));
  put(dst, 0);
  put(src, 6);
  b[12] = 0x08; // IPv4
  return b;
}

const VM = "02:a0:00:00:00:50";
const OTHER = "02:a0:00:00:00:51";
const NEAR = "02:a0:00:00:01:50"; // same first four bytes as VM
const BCAST = "ff:ff:ff:ff:ff:ff";
const CLIENT = "42:16:f9:0f:0d:71";

Deno.test("macFilter() outgoing: passes frames from MACs not listed, drops listed ones and arrivals", () => {
  const prog = macFilter({ outgoing: true, match: "out", macs: [VM, OTHER] });
  assert.strictEqual(runFilter(prog, frame(CLIENT, VM), PACKET_OUTGOING), 0);
  assert.strictEqual(runFilter(prog, frame(BCAST, OTHER), PACKET_OUTGOING), 0);
  assert.strictEqual(runFilter(prog, frame(CLIENT, NEAR), PACKET_OUTGOING), 14);
  assert.strictEqual(runFilter(prog, frame(CLIENT, CLIENT), PACKET_OUTGOING), 14);
  assert.strictEqual(runFilter(prog, frame(BCAST, CLIENT), PACKET_BROADCAST), 0);
  assert.strictEqual(
    runFilter(macFilter({ outgoing: true, match: "out", macs: [] }), frame(CLIENT, VM), 4),
    14,
  );
});

Deno.test("macFilter() arrivals: only group frames from listed MACs, never outgoing or unicast", () => {
  const prog = macFilter({ outgoing: false, match: "in", macs: [OTHER, VM] });
  assert.strictEqual(runFilter(prog, frame(BCAST, VM), PACKET_BROADCAST), 14);
  assert.strictEqual(runFilter(prog, frame("33:33:00:00:00:01", VM), 2), 14);
  // A bridge-mode sibling's unicast passes the lower device's receive path too.
  assert.strictEqual(runFilter(prog, frame(CLIENT, VM), PACKET_OTHERHOST), 0);
  assert.strictEqual(runFilter(prog, frame(BCAST, NEAR), PACKET_BROADCAST), 0);
  assert.strictEqual(runFilter(prog, frame(BCAST, VM), PACKET_OUTGOING), 0);
  assert.strictEqual(
    runFilter(macFilter({ outgoing: false, match: "in", macs: [] }), frame(BCAST, VM), 1),
    0,
  );
});

Deno.test("macFilter() handles long lists (no far jumps) and refuses what the kernel would", () => {
  const macs = Array.from(
    { length: 800 },
    (_, i) =>
      `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${
        (i & 255).toString(16).padStart(2, "0")
      }`,
  );
  const out = macFilter({ outgoing: true, match: "out", macs });
  assert.strictEqual(runFilter(out, frame(CLIENT, macs[799]!), PACKET_OUTGOING), 0);
  assert.strictEqual(runFilter(out, frame(CLIENT, VM), PACKET_OUTGOING), 14);
  const long = Array.from({ length: 900 }, () => VM);
  assert.throws(() => macFilter({ outgoing: true, match: "out", macs: long }), RangeError);
});
