/**
 * The part of gRPC the device plugin speaks, over `node:http2` on unix
 * sockets: a server for unary and server-streaming methods; the unary
 * client (Register, `--probe`) is `_h2c.ts`, re-exported here. Messages are raw protobuf bytes
 * (`_protowire.ts`); no compression is offered or accepted.
 *
 * Wire rules kept (gRPC over HTTP/2, `PROTOCOL-HTTP2.md`): requests are
 * `POST` with `content-type: application/grpc[+proto]` (else HTTP 415);
 * each message is framed as a compressed flag byte and a 4-byte big-endian
 * length; the status ends the response as trailers (`grpc-status`,
 * percent-encoded `grpc-message`), or alone in the headers when there is no
 * message ("Trailers-Only"); an unknown method answers `12 UNIMPLEMENTED`.
 *
 * Every session and stream has an `error` listener: a peer that resets a
 * stream or vanishes (kubelet restarting, SIGKILL) must never surface as an
 * uncaught exception in a long-running daemon.
 *
 * @module
 */

import http2 from "node:http2";
import type net from "node:net";
import { concatBytes } from "../internal/_bytes.ts";
import { encodeGrpcMessage, frame, GrpcError, Status, unframe } from "./_grpc_wire.ts";

export {
  decodeGrpcMessage,
  encodeGrpcMessage,
  frame,
  GrpcError,
  Status,
  type StatusName,
  unframe,
} from "./_grpc_wire.ts";
export { type H2cOptions as CallOptions, h2cUnary as unaryCall } from "./_h2c.ts";

/**
 * Largest request body the server reads, whatever the method: kubelet's
 * largest request (a GetPreferredAllocation over 10,000 devices) is ~350 KB,
 * and the daemon's heap is 48 MiB. Each method has its own, usually far
 * smaller, bound ({@linkcode Method}'s `maxRequestBytes`).
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/**
 * Largest unary response: what fits in HTTP/2's default flow-control window
 * (65,535 bytes) with its 5-byte frame header. A response that has to wait
 * for the peer's WINDOW_UPDATE leaves the stream in a state where a GOAWAY
 * from the peer later aborts Deno 2.9's nghttp2 (`find_stream_on_goaway_func`,
 * denoland/deno#36788: 1 MB and 150 KB responses followed by an ordinary
 * client close aborted the server in 5 of 16 runs; ≤ 65,000 bytes in 0 of 80
 * calls). So a response is sent in one go or not at all.
 */
export const MAX_RESPONSE_BYTES = 65_535 - 5;
/** Request bytes all calls of one server may hold while reading at once. */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Streams one connection may have open (kubelet: a ListAndWatch and a few Allocates). */
export const MAX_CONCURRENT_STREAMS = 32;
/**
 * Connections one server keeps at once. When a new one arrives at the cap,
 * the oldest connection that has not sent its HTTP/2 preface yet is dropped
 * for it, else the oldest without an open call; when every connection has a
 * call open, the newcomer is dropped.
 */
export const MAX_SESSIONS = 64;
/** How long a request body may take to arrive. */
export const BODY_TIMEOUT_MS = 10_000;
/** How long an answer waits for the peer's flow-control window to have room for it. */
const WINDOW_WAIT_MS = 1000;
/** How long a new connection may take to send the HTTP/2 preface and its SETTINGS. */
export const PREFACE_TIMEOUT_MS = 3_000;
/** How long a connection may stay without an open call (kubelet keeps its ListAndWatch open). */
export const IDLE_TIMEOUT_MS = 60_000;

/** The server side of one server-streaming call. */
export interface ServerStream {
  /** Send one message; ignored once the call is closed. */
  write(message: Uint8Array): void;
  /** End the call with a status (default OK). */
  end(code?: number, details?: string): void;
  /** Whether the call is over (ended by us, cancelled or reset by the client, or its connection gone). */
  readonly closed: boolean;
  /** Run `fn` once when the call is over, whichever side ended it. */
  onClose(fn: () => void): void;
}

