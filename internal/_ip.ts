/**
 * IP address text ⇄ bytes, shared by every layer (netlink encodes bytes, CNI
 * speaks text). IPv6 text follows RFC 5952 (lower case, longest zero run
 * compressed, IPv4-mapped shown dotted).
 *
 * @module
 */

/** Parse dotted-quad IPv4 text; `undefined` when it is not one. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parse IPv6 text (with optional trailing dotted IPv4); no zone ids. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45 || text.includes("%")) return undefined;
  let head = text;
  let tail4: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    tail4 = parseIPv4(text.slice(lastColon + 1));
    if (!tail4) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (!left || !right) return undefined;
  const total = left.length + right.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return undefined;
  const words = [...left, ...new Array(8 - total).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Parse IPv4 or IPv6 text. */
export function parseIP(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/** Canonical text of a 4- or 16-byte address. */
export function formatIP(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) throw new RangeError(`not an IP address: ${bytes.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }
  let bestStart = -1, bestLen = 1, runStart = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && w[i] === 0) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart > bestLen) [bestStart, bestLen] = [runStart, i - runStart];
      runStart = -1;
    }
  }
  const hex = w.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(":");
  return hex.slice(0, bestStart).join(":") + "::" + hex.slice(bestStart + bestLen).join(":");
}

/** A parsed `address/prefix`. */
export interface Cidr {
  family: 4 | 6;
  /** Address bytes exactly as written (host bits kept). */
  bytes: Uint8Array;
  prefix: number;
}

/** Parse `a.b.c.d/n` or `x::y/n`; `undefined` when malformed or the prefix is out of range. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const bytes = parseIP(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (!bytes || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bytes.length * 8) return undefined;
  return { family: bytes.length === 4 ? 4 : 6, bytes, prefix };
}

/** Canonical text of a CIDR. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIP(cidr.bytes)}/${cidr.prefix}`;
}

/** The network part of `cidr` (host bits cleared). */
export function networkOf(cidr: Cidr): Cidr {
  const bytes = cidr.bytes.slice();
  for (let bit = cidr.prefix; bit < bytes.length * 8; bit++) {
    bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return { family: cidr.family, bytes, prefix: cidr.prefix };
}

/** Whether two byte strings are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether `ip` lies inside `net`. */
export function cidrContains(net: Cidr, ip: Uint8Array): boolean {
  if (ip.length !== net.bytes.length) return false;
  return bytesEqual(networkOf(net).bytes, networkOf({ ...net, bytes: ip }).bytes);
}

/** Parse `aa:bb:cc:dd:ee:ff` (any case, `-` accepted); `undefined` when malformed. */
export function parseMac(text: string): Uint8Array | undefined {
  const m =
    /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/
      .exec(text);
  if (!m) return undefined;
  return Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
}

/** Lower-case colon-separated text of a MAC address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}
