/**
 * `NetlinkHandle`: one rtnetlink socket bound to one network namespace, with
 * operations grouped by object.
 *
 * @module
 */

import { AddrOps } from "./addr.ts";
import { LinkOps } from "./link.ts";
import { NeighOps } from "./neigh.ts";
import { inNetns, type Netns, type NetnsRef, openNetns } from "./netns.ts";
import { RouteOps } from "./route.ts";
import { NetlinkSocket } from "./socket.ts";
import { forgetSocket, rememberSocket } from "./_sockets.ts";
import type { LinkRef } from "./types.ts";

/**
 * Options for {@linkcode NetlinkHandle.open}.
 *
 * @example A handle on a namespace given by path, with a 2 s receive timeout
 * ```ts
 * import { type HandleOptions, NetlinkHandle } from "./mod.ts";
 *
 * const options: HandleOptions = { netns: "/proc/self/ns/net", timeoutMs: 2_000 };
 * using h = NetlinkHandle.open(options);
 * console.log(h.links.get("lo").index); // ip link show lo
 * ```
 */
export interface HandleOptions {
  /** Namespace the handle works in (an open `Netns` or a path); default: the caller's. */
  netns?: NetnsRef;
  /** Receive timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
}

/**
 * A netlink handle bound to one network namespace, with operations grouped
 * by object: {@linkcode NetlinkHandle.links}, {@linkcode NetlinkHandle.addrs},
 * {@linkcode NetlinkHandle.routes} and {@linkcode NetlinkHandle.neighs}. Like `ip -n NAME …`, it acts on the
 * namespace it was opened for. The socket is opened on first use (inside the
 * namespace, in a synchronous section) and kept until
 * {@linkcode NetlinkHandle.close}; all further I/O happens from the caller's
 * namespace.
 *
 * @example Create a macvtap directly inside a container namespace
 * ```ts
 * import { NetlinkHandle, openNetns } from "./mod.ts";
 *
 * // Needs root, eth1 and /run/netns/ctr1: type-checked, not run by `deno test --doc`.
 * export function attach(): void {
 *   using host = NetlinkHandle.open();
 *   using ns = openNetns("/run/netns/ctr1");
 *   // ip link add link eth1 name eth0 netns ctr1 up type macvtap mode bridge
 *   host.links.add({ kind: "macvtap", name: "eth0", parent: "eth1", netns: ns, up: true });
 *   using ctr = NetlinkHandle.open({ netns: ns });
 *   // ip -n ctr1 addr add 10.99.0.2/24 dev eth0
 *   ctr.addrs.add("eth0", "10.99.0.2/24");
 * }
 * ```
 */
export class NetlinkHandle implements Disposable {
  #sock: NetlinkSocket | undefined;
  #netns: Netns | undefined;
  #ownsNetns: boolean;
  #timeoutMs: number;
  #closed = false;
  /** Link operations (`ip link`). */
  readonly links: LinkOps;
  /** Address operations (`ip addr`). */
  readonly addrs: AddrOps;
  /** Route operations (`ip route`). */
  readonly routes: RouteOps;
  /** Neighbour operations (`ip neigh`). */
  readonly neighs: NeighOps;

  private constructor(netns: Netns | undefined, owns: boolean, timeoutMs: number) {
    this.#netns = netns;
    this.#ownsNetns = owns;
    this.#timeoutMs = timeoutMs;
    const sock = () => this.#socket();
    this.links = new LinkOps(sock);
    const ifindex = (ref: LinkRef) => typeof ref === "number" ? ref : this.links.get(ref).index;
    this.addrs = new AddrOps(sock, ifindex);
    this.routes = new RouteOps(sock, ifindex);
    this.neighs = new NeighOps(sock, ifindex);
  }

  /**
   * Open a handle on the caller's namespace or on `options.netns`. A path is
   * opened here and closed with the handle; an open `Netns` stays the
   * caller's to close (it must stay open while the handle is used). No socket
   * is opened yet.
   *
   * @param options The namespace (default: the caller's) and receive timeout.
   * @returns The handle; hold it with `using`.
   * @throws {NetnsNotFoundError} when a namespace path does not exist.
   * @throws {NetlinkError} `EINVAL` when the path is not a network namespace.
   * @example Work in a namespace given by path, like `ip -n ctr1 link show`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open({ netns: "/proc/self/ns/net" });
   * console.log(h.links.list().map((l) => l.name));
   * ```
   */
  static open(options: HandleOptions = {}): NetlinkHandle {
    const ns = typeof options.netns === "string" ? openNetns(options.netns) : options.netns;
    return new NetlinkHandle(ns, typeof options.netns === "string", options.timeoutMs ?? 10_000);
  }

  /**
   * The namespace this handle works in (`undefined`: the caller's).
   *
   * @example Which namespace, like `ip netns identify`
   * ```ts
   * import assert from "node:assert/strict";
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open({ netns: "/proc/self/ns/net" });
   * assert.equal(h.netns?.path, "/proc/self/ns/net");
   * ```
   */
  get netns(): Netns | undefined {
    return this.#netns;
  }

  /** The socket, opened (inside the namespace) on first use and kept until `close()`. */
  #socket(): NetlinkSocket {
    if (this.#sock) return this.#sock;
    if (this.#closed) throw new Error("NetlinkHandle is closed; open a new one");
    const timeoutMs = this.#timeoutMs;
    const sock = inNetns(this.#netns, () => NetlinkSocket.open({ timeoutMs }));
    if (this.#netns) rememberSocket(this.#netns, sock);
    return this.#sock = sock;
  }

  /**
   * Close the socket (and the namespace, when the handle opened it from a
   * path). Idempotent and final: any operation afterwards throws an `Error`
   * ("NetlinkHandle is closed") instead of opening a new socket.
   *
   * @example Explicit close (`using` does it for you)
   * ```ts
   * import assert from "node:assert/strict";
   * import { NetlinkHandle } from "./mod.ts";
   *
   * const h = NetlinkHandle.open();
   * h.links.get("lo"); // ip link show lo
   * h.close();
   * assert.throws(() => h.links.get("lo"), /NetlinkHandle is closed/);
   * ```
   */
  close(): void {
    this.#closed = true;
    if (this.#netns && this.#sock) forgetSocket(this.#netns, this.#sock);
    this.#sock?.close();
    this.#sock = undefined;
    if (this.#ownsNetns) this.#netns?.close();
  }

  /** Same as {@linkcode NetlinkHandle.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
