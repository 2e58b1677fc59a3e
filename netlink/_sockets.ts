/**
 * The open rtnetlink socket of a handle on a `Netns`, by namespace object:
 * `links.add()` reads a link it created in another namespace back through it,
 * instead of opening a socket there for one request (≈0.25 ms). The handle
 * keeps owning its socket; this only remembers it while it is open.
 *
 * @module
 */

import type { Netns } from "./netns.ts";
import type { NetlinkSocket } from "./socket.ts";

const byNetns = new WeakMap<Netns, NetlinkSocket>();

/** Remember `sock` as an open socket inside `ns`. */
export function rememberSocket(ns: Netns, sock: NetlinkSocket): void {
  byNetns.set(ns, sock);
}

/** Forget `sock` (when its handle closes it). */
export function forgetSocket(ns: Netns, sock: NetlinkSocket): void {
  if (byNetns.get(ns) === sock) byNetns.delete(ns);
}

/** An open, idle socket inside `ns`, if a handle has one. */
export function socketIn(ns: Netns): NetlinkSocket | undefined {
  const sock = byNetns.get(ns);
  return sock && !sock.closed && !sock.busy ? sock : undefined;
}
