/**
 * MAC address validation for the config (folder-private).
 *
 * @module
 */

const MAC_RE = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$/;

/**
 * A unicast, non-zero Ethernet MAC normalized to lower-case `aa:bb:cc:dd:ee:ff`
 * (`:` or `-` separators accepted), or `{problem}` saying why not.
 */
export function normalizeMac(text: string): string | { problem: string } {
  if (!MAC_RE.test(text)) return { problem: "is not a MAC address (expected aa:bb:cc:dd:ee:ff)" };
  const mac = text.toLowerCase().replaceAll("-", ":");
  if (mac === "00:00:00:00:00:00") return { problem: "is the all-zero MAC address" };
  if (parseInt(mac.slice(0, 2), 16) & 1) return { problem: "is a multicast MAC address" };
  return mac;
}
