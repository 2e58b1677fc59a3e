/**
 * Link operations (`ip link`), grouped on a handle as `h.links`.
 *
 * @module
 */

import { isErrno, LinkNotFoundError, linkText, naming, NetlinkError } from "./errors.ts";
import { IFNAME_MAX } from "../internal/_ifname.ts";
import { FLAGS, request, requestInBackground } from "./request.ts";
import { inNetns, type Netns, type NetnsRef, openNetns } from "./netns.ts";
import { NetlinkSocket } from "./socket.ts";
import { socketIn } from "./_sockets.ts";
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

/**
 * Link operations of one namespace (`ip link`). Obtain through
 * `NetlinkHandle.links`.
 *
 * @example List the links of a namespace, like `ip -n ctr1 -d link show`
 * ```ts
 * import { NetlinkHandle } from "./mod.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export function example(): void {
 *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
 *   for (const l of h.links.list()) console.log(l.index, l.name, l.kind ?? "", l.mode ?? "");
 * }
 * ```
 */
export class LinkOps {
  #sock: () => NetlinkSocket;

  /** @internal */
  constructor(sock: () => NetlinkSocket) {
    this.#sock = sock;
  }

  /**
   * Get a link by name or index.
   *
   * @param ref The ifindex or name.
   * @returns The link as the kernel reports it.
   * @throws {LinkNotFoundError} when there is none.
   * @throws {NetlinkError} `ERANGE` for a name longer than 15 bytes.
   * @example Look up by name, like `ip -d link show lo`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * const link = h.links.get("lo");
   * console.log(link.index, link.mac, link.mtu, link.operState);
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
      if (isErrno(err, "ENODEV") && !(err instanceof LinkNotFoundError)) {
        throw new LinkNotFoundError(ref);
      }
      throw naming(err, linkText(ref));
    }
  }

  /**
   * Like {@linkcode LinkOps.get}, but `undefined` when the link does not exist,
   * including a name no link can have (16 bytes or more, which `get` reports
   * as the kernel does, `ERANGE`).
   *
   * @param ref The ifindex or name.
   * @returns The link, or `undefined`.
   * @throws {NetlinkError} for failures other than "not found".
   * @example Create unless present, like `ip link show macvtap1 || ip link add …`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   if (!h.links.find("macvtap1")) {
   *     h.links.add({ kind: "macvtap", name: "macvtap1", parent: "eth1" });
   *   }
   * }
   * ```
   */
  find(ref: LinkRef): Link | undefined {
    try {
      return this.get(ref);
    } catch (err) {
      if (err instanceof LinkNotFoundError) return undefined;
      if (
        typeof ref === "string" && err instanceof NetlinkError && err.code === "ERANGE" &&
        new TextEncoder().encode(ref).length > IFNAME_MAX
      ) {
        return undefined;
      }
      throw err;
    }
  }

  /**
   * All links of the namespace, in ifindex order.
   *
   * @returns Every link (a dump).
   * @throws {DumpInterruptedError} when the dump stays inconsistent after retries.
   * @example All names, like `ip link show`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * using h = NetlinkHandle.open();
   * for (const l of h.links.list()) console.log(l.name);
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
   * Create a link and return it as the kernel made it. With `netns` (open, or
   * a path) it is created directly inside that namespace (one request, no
   * move); with `index` it takes that ifindex; with `up` it is brought up in
   * the same request. A macvtap/macvlan parent is looked up in the handle's
   * namespace.
   *
   * In the handle's namespace the kernel echoes the new link in its reply
   * (`NLM_F_ECHO`), so this costs no extra request. Created in another
   * namespace, the link is read back there with one `RTM_GETLINK`: through
   * the socket of an open handle on the same `Netns` object when there is
   * one, else through a socket opened there for it (≈0.25 ms more).
   *
   * @param spec What to create.
   * @returns The new link (its `index` is in the namespace it was created in).
   * @throws {NetlinkError} `EEXIST` when the name or the chosen index is taken
   *   (in the target namespace), `ERANGE` for a name over 15 bytes, `EINVAL`
   *   for a macvtap MTU above the parent's, `EBUSY` for a parent that is a
   *   bridge port, `EOPNOTSUPP` for a kind the kernel lacks.
   * @throws {LinkNotFoundError} when the parent (given by name) does not exist.
   * @throws {NetnsNotFoundError} when a `netns` path does not exist.
   * @example A macvtap inside a container, like `ip link add link eth1 name eth0 netns ctr1 up type macvtap mode bridge`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root, eth1 and /run/netns/ctr1: type-checked, not run by `deno test --doc`.
   * export function attach(): number {
   *   using h = NetlinkHandle.open();
   *   const link = h.links.add({
   *     kind: "macvtap", name: "eth0", parent: "eth1", mode: "bridge", netns: "/run/netns/ctr1", up: true,
   *   });
   *   return link.index; // in ctr1
   * }
   * ```
   * @example A veth pair, like `ip link add va type veth peer name vb netns ctr1`
   * ```ts
   * import { NetlinkHandle, openNetns } from "./mod.ts";
   *
   * // Needs root and /run/netns/ctr1: type-checked, not run by `deno test --doc`.
   * export function pair(): void {
   *   using h = NetlinkHandle.open();
   *   using ns = openNetns("/run/netns/ctr1");
   *   const va = h.links.add({ kind: "veth", name: "va", peer: { name: "vb", netns: ns } });
   *   console.log(va.index, va.mac);
   * }
   * ```
   */
  add(spec: LinkSpec): Link {
    const parent = "parent" in spec
      ? (typeof spec.parent === "number" ? spec.parent : this.get(spec.parent).index)
      : undefined;
    using opened = new DisposableStack();
    const open = (ref: NetnsRef): Netns =>
      typeof ref === "string" ? opened.use(openNetns(ref)) : ref;
    let resolved: LinkSpec = spec.netns === undefined ? spec : { ...spec, netns: open(spec.netns) };
    if (resolved.kind === "veth" && resolved.peer.netns !== undefined) {
      resolved = { ...resolved, peer: { ...resolved.peer, netns: open(resolved.peer.netns) } };
    }
    const elsewhere = resolved.netns as Netns | undefined;
    let replies;
    try {
      replies = request(
        this.#sock(),
        "RTM_NEWLINK",
        () => encodeLinkAdd(resolved, elsewhere ? FLAGS.add : FLAGS.add | C.NLM_F_ECHO, parent),
      );
    } catch (err) {
      throw naming(err, linkText(spec.name));
    }
    const echoed = replies.find((m) => m.type === C.RTM_NEWLINK);
    if (echoed) return decodeLink(echoed.payload);
    if (!elsewhere) return this.get(spec.name); // a kernel without NLM_F_ECHO for links (< 6.3)
    // Read back where it was made: through the socket of a handle on that
    // Netns when there is one, else through a socket opened there for it.
    const shared = socketIn(elsewhere);
    if (shared) return new LinkOps(() => shared).get(spec.name);
    using sock = inNetns(elsewhere, () => NetlinkSocket.open({}));
    return new LinkOps(() => sock).get(spec.name);
  }

