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
import { configureInterface, type Ipam, leftNothing } from "../ipam/mod.ts";
import { AsyncUndoStack } from "../internal/_undo.ts";
import {
  deviceIfname,
  ifnameProblem,
  isKubevirtDeviceId,
  kubevirtDeviceIfname,
  linkMarker,
  tapIndexCandidates,
  tapIndexFor,
  tempIfname,
} from "../internal/_ifname.ts";
import { log } from "../internal/_log.ts";
import {
  isErrno,
  type Link,
  type LinkChange,
  NetlinkHandle,
  type Netns,
  openNetns,
  writeSysctl,
} from "../netlink/mod.ts";
import { type CniContext, hostHandleOptions, hostNetnsIno, hostNetnsPath } from "./context.ts";
import { PluginError } from "./errors.ts";
import { resolveMaster } from "./master.ts";
import { buildResult } from "./result.ts";
import {
  AttachmentExistsError,
  type AttachmentRecord,
  hostRouteClaims,
  type StateStore,
} from "./state.ts";
import { errorText } from "../internal/_error_text.ts";
import { mark } from "../internal/_timing.ts";
import { charDevAt, devNumberText, isTapOf } from "../internal/_tap_node.ts";
import { type DeviceProof, type DeviceTrust, proveDevice } from "./device_trust.ts";
import { lchownPath, statPath } from "../internal/_libc.ts";

/** What every step of one ADD works with. */
interface Steps {
  conf: NetConf;
  ctx: CniContext;
  store: StateStore;
  /** The runtime's (host) namespace. */
  host: NetlinkHandle;
  /** The container namespace, and a handle in it. */
  ns: Netns;
  ctr: NetlinkHandle;
  /** Undo of every step that succeeded, run in reverse on failure. */
  undo: AsyncUndoStack;
}

/** Where the link comes from: created on a master, or imported (`deviceID`). */
type LinkSource =
  | { kind: "create"; master: Link }
  | { kind: "import"; deviceID: string; master: Link | undefined; proof: DeviceProof };

/**
 * Attach: create the macvtap `ctx.ifname` in `ctx.netns` on the master (or
 * import the device named by `deviceID`), run IPAM, configure addresses and
 * routes, add host routes via `hostrouteif`, and return the CNI result.
 *
 * The story, as macvlan's `cmdAdd` tells it: check what can be checked
 * without touching anything; claim the attachment (its record, created
 * exclusively); the link; IPAM; the interface; the host routes; the result.
 * Each undo step is armed once its step succeeded for this call, and undoes
 * only what that step did.
 *
 * A `deviceID` is imported only once `trust` proves it this pod's
 * (`device_trust.ts`), and `CNI_NETNS` must be another namespace than the
 * runtime's own; both are checked before anything is done.
 *
 * @throws {CniError} or a typed error mapped by `toCniError` on any failure;
 *   nothing is left behind (link, lease, host routes, state).
 */
export async function addAttachment(
  conf: NetConf,
  ctx: CniContext,
  ipam: Ipam | undefined,
  store: StateStore,
  trust: DeviceTrust,
): Promise<Result> {
  using ns = openContainerNetns(ctx.netns);
  refuseHostNetns(ns, ctx);
  let proof: DeviceProof | undefined;
  if (conf.deviceID !== undefined) {
    mark("netns");
    proof = await proveDevice(conf, trust);
    mark("device proof");
  }
  using host = NetlinkHandle.open(hostHandleOptions(ctx));
  using ctr = NetlinkHandle.open({ netns: ns });
  const source = checkBeforeAnything(host, ctr, conf, ctx, proof);
  mark("checks");
  // Declared after the handles its steps use, so it runs before they close.
  await using undo = new AsyncUndoStack();
  const a: Steps = { conf, ctx, store, host, ns, ctr, undo };

  const record = claimAttachment(a, ipam);
  mark("claim");
  const link = source.kind === "create" ? createMacvtap(a, source.master) : importDevice(a, source);
  mark("link");
  // IPAM once the link is up, as macvlan does: host-local releases by
  // container ID and interface name, so a release after a step that can
  // still fail on its own (the kernel refusing the link, a device-plugin
  // device in use) would also free a lease of that key that is not this
  // call's. (Started before the link, host-local overlapped ~1.3 ms of it.)
  const allocation = ipam ? new IpamAllocation(ipam, undo) : undefined;
  record.keepIf(() => allocation?.releaseFailed ?? false);
  const ipamResult = await allocation?.result();
  mark("ipam");
  const ips = ipamResult?.ips ?? [];

  const hostRoutes = conf.hostrouteif
    ? planHostRoutes(
      a,
      conf.hostrouteif,
      source.master ?? host.links.get(link.parentIndex ?? -1),
      ips,
    )
    : undefined;
  const routes = configureInterface(ctr, ns, link, ips, ipamResult?.routes ?? [], {
    ...(hostRoutes?.onLinkGw6 ? { onLinkGw6: hostRoutes.onLinkGw6 } : {}),
  });
  if (hostRoutes) addOwnHostRoutes(a, record.value, hostRoutes);

  const final = ctr.links.get(link.index);
  const result = buildResult(conf, ctx, final, ipamResult, routes);
  undo.disarm();
  log.info(
    `ADD ${ctx.containerId}/${ctx.ifname}: ${final.name} #${final.index} ${final.mac ?? ""}`,
  );
  return result;
}

