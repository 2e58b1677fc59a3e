/**
 * Netlink event subscriptions (link, address, route and neighbour
 * notifications) as async iterators.
 *
 * The socket is opened (inside the namespace) synchronously; waiting for data
 * uses a `nonblocking` poll(2) on a pool thread, which only waits on the
 * already-bound fd, and reading happens synchronously on the main thread.
 *
 * @module
 */

import { PollFds, POLLIN } from "../internal/_libc.ts";
import { inNetns, type NetnsRef } from "./netns.ts";
import { NetlinkSocket } from "./socket.ts";
import type { LinkEvent, NetlinkEvent } from "./types.ts";
import * as C from "./wire/constants.ts";
import { decodeAddress, decodeLink, decodeRoute, parseMessages } from "./wire/message.ts";
import { decodeNeigh } from "./wire/neigh.ts";

/** How often a pending wait re-checks for `close()`. */
const POLL_SLICE_MS = 100;

/** What {@linkcode subscribe} can watch (`ip monitor link address route neigh`). */
export type EventObject = "link" | "addr" | "route" | "neigh";

/** The multicast groups of each object (IPv4 and IPv6 both, for addresses and routes). */
const GROUPS: Record<EventObject, readonly number[]> = {
  link: [C.RTNLGRP_LINK],
  addr: [C.RTNLGRP_IPV4_IFADDR, C.RTNLGRP_IPV6_IFADDR],
  route: [C.RTNLGRP_IPV4_ROUTE, C.RTNLGRP_IPV6_ROUTE],
  neigh: [C.RTNLGRP_NEIGH],
};

/**
 * Options for {@linkcode subscribe}.
 *
 * @example Addresses and routes of a namespace given by path
 * ```ts
 * import type { SubscribeOptions } from "./mod.ts";
 *
 * const options: SubscribeOptions = { netns: "/run/netns/ctr1", objects: ["addr", "route"] };
 * ```
 */
export interface SubscribeOptions {
  /** The namespace to watch (open, or a path); default: the caller's. The socket stays bound to it. */
  netns?: NetnsRef;
  /** What to watch; default every object (`ip monitor all`). */
  objects?: readonly EventObject[];
}

/**
 * A live subscription: iterate it with `for await`, close it when done
 * (breaking out of the loop closes it too).
 *
 * @example Stop watching from elsewhere, like ending `ip monitor link` with Ctrl-C
 * ```ts
 * import { subscribe } from "./mod.ts";
 *
 * const events = subscribe({ objects: ["link"] });
 * setTimeout(() => events.close(), 200);
 * for await (const e of events) console.log(e.object, e.type);
 * ```
 */
export interface Subscription<E> extends AsyncIterableIterator<E>, Disposable {
  /** Stop: the iterator finishes within ~100 ms and the socket is closed. Idempotent. */
  close(): void;
}

/**
 * A live link subscription ({@linkcode subscribeLinks}).
 *
 * @example Its type
 * ```ts
 * import type { LinkEvent, LinkSubscription, Subscription } from "./mod.ts";
 *
 * const same = (s: LinkSubscription): Subscription<LinkEvent> => s;
 * ```
 */
export type LinkSubscription = Subscription<LinkEvent>;

/**
 * Subscribe to events of `netns` (default: the caller's namespace): links,
 * addresses (IPv4 and IPv6), routes (IPv4 and IPv6, every table) and
 * neighbours created, changed and deleted, as `ip monitor` shows them. Each
 * event says which `object` it is about.
 *
 * @param options The namespace to watch and which objects (default all).
 * @returns The subscription; events queue from now on.
 * @throws {NetlinkError} when the socket cannot be opened or the namespace entered.
 * @throws {TypeError} for an unknown object name.
 * @example Like `ip monitor address route`, here in our own namespace
 * ```ts
 * import { subscribe } from "./mod.ts";
 *
 * using events = subscribe({ objects: ["addr", "route"] });
 * setTimeout(() => events.close(), 200); // nothing may happen meanwhile
 * for await (const e of events) {
 *   if (e.object === "addr") console.log(e.type, e.addr.cidr);
 *   if (e.object === "route") console.log(e.type, e.route.dst, e.route.protocol);
 * }
 * ```
 */
