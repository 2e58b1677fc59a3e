/**
 * The device plugin's view of the host's links: a small interface over
 * `netlink/` so the gRPC side can be tested with a fake, plus the rules that
 * decide which links a `[]` config exposes and when a lower device is healthy.
 *
 * @module
 */

import {
  type Link,
  LINK_TYPES,
  type LinkEvent,
  LinkNotFoundError,
  type MacvlanMode,
  NetlinkHandle,
  subscribeLinks,
} from "../netlink/mod.ts";

/** What the device plugin needs from netlink, in its own (the host's) namespace. */
export interface LinkBackend {
  /** All links (`ip link show`). */
  list(): Link[];
  /** One link by name, `undefined` when missing. */
  find(name: string): Link | undefined;
  /**
   * Create a macvtap (down) on `parent` with ifindex `index`.
   * Throws a `NetlinkError` (`EBUSY` for a taken index, `EEXIST` for a taken name).
   * `ip link add link PARENT name NAME index INDEX txqueuelen N type macvtap mode MODE`
   */
  addMacvtap(
    spec: { name: string; parent: number; mode: MacvlanMode; index: number; txQueueLen?: number },
  ): void;
  /** Delete a link; `false` when it did not exist. */
  delete(name: string): boolean;
  /** Link notifications until `close()`. */
  subscribe(): AsyncIterableIterator<LinkEvent> & { close(): void };
  /** Release resources. */
  close(): void;
}

/** A {@linkcode LinkBackend} over one `NetlinkHandle` in the caller's namespace. */
export function netlinkBackend(): LinkBackend {
  const h = NetlinkHandle.open();
  return {
    list: () => h.links.list(),
    find: (name) => h.links.find(name),
    addMacvtap(spec): void {
      h.links.add({
        kind: "macvtap",
        name: spec.name,
        parent: spec.parent,
        mode: spec.mode,
        index: spec.index,
        ...(spec.txQueueLen ? { txQueueLen: spec.txQueueLen } : {}),
      });
    },
    delete(name): boolean {
      try {
        h.links.del(name);
        return true;
      } catch (err) {
        if (err instanceof LinkNotFoundError) return false;
        throw err;
      }
    },
    subscribe: () => subscribeLinks(),
    close: () => h.close(),
  };
}

/** Decides whether a link is exposed when the config is `[]`. */
export type EligibleFn = (link: Link) => boolean;

/**
 * The default `[]` rule: Ethernet links that are physical NICs (no
 * `IFLA_INFO_KIND`) or bonds, not loopback, not enslaved to a bridge or bond
 * (a macvtap on a port fails with EBUSY). Virtual kinds (veth, vlan, bridge,
 * macvtap, …) are skipped unless listed in `extraKinds` (e.g. `veth` for KinD
 * nodes, whose `eth0` is a veth; or the namespace lab of the tests).
 *
 * @example Usage
 * ```ts ignore
 * const eligible = defaultEligible(["veth"]);
 * h.links.list().filter(eligible); // NICs, bonds and veths that are not ports
 * ```
 */
export function defaultEligible(extraKinds: readonly string[] = []): EligibleFn {
  return (link) =>
    link.type === LINK_TYPES.ether &&
    link.name !== "lo" &&
    link.masterIndex === undefined &&
    (link.kind === undefined || link.kind === "bond" || extraKinds.includes(link.kind));
}

/**
 * Whether a lower device can carry traffic: it exists, is up and has carrier
 * (without `IFLA_CARRIER`, operstate UP or UNKNOWN counts).
 */
export function lowerHealthy(link: Link | undefined): boolean {
  if (!link || !link.up) return false;
  if (link.carrier !== undefined) return link.carrier;
  return link.operState === "UP" || link.operState === "UNKNOWN";
}
