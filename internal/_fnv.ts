/**
 * FNV-1a over the UTF-8 bytes of a string: small, dependency-free and stable
 * across releases, for names derived from IDs and paths (interface names,
 * tap indexes, state and cache file names).
 *
 * @module
 */

const encoder = new TextEncoder();

/** FNV-1a, 32 bit. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** FNV-1a, 64 bit. */
export function fnv1a64(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of encoder.encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}
