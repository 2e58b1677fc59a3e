/**
 * One unary gRPC call over HTTP/2 with prior knowledge ("h2c") on a unix
 * socket, written on `Deno.connect`: the CNI plugin asks kubelet's
 * PodResources API with it, the device plugin registers with kubelet and
 * probes itself with it. `node:http2` would do the same, but importing it
 * costs a Deno process 44–104 ms (measured here, `import("node:http2")` in
 * an empty script), and a client closing a `node:http2` session sends the
 * GOAWAY that can abort a Deno `node:http2` server (denoland/deno#36788);
 * this file costs what its code does, and ends a call by closing its socket.
 *
 * The client side of RFC 9113 that one call needs: the preface, SETTINGS
 * (acknowledged both ways), one stream with HEADERS and DATA, flow control
 * opened wide enough for the largest answer read, PING answered, HEADERS
 * with CONTINUATION, padding and priority, RST_STREAM and GOAWAY. Headers are
 * HPACK (`_hpack.ts`). Every read is bounded: frame size, header list size,
 * answer size, and a deadline for the whole call.
 *
 * @module
 */

import { concatBytes } from "../internal/_bytes.ts";
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from "./_hpack.ts";
import { decodeGrpcMessage, frame, GrpcError, Status, unframe } from "./_grpc_wire.ts";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;
const WINDOW_UPDATE = 0x8;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** The default (and our) SETTINGS_MAX_FRAME_SIZE: no peer frame may be larger. */
const MAX_FRAME = 16_384;
/** The connection's initial receive window (RFC 9113 §6.9.2). */
const DEFAULT_WINDOW = 65_535;
const STREAM = 1;

/** Options of {@linkcode h2cUnary}. */
export interface H2cOptions {
  /** Deadline of the whole call (default 5000 ms); sent as `grpc-timeout` too. */
  timeoutMs?: number;
  /** Largest response message read (default 4 MiB); more ends the call with `RESOURCE_EXHAUSTED`. */
  maxResponseBytes?: number;
  /** Cancels the call (status `CANCELLED`). */
  signal?: AbortSignal;
}

function frameHeader(length: number, type: number, flags: number, stream: number): Uint8Array {
  const h = new Uint8Array(9);
  const v = new DataView(h.buffer);
  v.setUint32(0, length << 8);
  h[3] = type;
  h[4] = flags;
  v.setUint32(5, stream);
  return h;
}

function h2frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  return concatBytes([frameHeader(payload.length, type, flags, stream), payload]);
}

function settings(entries: [number, number][]): Uint8Array {
  const p = new Uint8Array(entries.length * 6);
  const v = new DataView(p.buffer);
  entries.forEach(([id, value], i) => {
    v.setUint16(i * 6, id);
    v.setUint32(i * 6 + 2, value);
  });
  return h2frame(SETTINGS, 0, 0, p);
}

function windowUpdate(stream: number, increment: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, increment);
  return h2frame(WINDOW_UPDATE, 0, stream, p);
}

/** A frame read off the connection. */
interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Uint8Array;
}

/** Buffered frame reader over a connection. */
class FrameReader {
  #conn: Deno.Conn;
  #buf: Uint8Array = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(Math.max(MAX_FRAME + 9, n - this.#buf.length));
      const got = await this.#conn.read(chunk);
      if (got === null) throw new GrpcError(Status.UNAVAILABLE, "connection closed by the server");
      this.#buf = concatBytes([this.#buf, chunk.subarray(0, got)]);
    }
  }

  async next(): Promise<Frame> {
    await this.#fill(9);
    const v = new DataView(this.#buf.buffer, this.#buf.byteOffset, 9);
    const length = v.getUint32(0) >>> 8;
    if (length > MAX_FRAME) {
      throw new GrpcError(Status.INTERNAL, `HTTP/2 frame of ${length} bytes (max ${MAX_FRAME})`);
    }
    const type = this.#buf[3]!;
    const flags = this.#buf[4]!;
    const stream = v.getUint32(5) & 0x7fffffff;
    await this.#fill(9 + length);
    const payload = this.#buf.slice(9, 9 + length);
    this.#buf = this.#buf.slice(9 + length);
    return { type, flags, stream, payload };
  }
}

