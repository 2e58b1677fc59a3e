/**
 * DEL: idempotent, best effort. Releases the IPAM allocation even when the
 * namespace is gone, deletes the container interface when it is still
 * there, and removes the host routes recorded at ADD (or derived from
 * `prevResult`).
 *
 * @module
 */

import type { NetConf } from "../config/mod.ts";
import { delHostRoutes, type HostRoute, hostRoutesFor } from "../hostroute/mod.ts";
import { tempIfname } from "../internal/_ifname.ts";
import { log } from "../internal/_log.ts";
import { LinkNotFoundError, NetlinkHandle, NetnsNotFoundError } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { ALLOCATION_ONLY_IPAM, type Ipam } from "./ipam.ts";
import type { StateStore } from "./state.ts";

/**
 * Delete the container interface `ifname` (or its temporary name) in the
 * namespace at `netnsPath` if it is a macvtap. A missing namespace or interface is success; an
 * interface of another kind is left alone (ADD failed because it existed).
 */
export function deleteContainerLink(netnsPath: string, containerId: string, ifname: string): void {
  if (!netnsPath) return;
  try {
    using ctr = NetlinkHandle.open({ netns: netnsPath });
    // An ADD killed between create and rename left the temporary name.
    const link = ctr.links.find(ifname) ?? ctr.links.find(tempIfname(containerId, ifname));
    if (!link) return;
    if (link.kind !== "macvtap") {
      log.warn(
        `DEL: "${ifname}" in ${netnsPath} is a ${
          link.kind ?? "physical"
        } link, not ours; left alone`,
      );
      return;
    }
    ctr.links.del(link.index);
  } catch (err) {
    if (err instanceof NetnsNotFoundError || err instanceof LinkNotFoundError) return;
    throw err;
  }
}

/** Host routes of this attachment: recorded at ADD, else from `prevResult`. */
function hostRoutesOf(
  conf: NetConf,
  ctx: CniContext,
  recorded: HostRoute[] | undefined,
): HostRoute[] {
  if (recorded?.length) return recorded;
  const prev = conf.prevResult;
  if (!conf.hostrouteif || !prev) return [];
  const mine = new Set<number>();
  (prev.interfaces ?? []).forEach((i, n) => {
    if (i.name === ctx.ifname && (!i.sandbox || !ctx.netns || i.sandbox === ctx.netns)) mine.add(n);
  });
  const ips = (prev.ips ?? []).filter((ip) => ip.interface === undefined || mine.has(ip.interface));
  return hostRoutesFor(ips.map((ip) => ip.address), conf.hostrouteMetric);
}

/**
 * Detach. Succeeds when the namespace, the interface, the master or the
 * hostrouteif are already gone, and when called again.
 *
 * @throws the IPAM plugin's error when IPAM DEL fails (after everything else
 *   is cleaned up; the record stays so GC can retry the release).
 */
export async function delAttachment(
  conf: NetConf,
  ctx: CniContext,
  ipam: Ipam | undefined,
  store: StateStore,
): Promise<void> {
  const record = store.read(conf.name, ctx.containerId, ctx.ifname);
  // Allocation-only IPAM releases while the kernel deletes the link (~15 ms
  // of RCU sync); others (dhcp) release through the link, so they go first.
  const ipamDel = ipam?.del();
  ipamDel?.catch(() => {});
  if (ipam && !ALLOCATION_ONLY_IPAM.has(ipam.type)) await ipamDel;

  deleteContainerLink(ctx.netns, ctx.containerId, ctx.ifname);

  const routes = hostRoutesOf(conf, ctx, record?.hostRoutes);
  if (routes.length) {
    using host = NetlinkHandle.open();
    const ifname = record?.hostrouteif ?? conf.hostrouteif;
    const hostIf = ifname ? host.links.find(ifname) : undefined;
    delHostRoutes(host, routes, hostIf?.index);
  }

  await ipamDel;
  store.remove(conf.name, ctx.containerId, ctx.ifname);
}