  /**
   * Change a link: up/down, MTU, MAC, name, promiscuous mode, its master
   * (bridge or bond port, or `null` for none), and moving it to another
   * namespace (open, or a path; optionally choosing its ifindex there), all in
   * one request. The kernel renames before it changes flags.
   *
   * @param ref The ifindex or name.
   * @param change What to change.
   * @throws {LinkNotFoundError} when the link does not exist.
   * @throws {NetlinkError} `EBUSY` when `newIndex` is taken in the target
   *   namespace, `EINVAL` for an MTU out of range or a link that cannot change
   *   namespace (e.g. a bridge), `EEXIST` for a taken name.
   * @throws {TypeError} for a malformed MAC, or `newIndex` without `netns`.
   * @example Rename and bring up, like `ip link set mvtmp1 name eth0 up`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   h.links.set("mvtmp1", { name: "eth0", up: true });
   * }
   * ```
   * @example Move keeping the ifindex, like `ip link set dev mvt0 netns ctr1` (plus IFLA_NEW_IFINDEX)
   * ```ts
   * import { NetlinkHandle, openNetns } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open();
   *   using ns = openNetns("/run/netns/ctr1");
   *   const { index } = h.links.get("mvt0");
   *   h.links.set(index, { netns: ns, newIndex: index });
   * }
   * ```
   */
  set(ref: LinkRef, change: LinkChange): void {
    const index = typeof ref === "number" ? ref : this.get(ref).index;
    const master = change.master === undefined
      ? undefined
      : change.master === null
      ? 0
      : typeof change.master === "number"
      ? change.master
      : this.get(change.master).index;
    using opened = new DisposableStack();
    const resolved = typeof change.netns === "string"
      ? { ...change, netns: opened.use(openNetns(change.netns)) }
      : change;
    try {
      request(
        this.#sock(),
        "RTM_NEWLINK",
        () => encodeLinkChange(index, resolved, FLAGS.change, master),
      );
    } catch (err) {
      if (isErrno(err, "ENODEV")) throw new LinkNotFoundError(ref, err.op);
      throw naming(err, linkText(ref));
    }
  }

  /**
   * Delete a link (a veth takes its peer along).
   *
   * @param ref The ifindex or name.
   * @throws {LinkNotFoundError} when it does not exist.
   * @example Like `ip link del eth0`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export function example(): void {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   h.links.del("eth0");
   * }
   * ```
   */
  del(ref: LinkRef): void {
    try {
      request(this.#sock(), "RTM_DELLINK", () => encodeLinkRef(C.RTM_DELLINK, FLAGS.change, ref));
    } catch (err) {
      throw delError(err, ref);
    }
  }

  /**
   * {@linkcode LinkOps.del} with the kernel's work off the JS thread: deleting
   * a macvtap or macvlan waits ~20 ms for RCU inside the request, and the
   * event loop (an IPAM child, other sockets) goes on meanwhile. Use this
   * handle for nothing else until the promise settles.
   *
   * @param ref The ifindex or name.
   * @throws {LinkNotFoundError} when it does not exist.
   * @example Delete while IPAM releases, like `ip link del eth0 & wait`
   * ```ts
   * import { NetlinkHandle } from "./mod.ts";
   *
   * // Needs root: type-checked, not run by `deno test --doc`.
   * export async function detach(releaseLease: () => Promise<void>): Promise<void> {
   *   using h = NetlinkHandle.open({ netns: "/run/netns/ctr1" });
   *   await Promise.all([h.links.delInBackground("eth0"), releaseLease()]);
   * }
   * ```
   */
  async delInBackground(ref: LinkRef): Promise<void> {
    try {
      await requestInBackground(
        this.#sock(),
        "RTM_DELLINK",
        () => encodeLinkRef(C.RTM_DELLINK, FLAGS.change, ref),
      );
    } catch (err) {
      throw delError(err, ref);
    }
  }
}

function delError(err: unknown, ref: LinkRef): unknown {
  if (isErrno(err, "ENODEV")) return new LinkNotFoundError(ref, err.op);
  return naming(err, linkText(ref));
}