/** What a unary handler may use besides its request. */
export interface UnaryCall {
  /**
   * The largest response this call can send: {@linkcode MAX_RESPONSE_BYTES},
   * or less when the peer's flow-control window is smaller. A handler with
   * side effects checks its answer fits before it acts.
   */
  readonly maxResponseBytes: number;
  /** Aborted when the call is over before the answer was sent (the peer cancelled or went away). */
  readonly signal: AbortSignal;
}

/**
 * A method: unary (request bytes → response bytes) or server-streaming.
 * `maxRequestBytes` bounds its request message (default and at most
 * {@linkcode MAX_MESSAGE_BYTES}); a larger one is refused with
 * `RESOURCE_EXHAUSTED` as soon as its frame header announces it.
 */
export type Method =
  & { maxRequestBytes?: number }
  & (
    | {
      kind: "unary";
      handle(request: Uint8Array, call: UnaryCall): Uint8Array | Promise<Uint8Array>;
    }
    | { kind: "stream"; handle(request: Uint8Array, call: ServerStream): void }
  );

/** Methods by full path, `/<package>.<Service>/<Method>`. */
export type Methods = Readonly<Record<string, Method>>;

const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc" };

/** `application/grpc` or `application/grpc+proto` (parameters allowed); not `+json` and the like. */
function isGrpcContentType(v: unknown): boolean {
  if (typeof v !== "string") return false;
  const type = v.split(";")[0]!.trim().toLowerCase();
  return type === "application/grpc" || type === "application/grpc+proto";
}

/** One connection: its session, its socket, and what it has done so far. */
interface Conn {
  session: http2.ServerHttp2Session;
  /** The socket under the session (dropped without GOAWAY; see close()). */
  socket: net.Socket | undefined;
  /** When it connected (`performance.now()`), for eviction order. */
  since: number;
  /** Whether the client's preface and SETTINGS arrived. */
  preface: boolean;
  /** Calls open on it. */
  streams: number;
  /** The preface or idle deadline. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Options of {@linkcode GrpcServer}; the defaults are the exported constants. */
export interface GrpcServerOptions {
  bodyTimeoutMs?: number;
  prefaceTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxSessions?: number;
}

/**
 * A gRPC server on one unix socket.
 *
 * Whoever can reach the socket is a peer, so every connection is bounded: it
 * must send the HTTP/2 preface within {@linkcode PREFACE_TIMEOUT_MS} and is
 * dropped after {@linkcode IDLE_TIMEOUT_MS} without an open call; at most
 * {@linkcode MAX_SESSIONS} are kept, and connections that never spoke make
 * room for new ones, so idle or silent peers cannot lock kubelet out.
 */
export class GrpcServer {
  #methods: Methods;
  #server: http2.Http2Server;
  #conns = new Map<http2.ServerHttp2Session, Conn>();
  /** The session created for the connection being accepted (see the `connection` listener). */
  #accepting: Conn | undefined;
  /** Open streaming calls: each entry marks its call over (listeners run). */
  #calls = new Set<() => void>();
  #closed = false;
  /** Request bytes held by calls still reading. */
  #buffered = 0;
  /** Per stream: stop counting it as an open call of its connection. */
  #release = new WeakMap<http2.ServerHttp2Stream, () => void>();
  #bodyTimeoutMs: number;
  #prefaceTimeoutMs: number;
  #idleTimeoutMs: number;
  #maxSessions: number;
  #dropped = 0;

