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
import { NetlinkHandle } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { deleteContainerLink } from "./del.ts";
import { PluginError } from "./errors.ts";
import type { Ipam, IpamTarget } from "./ipam.ts";
import type { StateStore } from "./state.ts";

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
  for (const rec of store.list(conf.name)) {
    if (keep.has(`${rec.containerId}\u0000${rec.ifname}`)) continue;
    log.info(`GC: releasing stale attachment ${rec.containerId}/${rec.ifname}`);
    let ok = true;
    try {
      deleteContainerLink(rec.netns, rec.containerId, rec.ifname);
    } catch (err) {
      ok = false;
      errors.push(
        `${rec.containerId}/${rec.ifname}: link: ${err instanceof Error ? err.message : err}`,
      );
    }
    try {
      const hostIf = rec.hostrouteif ? host.links.find(rec.hostrouteif) : undefined;
      delHostRoutes(host, rec.hostRoutes, hostIf?.index);
    } catch (err) {
      ok = false;
      errors.push(
        `${rec.containerId}/${rec.ifname}: host routes: ${
          err instanceof Error ? err.message : err
        }`,
      );
    }
    if (rec.ipamType) {
      try {
        await ipamFor({
          containerId: rec.containerId,
          ifname: rec.ifname,
          netns: "",
          args: rec.cniArgs ?? "",
        })
          ?.del();
      } catch (err) {
        ok = false;
        errors.push(
          `${rec.containerId}/${rec.ifname}: IPAM DEL: ${err instanceof Error ? err.message : err}`,
        );
      }
    }
    if (ok) store.remove(conf.name, rec.containerId, rec.ifname);
  }

  // Host routes we marked but no record of any network claims (a crash
  // between the route and its record, or a record removed by hand).
  try {
    const claimed = new Set<string>();
    for (const network of store.networks()) {
      for (const rec of store.list(network)) for (const r of rec.hostRoutes) claimed.add(r.dst);
    }
    const orphans = listOwnHostRoutes(host).filter((r) => !claimed.has(r.dst));
    for (const r of orphans) {
      delHostRoutes(host, [{ family: r.family, dst: r.dst, metric: r.metric ?? 0 }], r.oif);
    }
  } catch (err) {
    errors.push(`host route sweep: ${err instanceof Error ? err.message : err}`);
  }

  try {
    await ipamFor()?.gc();
  } catch (err) {
    errors.push(`IPAM GC: ${err instanceof Error ? err.message : err}`);
  }
  if (errors.length) throw new PluginError(`GC incomplete: ${errors.join("; ")}`);
}
