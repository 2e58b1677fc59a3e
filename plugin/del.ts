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
import { delIfname, isDelIfname, linkMarker, tempIfname } from "../internal/_ifname.ts";
import { unicastHostProblem } from "../internal/_ip.ts";
import { log } from "../internal/_log.ts";
import {
  isErrno,
  LinkNotFoundError,
  NetlinkHandle,
  NetnsNotFoundError,
  openNetns,
} from "../netlink/mod.ts";
import { type CniContext, hostHandleOptions, hostNetnsIno } from "./context.ts";
import { PluginError } from "./errors.ts";
import { ALLOCATION_ONLY_IPAM, type Ipam } from "../ipam/mod.ts";
import { type AttachmentRecord, type StateStore, unclaimedRoutes } from "./state.ts";
import { errorText } from "../internal/_error_text.ts";
import { mark } from "../internal/_timing.ts";
import { statPath, unlinkPath } from "../internal/_libc.ts";
import { charDevAt, devNumberText, isTapOf } from "../internal/_tap_node.ts";

/**
 * Remove `/dev/tap<index>` of the macvtap `link` while the link still lives.
 * A node the kernel made would go with the link, but one made with mknod (a
 * `/dev` that is not devtmpfs, a node a device plugin replaced) stays,
 * owned by the VM's user; once the link is gone, its minor is free for the
 * next macvtap anywhere on the node, and no later check can tell that
 * device from ours. So the node goes first. It is matched to the link under
 * a one-time name (names and ifindexes are per namespace, `/dev` is the
 * node's: another pod's `net1` may have the same index and own the node),
 * which the link gets with the attachment's `marker` (a DEL killed after the
 * rename is finished by the next one, which finds the link by it).
 *
 * @param resumed the link was found under a one-time name a DEL killed
 *   half-way gave it (only then is a name of that form trusted).
 * @returns `false` when another DEL or GC of this attachment renamed the
 *   link meanwhile: it removes the node and the link, this call neither.
 */
function removeTapNode(
  ctr: NetlinkHandle,
  link: { index: number; name: string },
  marker: string,
  resumed: boolean,
): boolean {
  const path = `/dev/tap${link.index}`;
  try {
    if (typeof charDevAt(path) !== "number") return true;
    const oneTime = resumed ? link.name : delIfname();
    if (!resumed) {
      const rename = { name: oneTime, alias: marker };
      try {
        ctr.links.set(link.index, rename);
      } catch (err) {
        // Before Linux 6.2 only a link that is down is renamed. Setting it
        // down costs an RCU grace period (~15 ms, the delete has its own),
        // so it is done only where needed; the kernel renames before it
        // sets flags, hence two requests.
        if (!isErrno(err, "EBUSY")) throw err;
        ctr.links.set(link.index, { up: false });
        ctr.links.set(link.index, rename);
      }
    }
    const node = charDevAt(path);
    if (typeof node === "number" && isTapOf(node, oneTime, link.index)) {
      unlinkPath(path);
      return true;
    }
    const now = ctr.links.find(link.index);
    if (now && now.name !== oneTime) {
      log.info(`DEL: "${now.name}" is being deleted by another DEL or GC; left to it`);
      return false;
    }
    if (typeof node === "number") {
      log.warn(`DEL: ${path} is device ${devNumberText(node)}, not this link's tap; left alone`);
    }
    return true;
  } catch (err) {
    log.warn(`DEL: cannot remove ${path}: ${errorText(err)}`);
    return true;
  }
}

/**
 * Delete the container interface `ifname` (or its temporary name) in the
 * namespace at `netnsPath` if it is a macvtap. A missing namespace or interface is success; an
 * interface of another kind is left alone (ADD failed because it existed).
 * The link is found here; the kernel's deletion (~20 ms of RCU sync) runs
 * off the JS thread while the promise is pending.
 */
