/**
 * ADD: create (or import) the macvtap inside the container namespace,
 * delegate addressing to IPAM, configure the interface and the host routes.
 * Every side effect gets an undo step; a failure part-way undoes them all.
 *
 * @module
 */

import { ErrorCode, type Result } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import {
  addHostRoute,
  delHostRoutes,
  ensureHostRouteIf,
  type HostRoute,
  hostRouteConflict,
  hostRoutesFor,
  linkLocalOf,
  RTPROT_MACVTAP,
} from "../hostroute/mod.ts";
import { unicastHostProblem } from "../internal/_ip.ts";
import { ALLOCATION_ONLY_IPAM, configureInterface, type Ipam } from "../ipam/mod.ts";
import { AsyncUndoStack } from "../internal/_undo.ts";
import {
  deviceIfname,
  ifnameProblem,
  linkMarker,
  tapIndexCandidates,
  tapIndexFor,
  tempIfname,
} from "../internal/_ifname.ts";
import { log } from "../internal/_log.ts";
import { isErrno, type Link, NetlinkHandle, type Netns, openNetns } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { PluginError } from "./errors.ts";
import { resolveMaster } from "./master.ts";
import { buildResult } from "./result.ts";
import {
  AttachmentExistsError,
  type AttachmentRecord,
  currentNetnsIno,
  hostRouteClaims,
  type StateStore,
} from "./state.ts";
import { errorText } from "../internal/_error_text.ts";

/**
 * Attach: create the macvtap `ctx.ifname` in `ctx.netns` on the master (or
 * import the device named by `deviceID`), run IPAM, configure addresses and
 * routes, add host routes via `hostrouteif`, and return the CNI result.
 *
 * Ownership: everything read-only (namespace, interface name, master, MTU)
 * is checked first; then the attachment's record is created exclusively, so
 * a second ADD of the same attachment stops before any side effect. Each
 * undo step is armed once its step succeeded for this call, and undoes only
 * what that step did.
 *
 * @throws {CniError} or a typed error mapped by `toCniError` on any failure;
 *   nothing is left behind (link, lease, host routes, state).
 */
