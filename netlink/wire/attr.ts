/**
 * Netlink attributes (TLVs): an aligned writer that nests, and a parser that
 * keeps every attribute, known or not.
 *
 * @module
 */

import { NLA_F_NESTED, NLA_TYPE_MASK } from "./constants.ts";

/** Round up to the netlink alignment (4). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Builds a netlink message in host byte order: a fixed header area followed by
 * attributes, nests closed with {@linkcode AttrWriter.end}.
 */
export class AttrWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  #nests: number[] = [];

  constructor(capacity = 256) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    const need = this.#len + align4(n);
    if (need > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(need, this.#buf.length * 2));
      bigger.set(this.#buf);
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const at = this.#len;
    this.#len = need;
    return at;
  }

  /** Raw bytes (padded to 4). Returns their offset. */
  bytes(data: Uint8Array): number {
    const at = this.#reserve(data.length);
    this.#buf.set(data, at);
    return at;
  }

  /** `n` zero bytes (padded to 4). Returns their offset, for later `setU32` etc. */
  zeros(n: number): number {
    return this.#reserve(n);
  }

  /** Patch a u8 at `offset`. */
  setU8(offset: number, v: number): void {
    this.#view.setUint8(offset, v);
  }
  /** Patch a u16 at `offset`. */
  setU16(offset: number, v: number): void {
    this.#view.setUint16(offset, v, true);
  }
  /** Patch a u32 at `offset`. */
  setU32(offset: number, v: number): void {
    this.#view.setUint32(offset, v, true);
  }
  /** Patch an i32 at `offset`. */
  setI32(offset: number, v: number): void {
    this.#view.setInt32(offset, v, true);
  }

  /** Attribute with raw payload. */
  attr(type: number, payload: Uint8Array): void {
    const at = this.#reserve(4 + payload.length);
    this.#view.setUint16(at, 4 + payload.length, true);
    this.#view.setUint16(at + 2, type, true);
    this.#buf.set(payload, at + 4);
  }
  /** u8 attribute. */
  u8(type: number, v: number): void {
    this.attr(type, Uint8Array.of(v));
  }
  /** u16 attribute. */
  u16(type: number, v: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    this.attr(type, b);
  }
  /** u32 attribute. */
  u32(type: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.attr(type, b);
  }
  /** s32 attribute. */
  i32(type: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.attr(type, b);
  }
  /**
   * NUL-terminated string attribute. A NUL inside `s` is refused: the
   * kernel would read a shorter name and act on another object.
   */
  str(type: number, s: string): void {
    if (s.includes("\0")) throw new TypeError(`String attribute ${type} contains a NUL byte`);
    const raw = encoder.encode(s);
    const b = new Uint8Array(raw.length + 1);
    b.set(raw);
    this.attr(type, b);
  }

  /**
   * String attribute without the NUL (`NLA_STRING` accepts both forms);
   * iproute2 sends `IFLA_INFO_KIND` this way.
   */
  chars(type: number, s: string): void {
    this.attr(type, encoder.encode(s));
  }

  /** Open a nested attribute (`NLA_F_NESTED` is not set, as iproute2 does). */
  begin(type: number): void {
    const at = this.#reserve(4);
    this.#view.setUint16(at + 2, type, true);
    this.#nests.push(at);
  }
  /** Close the innermost nested attribute. */
  end(): void {
    const at = this.#nests.pop();
    if (at === undefined) throw new Error("AttrWriter.end() without begin()");
    this.#view.setUint16(at, this.#len - at, true);
  }

  /** The finished bytes (a copy-free view). */
  finish(): Uint8Array {
    if (this.#nests.length) throw new Error("AttrWriter.finish() with open nests");
    return this.#buf.subarray(0, this.#len);
  }
}

/** One parsed attribute. `data` is a view into the message. */
export interface Attr {
  type: number;
  nested: boolean;
  data: Uint8Array;
}

/** Parse a run of attributes. Malformed trailing bytes end the run. */
export function parseAttrs(buf: Uint8Array): Attr[] {
  const out: Attr[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = view.getUint16(off, true);
    const rawType = view.getUint16(off + 2, true);
    if (len < 4 || off + len > buf.length) break;
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      data: buf.subarray(off + 4, off + len),
    });
    off += align4(len);
  }
  return out;
}

/**
 * Write parsed attributes back unchanged (type, nested flag, payload): the
 * emit half of a round trip, so unknown attributes survive a re-encode.
 */
export function putAttrs(w: AttrWriter, attrs: readonly Attr[]): void {
  for (const a of attrs) w.attr(a.type | (a.nested ? NLA_F_NESTED : 0), a.data);
}

/** Attributes keyed by type (last one wins), for quick lookups. */
export function attrMap(buf: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const a of parseAttrs(buf)) m.set(a.type, a.data);
  return m;
}

/** Read a u32 payload. */
export function readU32(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
}
/** Read an i32 payload. */
export function readI32(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getInt32(0, true);
}
/** Read a u16 payload. */
export function readU16(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint16(0, true);
}
/** Read a NUL-terminated (or not) string payload. */
export function readStr(data: Uint8Array): string {
  let end = data.indexOf(0);
  if (end < 0) end = data.length;
  return decoder.decode(data.subarray(0, end));
}
