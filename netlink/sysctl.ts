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
 * @param key `a/b/c` or `a.b.c` under `/proc/sys`.
 * @param value The text to write.
 * @param netns The namespace (open, or a path); its `/proc/sys/net` is the one written.
 * @throws {TypeError} for a key with `.`/`..`/empty segments.
 * @throws {Deno.errors.NotFound} for a key that does not exist there.
 * @example Like `ip netns exec ctr1 sysctl -w net.ipv4.conf.eth0.arp_notify=1`
 * ```ts ignore
 * import { openNetns, writeSysctl } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * writeSysctl("net/ipv4/conf/eth0/arp_notify", "1", ns);
 * ```
 */
export function writeSysctl(key: string, value: string, netns?: Netns | string): void {
  const p = path(key);
  inNetns(netns, () => Deno.writeTextFileSync(p, value));
}

/**
 * Read a sysctl in `netns` (default: the caller's), trimmed.
 *
 * @param key `a/b/c` or `a.b.c` under `/proc/sys`.
 * @param netns The namespace to read in (open, or a path).
 * @returns The value without the trailing newline.
 * @throws {TypeError} for a key with `.`/`..`/empty segments.
 * @throws {Deno.errors.NotFound} for a key that does not exist there.
 * @example Like `ip netns exec ctr1 sysctl -n net.ipv6.conf.eth0.disable_ipv6`
 * ```ts ignore
 * import { openNetns, readSysctl } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * console.log(readSysctl("net/ipv6/conf/eth0/disable_ipv6", ns));
 * ```
 */
export function readSysctl(key: string, netns?: Netns | string): string {
  const p = path(key);
  return inNetns(netns, () => Deno.readTextFileSync(p)).trim();
}