export async function addAttachment(
  conf: NetConf,
  ctx: CniContext,
  ipam: Ipam | undefined,
  store: StateStore,
): Promise<Result> {
  using host = NetlinkHandle.open();
  let ns: Netns;
  try {
    ns = openNetns(ctx.netns);
  } catch (err) {
    throw new PluginError(`Cannot open network namespace "${ctx.netns}"`, {
      code: ErrorCode.NETNS,
      cause: err,
    });
  }
  using _ns = ns;
  using ctr = NetlinkHandle.open({ netns: ns });
  // The spec's "must fail" case, checked before any side effect: an undo
  // must never release what an earlier ADD of this attachment set up.
  if (ctr.links.find(ctx.ifname)) {
    throw new PluginError(`Interface "${ctx.ifname}" already exists in ${ctx.netns}`);
  }
  const master = conf.deviceID && !conf.master ? undefined : resolveMaster(host, conf.master);
  if (master && conf.mtu && conf.mtu > master.mtu) {
    throw new PluginError(
      `invalid MTU ${conf.mtu}, must be [0, master MTU(${master.mtu})]`,
      { code: 7, details: `master ${master.name}` },
    );
  }
  // Declared after the handles its steps use, so it runs before they close.
  await using undo = new AsyncUndoStack();

  // The record first, exclusively: it says this attachment is ours from here
  // on, and a crash leaves something DEL and GC can find.
  const record: AttachmentRecord = {
    containerId: ctx.containerId,
    ifname: ctx.ifname,
    netns: ctx.netns,
    ...netnsInode(ctx.netns),
    linkAlias: linkMarker(conf.name, ctx.containerId, ctx.ifname),
    ...(ipam ? { ipamType: ipam.type } : {}),
    ...(ctx.args ? { cniArgs: ctx.args } : {}),
    ips: [],
    hostRoutes: [],
  };
  try {
    store.create(conf.name, record);
  } catch (err) {
    if (err instanceof AttachmentExistsError) throw new PluginError(err.message, { cause: err });
    throw err;
  }
  let keepRecord = false;
  undo.push("remove the attachment record", () => {
    // Kept when a known allocation could not be released: DEL or GC retry.
    if (!keepRecord) store.abandon(conf.name, ctx.containerId, ctx.ifname);
  });

  // Allocation-only IPAM runs while the link is built. Its release waits for
  // the ADD to settle and happens only if this ADD allocated: a failed ADD
  // (e.g. host-local's "duplicate allocation") owns nothing to release.
  let ipamAdd: Promise<Result> | undefined;
  const startIpam = (delegate: Ipam) => {
    const p = delegate.add();
    p.catch(() => {});
    undo.push(`release the ${delegate.type} IPAM allocation`, async () => {
      if (!await p.then(() => true, () => false)) return;
      try {
        await delegate.del();
      } catch (err) {
        keepRecord = true;
        throw err;
      }
    });
    return p;
  };
  if (ipam && ALLOCATION_ONLY_IPAM.has(ipam.type)) ipamAdd = startIpam(ipam);

  const link = conf.deviceID
    ? importDevice(host, ctr, ns, conf, ctx, master, undo)
    : createMacvtap(host, ctr, ns, conf, ctx, master!, undo);

  const ipamResult = ipam ? await (ipamAdd ?? startIpam(ipam)) : undefined;
  const ips = ipamResult?.ips ?? [];
  if (ipam && ips.length === 0) {
    throw new PluginError(`IPAM plugin "${ipam.type}" returned no IP addresses`);
  }
  for (const ip of ips) {
    const problem = unicastHostProblem(ip.address);
    if (problem) {
      throw new PluginError(`IPAM plugin "${ipam?.type}" returned ${ip.address}: ${problem}`, {
        code: ErrorCode.INVALID_CONFIG,
      });
    }
  }

  let onLinkGw6: string | undefined;
  let hostIf: Link | undefined;
  let hostRoutes: HostRoute[] = [];
  if (conf.hostrouteif) {
    hostRoutes = hostRoutesFor(ips.map((ip) => ip.address), conf.hostrouteMetric);
    const conflict = hostRouteConflict(host, hostRoutes);
    if (conflict) {
      throw new PluginError(
        `Cannot route ${ctx.containerId}/${ctx.ifname} from the host: ${conflict}`,
        {
          code: ErrorCode.INVALID_CONFIG,
        },
      );
    }
    const lower = master ?? host.links.get(link.parentIndex ?? -1);
    hostIf = ensureHostRouteIf(host, conf.hostrouteif, lower);
    if (ips.some((ip) => ip.address.includes(":"))) onLinkGw6 = linkLocalOf(host, hostIf);
  }

  const routes = configureInterface(ctr, ns, link, ips, ipamResult?.routes ?? [], {
    ...(onLinkGw6 ? { onLinkGw6 } : {}),
  });

  if (hostIf && hostRoutes.length) {
    const oif = hostIf.index;
    const withRoutes: AttachmentRecord = {
      ...record,
      ips: ips.map((ip) => ip.address),
      hostrouteif: hostIf.name,
      hostrouteIndex: oif,
      ...hostNetns(),
      hostRoutes,
      hostRoutesState: "pending",
    };
    store.update(conf.name, withRoutes);
    // Claimed first, then checked: of two ADDs racing for one address (even
    // with different metrics), at least one sees the other's claim.
    const self = store.recordPath(conf.name, ctx.containerId, ctx.ifname);
    const claims = hostRouteClaims(store.root, new Set(hostRoutes.map((r) => r.dst)));
    for (const [dst, by] of claims) {
      const other = [...by].find((p) => p !== self);
      if (other) {
        throw new PluginError(
          `Cannot route ${ctx.containerId}/${ctx.ifname} from the host: ${dst} is claimed by ${other}`,
          { code: ErrorCode.INVALID_CONFIG },
        );
      }
    }
    for (const r of hostRoutes) {
      addHostRoute(host, r, oif);
      undo.push(`delete the host route ${r.dst}`, () => delHostRoutes(host, [r], { oif }));
    }
    store.update(conf.name, { ...withRoutes, hostRoutesState: "added" });
  }

  const final = ctr.links.get(link.index);
  const result = buildResult(conf, ctx, final, ipamResult, routes);
  undo.disarm();
  log.info(
    `ADD ${ctx.containerId}/${ctx.ifname}: ${final.name} #${final.index} ${final.mac ?? ""}`,
  );
  return result;
}

/**
 * Create the macvtap directly inside the container namespace under a
 * temporary name (one RTM_NEWLINK with IFLA_NET_NS_FD), then rename it to
 * CNI_IFNAME and bring it up there.
 */