/** A HEADERS/DATA payload without its padding (and HEADERS' priority fields). */
function unpad(f: Frame, priority: boolean): Uint8Array {
  let p = f.payload;
  let pad = 0;
  if (f.flags & PADDED) {
    if (p.length < 1) throw new GrpcError(Status.INTERNAL, "padded frame without a pad length");
    pad = p[0]!;
    p = p.subarray(1);
  }
  if (priority && f.flags & PRIORITY) p = p.subarray(5);
  if (pad > p.length) throw new GrpcError(Status.INTERNAL, "padding longer than the frame");
  return p.subarray(0, p.length - pad);
}

/**
 * Call `method` with `request` (one protobuf message) on the unix socket
 * `path` and return the response message.
 *
 * @throws {GrpcError} the call's status: `UNAVAILABLE` when nothing answers
 *   on `path` or the connection ends early, `DEADLINE_EXCEEDED`,
 *   `RESOURCE_EXHAUSTED` for an answer above `maxResponseBytes`, `INTERNAL`
 *   for a protocol violation, or the server's own status.
 */
export async function h2cUnary(
  path: string,
  method: string,
  request: Uint8Array,
  options: H2cOptions = {},
): Promise<Uint8Array> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxResponse = options.maxResponseBytes ?? 4 * 1024 * 1024;
  const { signal } = options;
  const cancelled = () => new GrpcError(Status.CANCELLED, "cancelled by the caller");
  if (signal?.aborted) throw cancelled();
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    throw new GrpcError(Status.UNAVAILABLE, `${path}: ${err instanceof Error ? err.message : err}`);
  }
  // The deadline and the caller's abort end the call by closing the
  // connection: the pending read fails, and `ended` says why.
  let ended: GrpcError | undefined;
  const end = (why: GrpcError) => {
    if (ended) return;
    ended = why;
    conn.close();
  };
  const timer = setTimeout(
    () => end(new GrpcError(Status.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = () => end(cancelled());
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await exchange(conn, method, request, { timeoutMs, maxResponse });
  } catch (err) {
    if (ended) throw ended;
    if (err instanceof GrpcError) throw err;
    if (err instanceof HpackError) throw new GrpcError(Status.INTERNAL, `HPACK: ${err.message}`);
    throw new GrpcError(Status.UNAVAILABLE, `${path}: ${err instanceof Error ? err.message : err}`);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    if (!ended) conn.close();
  }
}

async function exchange(
  conn: Deno.Conn,
  method: string,
  request: Uint8Array,
  limits: { timeoutMs: number; maxResponse: number },
): Promise<Uint8Array> {
  // The answer is the message plus its 5-byte frame. The window is one byte
  // more: a server that respects it stops at the window, so an answer too
  // large shows as that extra byte instead of a stall.
  const accepted = limits.maxResponse + 5;
  const window = accepted + 1;
  const headers: HeaderField[] = [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", method],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ["grpc-timeout", `${Math.max(1, Math.ceil(limits.timeoutMs))}m`],
  ];
  const hpack = new HpackDecoder();
  await writeAll(
    conn,
    concatBytes([
      PREFACE,
      settings([
        [SETTINGS_ENABLE_PUSH, 0],
        [SETTINGS_HEADER_TABLE_SIZE, 4096],
        [SETTINGS_INITIAL_WINDOW_SIZE, Math.min(window, 2 ** 31 - 1)],
        [SETTINGS_MAX_FRAME_SIZE, MAX_FRAME],
        [SETTINGS_MAX_HEADER_LIST_SIZE, hpack.maxListSize],
      ]),
      windowUpdate(0, Math.max(1, Math.min(window, 2 ** 31 - 1) - DEFAULT_WINDOW)),
      h2frame(HEADERS, END_HEADERS, STREAM, encodeHeaders(headers)),
    ]),
  );
  // The request body, sent as the server's flow-control windows allow
  // (65,535 bytes each until its SETTINGS and WINDOW_UPDATEs say more).
  const out = frame(request);
  let sent = 0;
  let connWindow = DEFAULT_WINDOW;
  let streamWindow = DEFAULT_WINDOW;
  let peerInitialWindow = DEFAULT_WINDOW;
  const pump = async () => {
    while (sent < out.length) {
      const n = Math.min(out.length - sent, MAX_FRAME, connWindow, streamWindow);
      if (n <= 0) return;
      const last = sent + n === out.length;
      await writeAll(
        conn,
        h2frame(DATA, last ? END_STREAM : 0, STREAM, out.subarray(sent, sent + n)),
      );
      sent += n;
      connWindow -= n;
      streamWindow -= n;
    }
  };
  await pump();
  const reader = new FrameReader(conn);
  const blocks: HeaderField[][] = [];
  const body: Uint8Array[] = [];
  let received = 0;
  let block: Uint8Array[] | undefined;
  let blockEnds = false;
  while (true) {
    const f = await reader.next();
    if (block && f.type !== CONTINUATION) {
      throw new GrpcError(Status.INTERNAL, "header block interrupted by another frame");
    }
    switch (f.type) {
      case SETTINGS: {
        if (f.flags & ACK) continue;
        const v = new DataView(f.payload.buffer, f.payload.byteOffset, f.payload.length);
        for (let i = 0; i + 6 <= f.payload.length; i += 6) {
          if (v.getUint16(i) !== SETTINGS_INITIAL_WINDOW_SIZE) continue;
          const size = v.getUint32(i + 2);
          streamWindow += size - peerInitialWindow;
          peerInitialWindow = size;
        }
        await writeAll(conn, h2frame(SETTINGS, ACK, 0, new Uint8Array()));
        await pump();
        continue;
      }
      case WINDOW_UPDATE: {
        if (f.payload.length < 4) continue;
        const inc = new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) & 0x7fffffff;
        if (f.stream === 0) connWindow += inc;
        else if (f.stream === STREAM) streamWindow += inc;
        await pump();
        continue;
      }
      case PING:
        if (!(f.flags & ACK)) await writeAll(conn, h2frame(PING, ACK, 0, f.payload));
        continue;
      case GOAWAY: {
        const last = f.payload.length >= 4
          ? new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) & 0x7fffffff
          : 0;
        if (last < STREAM) throw new GrpcError(Status.UNAVAILABLE, "server refused the stream");
        continue;
      }
      case RST_STREAM: {
        if (f.stream !== STREAM) continue;
        const code = f.payload.length >= 4
          ? new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0)
          : 0;
        throw new GrpcError(Status.INTERNAL, `stream reset by the server (HTTP/2 error ${code})`);
      }
      case HEADERS:
      case CONTINUATION: {
        if (f.type === HEADERS) {
          if (f.stream !== STREAM) {
            throw new GrpcError(Status.INTERNAL, "HEADERS on another stream");
          }
          block = [unpad(f, true)];
          blockEnds = (f.flags & END_STREAM) !== 0;
        } else if (!block || f.stream !== STREAM) {
          throw new GrpcError(Status.INTERNAL, "CONTINUATION without HEADERS");
        } else {
          block.push(f.payload);
        }
        // Bounded before it is decoded: a block that never ends would grow without limit.
        if (block.reduce((n, b) => n + b.length, 0) > hpack.maxListSize) {
          throw new GrpcError(
            Status.INTERNAL,
            `header block larger than ${hpack.maxListSize} bytes`,
          );
        }
        if (!(f.flags & END_HEADERS)) continue;
        blocks.push(hpack.decode(concatBytes(block)));
        block = undefined;
        if (blockEnds) return result(blocks, body);
        continue;
      }
      case DATA: {
        if (f.stream !== STREAM) continue;
        const data = unpad(f, false);
        received += data.length;
        if (received > accepted) {
          throw new GrpcError(
            Status.RESOURCE_EXHAUSTED,
            `response larger than ${limits.maxResponse} bytes`,
          );
        }
        body.push(data);
        if (f.flags & END_STREAM) return result(blocks, body);
        continue;
      }
      default:
        continue; // PRIORITY, unknown types: nothing to do for one call
    }
  }
}

/** The call's outcome from its header blocks (headers, trailers) and body. */
function result(blocks: HeaderField[][], body: Uint8Array[]): Uint8Array {
  const fields = new Map(blocks.flat());
  const http = fields.get(":status");
  const status = fields.get("grpc-status");
  if (status === undefined) {
    throw new GrpcError(
      Status.UNAVAILABLE,
      http !== undefined && http !== "200"
        ? `HTTP status ${http}`
        : "stream ended without a gRPC status",
    );
  }
  const code = /^\d+$/.test(status) ? Number(status) : Status.UNKNOWN;
  if (code !== Status.OK) {
    throw new GrpcError(code, decodeGrpcMessage(fields.get("grpc-message") ?? ""));
  }
  const messages = unframe(concatBytes(body));
  if (messages.length !== 1) {
    throw new GrpcError(Status.INTERNAL, `expected one response message, got ${messages.length}`);
  }
  return messages[0]!;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}
