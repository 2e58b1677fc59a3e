/**
 * `/dev/tapN` and the macvtap it should name. devtmpfs is one for the whole
 * node while ifindexes are per namespace, so `/dev/tap<index>` may be the
 * node of another namespace's macvtap with the same index: a node is ours
 * only when its major:minor is the one sysfs gives for our device.
 *
 * @module
 */

import { makedev, readLinkPath, statPath } from "./_libc.ts";

export { makedev };

/**
 * `dev_t` from sysfs's `major:minor` text.
 *
 * @throws {Error} when the text is not `major:minor`.
 */
export function parseDevNumber(text: string): number {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`unexpected sysfs dev value "${text.trim()}"`);
  return makedev(Number(m[1]), Number(m[2]));
}

/**
 * Linux `major()` and `minor()` of a `dev_t` (inverse of {@linkcode makedev}).
 *
 * @example Usage
 * ```ts
 * import { splitDev } from "./_tap_node.ts";
 * splitDev(62977); // [246, 1]
 * ```
 */
export function splitDev(dev: number): [number, number] {
  const hi = Math.floor(dev / 2 ** 32);
  const lo = dev % 2 ** 32;
  return [((lo >>> 8) & 0xfff) | (hi & ~0xfff), (lo & 0xff) | ((lo >>> 12) & ~0xff)];
}

/** `major:minor` of a `dev_t`. */
export function devNumberText(dev: number): string {
  return splitDev(dev).join(":");
}

/**
 * Whether a live device has the number `dev`: `/sys/dev/char/<major:minor>`
 * exists for every registered character device, in any namespace. A node in
 * `/dev` whose number no device has is stale.
 */
export function isLiveDev(dev: number, sysfs = "/sys"): boolean {
  try {
    readLinkPath(`${sysfs}/dev/char/${devNumberText(dev)}`);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Whether `dev` is the tap of a macvtap named `ifname` with ifindex `index`,
 * in whatever namespace the macvtap is: `/sys/dev/char/<major:minor>` links
 * to the device's sysfs path (`…/net/<ifname>/macvtap/tap<index>`), which
 * `readlink` gives across namespaces (a namespace move re-registers the tap,
 * and its minor may change). Names and indexes are per namespace: match
 * under a name no other namespace can have chosen (a random one).
 */
export function isTapOf(dev: number, ifname: string, index: number, sysfs = "/sys"): boolean {
  try {
    const target = readLinkPath(`${sysfs}/dev/char/${devNumberText(dev)}`);
    return target.endsWith(`/net/${ifname}/macvtap/tap${index}`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * `st_rdev` of the character device at `path` (not following a symlink):
 * `undefined` when nothing is there, `null` when it is not a character device.
 */
export function charDevAt(path: string): number | null | undefined {
  try {
    const st = statPath(path, { follow: false });
    return st.isCharDevice ? st.rdev : null;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