  constructor(methods: Methods, options: GrpcServerOptions = {}) {
    this.#methods = methods;
    this.#bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
    this.#prefaceTimeoutMs = options.prefaceTimeoutMs ?? PREFACE_TIMEOUT_MS;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.#maxSessions = options.maxSessions ?? MAX_SESSIONS;
    this.#server = http2.createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    });
    // node:http2 creates a connection's session in its own `connection`
    // listener, which runs before ours (Node and Deno alike): the session
    // just created is this socket's.
    this.#server.on("session", (session: http2.ServerHttp2Session) => this.#onSession(session));
    this.#server.on("connection", (socket: net.Socket) => {
      const conn = this.#accepting;
      this.#accepting = undefined;
      if (!conn || conn.session.destroyed) {
        socket.destroy();
        return;
      }
      conn.socket = socket;
    });
    this.#server.on(
      "stream",
      (stream, headers) => this.#onStream(stream as http2.ServerHttp2Stream, headers),
    );
    this.#server.on("error", () => {});
  }

  #onSession(session: http2.ServerHttp2Session): void {
    this.#accepting = undefined;
    session.on("error", () => {});
    if (this.#closed) {
      session.destroy();
      return;
    }
    if (this.#conns.size >= this.#maxSessions && !this.#evictOne()) {
      this.#dropped++;
      session.destroy();
      return;
    }
    const conn: Conn = {
      session,
      socket: undefined,
      since: performance.now(),
      preface: false,
      streams: 0,
      timer: undefined,
    };
    this.#accepting = conn;
    this.#conns.set(session, conn);
    conn.timer = setTimeout(() => this.#drop(conn), this.#prefaceTimeoutMs);
    session.once("remoteSettings", () => {
      conn.preface = true;
      if (conn.streams === 0) this.#armIdle(conn);
    });
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      conn.streams++;
      clearTimeout(conn.timer);
      conn.timer = undefined;
      let counted = true;
      // A call stops counting once it is over or our side of it is: a peer
      // that never ends a request we answered holds no call open.
      const release = () => {
        if (!counted) return;
        counted = false;
        conn.streams--;
        if (conn.streams === 0 && conn.preface && this.#conns.has(session)) this.#armIdle(conn);
      };
      this.#release.set(stream, release);
      stream.once("close", release);
    });
    session.once("close", () => {
      clearTimeout(conn.timer);
      this.#conns.delete(session);
    });
  }

  #armIdle(conn: Conn): void {
    clearTimeout(conn.timer);
    conn.timer = setTimeout(() => this.#drop(conn), this.#idleTimeoutMs);
  }

  /** Make room: drop the oldest connection without a preface, else the oldest without a call. */
  #evictOne(): boolean {
    let victim: Conn | undefined;
    for (const c of this.#conns.values()) {
      if (c.preface) continue;
      if (!victim || c.since < victim.since) victim = c;
    }
    if (!victim) {
      for (const c of this.#conns.values()) {
        if (c.streams > 0) continue;
        if (!victim || c.since < victim.since) victim = c;
      }
    }
    if (!victim) return false;
    this.#drop(victim);
    return true;
  }

  /** Drop a connection without GOAWAY (see close()). */
  #drop(conn: Conn): void {
    clearTimeout(conn.timer);
    conn.timer = undefined;
    this.#conns.delete(conn.session);
    this.#dropped++;
    conn.socket?.destroy();
    conn.session.destroy();
  }

  /** Listen on the unix socket `path` (which must not exist). */
  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once("error", onError);
      this.#server.listen(path, () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
  }

  /** Open connections (for tests). */
  get sessionCount(): number {
    return this.#conns.size;
  }

  /** Connections dropped so far: refused at the cap, evicted, or timed out (for tests and logs). */
  get droppedCount(): number {
    return this.#dropped;
  }

  /** Stop at once: cancel open calls, drop every connection, stop listening. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    // Open calls end with their connection, without an RST_STREAM each, and
    // the connection is dropped, not closed with GOAWAY: a Deno node:http2
    // peer that gets GOAWAY right after a stream closed can abort inside
    // nghttp2 (denoland/deno#36788; a graceful close here made the in-process
    // kubelet stand-in abort in 2 runs of 3). So trailers just
    // queued by ServerStream.end() may not reach the peer: it sees the
    // stream reset, as it does when the plugin dies, and dials again after
    // the next Register.
    for (const finish of [...this.#calls]) finish();
    // The sockets go first, so the sessions end without sending GOAWAY.
    const conns = [...this.#conns.values()];
    for (const c of conns) {
      clearTimeout(c.timer);
      c.socket?.destroy();
    }
    for (const c of conns) c.session.destroy();
    this.#conns.clear();
  }

  /** Our side of `stream` is over: it no longer keeps its connection busy. */
  #settled(stream: http2.ServerHttp2Stream): void {
    this.#release.get(stream)?.();
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => {});
    const answer = (fn: () => void) => {
      fn();
      this.#settled(stream);
    };
    if (headers[":method"] !== "POST") return answer(() => respondHttp(stream, 405));
    if (!isGrpcContentType(headers["content-type"])) {
      return answer(() => respondHttp(stream, 415));
    }
    const path = String(headers[":path"] ?? "");
    const method = Object.hasOwn(this.#methods, path) ? this.#methods[path] : undefined;
    if (!method) {
      return answer(() => respondStatus(stream, Status.UNIMPLEMENTED, `unknown method ${path}`));
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      return answer(() =>
        respondStatus(
          stream,
          Status.UNIMPLEMENTED,
          `grpc-encoding "${encoding}" is not supported`,
          {
            "grpc-accept-encoding": "identity",
          },
        )
      );
    }
    const limit = Math.min(method.maxRequestBytes ?? MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES);
    const length = Number(headers["content-length"]);
    if (Number.isSafeInteger(length) && length > limit + 5) {
      return answer(() =>
        respondStatus(
          stream,
          Status.RESOURCE_EXHAUSTED,
          `request of ${length} bytes is larger than this method's limit of ${limit} bytes`,
        )
      );
    }
    this.#readBody(stream, limit).then((body) => {
      if (body === undefined || stream.closed) return;
      const messages = unframe(body);
      if (messages.length !== 1) {
        throw new GrpcError(
          Status.INTERNAL,
          `expected one request message, got ${messages.length}`,
        );
      }
      if (method.kind === "unary") return this.#unary(stream, method, messages[0]!);
      this.#serverStream(stream, method, messages[0]!);
      return undefined;
    }).catch((err) => {
      if (stream.closed) return;
      const { code, details } = GrpcError.from(err);
      answer(() => respondStatus(stream, code, details));
      // A client still sending (a body cut off) is not reset: RST_STREAM and
      // then the peer's GOAWAY is the shape of denoland/deno#36788. Its
      // further DATA stalls on the flow-control window until it ends.
    });
  }

  /**
   * Read a request body to its end; `undefined` when the client went away
   * first. Bounded in size (`limit` bytes of message: refused as soon as the
   * frame header or `content-length` announces more), in the bytes all calls
   * hold together, and in time.
   */
  #readBody(stream: http2.ServerHttp2Stream, limit: number): Promise<Uint8Array | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      let size = 0;
      let finished = false;
      const done = (fn: () => void) => {
        if (finished) return; // one outcome: 'end' or 'close' after a rejection changes nothing
        finished = true;
        clearTimeout(timer);
        this.#buffered -= size;
        size = 0;
        chunks.length = 0;
        stream.removeAllListeners("data");
        fn();
      };
      const fail = (code: number, details: string) =>
        done(() => reject(new GrpcError(code, details)));
      const tooLarge = (n: number) =>
        fail(
          Status.RESOURCE_EXHAUSTED,
          `request message of ${n} bytes is larger than this method's limit of ${limit} bytes`,
        );
      const timer = setTimeout(
        () =>
          fail(
            Status.DEADLINE_EXCEEDED,
            `request body not complete within ${this.#bodyTimeoutMs} ms`,
          ),
        this.#bodyTimeoutMs,
      );
      /** The first frame header's length, once its 5 bytes are in. */
      let announced: number | undefined;
      stream.on("data", (chunk: Uint8Array) => {
        if (finished) return;
        if (announced === undefined && size + chunk.length >= 5) {
          const head = concatBytes([...chunks, chunk.subarray(0, 5)]).subarray(0, 5);
          announced = new DataView(head.buffer, head.byteOffset, 5).getUint32(1);
          if (announced > limit) return tooLarge(announced);
        }
        if (size + chunk.length > limit + 5) return tooLarge(size + chunk.length - 5);
        if (this.#buffered + chunk.length > MAX_BUFFERED_BYTES) {
          return fail(Status.RESOURCE_EXHAUSTED, "too many request bytes in flight");
        }
        size += chunk.length;
        this.#buffered += chunk.length;
        chunks.push(chunk);
      });
      stream.once("end", () => {
        if (finished) return;
        const body = concatBytes(chunks);
        done(() => resolve(body));
      });
      stream.once("close", () => done(() => resolve(undefined)));
    });
  }

  /**
   * What a unary response on `stream` may weigh: our cap, or less when the
   * peer's stream window is smaller; with `now`, also what the connection's
   * window lets through at this moment.
   */
  #maxResponseBytes(stream: http2.ServerHttp2Stream, now = false): number {
    const session = stream.session;
    const streamWindow = session?.remoteSettings?.initialWindowSize ?? 65_535;
    const sessionWindow = now ? session?.state?.remoteWindowSize ?? 65_535 : Infinity;
    return Math.max(0, Math.min(MAX_RESPONSE_BYTES, streamWindow - 5, sessionWindow - 5));
  }

  async #unary(
    stream: http2.ServerHttp2Stream,
    method: Extract<Method, { kind: "unary" }>,
    request: Uint8Array,
  ): Promise<void> {
    const gone = new AbortController();
    const onClose = () => gone.abort();
    stream.once("close", onClose);
    let response: Uint8Array;
    try {
      response = await method.handle(request, {
        maxResponseBytes: this.#maxResponseBytes(stream),
        signal: gone.signal,
      });
    } finally {
      stream.off("close", onClose);
    }
    if (stream.closed) return;
    // Checked again at sending time: the connection's window may have
    // shrunk meanwhile (another call's DATA the peer has not acknowledged
    // yet); a peer that reads gives it back within a few milliseconds.
    const fits = response.length <= this.#maxResponseBytes(stream);
    let room = this.#maxResponseBytes(stream, true);
    for (let waited = 0; fits && response.length > room && waited < WINDOW_WAIT_MS; waited += 10) {
      await new Promise((r) => setTimeout(r, 10));
      if (stream.closed) return;
      room = this.#maxResponseBytes(stream, true);
    }
    if (response.length > room) {
      throw new GrpcError(
        Status.RESOURCE_EXHAUSTED,
        `response of ${response.length} bytes does not fit the ${room} bytes this call can send at once`,
      );
    }
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame(response));
    this.#settled(stream);
  }

  #serverStream(
    stream: http2.ServerHttp2Stream,
    method: Extract<Method, { kind: "stream" }>,
    request: Uint8Array,
  ): void {
    let closed = false;
    const listeners: (() => void)[] = [];
    const finish = () => {
      if (closed) return;
      closed = true;
      this.#calls.delete(finish);
      for (const fn of listeners.splice(0)) fn();
    };
    this.#calls.add(finish);
    stream.on("close", finish);
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    const call: ServerStream = {
      write: (message) => {
        if (!closed && !stream.closed) stream.write(frame(message));
      },
      end: (code = Status.OK, details = "") => {
        if (closed || stream.closed) return;
        stream.once("wantTrailers", () =>
          stream.sendTrailers({
            "grpc-status": String(code),
            ...(details ? { "grpc-message": encodeGrpcMessage(details) } : {}),
          }));
        stream.end();
        finish();
        this.#settled(stream);
      },
      get closed() {
        return closed;
      },
      onClose: (fn) => {
        if (closed) fn();
        else listeners.push(fn);
      },
    };
    try {
      method.handle(request, call);
    } catch (err) {
      const { code, details } = GrpcError.from(err);
      call.end(code, details);
    }
  }
}

function respondHttp(stream: http2.ServerHttp2Stream, status: number): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond({ ":status": status }, { endStream: true });
}

/** Trailers-Only (no message), or trailers after headers already sent. */
function respondStatus(
  stream: http2.ServerHttp2Stream,
  code: number,
  details: string,
  extra: Record<string, string> = {},
): void {
  if (stream.closed) return;
  const status = { "grpc-status": String(code), "grpc-message": encodeGrpcMessage(details) };
  if (!stream.headersSent) {
    stream.respond({ ...RESPONSE_HEADERS, ...extra, ...status }, { endStream: true });
  } else {
    stream.once("wantTrailers", () => stream.sendTrailers(status));
    stream.end();
  }
}
