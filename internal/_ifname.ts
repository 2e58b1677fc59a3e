/**
 * Interface-name rules shared by the CNI plugin and the device plugin.
 *
 * One rule maps a device-plugin device ID to the name of the macvtap that
 * backs it, so `Allocate` (device plugin) and `deviceID` import (CNI) always
 * agree.
 *
 * @module
 */

import { fnv1a32, fnv1a64 } from "./_fnv.ts";
import { xxhash64 } from "./_xxhash64.ts";

/** Longest interface name the kernel accepts (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

/** Prefix of every macvtap the device plugin creates. */
export const DEVICE_IFNAME_PREFIX = "mvt";

/**
 * Why `name` is not a legal interface name, or `undefined` when it is.
 *
 * Mirrors the kernel's `dev_valid_name()`: 1 to 15 bytes, not `.` or `..`,
 * no `/`, `:` or whitespace; and no control characters (a NUL would make the
 * kernel cut the name short and act on another interface). A `%` makes the
 * name a kernel template (`eth%d` becomes the first free `eth0`, `eth1`, …),
 * so the caller would not know the name it created: refused too.
 */
export function ifnameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (new TextEncoder().encode(name).length > IFNAME_MAX) {
    return `is longer than ${IFNAME_MAX} bytes`;
  }
  if (name === "." || name === "..") return `may not be "${name}"`;
  if (/[/:\s]/.test(name)) return "contains '/', ':' or whitespace";
  // The kernel's isspace() on each byte: also 0xa0 (inside UTF-8 of e.g. "à").
  if (new TextEncoder().encode(name).some((b) => b === 0xa0)) {
    return "contains the byte 0xa0, which the kernel takes for whitespace";
  }
  if (name.includes("%")) return "contains '%' (a kernel name template)";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return "contains a control character";
  return undefined;
}

/**
 * The host interface name of the macvtap backing device-plugin device `deviceId`:
 * `mvt` followed by 12 hex digits of the FNV-1a-64 hash of the ID (15 chars).
 *
 * @example Usage
 * ```ts
 * import { deviceIfname } from "./_ifname.ts";
 * deviceIfname("lan-7"); // "mvt" + 12 hex digits
 * ```
 */
export function deviceIfname(deviceId: string): string {
  return DEVICE_IFNAME_PREFIX + fnv1a64(deviceId).toString(16).padStart(16, "0").slice(0, 12);
}

/**
 * The host interface name KubeVirt's macvtap device plugin gives the device
 * of `deviceId`: `mvt` and the low 48 bits of xxHash64 of the ID, in 12 hex
 * digits (kubevirt/macvtap-cni `TemporaryInterfaceName`). Devices it made
 * are imported by this name.
 *
 * @example Usage
 * ```ts
 * import { kubevirtDeviceIfname } from "./_ifname.ts";
 * kubevirtDeviceIfname("dataplaneMvp0"); // "mvt" + 12 hex digits
 * ```
 */
export function kubevirtDeviceIfname(deviceId: string): string {
  return DEVICE_IFNAME_PREFIX +
    (xxhash64(deviceId) & 0xffffffffffffn).toString(16).padStart(12, "0");
}

/**
 * Whether `deviceId` is in the form KubeVirt's device plugin gives its IDs
 * (`<resource>Mvp<n>`): its `/dev/tapN` was the kernel's choice, so the
 * device cannot be re-created with the same node.
 */
export function isKubevirtDeviceId(deviceId: string): boolean {
  return /Mvp\d+$/.test(deviceId);
}

/** Lowest ifindex {@linkcode tapIndexFor} hands out. */
export const TAP_INDEX_BASE = 0x10000;
/** Size of the device ifindex range (2^24). */
export const TAP_INDEX_SPAN = 0x1000000;
/** How many indices {@linkcode tapIndexCandidates} offers (the preferred one, then the next ones). */
export const TAP_INDEX_PROBES = 32;