function createMacvtap(
  host: NetlinkHandle,
  ctr: NetlinkHandle,
  ns: Netns,
  conf: NetConf,
  ctx: CniContext,
  master: Link,
  undo: AsyncUndoStack,
): Link {
  const tmp = tempIfname(ctx.containerId, ctx.ifname);
  // A passthru macvtap takes the lower device's MAC at creation; a MAC set
  // afterwards is applied to both (that is what passthru means).
  const macLater = conf.mode === "passthru" && conf.mac !== undefined;
  try {
    host.links.add({
      kind: "macvtap",
      name: tmp,
      parent: master.index,
      mode: conf.mode,
      netns: ns,
      ...(conf.mtu ? { mtu: conf.mtu } : {}),
      ...(conf.mac && !macLater ? { mac: conf.mac } : {}),
      ...(master.txQueueLen ? { txQueueLen: master.txQueueLen } : {}),
    });
  } catch (err) {
    throw new PluginError(
      `Cannot create macvtap "${tmp}" on "${master.name}": ${errorText(err)}`,
      { cause: err },
    );
  }
  const created = ctr.links.get(tmp);
  undo.push(`delete ${ctx.ifname} in ${ctx.netns}`, () => ctr.links.del(created.index));
  try {
    ctr.links.set(created.index, {
      name: ctx.ifname,
      up: true,
      alias: linkMarker(conf.name, ctx.containerId, ctx.ifname),
      ...(conf.promiscMode ? { promisc: true } : {}),
      ...(macLater ? { mac: conf.mac! } : {}),
    });
  } catch (err) {
    if (isErrno(err, "EEXIST")) {
      throw new PluginError(`Interface "${ctx.ifname}" already exists in ${ctx.netns}`, {
        cause: err,
      });
    }
    throw err;
  }
  return { ...created, name: ctx.ifname, up: true };
}

/**
 * Import an existing macvtap from the host namespace (`deviceID`): a host
 * link of that name, or the device-plugin device with that ID (recreated on
 * the master when missing). It keeps its ifindex, so `/dev/tapN` stays
 * valid, then gets MTU, MAC, promiscuous mode and the CNI_IFNAME.
 */
function importDevice(
  host: NetlinkHandle,
  ctr: NetlinkHandle,
  ns: Netns,
  conf: NetConf,
  ctx: CniContext,
  master: Link | undefined,
  undo: AsyncUndoStack,
): Link {
  const id = conf.deviceID!;
  // A device ID that is a legal interface name may name a host macvtap
  // (`ip link add … type macvtap`, seed 001). Any other ID (longer than 15
  // bytes, with '/' or ':', …) is only ever a device-plugin ID: looking it up
  // as a name would make the kernel answer ERANGE or EINVAL.
  const byName = ifnameProblem(id) === undefined ? host.links.find(id) : undefined;
  const hostName = byName ? id : deviceIfname(id);
  let dev = byName ?? host.links.find(hostName);
  if (!dev) {
    if (!master) {
      throw new PluginError(
        `deviceID "${id}": no interface "${hostName}" on the host, and no master to recreate it on`,
        { code: 7 },
      );
    }
    log.warn(`deviceID "${id}": "${hostName}" is missing, recreating it on ${master.name}`);
    dev = recreateDevice(host, id, hostName, master, conf);
    const recreated = dev.index;
    // Runs after "move it back to the host": a device we made is not kept.
    undo.push(`delete the recreated ${hostName}`, () => host.links.del(recreated));
  }
  if (dev.kind !== "macvtap") {
    throw new PluginError(
      `deviceID "${id}": "${dev.name}" is a ${dev.kind ?? "physical"} link, not a macvtap`,
      {
        code: 7,
      },
    );
  }
  const inUse = hostUseOf(host, dev);
  if (inUse) {
    throw new PluginError(`deviceID "${id}": "${dev.name}" ${inUse}; not importing it`, {
      code: 7,
    });
  }
  const index = dev.index;
  const origName = dev.name;
  try {
    host.links.set(index, { netns: ns, newIndex: index });
  } catch (err) {
    if (isErrno(err, "EBUSY")) {
      throw new PluginError(
        `deviceID "${id}": ifindex ${index} is taken in ${ctx.netns}; /dev/tap${index} would change`,
        { cause: err },
      );
    }
    throw err;
  }
  undo.push(`move ${origName} back to the host`, () => {
    using home = openNetns("/proc/self/ns/net");
    ctr.links.set(index, { up: false, name: origName, alias: "", netns: home, newIndex: index });
  });
  try {
    ctr.links.set(index, {
      name: ctx.ifname,
      up: true,
      alias: linkMarker(conf.name, ctx.containerId, ctx.ifname),
      ...(conf.mtu ? { mtu: conf.mtu } : {}),
      ...(conf.mac ? { mac: conf.mac } : {}),
      ...(conf.promiscMode !== undefined ? { promisc: conf.promiscMode } : {}),
    });
  } catch (err) {
    if (isErrno(err, "EEXIST")) {
      throw new PluginError(`Interface "${ctx.ifname}" already exists in ${ctx.netns}`, {
        cause: err,
      });
    }
    throw err;
  }
  const imported = ctr.links.get(index);
  chownTap(index, conf.owner ?? QEMU_ID, conf.group ?? QEMU_ID);
  return imported;
}

