/**
 * Per-namespace sysctls under `/proc/sys`. The file is opened by the main
 * thread while it is inside the namespace, so the value lands there.
 *
 * @module
 */

import { inNetns, type Netns } from "./netns.ts";

/** `/proc/sys` path of a key in `a/b/c` or `a.b.c` form (the dotted form only without dotted names). */
function path(key: string): string {
  const k = (key.includes("/") ? key : key.replaceAll(".", "/")).replace(/^\/+/, "");
  if (k.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new TypeError(`Invalid sysctl key "${key}"`);
  }
  return `/proc/sys/${k}`;
}

/**
 * Write a sysctl, e.g. `net/ipv4/conf/eth0/arp_notify`, in `netns` (default:
 * the caller's). Interface names with dots must use the `/` form.
 *
 * @example Usage
 * ```ts ignore
 * writeSysctl("net/ipv4/conf/eth0/arp_notify", "1", ns);
 * // like `ip netns exec ctr1 sysctl -w net.ipv4.conf.eth0.arp_notify=1`
 * ```
 */
export function writeSysctl(key: string, value: string, netns?: Netns): void {
  const p = path(key);
  inNetns(netns, () => Deno.writeTextFileSync(p, value));
}

/**
 * Read a sysctl in `netns` (default: the caller's), trimmed.
 *
 * @example Usage
 * ```ts ignore
 * readSysctl("net/ipv6/conf/eth0/disable_ipv6", ns); // like `sysctl net.ipv6.conf.eth0.disable_ipv6`
 * ```
 */
export function readSysctl(key: string, netns?: Netns): string {
  const p = path(key);
  return inNetns(netns, () => Deno.readTextFileSync(p)).trim();
}
