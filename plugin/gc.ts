/**
 * GC (CNI 1.1.0): remove what this plugin created for attachments that are
 * no longer valid — IPAM allocations, host routes, leftover links, records —
 * and forward GC to the IPAM delegate.
 *
 * @module
 */

import type { Attachment, NetConf } from "../config/mod.ts";
import { delHostRoutes, listOwnHostRoutes } from "../hostroute/mod.ts";
import { linkMarker } from "../internal/_ifname.ts";
import { log } from "../internal/_log.ts";
import { NetlinkHandle, type Route } from "../netlink/mod.ts";
import { type CniContext, hostHandleOptions, hostNetnsIno } from "./context.ts";
import { deleteContainerLink } from "./del.ts";
import { PluginError } from "./errors.ts";
import type { Ipam } from "../ipam/mod.ts";
import type { IpamTarget } from "./commands.ts";
import { hostRouteClaims, type StateStore } from "./state.ts";
import { errorText } from "../internal/_error_text.ts";

/**
 * Collect garbage for network `conf.name`. Keeps going on errors and reports
 * them all at the end.
 *
 * @param ipamFor builds the IPAM delegate for a stale attachment (or the GC call when empty).
 */
export async function gcNetwork(
  conf: NetConf,
  ctx: CniContext,
  valid: readonly Attachment[],
  store: StateStore,
  ipamFor: (target?: IpamTarget) => Ipam | undefined,
): Promise<void> {
  const keep = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
  const errors: string[] = [];
  using host = NetlinkHandle.open(hostHandleOptions(ctx));

  store.sweepTemps(conf.name);
  // Only this network's records, and only their own effects: GC never
  // sweeps by marker (another network's routes carry the same protocol).
  const records = store.list(conf.name);
  const stale = records.filter(({ record: r }) => !keep.has(`${r.containerId}\u0000${r.ifname}`));
  const claims = hostRouteClaims(
    store.root,
    new Set(stale.flatMap(({ record: r }) => r.hostRoutes.map((h) => h.dst))),
    hostNetnsIno(ctx),
  );
  // One route dump for every stale record (routes of a record that were
  // already deleted are simply not found again).
  let live: Route[] | undefined;
  for (const { record: rec } of stale) {
    const who = `${rec.containerId}/${rec.ifname}`;
    log.info(`GC: releasing stale attachment ${who}`);
    let ok = true;
    const step = (what: string, fn: () => void | Promise<void>) =>
      Promise.resolve().then(fn).catch((err: unknown) => {
        ok = false;
        errors.push(`${who}: ${what}: ${errorText(err)}`);
      });
    await step("link", () =>
      deleteContainerLink(rec.netns, rec.containerId, rec.ifname, {
        ...(rec.netnsIno !== undefined ? { netnsIno: rec.netnsIno } : {}),
        ...(rec.linkAlias !== undefined ? { alias: rec.linkAlias } : {}),
        marker: rec.linkAlias ?? linkMarker(conf.name, rec.containerId, rec.ifname),
      }));
    await step("host routes", () => {
      const oif = rec.hostrouteIndex ??
        (rec.hostrouteif ? host.links.find(rec.hostrouteif)?.index : undefined);
      // Not a route another record (of any network) claims: exclusive adds
      // make a claimed route the claimant's.
      const self = store.recordPath(conf.name, rec.containerId, rec.ifname);
      const routes = rec.hostRoutes.filter((r) =>
        [...(claims.get(r.dst) ?? [])].every((p) => p === self)
      );
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
    errors.push(`IPAM GC: ${errorText(err)}`);
  }
  if (errors.length) throw new PluginError(`GC incomplete: ${errors.join("; ")}`);
}
