/**
 * Byte-array helpers shared by the IPAM child pipes and the device plugin's
 * gRPC bodies.
 *
 * @module
 */

/** One array holding `parts` in order (the only part itself when there is one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
