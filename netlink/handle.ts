/**
 * `NetlinkHandle`: one rtnetlink socket bound to one network namespace, with
 * operations grouped by object.
 *
 * @module
 */

import { AddrOps } from "./addr.ts";
import { LinkOps } from "./link.ts";
import { inNetns, type Netns, openNetns } from "./netns.ts";
import { RouteOps } from "./route.ts";
import { NetlinkSocket } from "./socket.ts";

/** Options for {@linkcode NetlinkHandle.open}. */
export interface HandleOptions {
  /** Namespace (open `Netns` or path) the handle works in; default: the caller's. */
  netns?: Netns | string;
  /** Receive timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
}

/**
 * A netlink handle bound to one network namespace. The socket is opened on
 * first use (inside the namespace, in a synchronous section) and kept.
 *
 * @example Create a macvtap directly inside a container namespace
 * ```ts ignore
 * using host = NetlinkHandle.open();
 * using ns = openNetns("/run/netns/ctr1");
 * host.links.add({ kind: "macvtap", name: "eth0", parent: "eth1", netns: ns, up: true });
 * using ctr = NetlinkHandle.open({ netns: ns });
 * ctr.addrs.add(ctr.links.get("eth0").index, "10.99.0.2/24");
 * ```
 */
export class NetlinkHandle implements Disposable {
  #sock: NetlinkSocket | undefined;
  #netns: Netns | undefined;
  #ownsNetns: boolean;
  #timeoutMs: number;
  /** Link operations (`ip link`). */
  readonly links: LinkOps;
  /** Address operations (`ip addr`). */
  readonly addrs: AddrOps;
  /** Route operations (`ip route`). */
  readonly routes: RouteOps;

  private constructor(netns: Netns | undefined, owns: boolean, timeoutMs: number) {
    this.#netns = netns;
    this.#ownsNetns = owns;
    this.#timeoutMs = timeoutMs;
    const sock = () => this.socket();
    this.links = new LinkOps(sock);
    this.addrs = new AddrOps(sock);
    this.routes = new RouteOps(sock);
  }

  /**
   * Open a handle on the caller's namespace or on `options.netns`.
   *
   * @throws {NetnsNotFoundError} when a namespace path does not exist.
   * @example Usage
   * ```ts ignore
   * using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" }); // like `ip -n ctr1 …`
   * ```
   */
  static open(options: HandleOptions = {}): NetlinkHandle {
    const ns = typeof options.netns === "string" ? openNetns(options.netns) : options.netns;
    return new NetlinkHandle(ns, typeof options.netns === "string", options.timeoutMs ?? 10_000);
  }

  /** The namespace this handle works in (`undefined`: the caller's). */
  get netns(): Netns | undefined {
    return this.#netns;
  }

  /** The underlying socket, opened (inside the namespace) on first use. */
  socket(): NetlinkSocket {
    if (this.#sock) return this.#sock;
    const timeoutMs = this.#timeoutMs;
    return this.#sock = inNetns(this.#netns, () => NetlinkSocket.open({ timeoutMs }));
  }

  /** Close the socket (and the namespace, when the handle opened it). Idempotent. */
  close(): void {
    this.#sock?.close();
    this.#sock = undefined;
    if (this.#ownsNetns) this.#netns?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
