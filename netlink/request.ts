/**
 * The request loop: one place that numbers requests, sends them, and reads
 * replies until the ACK or the end of a dump.
 *
 * @module
 */

import { span } from "../internal/_timing.ts";
import { DumpInterruptedError, NetlinkError } from "./errors.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { AttrWriter } from "./wire/attr.ts";
import * as C from "./wire/constants.ts";
import { decodeError, finishMessage, type NlMsg, parseMessages } from "./wire/message.ts";

/** Flag sets, named once. */
export const FLAGS = {
  /** Create, fail if it exists (`ip … add`). */
  add: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL,
  /**
   * Create beside what exists (`ip route prepend`): no `NLM_F_EXCL`, so only
   * an identical object is `EEXIST`.
   */
  create: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE,
  /** Create or replace (`ip … replace`). */
  replace: C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE,
  /** Change an existing object, or delete, or get one (`ip … set/del/get`). */
  change: C.NLM_F_REQUEST | C.NLM_F_ACK,
  /** Dump a table. */
  dump: C.NLM_F_REQUEST | C.NLM_F_DUMP,
} as const;

/** Attempts for a dump that the kernel marks interrupted. */
const DUMP_RETRIES = 5;

let seq = (Date.now() / 1000) >>> 0;

/**
 * Send the message under construction in `build()` and collect the replies.
 *
 * `build` is called once per attempt (dumps are retried when interrupted).
 * Returns the reply messages (not the ACK/DONE). Throws {@linkcode NetlinkError}
 * for an `NLMSG_ERROR` with a non-zero errno.
 */
export function request(
  sock: NetlinkSocket,
  op: string,
  build: () => AttrWriter,
): NlMsg[] {
  const t0 = performance.now();
  try {
    return exchange(sock, op, build);
  } finally {
    span(`netlink ${op}`, t0);
  }
}

function exchange(sock: NetlinkSocket, op: string, build: () => AttrWriter): NlMsg[] {
  for (let attempt = 0;; attempt++) {
    const mySeq = nextSeq();
    sock.send(finishMessage(build(), mySeq) as Uint8Array<ArrayBuffer>, op);
    const { replies, interrupted } = receive(sock, op, mySeq);
    if (!interrupted) return replies;
    if (attempt + 1 >= DUMP_RETRIES) throw new DumpInterruptedError(op);
  }
}

/**
 * {@linkcode request} for one request that is not a dump, whose kernel work
 * runs off the JS thread: rtnetlink does a request's work inside `sendmsg`,
 * and some take long (RTM_DELLINK of a macvtap waits ~20 ms for RCU). The
 * send runs on a pool thread, so the event loop and other work go on; the
 * ACK, queued by then, is read here. Nothing else may use `sock` until the
 * promise settles.
 *
 * @returns The reply messages (not the ACK).
 * @throws {NetlinkError} as {@linkcode request} does.
 */
export async function requestInBackground(
  sock: NetlinkSocket,
  op: string,
  build: () => AttrWriter,
): Promise<NlMsg[]> {
  const t0 = performance.now();
  try {
    const mySeq = nextSeq();
    return await sock.sendInBackground(
      finishMessage(build(), mySeq),
      op,
      () => receive(sock, op, mySeq).replies,
    );
  } finally {
    span(`netlink ${op}`, t0);
  }
}

function nextSeq(): number {
  return seq = (seq + 1) >>> 0;
}

/** Read replies to `mySeq` until its ACK, error or end of dump. */
function receive(
  sock: NetlinkSocket,
  op: string,
  mySeq: number,
): { replies: NlMsg[]; interrupted: boolean } {
  const replies: NlMsg[] = [];
  let interrupted = false;
  for (;;) {
    const datagram = sock.recv(op);
    let done = false;
    for (const m of parseMessages(datagram)) {
      if (m.seq !== mySeq || (m.pid !== sock.portid && m.pid !== 0)) continue;
      if (m.flags & C.NLM_F_DUMP_INTR) interrupted = true;
      if (m.type === C.NLMSG_ERROR) {
        const e = decodeError(m);
        if (e.errno !== 0) throw new NetlinkError(op, e.errno, e.extAck);
        done = true;
      } else if (m.type === C.NLMSG_DONE) {
        done = true;
      } else if (m.type === C.NLMSG_NOOP) {
        continue;
      } else {
        // A GET's single reply is followed by its ACK: keep reading.
        replies.push({ ...m, payload: m.payload.slice() });
      }
    }
    if (done) return { replies, interrupted };
  }
}
