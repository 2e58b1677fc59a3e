/**
 * The request loop against a scripted socket: no FFI, no root.
 */

import assert from "node:assert/strict";
import { DumpInterruptedError, NetlinkError } from "./errors.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { AttrWriter } from "./wire/attr.ts";
import * as C from "./wire/constants.ts";
import { beginMessage, finishMessage, parseMessages, putIfinfo } from "./wire/message.ts";

const PORTID = 4242;

/** One reply message: header fields and an optional 4-byte payload marker. */
interface Reply {
  type: number;
  flags?: number;
  seq?: number; // default: the request's
  pid?: number; // default: PORTID
  marker?: number;
  errno?: number;
  extAck?: string;
}

function encodeReply(r: Reply, reqSeq: number): Uint8Array {
  const w = beginMessage(r.type, r.flags ?? 0);
  if (r.type === C.NLMSG_ERROR) {
    const at = w.zeros(20);
    w.setI32(at, -(r.errno ?? 0));
    w.setU32(at + 4, 32);
    w.setU32(at + 12, r.seq ?? reqSeq);
    if (r.extAck) w.str(C.NLMSGERR_ATTR_MSG, r.extAck);
  } else {
    const at = w.zeros(4);
    w.setU32(at, r.marker ?? 0);
  }
  const msg = finishMessage(w, r.seq ?? reqSeq);
  new DataView(msg.buffer, msg.byteOffset).setUint32(12, r.pid ?? PORTID, true);
  return msg.slice();
}

/** A socket whose every request is answered by `script(attempt)` as datagrams. */
function fakeSocket(script: (attempt: number) => Reply[][]) {
  const sent: Uint8Array[] = [];
  let queue: Uint8Array[] = [];
  const sock = {
    portid: PORTID,
    send(msg: Uint8Array) {
      const seq = new DataView(msg.buffer, msg.byteOffset).getUint32(8, true);
      sent.push(msg.slice());
      queue = script(sent.length - 1).map((dgram) => {
        const parts = dgram.map((r) => encodeReply(r, seq));
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let off = 0;
        for (const p of parts) out.set(p, (off += p.length) - p.length);
        return out;
      });
    },
    recv(op: string) {
      const d = queue.shift();
      if (!d) throw new NetlinkError(op, 110, "no reply from the kernel");
      return d;
    },
  };
  return { sock: sock as unknown as NetlinkSocket, sent };
}

function getlink(): AttrWriter {
  const w = beginMessage(C.RTM_GETLINK, FLAGS.change);
  putIfinfo(w, { index: 1 });
  return w;
}
function markers(msgs: { payload: Uint8Array }[]): number[] {
  return msgs.map((m) => new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0, true));
}

Deno.test("request() numbers each request and sends the whole message", () => {
  const { sock, sent } = fakeSocket(() => [[{ type: C.NLMSG_ERROR }]]);
  request(sock, "RTM_GETLINK", getlink);
  request(sock, "RTM_GETLINK", getlink);
  const [a, b] = sent.map((m) => parseMessages(m)[0]!);
  assert.equal(b!.seq, (a!.seq + 1) >>> 0);
  for (const m of sent) {
    assert.equal(new DataView(m.buffer).getUint32(0, true), m.length, "nlmsg_len = bytes sent");
  }
});

Deno.test("request() returns a GET reply and stops at the ACK", () => {
  const { sock } = fakeSocket(() => [[
    { type: C.RTM_NEWLINK, marker: 7 },
    { type: C.NLMSG_ERROR },
  ]]);
  assert.deepEqual(markers(request(sock, "RTM_GETLINK", getlink)), [7]);
});

Deno.test("request() collects a multipart dump across datagrams until DONE", () => {
  const M = C.NLM_F_MULTI;
  const { sock } = fakeSocket(() => [
    [{ type: C.RTM_NEWLINK, flags: M, marker: 1 }, { type: C.RTM_NEWLINK, flags: M, marker: 2 }],
    [{ type: C.NLMSG_NOOP }, { type: C.RTM_NEWLINK, flags: M, marker: 3 }],
    [{ type: C.NLMSG_DONE, flags: M }],
  ]);
  assert.deepEqual(markers(request(sock, "RTM_GETLINK", getlink)), [1, 2, 3]);
});

Deno.test("request() skips replies with a foreign seq or portid", () => {
  const { sock } = fakeSocket(() => [
    [
      { type: C.RTM_NEWLINK, seq: 1, marker: 100 }, // stale answer to an older request
      { type: C.NLMSG_ERROR, seq: 1, errno: 17 }, // its error must not fail this one
      { type: C.RTM_NEWLINK, pid: 999, marker: 101 }, // another socket's
      { type: C.RTM_NEWLINK, pid: 0, marker: 5 }, // the kernel's (pid 0) counts
    ],
    [{ type: C.NLMSG_ERROR }],
  ]);
  assert.deepEqual(markers(request(sock, "RTM_GETLINK", getlink)), [5]);
});

Deno.test("request() turns NLMSG_ERROR into NetlinkError with op and extAck", () => {
  const { sock } = fakeSocket(() => [[{
    type: C.NLMSG_ERROR,
    flags: C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS,
    errno: 34,
    extAck: "Attribute failed policy validation",
  }]]);
  assert.throws(() => request(sock, "RTM_NEWLINK", getlink), (e: unknown) => {
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.errno, 34);
    assert.equal(e.code, "ERANGE");
    assert.equal(e.op, "RTM_NEWLINK");
    assert.equal(e.extAck, "Attribute failed policy validation");
    return true;
  });
});

Deno.test("request() retries an interrupted dump, rebuilding the request", () => {
  const I = C.NLM_F_MULTI | C.NLM_F_DUMP_INTR;
  let builds = 0;
  const { sock, sent } = fakeSocket((attempt) =>
    attempt < 2
      ? [[{ type: C.RTM_NEWLINK, flags: I, marker: 9 }, { type: C.NLMSG_DONE, flags: I }]]
      : [[{ type: C.RTM_NEWLINK, flags: C.NLM_F_MULTI, marker: 1 }, { type: C.NLMSG_DONE }]]
  );
  const out = request(sock, "RTM_GETLINK", () => (builds++, getlink()));
  assert.deepEqual(markers(out), [1], "only the consistent attempt's messages");
  assert.equal(builds, 3);
  assert.equal(new Set(sent.map((m) => parseMessages(m)[0]!.seq)).size, 3, "fresh seq each time");
});

Deno.test("request() gives up on a dump that stays interrupted", () => {
  const I = C.NLM_F_MULTI | C.NLM_F_DUMP_INTR;
  const { sock, sent } = fakeSocket(() => [[{ type: C.NLMSG_DONE, flags: I }]]);
  assert.throws(() => request(sock, "RTM_GETROUTE", getlink), DumpInterruptedError);
  assert.equal(sent.length, 5);
});

Deno.test("request() passes a receive timeout through", () => {
  const { sock } = fakeSocket(() => [[{ type: C.RTM_NEWLINK, marker: 1 }]]);
  assert.throws(() => request(sock, "RTM_GETLINK", getlink), (e: unknown) => {
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.code, "ETIMEDOUT");
    return true;
  });
});