export async function deleteContainerLink(
  netnsPath: string,
  containerId: string,
  ifname: string,
  options: { netnsIno?: number; alias?: string; marker: string },
): Promise<void> {
  if (!netnsPath) return;
  try {
    // From a record (GC): the path must still name the namespace ADD used;
    // a path re-used for another pod's namespace is not ours.
    if (options.netnsIno !== undefined && statPath(netnsPath).ino !== options.netnsIno) {
      log.info(`"${netnsPath}" is another namespace than at ADD; its links are not ours`);
      return;
    }
    using ctr = NetlinkHandle.open({ netns: netnsPath });
    // An ADD killed between create and rename left the temporary name; a
    // DEL killed before deleting left a one-time name and the marker.
    const named = ctr.links.find(ifname);
    const temp = named ? undefined : ctr.links.find(tempIfname(containerId, ifname));
    const resumed = named || temp
      ? undefined
      : ctr.links.list().find((l) => isDelIfname(l.name) && l.alias === options.marker);
    const link = named ?? temp ?? resumed;
    if (!link) return;
    // A link still under its temporary name (ADD killed before naming it)
    // has no marker yet; the temporary name is this attachment's.
    const unmarkedTemp = !named && link.alias === undefined;
    if (options.alias !== undefined && link.alias !== options.alias && !unmarkedTemp) {
      log.warn(
        `DEL: "${link.name}" in ${netnsPath} does not carry this attachment's marker; left alone`,
      );
      return;
    }
    if (link.kind !== "macvtap") {
      log.warn(
        `DEL: "${ifname}" in ${netnsPath} is a ${
          link.kind ?? "physical"
        } link, not ours; left alone`,
      );
      return;
    }
    if (!removeTapNode(ctr, link, options.marker, link === resumed)) return;
    await ctr.links.delInBackground(link.index);
  } catch (err) {
    if (err instanceof NetnsNotFoundError || err instanceof LinkNotFoundError) return;
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
}

/**
 * The host routes DEL may remove, with the ifindex they go out of: those
 * this attachment's record lists (or, without a record, that `prevResult`
 * implies) and that no other record of the node claims — exclusive adds
 * make a claimed route another attachment's, whatever this record says
 * (a stale record of a DEL retried after the address moved on).
 */
function ownHostRoutes(
  conf: NetConf,
  ctx: CniContext,
  store: StateStore,
  record: AttachmentRecord | undefined,
  host: NetlinkHandle,
): { routes: HostRoute[]; oif: number | undefined } {
  const self = store.recordPath(conf.name, ctx.containerId, ctx.ifname);
  if (record?.hostRoutes.length) {
    const oif = record.hostrouteIndex ??
      (record.hostrouteif ? host.links.find(record.hostrouteif)?.index : undefined);
    return { routes: unclaimedRoutes(store.root, record.hostRoutes, self, hostNetnsIno(ctx)), oif };
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
  const routes = unclaimedRoutes(
    store.root,
    hostRoutesFor(ips, conf.hostrouteMetric),
    self,
    hostNetnsIno(ctx),
  );
  return { routes, oif: host.links.find(conf.hostrouteif)?.index };
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
  mark("netns, record");
  // dhcp releases through the link, so it goes first, alone. Allocation-only
  // IPAM releases while the kernel deletes the link.
  const releaseFirst = ipam !== undefined && !ALLOCATION_ONLY_IPAM.has(ipam.type);
  const releasedFirst = releaseFirst ? await settled(ipam.del()) : undefined;

  // The link is this attachment's only if its record says so: a link of the
  // same name may be another network's (whose ADD came first), and the
  // record's namespace is the one this attachment was made in. Its deletion
  // starts first: the kernel's part is the longest step of DEL.
  const linkDeleted = record
    ? settled(deleteContainerLink(record.netns, ctx.containerId, ctx.ifname, {
      ...(record.netnsIno !== undefined ? { netnsIno: record.netnsIno } : {}),
      ...(record.linkAlias !== undefined ? { alias: record.linkAlias } : {}),
      marker: record.linkAlias ?? linkMarker(conf.name, ctx.containerId, ctx.ifname),
    }))
    : undefined;
  mark("link delete sent");
  if (!record && ctx.netns) {
    log.info(
      `DEL ${ctx.containerId}/${ctx.ifname}: no record; the links in ${ctx.netns} are not ours`,
    );
  }
  const ipamReleased = ipam && !releaseFirst ? settled(ipam.del()) : releasedFirst;
  mark("ipam start");

  let routesFailed: { err: unknown } | undefined;
  try {
    using host = NetlinkHandle.open(hostHandleOptions(ctx));
    const { routes, oif } = ownHostRoutes(conf, ctx, store, record, host);
    delHostRoutes(host, routes, { oif });
  } catch (err) {
    routesFailed = { err };
  }
  mark("host routes");
  const [linkFailed, ipamFailed] = [await linkDeleted, await ipamReleased];
  mark("kernel and ipam wait");
  // The record stays while anything failed: DEL is retried, GC finds it.
  // Its routes are dropped from it once they are gone: a record must not
  // claim routes it no longer has (an ADD of that address would be refused).
  const failed = linkFailed ?? routesFailed ?? ipamFailed;
  if (failed) {
    if (record && !routesFailed && record.hostRoutes.length) {
      try {
        store.update(conf.name, { ...record, hostRoutes: [] });
      } catch (err) {
        log.warn(`DEL: cannot update the record: ${errorText(err)}`);
      }
    }
    throw failed.err;
  }
  store.remove(conf.name, ctx.containerId, ctx.ifname);
}

/** `{ err }` when `work` fails, `undefined` when it succeeds; never rejects. */
function settled(work: Promise<void>): Promise<{ err: unknown } | undefined> {
  return work.then(() => undefined, (err: unknown) => ({ err }));
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