/**
 * Why the host macvtap `dev` is in use by the host and not ours to hand to a
 * pod, or `undefined`: it is up, has an address of the host's, or host
 * routes go out of it (a hostrouteif).
 */
function hostUseOf(host: NetlinkHandle, dev: Link): string | undefined {
  // The device plugin and `ip link add` leave a new macvtap down; an up one
  // is in use on the host (a VM's tap, a hostrouteif).
  if (dev.up) return "is up, in use on the host";
  const addr = host.addrs.list({ index: dev.index })
    .find((a) => !a.cidr.startsWith("fe80:"));
  if (addr) return `carries the host address ${addr.cidr}`;
  const route = host.routes.list({ oif: dev.index }).find((r) => r.protocol === RTPROT_MACVTAP);
  if (route) return `carries host routes (${route.dst}): it is a hostrouteif`;
  return undefined;
}

/** `{ hostNetnsIno }`: the namespace the host routes go into (ours). */
function hostNetns(): { hostNetnsIno?: number } {
  const ino = currentNetnsIno();
  return ino === undefined ? {} : { hostNetnsIno: ino };
}

/** `{ netnsIno }` of the namespace file at `path`, or nothing when it cannot be read. */
function netnsInode(path: string): { netnsIno?: number } {
  try {
    return { netnsIno: Deno.statSync(path).ino! };
  } catch {
    return {};
  }
}

/**
 * Re-create the device plugin's macvtap of device `id` with the ifindex rule
 * of `Allocate` (`tapIndexCandidates`), so the pod gets the `/dev/tapN` that
 * Allocate announced to kubelet, never a kernel-chosen low index that names
 * another namespace's tap. Fails when every candidate index is taken.
 */
function recreateDevice(
  host: NetlinkHandle,
  id: string,
  hostName: string,
  master: Link,
  conf: NetConf,
): Link {
  const candidates = tapIndexCandidates(id);
  for (const [probe, index] of candidates.entries()) {
    try {
      host.links.add({
        kind: "macvtap",
        name: hostName,
        parent: master.index,
        mode: conf.mode,
        index,
        ...(master.txQueueLen ? { txQueueLen: master.txQueueLen } : {}),
      });
    } catch (err) {
      // A taken index: EEXIST while no link has our name (the kernel looks
      // ifi_index up first); EBUSY on older kernels, also a port master.
      const indexTaken = isErrno(err, "EEXIST")
        ? !host.links.find(hostName)
        : isErrno(err, "EBUSY") && !host.links.find(master.name)?.masterIndex;
      if (indexTaken && probe + 1 < candidates.length) continue;
      throw new PluginError(
        `deviceID "${id}": cannot recreate "${hostName}" on ${master.name} with ifindex ${index} ` +
          `(the device plugin's /dev/tap${tapIndexFor(id)} rule): ${
            err instanceof Error ? err.message : err
          }`,
        { cause: err },
      );
    }
    if (probe > 0) {
      log.warn(
        `deviceID "${id}": ifindex ${tapIndexFor(id)} is taken on the host; recreated as ${index}`,
      );
    }
    return host.links.get(hostName);
  }
  // Unreachable: the loop returns or throws on its last candidate.
  throw new PluginError(`deviceID "${id}": no free ifindex to recreate "${hostName}"`);
}

/** KubeVirt's qemu user and group (virt-launcher runs qemu as 107:107). */
const QEMU_ID = 107;

/**
 * Give `/dev/tap<index>` to `uid:gid`. The move re-created the node as
 * root:root 0600, and the VM's qemu opens it as an unprivileged user. Where
 * devtmpfs made no node (a static /dev), there is nothing to change.
 */
function chownTap(index: number, uid: number, gid: number): void {
  const path = `/dev/tap${index}`;
  try {
    Deno.chownSync(path, uid, gid);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new PluginError(`Cannot chown ${path} to ${uid}:${gid}`, { cause: err });
  }
}