/** `CNI_NETNS`, open; code 103 when it is not a network namespace. */
function openContainerNetns(path: string): Netns {
  try {
    return openNetns(path);
  } catch (err) {
    throw new PluginError(`Cannot open network namespace "${path}"`, {
      code: ErrorCode.NETNS,
      cause: err,
    });
  }
}

/**
 * Refuse a `CNI_NETNS` that is the call's host namespace (the runtime's own:
 * `/proc/self/ns/net`, a `/run/netns` entry or symlink that is the host's;
 * or `hostNetns`): the interface, its addresses and the IPAM routes
 * (`default via …`) would land on the host. The namespace compared is the
 * one opened, not the path (nsfs inodes are unique on the node).
 */
function refuseHostNetns(ns: Netns, ctx: CniContext): void {
  if (statPath(`/proc/thread-self/fd/${ns.fd}`).ino === hostNetnsIno(ctx)) {
    throw new PluginError(
      `CNI_NETNS "${ctx.netns}" is the runtime's own network namespace, not a container's`,
      { code: ErrorCode.INVALID_ENV },
    );
  }
}

/**
 * Everything that can be refused without a side effect: the interface name
 * taken in the container (the spec's "must fail"), the master and the MTU.
 * They come before IPAM, and must: host-local releases by container ID and
 * interface name, so a release after a failed check would also free a lease
 * of that key that is not this call's (another plugin's attachment, a
 * record lost), and with a requested IP host-local allocates beside it.
 */
function checkBeforeAnything(
  host: NetlinkHandle,
  ctr: NetlinkHandle,
  conf: NetConf,
  ctx: CniContext,
  proof: DeviceProof | undefined,
): LinkSource {
  if (ctr.links.find(ctx.ifname)) {
    throw new PluginError(`Interface "${ctx.ifname}" already exists in ${ctx.netns}`);
  }
  const checkMtu = (master: Link) => {
    if (conf.mtu && conf.mtu > master.mtu) {
      throw new PluginError(
        `invalid MTU ${conf.mtu}, must be [0, master MTU(${master.mtu})]`,
        { code: ErrorCode.INVALID_CONFIG, details: `master ${master.name}` },
      );
    }
  };
  if (conf.deviceID !== undefined) {
    // The master only recreates a missing device-plugin device.
    const master = conf.master ? resolveMaster(host, conf.master) : undefined;
    if (master) checkMtu(master);
    return { kind: "import", deviceID: conf.deviceID, master, proof: proof ?? "config" };
  }
  // linkInContainer: the master is one of the container's interfaces.
  const master = resolveMaster(conf.linkInContainer ? ctr : host, conf.master);
  checkMtu(master);
  return { kind: "create", master };
}

/** The record of this attachment, claimed by this ADD, with its undo. */
interface Claim {
  /** The record as created. */
  readonly value: AttachmentRecord;
  /** Keep the record on rollback while `keep()` says so (a release that failed). */
  keepIf(keep: () => boolean): void;
}

/**
 * Create the attachment's record, exclusively: from here on the attachment
 * is this call's, and a crash leaves something DEL and GC can find. A second
 * ADD of the same attachment stops here, before any side effect.
 */
