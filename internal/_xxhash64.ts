/**
 * xxHash64 (seed 0) over the UTF-8 bytes of a string: KubeVirt's macvtap
 * device plugin names a device's host interface after it
 * (`mvt` + the low 48 bits in hex), so a device it made can be found by ID.
 * BigInt arithmetic: the plugin hashes a short ID once per ADD.
 *
 * @module
 */

const M64 = 0xffffffffffffffffn;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M64;

function round(acc: bigint, lane: bigint): bigint {
  acc = (acc + lane * P2) & M64;
  return (rotl(acc, 31n) * P1) & M64;
}

function merge(acc: bigint, v: bigint): bigint {
  acc ^= round(0n, v);
  return (acc * P1 + P4) & M64;
}

/**
 * xxHash64 of `text` with seed 0.
 *
 * @example Usage
 * ```ts
 * import { xxhash64 } from "./_xxhash64.ts";
 * xxhash64("").toString(16); // "ef46db3751d8e999"
 * ```
 */
export function xxhash64(text: string): bigint {
  const b = new TextEncoder().encode(text);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = b.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (P1 + P2) & M64;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (0n - P1) & M64;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, v.getBigUint64(p, true));
      v2 = round(v2, v.getBigUint64(p + 8, true));
      v3 = round(v3, v.getBigUint64(p + 16, true));
      v4 = round(v4, v.getBigUint64(p + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(len)) & M64;
  for (; p + 8 <= len; p += 8) {
    h ^= round(0n, v.getBigUint64(p, true));
    h = (rotl(h, 27n) * P1 + P4) & M64;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(v.getUint32(p, true)) * P1) & M64;
    h = (rotl(h, 23n) * P2 + P3) & M64;
    p += 4;
  }
  for (; p < len; p++) {
    h ^= (BigInt(b[p]!) * P5) & M64;
    h = (rotl(h, 11n) * P1) & M64;
  }
  h ^= h >> 33n;
  h = (h * P2) & M64;
  h ^= h >> 29n;
  h = (h * P3) & M64;
  h ^= h >> 32n;
  return h;
}
