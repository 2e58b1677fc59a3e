/**
 * Per-namespace sysctls under `/proc/sys`. The file is opened by the main
 * thread while it is inside the namespace, so the value lands there.
 *
 * The file is opened, read and written through libc, not `Deno.*File*`:
 * Deno asks for `--allow-all` before it writes anything under `/proc`, and
 * `--allow-ffi`, which netlink needs anyway, is the permission that covers it.
 *
 * @module
 */

import { cstr, errno, libc, O_CLOEXEC, O_NOCTTY, O_RDONLY, O_WRONLY } from "../internal/_libc.ts";
import { ERRNO } from "../internal/_errno.ts";
import { NetlinkError } from "./errors.ts";
import { inNetns, type NetnsRef } from "./netns.ts";

/** Longest value read back (a sysctl file is one line; the longest are a few KiB). */
const MAX_VALUE_BYTES = 64 * 1024;

/** `/proc/sys` path of a key in `a/b/c` or `a.b.c` form (the dotted form only without dotted names). */
function path(key: string): string {
  const k = (key.includes("/") ? key : key.replaceAll(".", "/")).replace(/^\/+/, "");
  if (k.includes("\0") || k.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new TypeError(`Invalid sysctl key "${key}"`);
  }
  return `/proc/sys/${k}`;
}

/** open(2) `p`, or the error naming it: `NotFound` for a missing key, as `Deno.openSync` would. */
function openKey(p: string, flags: number, what: string): number {
  const fd = libc().open(cstr(p), flags | O_CLOEXEC | O_NOCTTY);
  if (fd >= 0) return fd;
  const e = errno();
  if (e === ERRNO.ENOENT) throw new Deno.errors.NotFound(`No sysctl ${p}`);
  throw new NetlinkError("open", e, undefined, `Cannot ${what} sysctl ${p}`);
}

/**
 * Write a sysctl, e.g. `net/ipv4/conf/eth0/arp_notify`, in `netns` (default:
 * the caller's). Interface names with dots must use the `/` form. Needs
 * only `--allow-ffi` (see the module doc), and root for most keys.
 *
 * @param key `a/b/c` or `a.b.c` under `/proc/sys`.
 * @param value The text to write.
 * @param netns The namespace (open, or a path); its `/proc/sys/net` is the one written.
 * @throws {TypeError} for a key with `.`/`..`/empty segments.
 * @throws {Deno.errors.NotFound} for a key that does not exist there.
 * @throws {NetlinkError} `EACCES`/`EPERM` without the right, `EINVAL` for a value the key refuses.
 * @example Like `ip netns exec ctr1 sysctl -w net.ipv4.conf.eth0.arp_notify=1`
 * ```ts
 * import { openNetns, writeSysctl } from "./mod.ts";
 *
 * // Needs root and the namespace ctr1: type-checked, not run by `deno test --doc`.
 * export function arpNotify(): void {
 *   using ns = openNetns("/run/netns/ctr1");
 *   writeSysctl("net/ipv4/conf/eth0/arp_notify", "1", ns);
 * }
 * ```
 */
export function writeSysctl(key: string, value: string, netns?: NetnsRef): void {
  const p = path(key);
  const bytes = new TextEncoder().encode(value);
  inNetns(netns, () => {
    const c = libc();
    const fd = openKey(p, O_WRONLY, "write");
    try {
      // A sysctl takes the value in one write(2); a short one is an error.
      const n = Number(c.write(fd, bytes, BigInt(bytes.length)));
      if (n < 0) throw new NetlinkError("write", errno(), undefined, `Cannot write sysctl ${p}`);
      if (n !== bytes.length) {
        throw new NetlinkError("write", ERRNO.EIO, undefined, `Short write to sysctl ${p}`);
      }
    } finally {
      c.close(fd);
    }
  });
}

/**
 * Read a sysctl in `netns` (default: the caller's), trimmed. Needs only
 * `--allow-ffi`.
 *
 * @param key `a/b/c` or `a.b.c` under `/proc/sys`.
 * @param netns The namespace to read in (open, or a path).
 * @returns The value without the trailing newline.
 * @throws {TypeError} for a key with `.`/`..`/empty segments.
 * @throws {Deno.errors.NotFound} for a key that does not exist there.
 * @throws {NetlinkError} `EACCES` for a key only root may read.
 * @example Like `sysctl -n net.ipv4.ip_forward` (runs anywhere)
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSysctl } from "./mod.ts";
 *
 * assert.match(readSysctl("net.ipv4.ip_forward"), /^[01]$/);
 * ```
 */
export function readSysctl(key: string, netns?: NetnsRef): string {
  const p = path(key);
  const text = inNetns(netns, () => {
    const c = libc();
    const fd = openKey(p, O_RDONLY, "read");
    try {
      const buf = new Uint8Array(MAX_VALUE_BYTES);
      let len = 0;
      for (;;) {
        const n = Number(c.read(fd, buf.subarray(len), BigInt(buf.length - len)));
        if (n < 0) throw new NetlinkError("read", errno(), undefined, `Cannot read sysctl ${p}`);
        if (n === 0 || (len += n) === buf.length) break;
      }
      return new TextDecoder().decode(buf.subarray(0, len));
    } finally {
      c.close(fd);
    }
  });
  return text.trim();
}
