/**
 * gRPC's message layer, shared by the device plugin's server and the unary
 * client (which the CNI plugin loads to ask kubelet's PodResources API):
 * status codes, the error a call ends with, message framing and the
 * `grpc-message` encoding. No `node:` module: importing it costs a CNI call
 * nothing.
 *
 * @module
 */

/** gRPC status codes used here. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A status name (`"NOT_FOUND"`). */
export type StatusName = keyof typeof Status;

const NAMES = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));

/** A call that ended with a non-OK status. `message` reads `"<code> <NAME>: <details>"`, as grpc-js writes it. */
export class GrpcError extends Error {
  override name = "GrpcError";
  readonly code: number;
  readonly details: string;

  constructor(code: number, details: string) {
    super(`${code} ${NAMES[code] ?? "UNKNOWN"}: ${details}`);
    this.code = code;
    this.details = details;
  }

  /** `err` itself when it is a GrpcError, else `code` with its message. */
  static from(err: unknown, code: number = Status.UNKNOWN): GrpcError {
    if (err instanceof GrpcError) return err;
    return new GrpcError(code, err instanceof Error ? err.message : String(err));
  }
}

/** Frame one message: flag 0 (not compressed), 4-byte big-endian length, the bytes. */
export function frame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/**
 * Split a whole body into its messages.
 *
 * @throws {GrpcError} `INTERNAL` on a truncated frame or a compressed one.
 */
export function unframe(body: Uint8Array): Uint8Array[] {
  const out = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let pos = 0;
  while (pos < body.length) {
    if (body.length - pos < 5) throw new GrpcError(Status.INTERNAL, "truncated message frame");
    const flag = body[pos]!;
    const len = view.getUint32(pos + 1);
    if (flag !== 0) {
      throw new GrpcError(Status.INTERNAL, "compressed message, but no compression was offered");
    }
    if (len > body.length - pos - 5) throw new GrpcError(Status.INTERNAL, "truncated message");
    out.push(body.subarray(pos + 5, pos + 5 + len));
    pos += 5 + len;
  }
  return out;
}

/** `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX` of their UTF-8. */
export function encodeGrpcMessage(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Inverse of {@linkcode encodeGrpcMessage}; a malformed escape stays as it is. */
export function decodeGrpcMessage(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
