/**
 * IP address helpers shared by the CNI layer, IPAM and netlink: text ⇄ bytes,
 * canonical text (RFC 5952 for IPv6), CIDRs with prefix checks.
 *
 * Rules (stricter than some parsers, on purpose):
 * - IPv4 is dotted quad only; leading zeros are rejected (`010.0.0.1` is
 *   ambiguous: octal to inet_aton, decimal to Go ≥ 1.17 rejects it).
 * - IPv6 may end in a dotted IPv4 (`::ffff:1.2.3.4`, `64:ff9b::1.2.3.4`).
 *   Zone ids (`fe80::1%eth0`) are rejected: CNI and netlink have no use for them.
 * - An IPv4-mapped IPv6 address stays a 16-byte, family-6 address; use
 *   {@linkcode unmapIPv4} to turn it into IPv4 explicitly.
 *
 * @module
 */

/** Address family. */
export type IpFamily = 4 | 6;

/** A parsed `address/prefix`. */
export interface Cidr {
  family: IpFamily;
  /** Address bytes as written (host bits kept): 4 or 16 bytes. */
  bytes: Uint8Array;
  /** Prefix length, 0–32 or 0–128. */
  prefix: number;
}

const DEC_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parse dotted-quad IPv4 text to 4 bytes; `undefined` when it is not one. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!DEC_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseGroups(text: string): number[] | undefined {
  if (text === "") return [];
  const out: number[] = [];
  for (const g of text.split(":")) {
    if (!HEX_GROUP.test(g)) return undefined;
    out.push(parseInt(g, 16));
  }
  return out;
}

/** Parse IPv6 text (optionally ending in dotted IPv4) to 16 bytes; `undefined` when it is not one. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45 || !text.includes(":")) return undefined;
  let head = text;
  let tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    tail = parseIPv4(text.slice(lastColon + 1));
    if (!tail) return undefined;
    // Replace the dotted part by two placeholder groups.
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const left = parseGroups(halves[0]!);
  const right = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!left || !right) return undefined;
  const total = left.length + right.length;
  // "::" stands for at least one zero group.
  if (halves.length === 2 ? total > 7 : total !== 8) return undefined;
  const words = [...left, ...new Array<number>(8 - total).fill(0), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

/**
 * Parse IPv4 or IPv6 text to 4 or 16 bytes; `undefined` when it is neither.
 *
 * @example Usage
 * ```ts
 * import { parseIP } from "./_ip.ts";
 * parseIP("10.0.0.1"); // Uint8Array(4) [10, 0, 0, 1]
 * parseIP("fe80::1%eth0"); // undefined (zone ids are rejected)
 * ```
 */