/**
 * The preferred ifindex of device-plugin device `id` (the N of `/dev/tapN`):
 * `TAP_INDEX_BASE + fnv1a32(id) mod 2^24`. High enough never to collide with
 * the few links of a pod namespace, and the same every time the device is
 * (re)created, by `Allocate` or by the CNI's recreate at ADD.
 *
 * @example Usage
 * ```ts
 * import { tapIndexFor } from "./_ifname.ts";
 * const n = tapIndexFor("lan-7"); // 65536 ≤ n < 65536 + 2^24, always the same for "lan-7"
 * ```
 */
export function tapIndexFor(id: string): number {
  return TAP_INDEX_BASE + (fnv1a32(id) % TAP_INDEX_SPAN);
}

/**
 * The ifindex candidates of device `id`, in the order both creators try
 * them when the kernel answers EBUSY (index taken): the preferred
 * {@linkcode tapIndexFor}, then the following ones, wrapping in the range.
 *
 * @example Usage
 * ```ts
 * import { tapIndexCandidates, tapIndexFor } from "./_ifname.ts";
 * tapIndexCandidates("lan-7")[0] === tapIndexFor("lan-7"); // true
 * ```
 */
export function tapIndexCandidates(id: string): number[] {
  const preferred = tapIndexFor(id) - TAP_INDEX_BASE;
  return Array.from(
    { length: TAP_INDEX_PROBES },
    (_, probe) => TAP_INDEX_BASE + ((preferred + probe) % TAP_INDEX_SPAN),
  );
}

/**
 * The temporary name ADD gives the macvtap of attachment
 * (`containerId`, `ifname`) until it renames it: `mvtmp` + 10 hex digits of
 * FNV-1a-64 of both. Deterministic, so a DEL after an ADD that was killed
 * between create and rename finds and removes it.
 *
 * @example Usage
 * ```ts
 * import { tempIfname } from "./_ifname.ts";
 * tempIfname("ctr1", "eth0"); // "mvtmp" + 10 hex digits
 * ```
 */
export function tempIfname(containerId: string, ifname: string): string {
  return "mvtmp" +
    fnv1a64(`${containerId}\u0000${ifname}`).toString(16).padStart(16, "0").slice(0, 10);
}

/** Whether `name` has the form of {@linkcode deviceIfname} (a device plugin's macvtap). */
export function isDeviceIfname(name: string): boolean {
  return /^mvt[0-9a-f]{12}$/.test(name);
}

/**
 * A one-time name DEL gives a link before matching it to its `/dev/tapN`:
 * random, so no other namespace's macvtap can bear it.
 */
export function delIfname(): string {
  return `mvd${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Whether `name` has the form of {@linkcode delIfname} (a DEL killed half-way left it). */
export function isDelIfname(name: string): boolean {
  return /^mvd[0-9a-f]{12}$/.test(name);
}

/** Whether `name` has the form of {@linkcode tempIfname} (an ADD's link before its rename). */
export function isTempIfname(name: string): boolean {
  return /^mvtmp[0-9a-f]{10}$/.test(name);
}

/**
 * The alias (`IFLA_IFALIAS`) ADD gives the container link of attachment
 * (`network`, `containerId`, `ifname`): `macvtap-cni/` + 16 hex digits of
 * FNV-1a-64 of the three. DEL and GC delete a link only when it carries
 * the marker its record names, so a link of the same name that another
 * network made (or a namespace path re-used by another pod) is never taken
 * for this attachment's.
 *
 * @example Usage
 * ```ts
 * import { linkMarker } from "./_ifname.ts";
 * linkMarker("lan", "ctr1", "eth0"); // "macvtap-cni/" + 16 hex digits
 * ```
 */
export function linkMarker(network: string, containerId: string, ifname: string): string {
  return "macvtap-cni/" +
    fnv1a64(`${network}\u0000${containerId}\u0000${ifname}`).toString(16).padStart(16, "0");
}

/** The alias of a hostrouteif the plugin created (and so may bring up and tune). */
export const HOSTROUTEIF_MARKER = "macvtap-cni/hostrouteif";
