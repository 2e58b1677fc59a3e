/**
 * Link operations (`ip link`), grouped on a handle as `h.links`.
 *
 * @module
 */

import { LinkNotFoundError, NetlinkError } from "./errors.ts";
import { FLAGS, request } from "./request.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { Link, LinkChange, LinkRef, LinkSpec } from "./types.ts";
import * as C from "./wire/constants.ts";
import {
  beginMessage,
  decodeLink,
  encodeLinkAdd,
  encodeLinkChange,
  encodeLinkRef,
  putIfinfo,
} from "./wire/message.ts";

/** Link operations of one namespace. Obtain through `NetlinkHandle.links`. */
export class LinkOps {
  #sock: () => NetlinkSocket;

  /** @internal */
  constructor(sock: () => NetlinkSocket) {
    this.#sock = sock;
  }

  /**
   * Get a link by name or index.
   *
   * @throws {LinkNotFoundError} when there is none.
   * @example Usage
   * ```ts ignore
   * const link = h.links.get("eth0"); // like `ip -d link show eth0`
   * ```
   */
  get(ref: LinkRef): Link {
    try {
      const [reply] = request(
        this.#sock(),
        "RTM_GETLINK",
        () => encodeLinkRef(C.RTM_GETLINK, FLAGS.change, ref),
      );
      if (!reply) throw new LinkNotFoundError(ref);
      return decodeLink(reply.payload);
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === 19 && !(err instanceof LinkNotFoundError)) {
        throw new LinkNotFoundError(ref);
      }
      throw err;
    }
  }

  /**
   * Like {@linkcode LinkOps.get}, but `undefined` when the link does not exist.
   *
   * @example Usage
   * ```ts ignore
   * if (!h.links.find("macvtap1")) h.links.add({ kind: "macvtap", name: "macvtap1", parent: "eth1" });
   * ```
   */
  find(ref: LinkRef): Link | undefined {
    try {
      return this.get(ref);
    } catch (err) {
      if (err instanceof LinkNotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * All links of the namespace.
   *
   * @example Usage
   * ```ts ignore
   * for (const l of h.links.list()) console.log(l.name); // like `ip link show`
   * ```
   */
  list(): Link[] {
    return request(this.#sock(), "RTM_GETLINK", () => {
      const w = beginMessage(C.RTM_GETLINK, FLAGS.dump);
      putIfinfo(w, {});
      return w;
    }).filter((m) => m.type === C.RTM_NEWLINK).map((m) => decodeLink(m.payload));
  }

  /**
   * Create a link. With `netns` it is created directly inside that namespace
   * (one request, no move); with `index` it takes that ifindex; with `up` it is
   * brought up in the same request.
   *
   * @throws {NetlinkError} `EEXIST` when the name is taken in the target namespace,
   *   `EBUSY` for a taken index or a parent that is a bridge port.
   * @throws {LinkNotFoundError} when the parent (given by name) does not exist.
   * @example Usage
   * ```ts ignore
   * using ns = openNetns("/run/netns/ctr1");
   * h.links.add({ kind: "macvtap", name: "eth0", parent: "eth1", mode: "bridge", netns: ns, up: true });
   * // like `ip link add link eth1 name eth0 netns ctr1 up type macvtap mode bridge`
   * ```
   */
  add(spec: LinkSpec): void {
    const parent = "parent" in spec
      ? (typeof spec.parent === "number" ? spec.parent : this.get(spec.parent).index)
      : undefined;
    request(this.#sock(), "RTM_NEWLINK", () => encodeLinkAdd(spec, FLAGS.add, parent));
  }

  /**
   * Change a link: up/down, MTU, MAC, name, promiscuous mode, and moving it to
   * another namespace (optionally keeping or choosing its ifindex there), all
   * in one request. The kernel renames before it changes flags.
   *
   * @throws {LinkNotFoundError} when the link does not exist.
   * @example Usage
   * ```ts ignore
   * h.links.set("mvtmp1", { name: "eth0", up: true }); // like `ip link set mvtmp1 name eth0 up`
   * h.links.set(12, { netns: ns, newIndex: 12 }); // like `ip link set dev X netns ctr1` keeping the index
   * ```
   */
  set(ref: LinkRef, change: LinkChange): void {
    const index = typeof ref === "number" ? ref : this.get(ref).index;
    try {
      request(this.#sock(), "RTM_NEWLINK", () => encodeLinkChange(index, change, FLAGS.change));
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === 19) throw new LinkNotFoundError(ref, err.op);
      throw err;
    }
  }

  /**
   * Delete a link.
   *
   * @throws {LinkNotFoundError} when it does not exist.
   * @example Usage
   * ```ts ignore
   * h.links.del("eth0"); // like `ip link del eth0`
   * ```
   */
  del(ref: LinkRef): void {
    try {
      request(
        this.#sock(),
        "RTM_DELLINK",
        () => encodeLinkRef(C.RTM_DELLINK, FLAGS.change, ref),
      );
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === 19) throw new LinkNotFoundError(ref, err.op);
      throw err;
    }
  }
}