export function subscribe(options: SubscribeOptions = {}): Subscription<NetlinkEvent> {
  const objects = options.objects ?? ["link", "addr", "route", "neigh"];
  let groups = 0;
  for (const o of objects) {
    const gs = Object.hasOwn(GROUPS, o) ? GROUPS[o] : undefined;
    if (!gs) throw new TypeError(`Unknown event object "${o}" (expected link, addr, route, neigh)`);
    for (const g of gs) groups |= 1 << (g - 1);
  }
  return watch(options.netns, groups, decodeEvent);
}

/**
 * Subscribe to link events (RTNLGRP_LINK) of `netns` (default: the caller's
 * namespace): links created, changed (flags, carrier, name …) and deleted.
 * {@linkcode subscribe} with `objects: ["link"]`, typed for links.
 *
 * @param options The namespace to watch (open, or a path: the socket stays bound to it).
 * @returns The subscription; events queue from now on.
 * @throws {NetlinkError} when the socket cannot be opened or the namespace entered.
 * @example Like `ip -n ctr1 monitor link`
 * ```ts
 * import { subscribeLinks } from "./mod.ts";
 *
 * // Needs /run/netns/ctr1: type-checked, not run by `deno test --doc`.
 * export async function watchCtr1(): Promise<void> {
 *   using events = subscribeLinks({ netns: "/run/netns/ctr1" });
 *   for await (const e of events) console.log(e.type, e.link.name, e.link.carrier);
 * }
 * ```
 */
export function subscribeLinks(options: { netns?: NetnsRef } = {}): LinkSubscription {
  return watch(
    options.netns,
    1 << (C.RTNLGRP_LINK - 1),
    (type, payload) => decodeEvent(type, payload) as LinkEvent | undefined,
  );
}

function decodeEvent(type: number, payload: Uint8Array): NetlinkEvent | undefined {
  switch (type) {
    case C.RTM_NEWLINK:
    case C.RTM_DELLINK:
      return {
        object: "link",
        type: type === C.RTM_NEWLINK ? "new" : "del",
        link: decodeLink(payload),
      };
    case C.RTM_NEWADDR:
    case C.RTM_DELADDR: {
      const addr = decodeAddress(payload);
      return addr && { object: "addr", type: type === C.RTM_NEWADDR ? "new" : "del", addr };
    }
    case C.RTM_NEWROUTE:
    case C.RTM_DELROUTE: {
      const route = decodeRoute(payload);
      return route && { object: "route", type: type === C.RTM_NEWROUTE ? "new" : "del", route };
    }
    case C.RTM_NEWNEIGH:
    case C.RTM_DELNEIGH: {
      const neigh = decodeNeigh(payload);
      return neigh && { object: "neigh", type: type === C.RTM_NEWNEIGH ? "new" : "del", neigh };
    }
  }
  return undefined;
}

function watch<E>(
  netns: NetnsRef | undefined,
  groups: number,
  decode: (type: number, payload: Uint8Array) => E | undefined,
): Subscription<E> {
  const sock = inNetns(netns, () => NetlinkSocket.open({ groups }));
  const queue: E[] = [];
  let closed = false;
  let waiting = false;
  const pollfd = new PollFds(1);

  async function next(): Promise<IteratorResult<E>> {
    try {
      return await nextEvent();
    } catch (err) {
      // e.g. ENOBUFS after an overrun: the iterator ends with the error, and
      // `for await` does not call return() then, so close the socket here.
      closed = true;
      sock.close();
      throw err;
    }
  }

  async function nextEvent(): Promise<IteratorResult<E>> {
    while (!closed) {
      const queued = queue.shift();
      if (queued !== undefined) return { value: queued, done: false };
      const data = sock.tryRecv("recv events");
      if (data) {
        for (const m of parseMessages(data)) {
          const e = decode(m.type, m.payload);
          if (e !== undefined) queue.push(e);
        }
        continue;
      }
      pollfd.set(0, sock.fd, POLLIN);
      waiting = true;
      try {
        await pollfd.poll(POLL_SLICE_MS);
      } finally {
        waiting = false;
      }
    }
    sock.close();
    return { value: undefined, done: true };
  }

  const sub: Subscription<E> = {
    next,
    return(): Promise<IteratorResult<E>> {
      sub.close();
      return Promise.resolve({ value: undefined, done: true });
    },
    close(): void {
      closed = true;
      // A pending wait closes the socket when it returns; otherwise close now.
      if (!waiting) sock.close();
    },
    [Symbol.asyncIterator]() {
      return sub;
    },
    [Symbol.dispose]() {
      sub.close();
    },
  };
  return sub;
}