export function parseIP(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/** The family of a 4- or 16-byte address. */
export function ipFamily(bytes: Uint8Array): IpFamily {
  if (bytes.length === 4) return 4;
  if (bytes.length === 16) return 6;
  throw new RangeError(
    `Cannot tell the address family: ${bytes.length} bytes is not an IP address`,
  );
}

/** Whether 16 bytes are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
export function isIPv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address; other addresses unchanged. */
export function unmapIPv4(bytes: Uint8Array): Uint8Array {
  return isIPv4Mapped(bytes) ? bytes.slice(12) : bytes;
}

/**
 * Canonical text of a 4- or 16-byte address. IPv6 follows RFC 5952: lower
 * case, no leading zeros, the longest run of two or more zero groups
 * (the first on a tie) compressed to `::`, IPv4-mapped shown dotted.
 *
 * @throws {RangeError} when `bytes` is not 4 or 16 bytes long.
 * @example Usage
 * ```ts
 * import { formatIP, parseIP } from "./_ip.ts";
 * formatIP(parseIP("2001:DB8:0:0:1:0:0:1")!); // "2001:db8::1:0:0:1"
 * ```
 */
export function formatIP(bytes: Uint8Array): string {
  if (ipFamily(bytes) === 4) return bytes.join(".");
  if (isIPv4Mapped(bytes)) return `::ffff:${bytes.subarray(12).join(".")}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed (RFC 5952 §4.2.2)
  let runStart = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart > bestLen) {
        bestStart = runStart;
        bestLen = i - runStart;
      }
      runStart = -1;
    }
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Canonical text of an IP given as text; `undefined` when it is not an IP. */
export function canonicalIP(text: string): string | undefined {
  const bytes = parseIP(text);
  return bytes ? formatIP(bytes) : undefined;
}

/**
 * Why `text` is not a CIDR (`address/prefix`), or `undefined` when it is one.
 * The wording fits after a quoted value: `"10.0.0.1" is not a CIDR …`.
 */
export function cidrProblem(text: string): string | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return "has no prefix length (expected address/prefix)";
  const addr = text.slice(0, slash);
  const bytes = parseIP(addr);
  if (!bytes) {
    return addr.includes("%")
      ? "has a zone id, which is not allowed"
      : `has an invalid address "${addr}"`;
  }
  const p = text.slice(slash + 1);
  const max = bytes.length * 8;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
    return `has an invalid prefix length "${p}" (expected 0 to ${max})`;
  }
  return undefined;
}

/**
 * Parse `a.b.c.d/n` or `x::y/n`; `undefined` when malformed or the prefix is
 * out of range (see {@linkcode cidrProblem} for why).
 *
 * @example Usage
 * ```ts
 * import { parseCidr } from "./_ip.ts";
 * parseCidr("10.1.2.3/24"); // { family: 4, bytes: [10, 1, 2, 3], prefix: 24 }
 * parseCidr("10.1.2.3/33"); // undefined
 * ```
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const bytes = parseIP(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (!bytes || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bytes.length * 8) return undefined;
  return { family: ipFamily(bytes), bytes, prefix };
}

/** Canonical text of a CIDR (host bits kept). */
export function formatCidr(cidr: Cidr): string {
  return `${formatIP(cidr.bytes)}/${cidr.prefix}`;
}

/** Canonical text of a CIDR given as text; `undefined` when it is not one. */
export function canonicalCidr(text: string): string | undefined {
  const cidr = parseCidr(text);
  return cidr ? formatCidr(cidr) : undefined;
}

/** The network of `cidr` (host bits cleared). */
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

/** Whether address `ip` lies inside `net` (same family only). */
export function cidrContains(net: Cidr, ip: Uint8Array): boolean {
  if (ip.length !== net.bytes.length) return false;
  const full = Math.floor(net.prefix / 8);
  for (let i = 0; i < full; i++) if (ip[i] !== net.bytes[i]) return false;
  const rest = net.prefix % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip[full]! & mask) === (net.bytes[full]! & mask);
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

/** Whether the bits of `bytes` from `prefix` on are all `bit` (0 or 1). */
function hostBitsAll(bytes: Uint8Array, prefix: number, bit: 0 | 1): boolean {
  for (let i = prefix; i < bytes.length * 8; i++) {
    if (((bytes[i >> 3]! >> (7 - (i & 7))) & 1) !== bit) return false;
  }
  return true;
}

/**
 * Why the interface address `cidr` is not a unicast address of one host, or
 * `undefined` when it is. Refused: unspecified, loopback, link-local,
 * multicast, IPv4 class E and limited broadcast, IPv4-mapped IPv6, and the
 * network (subnet-router anycast) or broadcast address of its own prefix
 * (IPv4 up to /30, IPv6 up to /126).
 *
 * @example Usage
 * ```ts
 * import { unicastHostProblem } from "./_ip.ts";
 * unicastHostProblem("10.0.0.5/24"); // undefined
 * unicastHostProblem("224.0.0.1/32"); // "224.0.0.1 is a multicast address"
 * ```
 */
export function unicastHostProblem(cidr: string): string | undefined {
  const c = parseCidr(cidr);
  if (!c) return `"${cidr}" is not an address in CIDR notation`;
  const b = c.bytes;
  const ip = formatIP(b);
  if (c.family === 4) {
    if (b[0] === 0) return `${ip} is in 0.0.0.0/8 (unspecified, "this network")`;
    if (b[0] === 127) return `${ip} is a loopback address`;
    if (b[0] === 169 && b[1] === 254) return `${ip} is a link-local address`;
    if (b[0]! >= 224 && b[0]! < 240) return `${ip} is a multicast address`;
    if (b.every((x) => x === 255)) return `${ip} is the limited broadcast address`;
    if (b[0]! >= 240) return `${ip} is in the reserved range 240.0.0.0/4`;
    if (c.prefix <= 30 && hostBitsAll(b, c.prefix, 0)) {
      return `${ip} is the network address of ${formatCidr(networkOf(c))}`;
    }
    if (c.prefix <= 30 && hostBitsAll(b, c.prefix, 1)) {
      return `${ip} is the broadcast address of ${formatCidr(networkOf(c))}`;
    }
    return undefined;
  }
  if (b.every((x) => x === 0)) return `${ip} is the unspecified address`;
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return `${ip} is a loopback address`;
  if (b[0] === 0xff) return `${ip} is a multicast address`;
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return `${ip} is a link-local address`;
  if (isIPv4Mapped(b)) return `${ip} is an IPv4-mapped address`;
  if (c.prefix <= 126 && hostBitsAll(b, c.prefix, 0)) {
    return `${ip} is the subnet-router anycast address of ${formatCidr(networkOf(c))}`;
  }
  return undefined;
}
