/**
 * A unary gRPC client over `node:http2` on a unix socket: the device
 * plugin's Register and `--probe`, and the CNI plugin's question to
 * kubelet's PodResources API before it imports a device.
 *
 * `node:http2` and `node:net` are imported when the first call is made, not
 * with this module: the CNI plugin reaches this file only on the `deviceID`
 * path, and a static `node:` import would be hoisted onto every call's
 * start-up by the bundler (each costs milliseconds).
 *
 * @module
 */

import type * as Http2 from "node:http2";
import { concatBytes } from "../internal/_bytes.ts";
import { decodeGrpcMessage, frame, GrpcError, Status, unframe } from "./_grpc_wire.ts";

/** `node:http2` and `node:net`, loaded on first use. */
async function nodeModules(): Promise<
  { http2: typeof import("node:http2"); net: typeof import("node:net") }
> {
  const [http2, net] = await Promise.all([import("node:http2"), import("node:net")]);
  return { http2: http2.default, net: net.default };
}

/** Options of {@linkcode unaryCall}. */
export interface CallOptions {
  /** Deadline from now (default 5000 ms); sent as `grpc-timeout` too. */
  timeoutMs?: number;
  /** Cancels the call (status `CANCELLED`). */
  signal?: AbortSignal;
  /** Largest response body read (default 4 MiB); more ends the call with `RESOURCE_EXHAUSTED`. */
  maxResponseBytes?: number;
}

/**
 * One unary call on a fresh connection to the unix socket `path`, closed
 * after the call: the plugin calls kubelet rarely (Register, the probe), and
 * a connection kept across a kubelet restart would be one to a dead peer.
 *
 * @returns the response message's bytes
 * @throws {GrpcError} the call's status: `UNAVAILABLE` when nobody answers on
 *   `path`, `DEADLINE_EXCEEDED`, `CANCELLED`, or the server's own.
 */
export async function unaryCall(
  path: string,
  method: string,
  request: Uint8Array,
  options: CallOptions = {},
): Promise<Uint8Array> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxResponseBytes = options.maxResponseBytes ?? 4 * 1024 * 1024;
  const { http2, net } = await nodeModules();
  return new Promise<Uint8Array>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new GrpcError(Status.CANCELLED, "cancelled by the caller"));
      return;
    }
    let done = false;
    const onAbort = () => settle(new GrpcError(Status.CANCELLED, "cancelled by the caller"));
    const settle = (result: Uint8Array | GrpcError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      // Drop the connection without GOAWAY: a GOAWAY right after the call's
      // stream closed can abort a Deno node:http2 server inside nghttp2
      // (denoland/deno#36788): 2 server deaths in 6 runs of 300 calls,
      // 0 in 6 with the socket destroyed first. The plugin probes itself this way.
      socket?.destroy();
      session.destroy();
      if (result instanceof GrpcError) reject(result);
      else resolve(result);
    };
    // Events reach `settle` only after these three lines ran (a throw here rejects the promise).
    let socket: import("node:net").Socket | undefined;
    const session = http2.connect("http://localhost", {
      createConnection: () => (socket = net.connect(path)),
    });
    const timer = setTimeout(
      () => settle(new GrpcError(Status.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    options.signal?.addEventListener("abort", onAbort, { once: true });

    const unavailable = (err: unknown) =>
      settle(
        new GrpcError(Status.UNAVAILABLE, `${path}: ${err instanceof Error ? err.message : err}`),
      );
    session.on("error", unavailable);
    session.on("goaway", () => {}); // the stream's own close reports what matters
    let req: import("node:http2").ClientHttp2Stream;
    try {
      req = session.request({
        ":method": "POST",
        ":path": method,
        "content-type": "application/grpc",
        "te": "trailers",
        "grpc-timeout": `${Math.max(1, Math.ceil(timeoutMs))}m`,
      });
    } catch (err) {
      return unavailable(err);
    }
    let headers: Http2.IncomingHttpHeaders & Http2.IncomingHttpStatusHeader = {};
    let trailers: Http2.IncomingHttpHeaders | undefined;
    const chunks: Uint8Array[] = [];
    req.on("error", unavailable);
    req.on("response", (h) => (headers = h));
    req.on("trailers", (t) => (trailers = t));
    let received = 0;
    req.on("data", (chunk: Uint8Array) => {
      received += chunk.length;
      if (received > maxResponseBytes) {
        return settle(
          new GrpcError(
            Status.RESOURCE_EXHAUSTED,
            `response larger than ${maxResponseBytes} bytes`,
          ),
        );
      }
      chunks.push(chunk);
    });
    req.on("close", () => {
      if (done) return;
      const status = trailers?.["grpc-status"] ?? headers["grpc-status"];
      const rawMessage = trailers?.["grpc-message"] ?? headers["grpc-message"];
      if (status === undefined) {
        const http = headers[":status"];
        return unavailable(
          http !== undefined && http !== 200
            ? `HTTP status ${http}`
            : `stream closed without a gRPC status (code ${req.rstCode})`,
        );
      }
      const code = /^\d+$/.test(String(status)) ? Number(status) : Status.UNKNOWN;
      if (code !== Status.OK) {
        return settle(
          new GrpcError(code, decodeGrpcMessage(String(rawMessage ?? ""))),
        );
      }
      try {
        const messages = unframe(concatBytes(chunks));
        if (messages.length !== 1) {
          throw new GrpcError(
            Status.INTERNAL,
            `expected one response message, got ${messages.length}`,
          );
        }
        settle(messages[0]!);
      } catch (err) {
        settle(GrpcError.from(err, Status.INTERNAL));
      }
    });
    req.end(frame(request));
  });
}