function claimAttachment(a: Steps, ipam: Ipam | undefined): Claim {
  const { conf, ctx, store } = a;
  const value: AttachmentRecord = {
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
    store.create(conf.name, value);
  } catch (err) {
    if (err instanceof AttachmentExistsError) throw new PluginError(err.message, { cause: err });
    throw err;
  }
  let keep = () => false;
  // Kept when a known allocation could not be released: DEL or GC retry.
  a.undo.push("remove the attachment record", () => {
    if (!keep()) store.abandon(conf.name, ctx.containerId, ctx.ifname);
  });
  return {
    value,
    keepIf(fn) {
      keep = fn;
    },
  };
}

/**
 * The IPAM allocation of this ADD. It knows whether it allocated, and
 * carries its own undo: a release only of an allocation this call made (a
 * failed IPAM ADD, e.g. host-local's "duplicate allocation", made none).
 */
class IpamAllocation {
  readonly #ipam: Ipam;
  readonly #undo: AsyncUndoStack;
  #pending: Promise<Result> | undefined;
  #releaseFailed = false;

  constructor(ipam: Ipam, undo: AsyncUndoStack) {
    this.#ipam = ipam;
    this.#undo = undo;
  }

  /** The IPAM plugin type. */
  get type(): string {
    return this.#ipam.type;
  }

  /** Whether the release on rollback failed (the record must stay for DEL or GC). */
  get releaseFailed(): boolean {
    return this.#releaseFailed;
  }

  /**
   * Run IPAM ADD (once); its undo waits for it to settle, then releases
   * unless the delegate is known to hold nothing (`leftNothing`: it never
   * ran, or answered with its own error). A delegate killed at the time
   * limit, one that died, or one that exited 0 without a usable result may
   * have allocated. The release is by key (container ID and interface name),
   * as CNI §4 asks of a plugin whose delegate failed: a lease of that key
   * this call did not make (another plugin's, a lost record's) goes too, as
   * it would with the DEL the runtime runs after a failed ADD (§3). The
   * checks before the link keep IPAM out of ADDs refused there.
   */
  #start(): void {
    if (this.#pending) return;
    const pending = this.#ipam.add();
    pending.catch(() => {});
    this.#pending = pending;
    this.#undo.push(`release the ${this.type} IPAM allocation`, async () => {
      if (!await pending.then(() => true, (err) => !leftNothing(err))) return;
      try {
        await this.#ipam.del();
      } catch (err) {
        this.#releaseFailed = true;
        throw err;
      }
    });
  }

  /**
   * The delegate's result, validated: at least one address, each a unicast
   * address of one host (code 7 otherwise; the allocation is released).
   */
  async result(): Promise<Result> {
    this.#start();
    const result = await this.#pending!;
    const ips = result.ips ?? [];
    if (ips.length === 0) {
      throw new PluginError(`IPAM plugin "${this.type}" returned no IP addresses`);
    }
    for (const ip of ips) {
      const problem = unicastHostProblem(ip.address);
      if (problem) {
        throw new PluginError(`IPAM plugin "${this.type}" returned ${ip.address}: ${problem}`, {
          code: ErrorCode.INVALID_CONFIG,
        });
      }
    }
    return result;
  }
}

/** The host routes of this attachment, checked, and the hostrouteif they go through. */
interface HostRoutePlan {
  hostIf: Link;
  routes: HostRoute[];
  ips: string[];
  /** The hostrouteif's link-local address, the tasks' IPv6 on-link gateway. */
  onLinkGw6?: string;
}

/**
 * Check the task addresses against the host (its own addresses, gateways,
 * existing routes) before anything is routed, then make sure the
 * hostrouteif exists on `lower`.
 */
function planHostRoutes(
  a: Steps,
  hostrouteif: string,
  lower: Link,
  ips: readonly { address: string }[],
): HostRoutePlan {
  const { conf, ctx, host } = a;
  const addresses = ips.map((ip) => ip.address);
  const routes = hostRoutesFor(addresses, conf.hostrouteMetric);
  const conflict = hostRouteConflict(host, routes);
  if (conflict) {
    throw new PluginError(
      `Cannot route ${ctx.containerId}/${ctx.ifname} from the host: ${conflict}`,
      { code: ErrorCode.INVALID_CONFIG },
    );
  }
  const hostIf = ensureHostRouteIf(host, hostrouteif, lower);
  const onLinkGw6 = addresses.some((ip) => ip.includes(":"))
    ? linkLocalOf(host, hostIf)
    : undefined;
  return { hostIf, routes, ips: addresses, ...(onLinkGw6 ? { onLinkGw6 } : {}) };
}

