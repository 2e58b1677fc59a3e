/**
 * DEL: idempotent, best effort. Releases the IPAM allocation even when the
 * namespace is gone, deletes the container interface when it is still
 * there, and removes the host routes recorded at ADD (or derived from
 * `prevResult`).
 *
 * @module
 */

import { ErrorCode } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import { delHostRoutes, type HostRoute, hostRoutesFor } from "../hostroute/mod.ts";
import { tempIfname } from "../internal/_ifname.ts";
import { unicastHostProblem } from "../internal/_ip.ts";
import { log } from "../internal/_log.ts";
import { LinkNotFoundError, NetlinkHandle, NetnsNotFoundError, openNetns } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { PluginError } from "./errors.ts";
import { ALLOCATION_ONLY_IPAM, type Ipam } from "./ipam.ts";
import type { AttachmentRecord, StateStore } from "./state.ts";

/**
 * Delete the container interface `ifname` (or its temporary name) in the
 * namespace at `netnsPath` if it is a macvtap. A missing namespace or interface is success; an
 * interface of another kind is left alone (ADD failed because it existed).
 */
export function deleteContainerLink(
  netnsPath: string,
  containerId: string,
  ifname: string,
  options: { netnsIno?: number } = {},
): void {
  if (!netnsPath) return;
  try {
    // From a record (GC): the path must still name the namespace ADD used;
    // a path re-used for another pod's namespace is not ours.
    if (options.netnsIno !== undefined && Deno.statSync(netnsPath).ino !== options.netnsIno) {
      log.info(`"${netnsPath}" is another namespace than at ADD; its links are not ours`);
      return;
    }
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
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
}

/**
 * The host routes DEL may remove, with the ifindex they go out of. Ownership:
 *
 * - routes the record says this attachment's ADD added: its own (host routes
 *   are added exclusively, so no one else holds the same route);
 * - routes the record lists as pending (ADD killed before it finished), or
 *   derived from `prevResult` when there is no record: only those that no
 *   other record of this state directory claims — the address may belong
 *   to another attachment by now.
 */
function ownHostRoutes(
  conf: NetConf,
  ctx: CniContext,
  store: StateStore,
  record: AttachmentRecord | undefined,
  host: NetlinkHandle,
): { routes: HostRoute[]; oif: number | undefined } {
  if (record?.hostRoutes.length) {
    const oif = record.hostrouteIndex ??
      (record.hostrouteif ? host.links.find(record.hostrouteif)?.index : undefined);
    if (record.hostRoutesState === "added") return { routes: record.hostRoutes, oif };
    return { routes: unclaimed(store, record.hostRoutes, ctx), oif };
  }
  const prev = conf.prevResult;
  if (record || !conf.hostrouteif || !prev) return { routes: [], oif: undefined };
  const mine = new Set<number>();
  (prev.interfaces ?? []).forEach((i, n) => {
    if (i.name === ctx.ifname && (!i.sandbox || !ctx.netns || i.sandbox === ctx.netns)) mine.add(n);
  });
  const ips = (prev.ips ?? [])
    .filter((ip) => ip.interface === undefined || mine.has(ip.interface))
    .map((ip) => ip.address)
    .filter((a) => !unicastHostProblem(a));
  const routes = unclaimed(store, hostRoutesFor(ips, conf.hostrouteMetric), ctx);
  return { routes, oif: host.links.find(conf.hostrouteif)?.index };
}

/** `routes` minus those another attachment's record (any network of the state dir) claims. */
function unclaimed(store: StateStore, routes: HostRoute[], ctx: CniContext): HostRoute[] {
  const claimed = new Set<string>();
  for (const network of store.networks()) {
    for (const { record } of store.list(network)) {
      if (record.containerId === ctx.containerId && record.ifname === ctx.ifname) continue;
      for (const r of record.hostRoutes) claimed.add(r.dst);
    }
  }
  return routes.filter((r) => !claimed.has(r.dst));
}

/**
 * Detach. Succeeds when the namespace, the interface, the master or the
 * hostrouteif are already gone, and when called again.
 *
 * @throws the IPAM plugin's error when IPAM DEL fails, after the link and
 *   the host routes are gone; the record stays so GC can retry the release.
 * @throws {StateError} when everything is undone but the record cannot be removed.
 */
export async function delAttachment(
  conf: NetConf,
  ctx: CniContext,
  ipam: Ipam | undefined,
  store: StateStore,
): Promise<void> {
  // A CNI_NETNS that is not a namespace is refused before anything is done.
  if (ctx.netns) checkNetns(ctx.netns);
  const record = store.read(conf.name, ctx.containerId, ctx.ifname);
  // Allocation-only IPAM releases while the kernel deletes the link (~15 ms
  // of RCU sync); others (dhcp) release through the link, so they go first.
  const ipamDel = ipam?.del().then(() => undefined, (err: unknown) => ({ err }));
  if (ipam && !ALLOCATION_ONLY_IPAM.has(ipam.type)) await ipamDel;

  deleteContainerLink(ctx.netns, ctx.containerId, ctx.ifname);

  {
    using host = NetlinkHandle.open();
    const { routes, oif } = ownHostRoutes(conf, ctx, store, record, host);
    delHostRoutes(host, routes, { oif });
  }

  const failed = await ipamDel;
  if (failed) {
    // Keep what GC needs to retry the release; the routes are gone.
    if (record) {
      try {
        store.update(conf.name, { ...record, hostRoutes: [] });
      } catch (err) {
        log.warn(`DEL: cannot update the record: ${err instanceof Error ? err.message : err}`);
      }
    }
    throw failed.err;
  }
  store.remove(conf.name, ctx.containerId, ctx.ifname);
}

/** Refuse a CNI_NETNS that exists but is not a network namespace (code 103). */
function checkNetns(path: string): void {
  try {
    openNetns(path).close();
  } catch (err) {
    if (err instanceof NetnsNotFoundError) return;
    throw new PluginError(`Cannot open network namespace "${path}"`, {
      code: ErrorCode.NETNS,
      cause: err,
    });
  }
}
