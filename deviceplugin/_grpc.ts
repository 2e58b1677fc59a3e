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
 * Largest request body the server reads: kubelet's largest request (a
 * GetPreferredAllocation over 10,000 devices) is ~350 KB, and the daemon's
 * heap is 48 MiB.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Request bytes all calls of one server may hold while reading at once. */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Streams one connection may have open (kubelet: a ListAndWatch and a few Allocates). */
export const MAX_CONCURRENT_STREAMS = 32;
/** Connections one server keeps at once; more are refused (kubelet needs one). */
export const MAX_SESSIONS = 64;
/** How long a request body may take to arrive. */
export const BODY_TIMEOUT_MS = 10_000;

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

/** A method: unary (request bytes → response bytes) or server-streaming. */
export type Method =
  | { kind: "unary"; handle(request: Uint8Array): Uint8Array | Promise<Uint8Array> }
  | { kind: "stream"; handle(request: Uint8Array, call: ServerStream): void };

/** Methods by full path, `/<package>.<Service>/<Method>`. */
export type Methods = Readonly<Record<string, Method>>;

const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc" };

/** `application/grpc` or `application/grpc+proto` (parameters allowed); not `+json` and the like. */
function isGrpcContentType(v: unknown): boolean {
  if (typeof v !== "string") return false;
  const type = v.split(";")[0]!.trim().toLowerCase();
  return type === "application/grpc" || type === "application/grpc+proto";
}

/** A gRPC server on one unix socket. */
export class GrpcServer {
  #methods: Methods;
  #server: http2.Http2Server;
  #sessions = new Set<http2.ServerHttp2Session>();
  #sockets = new Set<net.Socket>();
  /** Open streaming calls: each entry marks its call over (listeners run). */
  #calls = new Set<() => void>();
  #closed = false;
  /** Request bytes held by calls still reading. */
  #buffered = 0;

  #bodyTimeoutMs: number;

  constructor(methods: Methods, options: { bodyTimeoutMs?: number } = {}) {
    this.#methods = methods;
    this.#bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
    this.#server = http2.createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    });
    this.#server.on("connection", (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    this.#server.on("session", (session: http2.ServerHttp2Session) => {
      if (this.#closed || this.#sessions.size >= MAX_SESSIONS) {
        session.destroy();
        return;
      }
      this.#sessions.add(session);
      session.on("error", () => {});
      session.on("close", () => this.#sessions.delete(session));
    });
    this.#server.on(
      "stream",
      (stream, headers) => this.#onStream(stream as http2.ServerHttp2Stream, headers),
    );
    this.#server.on("error", () => {});
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
    return this.#sessions.size;
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
    for (const socket of this.#sockets) socket.destroy();
    for (const s of this.#sessions) s.destroy();
    this.#sockets.clear();
    this.#sessions.clear();
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => {});
    if (headers[":method"] !== "POST") {
      respondHttp(stream, 405);
      return;
    }
    if (!isGrpcContentType(headers["content-type"])) {
      respondHttp(stream, 415);
      return;
    }
    const path = String(headers[":path"] ?? "");
    const method = Object.hasOwn(this.#methods, path) ? this.#methods[path] : undefined;
    if (!method) {
      respondStatus(stream, Status.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      respondStatus(stream, Status.UNIMPLEMENTED, `grpc-encoding "${encoding}" is not supported`, {
        "grpc-accept-encoding": "identity",
      });
      return;
    }
    this.#readBody(stream).then((body) => {
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
      respondStatus(stream, code, details);
      // A client still sending (a body cut off) is not reset: RST_STREAM and
      // then the peer's GOAWAY is the shape of denoland/deno#36788. Its
      // further DATA stalls on the flow-control window until it ends.
    });
  }

  /**
   * Read a request body to its end; `undefined` when the client went away
   * first. Bounded in size, in the bytes all calls hold together, and in time.
   */
  #readBody(stream: http2.ServerHttp2Stream): Promise<Uint8Array | undefined> {
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
      const timer = setTimeout(
        () =>
          fail(
            Status.DEADLINE_EXCEEDED,
            `request body not complete within ${this.#bodyTimeoutMs} ms`,
          ),
        this.#bodyTimeoutMs,
      );
      stream.on("data", (chunk: Uint8Array) => {
        if (finished) return;
        if (size + chunk.length > MAX_MESSAGE_BYTES + 5) {
          return fail(Status.RESOURCE_EXHAUSTED, `request larger than ${MAX_MESSAGE_BYTES} bytes`);
        }
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

  async #unary(
    stream: http2.ServerHttp2Stream,
    method: Extract<Method, { kind: "unary" }>,
    request: Uint8Array,
  ): Promise<void> {
    const response = await method.handle(request);
    if (stream.closed) return;
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame(response));
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
