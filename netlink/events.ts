/**
 * Link event subscription (RTNLGRP_LINK) as an async iterator.
 *
 * The socket is opened (inside the namespace) synchronously; waiting for data
 * uses a `nonblocking` poll(2) on a pool thread, which only waits on the
 * already-bound fd, and reading happens synchronously on the main thread.
 *
 * @module
 */

import { PollFds, POLLIN } from "../internal/_libc.ts";
import { inNetns, type Netns } from "./netns.ts";
import { NetlinkSocket } from "./socket.ts";
import type { LinkEvent } from "./types.ts";
import * as C from "./wire/constants.ts";
import { decodeLink, parseMessages } from "./wire/message.ts";

const RTMGRP_LINK = 1 << (C.RTNLGRP_LINK - 1);
/** How often a pending wait re-checks for `close()`. */
const POLL_SLICE_MS = 100;

/**
 * A live subscription: iterate it with `for await`, close it when done
 * (breaking out of the loop closes it too).
 *
 * @example Stop watching from elsewhere, like ending `ip monitor link` with Ctrl-C
 * ```ts ignore
 * import { subscribeLinks } from "./mod.ts";
 *
 * const events = subscribeLinks();
 * setTimeout(() => events.close(), 10_000);
 * for await (const e of events) console.log(e.type, e.link.name);
 * ```
 */
export interface LinkSubscription extends AsyncIterableIterator<LinkEvent>, Disposable {
  /** Stop: the iterator finishes within ~100 ms and the socket is closed. Idempotent. */
  close(): void;
}

/**
 * Subscribe to link events (RTNLGRP_LINK) of `netns` (default: the caller's
 * namespace): links created, changed (flags, carrier, name …) and deleted.
 *
 * @param options The namespace to watch (open, or a path: the socket stays bound to it).
 * @returns The subscription; events queue from now on.
 * @throws {NetlinkError} when the socket cannot be opened or the namespace entered.
 * @example Like `ip -n ctr1 monitor link`
 * ```ts ignore
 * import { openNetns, subscribeLinks } from "./mod.ts";
 *
 * using ns = openNetns("/run/netns/ctr1");
 * using events = subscribeLinks({ netns: ns });
 * for await (const e of events) console.log(e.type, e.link.name, e.link.carrier);
 * ```
 */
export function subscribeLinks(options: { netns?: Netns | string } = {}): LinkSubscription {
  const sock = inNetns(options.netns, () => NetlinkSocket.open({ groups: RTMGRP_LINK }));
  const queue: LinkEvent[] = [];
  let closed = false;
  let waiting = false;
  const pollfd = new PollFds(1);

  async function next(): Promise<IteratorResult<LinkEvent>> {
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

  async function nextEvent(): Promise<IteratorResult<LinkEvent>> {
    while (!closed) {
      const queued = queue.shift();
      if (queued) return { value: queued, done: false };
      const data = sock.tryRecv("recv link events");
      if (data) {
        for (const m of parseMessages(data)) {
          if (m.type === C.RTM_NEWLINK || m.type === C.RTM_DELLINK) {
            queue.push({
              type: m.type === C.RTM_NEWLINK ? "new" : "del",
              link: decodeLink(m.payload),
            });
          }
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

  const sub: LinkSubscription = {
    next,
    return(): Promise<IteratorResult<LinkEvent>> {
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