/**
 * Claim the host routes in the record, check that no other attachment of
 * the node claims them (of two ADDs racing for one address, even with
 * different metrics, at least one sees the other's claim), add each
 * exclusively with its undo, and mark them added.
 */
function addOwnHostRoutes(a: Steps, record: AttachmentRecord, plan: HostRoutePlan): void {
  const { conf, ctx, store, host } = a;
  if (plan.routes.length === 0) return;
  const oif = plan.hostIf.index;
  const claimed: AttachmentRecord = {
    ...record,
    ips: plan.ips,
    hostrouteif: plan.hostIf.name,
    hostrouteIndex: oif,
    ...hostNetns(ctx),
    hostRoutes: plan.routes,
    hostRoutesState: "pending",
  };
  store.update(conf.name, claimed);
  const self = store.recordPath(conf.name, ctx.containerId, ctx.ifname);
  const claims = hostRouteClaims(
    store.root,
    new Set(plan.routes.map((r) => r.dst)),
    hostNetnsIno(ctx),
  );
  for (const [dst, by] of claims) {
    const other = [...by].find((p) => p !== self);
    if (other) {
      throw new PluginError(
        `Cannot route ${ctx.containerId}/${ctx.ifname} from the host: ${dst} is claimed by ${other}`,
        { code: ErrorCode.INVALID_CONFIG },
      );
    }
  }
  for (const r of plan.routes) {
    addHostRoute(host, r, oif);
    a.undo.push(`delete the host route ${r.dst}`, () => delHostRoutes(host, [r], { oif }));
  }
  store.update(conf.name, { ...claimed, hostRoutesState: "added" });
}

/**
 * Create the macvtap directly inside the container namespace under a
 * temporary name (one RTM_NEWLINK with IFLA_NET_NS_FD), with its undo; then
 * name it.
 *
 * Its ifindex is node-unique, as the device plugin's are: `/dev/tap<index>`
 * lives in the node's one devtmpfs while ifindexes are per namespace, so a
 * kernel-chosen index (often 2 in a fresh pod) would give two pods' VMs the
 * same `/dev/tap2`, and one pod's DEL would remove the other's node.
 *
 * Equivalent to `ip link add link MASTER name mvtmpX index N netns CTR type macvtap mode MODE`.
 */
function createMacvtap(a: Steps, master: Link): Link {
  const { conf, ctx, host, ctr, ns } = a;
  const tmp = tempIfname(ctx.containerId, ctx.ifname);
  // A passthru macvtap takes the lower device's MAC at creation; a MAC set
  // afterwards is applied to both (that is what passthru means).
  const macLater = conf.mode === "passthru" ? conf.mac : undefined;
  // Made in the container directly: from the host with IFLA_NET_NS_FD, or,
  // with linkInContainer, by the container's handle next to its master.
  const maker = conf.linkInContainer ? ctr : host;
  const created = addAtTapIndex(
    `${conf.name}/${ctx.containerId}/${ctx.ifname}`,
    (index) =>
      maker.links.add({
        kind: "macvtap",
        name: tmp,
        parent: master.index,
        mode: conf.mode,
        ...(conf.linkInContainer ? {} : { netns: ns }),
        index,
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
        ...(conf.mac && !macLater ? { mac: conf.mac } : {}),
        ...(master.txQueueLen ? { txQueueLen: master.txQueueLen } : {}),
      }),
    () => ctr.links.find(tmp),
    (err, index) =>
      new PluginError(
        `Cannot create macvtap "${tmp}" on "${master.name}"${
          index === undefined ? "" : ` with ifindex ${index}`
        }: ${errorText(err)}`,
        { cause: err },
      ),
  );
  a.undo.push(`delete ${ctx.ifname} in ${ctx.netns}`, () => ctr.links.del(created.index));
  silence(a, created.name);
  // Matched while the link still has this attachment's temporary name.
  const chown = conf.owner !== undefined || conf.group !== undefined;
  const tapDev = chown ? ownTapNode(ctx.ifname, created.index, tmp) : undefined;
  nameAndRaise(a, created.index, {
    ...(conf.promiscMode ? { promisc: true } : {}),
    ...(macLater ? { mac: macLater } : {}),
  });
  if (chown) chownTap(created.index, tapDev, conf.owner ?? 0, conf.group ?? 0);
  return { ...created, name: ctx.ifname, up: true };
}

