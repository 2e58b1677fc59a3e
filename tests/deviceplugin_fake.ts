/**
 * In-memory {@linkcode LinkBackend} and {@linkcode TapNodeFs} for
 * device-plugin tests that need no root.
 *
 * @module
 */

import type { LinkBackend, TapNodeFs } from "../deviceplugin/mod.ts";
import { NetlinkError } from "../netlink/mod.ts";
import type { Link, LinkEvent } from "../netlink/types.ts";

/** A fake host: links by name, events pushed to subscribers. */
export class FakeHost implements LinkBackend {
  links = new Map<string, Link>();
  #next = 2;
  #subs = new Set<{ push(e: LinkEvent): void; close(): void }>();

  /** Subscriptions currently open. */
  get subscriptions(): number {
    return this.#subs.size;
  }

  /** Add (or replace) a link like a NIC with carrier. */
  put(name: string, fields: Partial<Link> = {}): Link {
    const link: Link = {
      index: this.links.get(name)?.index ?? this.#next++,
      name,
      mtu: 1500,
      flags: 0,
      up: true,
      promisc: false,
      operState: "UP",
      carrier: true,
      type: 1,
      ...fields,
    };
    this.links.set(name, link);
    this.#emit({ object: "link", type: "new", link });
    return link;
  }

  remove(name: string): void {
    const link = this.links.get(name);
    if (!link) return;
    this.links.delete(name);
    this.#emit({ object: "link", type: "del", link });
    for (const l of [...this.links.values()]) {
      if (l.parentIndex === link.index) this.remove(l.name);
    }
  }

  #emit(e: LinkEvent): void {
    for (const s of this.#subs) s.push(e);
  }

  list(): Link[] {
    return [...this.links.values()];
  }
  find(name: string): Link | undefined {
    return this.links.get(name);
  }
  addMacvtap(
    spec: { name: string; parent: number; mode: Link["mode"] & string; index: number },
  ): void {
    if (this.links.has(spec.name)) throw new NetlinkError("RTM_NEWLINK", 17);
    // The kernel looks ifi_index up first: a taken index is EEXIST too (6.18).
    if ([...this.links.values()].some((l) => l.index === spec.index)) {
      throw new NetlinkError("RTM_NEWLINK", 17);
    }
    const link: Link = {
      index: spec.index,
      name: spec.name,
      kind: "macvtap",
      mode: spec.mode,
      parentIndex: spec.parent,
      mtu: 1500,
      flags: 0,
      up: false,
      promisc: false,
      operState: "DOWN",
      type: 1,
    };
    this.links.set(spec.name, link);
    this.#emit({ object: "link", type: "new", link });
  }
  delete(name: string): boolean {
    if (!this.links.has(name)) return false;
    this.remove(name);
    return true;
  }
  subscribe(): AsyncIterableIterator<LinkEvent> & { close(): void } {
    const queue: LinkEvent[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const sub = {
      push: (e: LinkEvent) => {
        queue.push(e);
        wake?.();
      },
      close: () => {
        closed = true;
        this.#subs.delete(sub);
        wake?.();
      },
    };
    this.#subs.add(sub);
    const it = {
      async next(): Promise<IteratorResult<LinkEvent>> {
        while (!closed) {
          const e = queue.shift();
          if (e) return { value: e, done: false };
          await new Promise<void>((r) => wake = r);
          wake = undefined;
        }
        return { value: undefined, done: true };
      },
      return(): Promise<IteratorResult<LinkEvent>> {
        sub.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      close: () => sub.close(),
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
  close(): void {}
}

/** A fake `/dev` + sysfs: every macvtap gets major 246, minor = creation order. */
export class FakeTapFs implements TapNodeFs {
  nodes = new Map<string, number>();
  minors = new Map<string, number>();
  mknods = 0;
  readDevNumber(ifname: string, _index: number): string {
    let m = this.minors.get(ifname);
    if (m === undefined) this.minors.set(ifname, m = this.minors.size + 1);
    return `246:${m}`;
  }
  charDev(path: string): number | undefined {
    return this.nodes.get(path);
  }
  /** Device numbers that a "live" device has (another namespace's tap). */
  live = new Set<number>();
  isLive(dev: number): boolean {
    return this.live.has(dev);
  }
  remove(path: string): void {
    this.nodes.delete(path);
  }
  mknod(path: string, major: number, minor: number): void {
    this.mknods++;
    this.nodes.set(path, (major << 8) | minor);
  }
}
