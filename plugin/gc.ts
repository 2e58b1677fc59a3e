/**
 * GC (CNI 1.1.0): remove what this plugin created for attachments that are
 * no longer valid — IPAM allocations, host routes, leftover links, records —
 * and forward GC to the IPAM delegate.
 *
 * @module
 */

import type { NetConf } from "../config/mod.ts";
import { delHostRoutes, listOwnHostRoutes } from "../hostroute/mod.ts";
import { log } from "../internal/_log.ts";
import { NetlinkHandle, type Route } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { deleteContainerLink } from "./del.ts";
import { PluginError } from "./errors.ts";
import type { Ipam, IpamTarget } from "./ipam.ts";
import type { StateStore, StoredRecord } from "./state.ts";

/** An attachment the runtime still considers valid. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/**
 * Collect garbage for network `conf.name`. Keeps going on errors and reports
 * them all at the end.
 *
 * @param ipamFor builds the IPAM delegate for a stale attachment (or the GC call when empty).
 */
export async function gcNetwork(
  conf: NetConf,
  _ctx: CniContext,
  valid: readonly Attachment[],
  store: StateStore,
  ipamFor: (target?: IpamTarget) => Ipam | undefined,
): Promise<void> {
  const keep = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
  const errors: string[] = [];
  using host = NetlinkHandle.open();

  store.sweepTemps(conf.name);
  // Only this network's records, and only their own effects: GC never
  // sweeps by marker (another network's routes carry the same protocol).
  const records = store.list(conf.name);
  const claimed = claimedRoutes(store, conf.name, records);
  // One route dump for every stale record (routes of a record that were
  // already deleted are simply not found again).
  let live: Route[] | undefined;
  for (const { record: rec } of records) {
    if (keep.has(`${rec.containerId}\u0000${rec.ifname}`)) continue;
    const who = `${rec.containerId}/${rec.ifname}`;
    log.info(`GC: releasing stale attachment ${who}`);
    let ok = true;
    const step = (what: string, fn: () => void | Promise<void>) =>
      Promise.resolve().then(fn).catch((err: unknown) => {
        ok = false;
        errors.push(`${who}: ${what}: ${err instanceof Error ? err.message : err}`);
      });
    await step("link", () =>
      deleteContainerLink(rec.netns, rec.containerId, rec.ifname, {
        ...(rec.netnsIno !== undefined ? { netnsIno: rec.netnsIno } : {}),
      }));
    await step("host routes", () => {
      const oif = rec.hostrouteIndex ??
        (rec.hostrouteif ? host.links.find(rec.hostrouteif)?.index : undefined);
      const routes = rec.hostRoutesState === "added"
        ? rec.hostRoutes
        : rec.hostRoutes.filter((r) => (claimed.get(r.dst) ?? 0) <= 1);
      live ??= listOwnHostRoutes(host);
      delHostRoutes(host, routes, { oif, live });
    });
    if (rec.ipamType) {
      await step("IPAM DEL", async () => {
        await ipamFor({
          containerId: rec.containerId,
          ifname: rec.ifname,
          netns: "",
          args: rec.cniArgs ?? "",
        })?.del();
      });
    }
    if (ok) await step("record", () => store.remove(conf.name, rec.containerId, rec.ifname));
  }
  store.pruneNetworkDir(conf.name);

  try {
    await ipamFor()?.gc();
  } catch (err) {
    errors.push(`IPAM GC: ${err instanceof Error ? err.message : err}`);
  }
  if (errors.length) throw new PluginError(`GC incomplete: ${errors.join("; ")}`);
}

/**
 * How many records of the state directory claim each host route: every
 * network's records (the routes of one host are shared by all of them).
 */
function claimedRoutes(
  store: StateStore,
  network: string,
  own: readonly StoredRecord[],
): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of store.networks()) {
    const records = name === network ? own : store.list(name);
    for (const { record } of records) {
      for (const r of record.hostRoutes) counts.set(r.dst, (counts.get(r.dst) ?? 0) + 1);
    }
  }
  return counts;
}