/**
 * Create a macvtap with `create(index)` at the first free candidate index of
 * `key` (`tapIndexCandidates`): an index whose `/dev/tapN` exists is live in
 * some namespace and skipped; one the kernel says is taken (EEXIST while
 * `made()` finds no link of ours, EBUSY on older kernels) is skipped too.
 * Returns the link as `made()` finds it.
 *
 * @throws what `fail(err, index)` makes of the kernel's refusal (or of none
 *   left: `index` undefined).
 */
function addAtTapIndex(
  key: string,
  create: (index: number) => void,
  made: () => Link | undefined,
  fail: (err: unknown, index: number | undefined) => Error,
): Link {
  const candidates = tapIndexCandidates(key).filter((i) => charDevAt(`/dev/tap${i}`) === undefined);
  for (const [probe, index] of candidates.entries()) {
    try {
      create(index);
    } catch (err) {
      const indexTaken = isErrno(err, "EEXIST") ? !made() : isErrno(err, "EBUSY");
      if (indexTaken && probe + 1 < candidates.length) continue;
      throw fail(err, index);
    }
    const link = made();
    if (!link) throw fail(new Error("the kernel made no such link"), index);
    if (index !== tapIndexFor(key)) {
      log.warn(`ifindex ${tapIndexFor(key)} of "${key}" is in use on the node; made it ${index}`);
    }
    return link;
  }
  throw fail(
    new Error(
      `every ifindex of the rule (${tapIndexFor(key)} on) has a /dev/tapN of another device`,
    ),
    undefined,
  );
}

/**
 * Keep the pod's kernel off a silent link (`conf.silent`): IPv6 off before
 * the link comes up (MLD, DAD and router solicitations would leave with the
 * VM's MAC and move it at the switch). Without IPv6 in the kernel there is
 * nothing to turn off.
 *
 * Equivalent to `ip netns exec CTR sysctl -w net.ipv6.conf.NAME.disable_ipv6=1`.
 */
function silence(a: Steps, name: string): void {
  if (!a.conf.silent) return;
  const key = `net/ipv6/conf/${name}/disable_ipv6`;
  try {
    writeSysctl(key, "1", a.ns);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new PluginError(`Cannot keep ${a.ctx.ifname} silent (${key}): ${errorText(err)}`, {
      cause: err,
    });
  }
}

/**
 * Give the container link its CNI_IFNAME and this attachment's marker, and
 * bring it up, with `extra` changes in the same request.
 *
 * Equivalent to `ip -n CTR link set X name IFNAME alias MARKER up`.
 */
function nameAndRaise(a: Steps, index: number, extra: LinkChange): void {
  const { conf, ctx, ctr } = a;
  try {
    ctr.links.set(index, {
      ...extra,
      name: ctx.ifname,
      up: true,
      alias: linkMarker(conf.name, ctx.containerId, ctx.ifname),
    });
  } catch (err) {
    if (isErrno(err, "EEXIST")) {
      throw new PluginError(`Interface "${ctx.ifname}" already exists in ${ctx.netns}`, {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Import an existing macvtap from the host namespace (`deviceID`): a host
 * link of that name, or the device-plugin device with that ID (recreated on
 * the master when missing). It keeps its ifindex, so `/dev/tapN` stays
 * valid, then gets MTU, MAC, promiscuous mode and the CNI_IFNAME.
 */
function importDevice(
  a: Steps,
  source: { deviceID: string; master: Link | undefined; proof: DeviceProof },
): Link {
  const { conf, ctx, host, ctr, ns, undo } = a;
  const { deviceID: id, master } = source;
  // A device ID that is a legal interface name may name a host macvtap
  // (`ip link add … type macvtap`, seed 001). Any other ID (longer than 15
  // bytes, with '/' or ':', …) is only ever a device-plugin ID: looking it up
  // as a name would make the kernel answer ERANGE or EINVAL.
  //
  // Only where the config's word is the proof (the operator's opt-in): a
  // kubelet-allocated ID names a device plugin's device, and a host link that
  // happens to be named like it (another tenant's hostrouteif) is not it.
  const byName = source.proof === "config" && ifnameProblem(id) === undefined
    ? host.links.find(id)
    : undefined;
  // Our device plugin's name for the ID, or KubeVirt's (a node that ran
  // kubevirt/macvtap-cni's device plugin keeps the devices it allocated).
  const kubevirtName = kubevirtDeviceIfname(id);
  const byKubevirt = byName ? undefined : host.links.find(kubevirtName);
  const hostName = byName ? id : byKubevirt ? kubevirtName : deviceIfname(id);
  let dev = byName ?? byKubevirt ?? host.links.find(hostName);
  /** The device this call recreated, and where it is now: ours to delete there on rollback. */
  let recreated: { index: number; at: NetlinkHandle } | undefined;
  if (!dev) {
    // Never a substitute the pod's /dev/tapN does not name: only our device
    // plugin's devices have an index rule (Allocate announced it); KubeVirt's
    // got a kernel-chosen one.
    const why = !master
      ? "no master to recreate it on"
      : isKubevirtDeviceId(id)
      ? `it is a KubeVirt device plugin ID, whose /dev/tapN cannot be made again`
      : undefined;
    if (why) {
      throw new PluginError(
        `deviceID "${id}": no interface "${deviceIfname(id)}" or "${kubevirtName}" on the host, ` +
          `and ${why}`,
        { code: ErrorCode.INVALID_CONFIG },
      );
    }
    log.warn(`deviceID "${id}": "${hostName}" is missing, recreating it on ${master!.name}`);
    dev = recreateDevice(a, { id, hostName, master: master! });
    const made = { index: dev.index, at: host };
    recreated = made;
    // Deleted where it is (never moved back: by then its host name may be
    // another call's recreated device, and the move would fail, leaving ours).
    undo.push(`delete the recreated ${hostName}`, () => made.at.links.del(made.index));
  }
  if (dev.kind !== "macvtap") {
    throw new PluginError(
      `deviceID "${id}": "${dev.name}" is a ${dev.kind ?? "physical"} link, not a macvtap`,
      {
        code: 7,
      },
    );
  }
  // KubeVirt's device plugin leaves its devices up; one with its name for
  // this (proven) ID is that device, not a host's VM tap.
  const inUse = hostUseOf(host, dev, { upIsFree: dev.name === kubevirtName });
  if (inUse) {
    throw new PluginError(`deviceID "${id}": "${dev.name}" ${inUse}; not importing it`, {
      code: 7,
    });
  }
  const index = dev.index;
  const origName = dev.name;
  const wasUp = dev.up;
  // The device is matched to its /dev/tapN under a one-time name, which no
  // other namespace's macvtap can have chosen (names and ifindexes are per
  // namespace; /dev is the node's): renamed on the host first and checked,
  // then moved under that name and checked again (the move re-registers the
  // tap; its minor may change). sysfs is not asked: the /sys a runtime gives
  // its plugins need not be the runtime's network namespace's.
  const oneTime = `mvq${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  host.links.set(index, { name: oneTime });
  undo.push(`rename ${oneTime} back to ${origName}`, () => {
    if (host.links.find(oneTime)?.index === index) host.links.set(index, { name: origName });
  });
  ownTapNode(`deviceID "${id}"`, index, oneTime);
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
  if (recreated) {
    recreated.at = ctr;
  } else {
    undo.push(`move ${origName} back to the host`, () => {
      using home = openNetns(hostNetnsPath(ctx));
      ctr.links.set(index, { up: wasUp, name: origName, alias: "", netns: home, newIndex: index });
    });
  }
  const tapDev = ownTapNode(`deviceID "${id}"`, index, oneTime);
  silence(a, oneTime);
  nameAndRaise(a, index, {
    ...(conf.mtu ? { mtu: conf.mtu } : {}),
    ...(conf.mac ? { mac: conf.mac } : {}),
    ...(conf.promiscMode !== undefined ? { promisc: conf.promiscMode } : {}),
  });
  const imported = ctr.links.get(index);
  chownTap(index, tapDev, conf.owner ?? QEMU_ID, conf.group ?? QEMU_ID);
  return imported;
}

/**
 * The `st_rdev` of `/dev/tap<index>` once it is known to be the tap of
 * macvtap `ifname` (#`index`), or `undefined` where there is no node (a
 * static `/dev`). A node of another device at that name means the ifindex
 * is live in another namespace: the pod's `/dev/tapN` would open someone
 * else's device, so the ADD is refused (`what` names the link in the error).
 */
function ownTapNode(what: string, index: number, ifname: string): number | undefined {
  const node = charDevAt(`/dev/tap${index}`);
  if (node === undefined) return undefined;
  if (node === null || !isTapOf(node, ifname, index)) throw notOurTap(what, index, node, ifname);
  return node;
}

/** The refusal of a `/dev/tap<index>` that is not the tap of `ifname`. */
function notOurTap(
  what: string,
  index: number,
  node: number | null | undefined,
  ifname: string,
): PluginError {
  const is = node === undefined
    ? "missing from sysfs"
    : node === null
    ? "not a character device"
    : `device ${devNumberText(node)}`;
  return new PluginError(
    `${what}: /dev/tap${index} is ${is}, not the tap of "${ifname}": ifindex ${index} is live ` +
      `in another namespace; not importing it`,
    { code: ErrorCode.INVALID_CONFIG },
  );
}

/**
 * Why the host macvtap `dev` is in use by the host and not ours to hand to a
 * pod, or `undefined`: it is up, has an address of the host's, or host
 * routes go out of it (a hostrouteif).
 */
function hostUseOf(
  host: NetlinkHandle,
  dev: Link,
  options: { upIsFree?: boolean } = {},
): string | undefined {
  // The device plugin and `ip link add` leave a new macvtap down; an up one
  // is in use on the host (a VM's tap, a hostrouteif).
  if (dev.up && !options.upIsFree) return "is up, in use on the host";
  const addr = host.addrs.list({ link: dev.index })
    .find((a) => !a.cidr.startsWith("fe80:"));
  if (addr) return `carries the host address ${addr.cidr}`;
  const route = host.routes.list({ oif: dev.index }).find((r) => r.protocol === RTPROT_MACVTAP);
  if (route) return `carries host routes (${route.dst}): it is a hostrouteif`;
  return undefined;
}

/** `{ hostNetnsIno }`: the namespace the host routes go into (the call's host). */
function hostNetns(ctx: CniContext): { hostNetnsIno?: number } {
  const ino = hostNetnsIno(ctx);
  return ino === undefined ? {} : { hostNetnsIno: ino };
}

/** `{ netnsIno }` of the namespace file at `path`, or nothing when it cannot be read. */
function netnsInode(path: string): { netnsIno?: number } {
  try {
    return { netnsIno: statPath(path).ino }; // Deno.statSync of /proc/<pid>/… needs --allow-all
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
  a: Steps,
  device: { id: string; hostName: string; master: Link },
): Link {
  const { conf, host } = a;
  const { id, hostName, master } = device;
  return addAtTapIndex(
    id,
    (index) =>
      host.links.add({
        kind: "macvtap",
        name: hostName,
        parent: master.index,
        mode: conf.mode,
        index,
        ...(master.txQueueLen ? { txQueueLen: master.txQueueLen } : {}),
      }),
    () => host.links.find(hostName),
    (err, index) =>
      new PluginError(
        `deviceID "${id}": cannot recreate "${hostName}" on ${master.name}` +
          (index === undefined ? "" : ` with ifindex ${index}`) +
          ` (the device plugin's /dev/tap${tapIndexFor(id)} rule): ${errorText(err)}`,
        { cause: err },
      ),
  );
}

/** KubeVirt's qemu user and group (virt-launcher runs qemu as 107:107). */
const QEMU_ID = 107;

/**
 * Give `/dev/tap<index>` to `uid:gid`. The move re-created the node as
 * root:root 0600, and the VM's qemu opens it as an unprivileged user. Where
 * devtmpfs made no node (a static /dev), there is nothing to change. A node
 * whose major:minor is not `tapDev` (the imported device's) is another
 * device's and is never touched.
 */
function chownTap(index: number, tapDev: number | undefined, uid: number, gid: number): void {
  const path = `/dev/tap${index}`;
  const node = charDevAt(path);
  if (node === undefined) return;
  if (node !== tapDev) {
    throw new PluginError(
      `${path} is ${node === null ? "not a character device" : `device ${devNumberText(node)}`}, ` +
        `not the imported tap${
          tapDev === undefined ? "" : ` (${devNumberText(tapDev)})`
        }; not changing its owner`,
      { code: ErrorCode.INVALID_CONFIG },
    );
  }
  try {
    lchownPath(path, uid, gid);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new PluginError(`Cannot chown ${path} to ${uid}:${gid}`, { cause: err });
  }
}
