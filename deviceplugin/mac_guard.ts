/**
 * The MAC guard: a node's macvlan port delivers a VM's MAC locally only
 * while the VM runs on this node (issue 23, kubevirt/kubevirt#5912).
 *
 * All macvtaps on one lower device share a port; a bridge-mode sibling's
 * frame to a MAC that an up device on the port owns is delivered locally and
 * never reaches the wire. After a live migration A→B the source macvtap on A
 * stays up (nothing tells the node the VM left), so A's bridge-mode clients
 * send into the stale tap for ever; before it, the target macvtap on B
 * swallows B's clients' frames the same way.
 *
 * The guard learns where a VM runs as a switch learns a MAC, from the frames
 * it sees on the lower device of each macvtap the device plugin allocated
 * (only those), with two packet sockets per lower device whose classic BPF
 * filters let through only what can change a decision:
 *
 * - **away**: a device starts in `private` mode (set at Allocate, while it is
 *   down in the host namespace): the port neither delivers to it from its
 *   siblings nor from it to them; everything it sends goes to the wire.
 * - **local**: when a frame leaves the node (`PACKET_OUTGOING`) with the MAC
 *   of one of our away devices as source, its VM runs here: the device goes
 *   back to the resource's `bridge` mode. The socket's filter passes
 *   outgoing frames from any MAC not yet known (local devices' MACs and
 *   foreign MACs already looked up are dropped in the kernel).
 * - **away again**: when a broadcast or multicast frame with a local
 *   device's MAC as source arrives from the wire, the VM now speaks from
 *   elsewhere (qemu's RARPs, the guest's gratuitous ARP or unsolicited NA
 *   after a migration): the device goes `private`. The filter passes only
 *   such frames from local devices' MACs (a unicast one may be a local
 *   sibling's: see {@linkcode macFilter}).
 *
 * A device in a pod is found by its ifindex (node-unique, the rule of
 * Allocate) with `RTM_GETLINK` and `IFLA_TARGET_NETNSID` over the namespace
 * ids the host has; the kernel honours that attribute for reading only, so a
 * mode change is made from inside the pod's namespace, opened from the
 * host's `/run/netns` (matched by `RTM_GETNSID` on its fd). A restarted
 * device plugin adopts the devices that exist ({@linkcode MacGuard.adopt}).
 *
 * The mode changes are one `RTM_NEWLINK` each; the device stays up, so CHECK
 * (which, for `deviceID` links, checks the link is up and not its mode) keeps
 * passing, and a VM in private mode still reaches the wire, which is how it
 * comes back. A forged frame with a local VM's MAC from an L2 peer (which can
 * already steal the MAC at the switch) makes the local clients follow the
 * switch, as every other node's clients do, until the real VM's next frame
 * restores both; a device flips away at most {@linkcode AWAY_PER_SECOND}
 * times a second, so a forger cannot make the guard spin.
 *
 * Idle cost: one pool thread blocked in `poll(2)`, and nothing per frame
 * that does not change a decision (filtered in the kernel); while every
 * device on a lower device is local, no outgoing frame passes at all.
 *
 * The netlink layer is used below its `mod.ts` (socket, request loop,
 * codec): the guard needs requests that API does not offer (a namespace id
 * target, `RTM_GETNSID`, a socket opened in a namespace by fd and closed at
 * once so it never holds a pod's namespace alive).
 *
 * @module
 */

import { errno, libc, LIBC_ENV, POLLIN } from "../internal/_libc.ts";
import { TAP_INDEX_BASE, TAP_INDEX_PROBES, TAP_INDEX_SPAN } from "../internal/_ifname.ts";
import { openLibrary } from "../internal/_native.ts";
import { errnoText } from "../internal/_errno.ts";
import { errorText } from "../internal/_error_text.ts";
import type { Logger } from "../internal/_log.ts";
import { inNetns, isErrno, type Link, type MacvlanMode, openNetns } from "../netlink/mod.ts";
import { NetlinkSocket } from "../netlink/socket.ts";
import { FLAGS, request } from "../netlink/request.ts";
import type { AttrWriter } from "../netlink/wire/attr.ts";
import * as C from "../netlink/wire/constants.ts";
import { beginMessage, decodeLink, MACVLAN_MODES, putIfinfo } from "../netlink/wire/message.ts";
import { attrMap, readI32 } from "../netlink/wire/attr.ts";

/** `IFLA_TARGET_NETNSID`: read a link in the namespace with this id (linux/if_link.h). */
const IFLA_TARGET_NETNSID = 46;
/** `RTM_GETNSID` and its attribute `NETNSA_NSID` (linux/net_namespace.h). */
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;
/**
 * Where pod namespaces are bind-mounted (a DaemonSet mounts the host's
 * `/run/netns`). The kernel honours `IFLA_TARGET_NETNSID` for reading a link
 * in another namespace, not for changing it: a mode change is made from
 * inside the pod's namespace, found here by its id.
 */
export const NETNS_DIR_ENV = "MACVTAP_DP_NETNS_DIR";

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** `htons(ETH_P_ALL)`. */
const ETH_P_ALL_BE = 0x0300;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const MSG_DONTWAIT = 0x40;
const PACKET_OUTGOING = 4;

/** Away flips per device and second beyond which incoming frames are ignored. */
export const AWAY_PER_SECOND = 20;
/** Foreign source MACs remembered per lower device (their outgoing frames are dropped in the kernel). */
const FOREIGN_MAX = 700;
/** MACs one filter program can list (5 instructions each within the kernel's 4096). */
const FILTER_MACS = 800;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

const symbols = {
  /** int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int fd, const struct sockaddr *addr, socklen_t len) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let sockLib: Deno.DynamicLibrary<typeof symbols>["symbols"] | undefined;
function sock(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  return sockLib ??= openLibrary(LIBC_ENV, "libc.so.6", symbols);
}

// ------------------------------------------------------------ classic BPF

const BPF_LD_W_ABS = 0x20;
const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_ABS = 0x30;
const BPF_JEQ_K = 0x15;
const BPF_JSET_K = 0x45;
const BPF_RET_K = 0x06;
/** `SKF_AD_OFF + SKF_AD_PKTTYPE`: the packet type, as an absolute load. */
const AD_PKTTYPE = (0x100000000 - 0x1000 + 4) >>> 0;
/** Bytes kept of a passing frame: the Ethernet header is all we read. */
const SNAP = 14;
const BPF_MAXINSNS = 4096;

type Insn = [code: number, jt: number, jf: number, k: number];

/** The source MAC (bytes 6–11) as the two loads see it: big-endian word and half. */
function macWords(mac: string): [number, number] {
  const b = mac.split(":").map((h) => parseInt(h, 16));
  return [((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0, (b[4]! << 8) | b[5]!];
}

/**
 * A classic BPF program for a packet socket: frames whose `pkttype` is
 * (`outgoing: true`) or is not (`false`, and then only to a group address)
 * `PACKET_OUTGOING`, and whose source
 * MAC is (`match: "in"`) or is not (`"out"`) one of `macs`, pass with their
 * first 14 bytes; everything else is dropped. Jumps stay short (each MAC is
 * its own five-instruction block ending in a return), so any list length up
 * to the kernel's limit works.
 *
 * @example Outgoing frames from MACs other than one
 * ```ts
 * import { macFilter } from "./mac_guard.ts";
 * const prog = macFilter({ outgoing: true, match: "out", macs: ["02:00:00:00:00:01"] });
 * prog.length; // 8 bytes per instruction
 * ```
 */
export function macFilter(
  spec: { outgoing: boolean; match: "in" | "out"; macs: readonly string[] },
): Uint8Array {
  const hit = spec.match === "in" ? SNAP : 0;
  const miss = spec.match === "in" ? 0 : SNAP;
  const insns: Insn[] = [
    [BPF_LD_W_ABS, 0, 0, AD_PKTTYPE],
    // Outgoing wanted: continue on a match, else drop; the reverse otherwise.
    spec.outgoing ? [BPF_JEQ_K, 1, 0, PACKET_OUTGOING] : [BPF_JEQ_K, 0, 1, PACKET_OUTGOING],
    [BPF_RET_K, 0, 0, 0],
  ];
  if (!spec.outgoing) {
    // Arrivals: only to a group address (broadcast, multicast). A bridge-mode
    // device's unicast to a sibling passes the lower device's receive path
    // too ("for its network taps", drivers/net/macvlan.c), so a unicast
    // arrival may be local; group frames from a sibling never are.
    insns.push([BPF_LD_B_ABS, 0, 0, 0], [BPF_JSET_K, 1, 0, 1], [BPF_RET_K, 0, 0, 0]);
  }
  for (const mac of spec.macs) {
    const [w, h] = macWords(mac);
    insns.push(
      [BPF_LD_W_ABS, 0, 0, 6],
      [BPF_JEQ_K, 0, 3, w],
      [BPF_LD_H_ABS, 0, 0, 10],
      [BPF_JEQ_K, 0, 1, h],
      [BPF_RET_K, 0, 0, hit],
    );
  }
  insns.push([BPF_RET_K, 0, 0, miss]);
  if (insns.length > BPF_MAXINSNS) throw new RangeError(`BPF program of ${insns.length} insns`);
  const out = new Uint8Array(insns.length * 8);
  const v = new DataView(out.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    v.setUint16(i * 8, code, true);
    v.setUint8(i * 8 + 2, jt);
    v.setUint8(i * 8 + 3, jf);
    v.setUint32(i * 8 + 4, k, true);
  });
  return out;
}

function attachFilter(fd: number, prog: Uint8Array): void {
  // The kernel reads the program through a raw pointer: it must not move
  // while we build the call. V8 keeps small typed arrays on its heap, where a
  // collection may move them; a backing store this large lives off the heap.
  const insns = new Uint8Array(new ArrayBuffer(Math.max(prog.length, 256)));
  insns.set(prog);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (16 bytes)
  const fprog = new Uint8Array(new ArrayBuffer(256));
  const v = new DataView(fprog.buffer);
  v.setUint16(0, prog.length / 8, true);
  v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(insns))), true);
  if (libc().setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) < 0) {
    throw new Error(`SO_ATTACH_FILTER: ${errnoText(errno())}`);
  }
}

/**
 * A nonblocking AF_PACKET socket on `ifindex` with `prog` attached before it
 * is bound (so no frame passes unfiltered).
 */
function packetSocket(ifindex: number, prog: Uint8Array): number {
  const fd = sock().socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket(AF_PACKET): ${errnoText(errno())}`);
  try {
    attachFilter(fd, prog);
    // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype, pkttype, halen, addr[8]
    const sll = new DataView(new ArrayBuffer(20));
    sll.setUint16(0, AF_PACKET, true);
    sll.setUint16(2, ETH_P_ALL_BE, true);
    sll.setInt32(4, ifindex, true);
    if (sock().bind(fd, new Uint8Array(sll.buffer), 20) < 0) {
      throw new Error(`bind(AF_PACKET, ifindex ${ifindex}): ${errnoText(errno())}`);
    }
    return fd;
  } catch (err) {
    libc().close(fd);
    throw err;
  }
}

// ------------------------------------------------------------ netlink

/** Where a link is: the host namespace (`undefined`) or a peer namespace id. */
type Where = number | undefined;

function getLinkMsg(index: number, where: Where): AttrWriter {
  const w = beginMessage(C.RTM_GETLINK, FLAGS.change);
  putIfinfo(w, { index });
  if (where !== undefined) w.i32(IFLA_TARGET_NETNSID, where);
  return w;
}

function setModeMsg(index: number, mode: MacvlanMode): AttrWriter {
  const w = beginMessage(C.RTM_NEWLINK, FLAGS.change);
  putIfinfo(w, { index });
  w.begin(C.IFLA_LINKINFO);
  w.chars(C.IFLA_INFO_KIND, "macvtap");
  w.begin(C.IFLA_INFO_DATA);
  w.u32(C.IFLA_MACVLAN_MODE, MACVLAN_MODES[mode]);
  w.end();
  w.end();
  return w;
}

/** The id this namespace has for the namespace `fd` (`ip netns list-id` for one), -1 when none. */
function nsidOf(nl: NetlinkSocket, fd: number): number {
  const [reply] = request(nl, "RTM_GETNSID", () => {
    const w = beginMessage(RTM_GETNSID, FLAGS.change);
    w.zeros(4); // struct rtgenmsg, padded
    w.u32(NETNSA_FD, fd);
    return w;
  });
  const id = reply ? attrMap(reply.payload.subarray(4)).get(NETNSA_NSID) : undefined;
  return id ? readI32(id) : -1;
}

/** `ip [-n NS] link show`: a dump of the links of the host or of the namespace with id `where`. */
function dumpLinksMsg(where: Where): AttrWriter {
  const w = beginMessage(C.RTM_GETLINK, FLAGS.dump);
  putIfinfo(w, {});
  if (where !== undefined) w.i32(IFLA_TARGET_NETNSID, where);
  return w;
}

/** Ids of the namespaces this one has an id for (`ip netns list-id`). */
function listNsids(nl: NetlinkSocket): number[] {
  const replies = request(nl, "RTM_GETNSID", () => {
    const w = beginMessage(RTM_GETNSID, FLAGS.dump);
    w.zeros(4); // struct rtgenmsg, padded
    return w;
  });
  const out: number[] = [];
  for (const r of replies) {
    const id = attrMap(r.payload.subarray(4)).get(NETNSA_NSID);
    if (id) out.push(readI32(id));
  }
  return out.filter((id) => id >= 0);
}

// ------------------------------------------------------------ the guard

/** A device the guard watches: what Allocate made. */
export interface GuardedDevice {
  /** Device ID (`<resource>-<n>`), for logs. */
  id: string;
  /** Its ifindex: node-unique, kept when the CNI moves it into a pod. */
  index: number;
  /** ifindex of its lower device (host namespace). */
  lowerIndex: number;
  /** The mode it serves in when its VM runs here (the resource's). */
  mode: MacvlanMode;
}

/** A resource whose existing devices {@linkcode MacGuard.adopt} takes over. */
export interface AdoptResource {
  /** Its device IDs. */
  ids: readonly string[];
  /** The ifindexes a device of that ID may have (`tapIndexCandidates`). */
  indexes: (id: string) => readonly number[];
  lowerIndex: number;
  mode: MacvlanMode;
}

interface DeviceState extends GuardedDevice {
  /** Last place it was found. */
  where: Where;
  /** `true` while in `mode` (its VM runs here), `false` while private. */
  local: boolean;
  /** Its MAC when local (the key of the lower's `local` map). */
  mac: string | undefined;
  /** Times of the recent away flips (rate limit). */
  flips: number[];
  /** Delay before switching back is tried again after a failure. */
  retryMs: number;
}

interface LowerState {
  index: number;
  /** Outgoing frames from MACs not known. */
  outFd: number;
  /** Frames from the wire from local devices' MACs. */
  inFd: number;
  local: Map<string, DeviceState>;
  foreign: Set<string>;
  devices: Set<DeviceState>;
}

/** What the guard has done, for tests and logs. */
export interface GuardStats {
  /** Frames read from the packet sockets. */
  frames: number;
  /** Flips to the resource's mode (the VM transmits here). */
  toLocal: number;
  /** Flips to private (the VM speaks from elsewhere). */
  toAway: number;
  /** Away flips skipped by the rate limit. */
  limited: number;
  /** Filter re-attachments. */
  refilters: number;
}

/** Options of {@linkcode MacGuard.start}. */
export interface MacGuardOptions {
  log: Logger;
}

/**
 * The node agent of issue 23. {@linkcode MacGuard.track} each device right
 * after Allocate; {@linkcode MacGuard.close} on shutdown.
 */
export class MacGuard {
  #log: Logger;
  #nl: NetlinkSocket;
  #devices = new Map<number, DeviceState>();
  #lowers = new Map<number, LowerState>();
  #wake: [number, number];
  #closed = false;
  #loop: Promise<void> | undefined;
  #frame = new Uint8Array(64);
  #netnsDir = Deno.env.get(NETNS_DIR_ENV) ?? "/run/netns";
  #nsPaths = new Map<number, string>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #stats: GuardStats = { frames: 0, toLocal: 0, toAway: 0, limited: 0, refilters: 0 };

  private constructor(log: Logger, nl: NetlinkSocket, wake: [number, number]) {
    this.#log = log;
    this.#nl = nl;
    this.#wake = wake;
  }

  /** Open the guard's netlink socket and wake-up pipe; no packet socket until a device is tracked. */
  static start(options: MacGuardOptions): MacGuard {
    const nl = NetlinkSocket.open({ timeoutMs: 2000 });
    const fds = new Int32Array(2);
    if (libc().pipe2(new Uint8Array(fds.buffer), 0o4000 | 0o2000000) < 0) {
      const e = errno();
      nl.close();
      throw new Error(`pipe2: ${errnoText(e)}`);
    }
    return new MacGuard(options.log, nl, [fds[0]!, fds[1]!]);
  }

  /** Counters. */
  get stats(): Readonly<GuardStats> {
    return this.#stats;
  }

  /**
   * Watch a device Allocate just made (down, in the host namespace): set it
   * private until its VM transmits from this node. Devices in `private`,
   * `vepa` or `passthru` mode are left alone (no local delivery to guard,
   * or the switch reflects). Failures are logged: the device then works as
   * without the guard.
   */
  track(device: GuardedDevice): void {
    if (this.#closed || device.mode !== "bridge") return;
    const old = this.#devices.get(device.index);
    if (old) this.#forget(old);
    const state: DeviceState = {
      ...device,
      where: undefined,
      local: false,
      mac: undefined,
      flips: [],
      retryMs: RETRY_MIN_MS,
    };
    let lower: LowerState | undefined;
    try {
      // The sockets first: a device is made private only when the guard can bring it back.
      lower = this.#lower(device.lowerIndex);
      this.#setMode(state, "private");
      lower.devices.add(state);
      // A MAC looked up before may be this device's now.
      lower.foreign.clear();
      this.#refilter(lower);
      this.#devices.set(device.index, state);
      this.#log.debug(
        `mac guard: ${device.id} (ifindex ${device.index}) private until its VM speaks`,
      );
      this.#run();
    } catch (err) {
      this.#log.warn(`mac guard: cannot guard ${device.id}: ${errorText(err)}`);
      if (lower && lower.devices.size === 0) this.#dropLower(lower);
    }
  }

  /**
   * Take over the devices of `resources` that exist already (allocated by a
   * device plugin that ran before this one): a macvtap on the resource's
   * lower device at one of the ifindexes of its device IDs (the rule both
   * Allocate and the CNI's recreate follow), in the host namespace or in any
   * namespace with an id. One that is up in bridge mode with a MAC counts as
   * its VM running here (the guard reacts when that MAC arrives from the
   * wire); any other is away. Modes are kept, but for a bridge-mode device
   * still down in the host namespace (not yet in a pod), which is made
   * private as {@linkcode MacGuard.track} does.
   *
   * @returns How many devices were adopted.
   */
  adopt(resources: readonly AdoptResource[]): number {
    if (this.#closed) return 0;
    // By each ID's preferred index only: every candidate of every ID (up to
    // 32 per device, 20,000 devices) would not fit the daemon's heap. A link
    // at another candidate is found by walking back to its preferred index.
    const byPreferred = new Map<number, { id: string; r: AdoptResource }>();
    for (const r of resources) {
      if (r.mode !== "bridge") continue;
      for (const id of r.ids) byPreferred.set(r.indexes(id)[0]!, { id, r });
    }
    if (byPreferred.size === 0) return 0;
    const ownerOf = (index: number) => {
      for (let k = 0; k < TAP_INDEX_PROBES; k++) {
        const preferred = TAP_INDEX_BASE +
          ((index - TAP_INDEX_BASE - k + TAP_INDEX_SPAN) % TAP_INDEX_SPAN);
        const hit = byPreferred.get(preferred);
        if (hit && hit.r.indexes(hit.id).includes(index)) return hit;
      }
      return undefined;
    };
    let adopted = 0;
    for (const where of [undefined, ...listNsids(this.#nl)]) {
      let links: Link[];
      try {
        links = request(this.#nl, "RTM_GETLINK", () => dumpLinksMsg(where)).map((m) =>
          decodeLink(m.payload)
        );
      } catch (err) {
        this.#log.debug(`mac guard: links of nsid ${where}: ${errorText(err)}`);
        continue;
      }
      for (const link of links) {
        const mine = link.kind === "macvtap" ? ownerOf(link.index) : undefined;
        if (
          !mine || link.kind !== "macvtap" || link.parentIndex !== mine.r.lowerIndex ||
          this.#devices.has(link.index)
        ) {
          continue;
        }
        const local = link.mode === "bridge" && link.up && link.mac !== undefined;
        const d: DeviceState = {
          id: mine.id,
          index: link.index,
          lowerIndex: mine.r.lowerIndex,
          mode: mine.r.mode,
          where,
          local,
          mac: local ? link.mac : undefined,
          flips: [],
          retryMs: RETRY_MIN_MS,
        };
        try {
          const l = this.#lower(d.lowerIndex);
          // Allocated but not handed to a pod yet, by a plugin without the guard: as track().
          if (where === undefined && !link.up && link.mode === "bridge") {
            this.#setMode(d, "private");
          }
          l.devices.add(d);
          if (local) l.local.set(link.mac!, d);
          this.#refilter(l);
          this.#devices.set(d.index, d);
          adopted++;
          this.#log.info(
            `mac guard: adopted ${d.id} (ifindex ${d.index}, ${local ? "bridge" : "away"})`,
          );
        } catch (err) {
          this.#log.warn(`mac guard: cannot adopt ${d.id}: ${errorText(err)}`);
          const l = this.#lowers.get(d.lowerIndex);
          if (l && l.devices.size === 0) this.#dropLower(l);
        }
      }
    }
    if (adopted) this.#run();
    return adopted;
  }

  /** Stop: close the packet sockets and the netlink socket. Devices keep their current mode. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const st = this.#stats;
    this.#log.info(
      `mac guard: ${st.frames} frames read, ${st.toLocal} switches to bridge, ` +
        `${st.toAway} to private, ${st.limited} rate-limited, ${st.refilters} filter updates`,
    );
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    libc().write(this.#wake[1], new Uint8Array(1), 1n);
    await this.#loop;
    for (const l of this.#lowers.values()) {
      libc().close(l.inFd);
      libc().close(l.outFd);
    }
    this.#lowers.clear();
    libc().close(this.#wake[0]);
    libc().close(this.#wake[1]);
    this.#nl.close();
  }

  #lower(index: number): LowerState {
    let l = this.#lowers.get(index);
    if (l) return l;
    const nothing = macFilter({ outgoing: false, match: "in", macs: [] });
    const inFd = packetSocket(index, nothing);
    let outFd: number;
    try {
      outFd = packetSocket(
        index,
        macFilter({ outgoing: true, match: "out", macs: [] }),
      );
    } catch (err) {
      libc().close(inFd);
      throw err;
    }
    l = { index, inFd, outFd, local: new Map(), foreign: new Set(), devices: new Set() };
    this.#lowers.set(index, l);
    this.#poke();
    return l;
  }

  #refilter(l: LowerState): void {
    // At most FILTER_MACS per program (the kernel's 4096 instructions): the
    // newest foreign MACs are kept; an older one that comes back is looked up again.
    const local = [...l.local.keys()].slice(0, FILTER_MACS);
    attachFilter(
      l.inFd,
      macFilter({ outgoing: false, match: "in", macs: local }),
    );
    // No device away: no outgoing frame can change anything, so none is passed.
    const away = [...l.devices].some((d) => !d.local);
    const foreign = [...l.foreign].slice(-Math.max(0, FILTER_MACS - local.length));
    attachFilter(
      l.outFd,
      away
        ? macFilter({ outgoing: true, match: "out", macs: [...local, ...foreign] })
        : macFilter({ outgoing: true, match: "in", macs: [] }),
    );
    this.#stats.refilters++;
  }

  #forget(d: DeviceState): void {
    this.#devices.delete(d.index);
    const l = this.#lowers.get(d.lowerIndex);
    if (!l) return;
    l.devices.delete(d);
    if (d.mac && l.local.get(d.mac) === d) l.local.delete(d.mac);
    if (l.devices.size === 0) this.#dropLower(l);
    else this.#refilter(l);
  }

  /** Close a lower device's sockets (no device of ours on it any more). */
  #dropLower(l: LowerState): void {
    libc().close(l.inFd);
    libc().close(l.outFd);
    this.#lowers.delete(l.index);
    this.#poke();
  }

  #poke(): void {
    libc().write(this.#wake[1], new Uint8Array(1), 1n);
  }

  #run(): void {
    this.#loop ??= this.#pollLoop().catch((err) => {
      this.#log.error(`mac guard stopped: ${errorText(err)}`);
    });
  }

  async #pollLoop(): Promise<void> {
    const drain = new Uint8Array(64);
    while (!this.#closed) {
      const lowers = [...this.#lowers.values()];
      const fds = [this.#wake[0], ...lowers.flatMap((l) => [l.inFd, l.outFd])];
      // Read and written by a pool thread during the await: off V8's heap (see attachFilter).
      const pfd = new DataView(new ArrayBuffer(Math.max(fds.length * 8, 256)));
      fds.forEach((fd, i) => {
        pfd.setInt32(i * 8, fd, true);
        pfd.setInt16(i * 8 + 4, POLLIN, true);
      });
      const buf = new Uint8Array(pfd.buffer);
      const n = await libc().poll(buf, BigInt(fds.length), -1);
      if (this.#closed) return;
      if (n < 0) continue; // EINTR
      for (let i = 0; i < fds.length; i++) {
        const revents = pfd.getInt16(i * 8 + 6, true);
        if (!revents) continue;
        if (i === 0) {
          while (Number(libc().read(this.#wake[0], drain, 64n)) > 0) { /* drain */ }
          continue;
        }
        const lower = lowers[(i - 1) >> 1]!;
        if (this.#lowers.get(lower.index) !== lower) continue; // forgotten meanwhile
        // An error (the lower device went down or away) surfaces from recv and is cleared there.
        this.#drain(lower, (i - 1) % 2 === 1);
      }
    }
  }

  /**
   * A lower device's socket reported `e`: the device went down (the socket
   * works again once it is up) or away (its macvtaps went with it: forget them).
   */
  #lowerFailed(l: LowerState, e: number): void {
    try {
      const [reply] = request(this.#nl, "RTM_GETLINK", () => getLinkMsg(l.index, undefined));
      if (reply) {
        this.#log.debug(`mac guard: lower device ${l.index}: ${errnoText(e)}`);
        return;
      }
    } catch (err) {
      if (!isErrno(err, "ENODEV")) throw err;
    }
    this.#log.info(`mac guard: lower device ${l.index} is gone, and its devices with it`);
    for (const d of [...l.devices]) this.#forget(d);
  }

  #drain(l: LowerState, outgoing: boolean): void {
    const fd = outgoing ? l.outFd : l.inFd;
    for (let k = 0; k < 256; k++) {
      const n = Number(libc().recv(fd, this.#frame, 64n, MSG_DONTWAIT));
      if (n < 0) {
        const e = errno();
        if (e === 11) return; // EAGAIN
        if (e === 100 || e === 6 || e === 19) { // ENETDOWN, ENXIO, ENODEV
          this.#lowerFailed(l, e);
          return;
        }
        throw new Error(`recv(AF_PACKET): ${errnoText(e)}`);
      }
      if (n < 12) continue;
      this.#stats.frames++;
      const src = formatMac(this.#frame.subarray(6, 12));
      try {
        if (outgoing) this.#transmitted(l, src);
        else this.#arrived(l, src);
      } catch (err) {
        this.#log.warn(`mac guard: ${src} on lower ${l.index}: ${errorText(err)}`);
      }
      if (this.#lowers.get(l.index) !== l) return;
    }
  }

  /** A frame from `src` left this node: if `src` is an away device's VM, it runs here. */
  #transmitted(l: LowerState, src: string): void {
    if (l.local.has(src) || l.foreign.has(src)) return; // queued before the last refilter
    for (const d of l.devices) {
      if (d.local) continue;
      const link = this.#find(d);
      if (!link) {
        this.#forget(d);
        continue;
      }
      if (link.mac !== src || !link.up) continue;
      try {
        this.#setMode(d, d.mode);
      } catch (err) {
        this.#holdOff(l, src, d, err);
        return;
      }
      d.retryMs = RETRY_MIN_MS;
      d.local = true;
      d.mac = src;
      l.local.set(src, d);
      this.#refilter(l);
      this.#stats.toLocal++;
      this.#log.info(`mac guard: ${d.id} ${src} transmits on this node: ${d.mode} mode`);
      return;
    }
    l.foreign.add(src);
    if (l.foreign.size > FOREIGN_MAX) l.foreign.delete(l.foreign.values().next().value!);
    this.#refilter(l);
  }

  /** A frame from `src` arrived from the wire: a local device's VM speaks from elsewhere. */
  #arrived(l: LowerState, src: string): void {
    if ((this.#frame[0]! & 1) === 0) return; // unicast: maybe a sibling's (see macFilter)
    const d = l.local.get(src);
    if (!d) return;
    const now = performance.now();
    d.flips = d.flips.filter((t) => now - t < 1000);
    if (d.flips.length >= AWAY_PER_SECOND) {
      this.#stats.limited++;
      return;
    }
    // Attempts count against the limit too: a failing change is not retried per frame.
    d.flips.push(now);
    const link = this.#find(d);
    if (!link) {
      this.#forget(d);
      return;
    }
    this.#setMode(d, "private");
    l.local.delete(src);
    d.local = false;
    d.mac = undefined;
    this.#refilter(l);
    this.#stats.toAway++;
    this.#log.info(`mac guard: ${d.id} ${src} arrived from the wire: private mode`);
  }

  /**
   * Switching `d` back failed (its pod's namespace is not under the netns
   * directory, say): drop `src`'s frames in the kernel for a while (1 s,
   * doubling up to 60 s) rather than retry on each of them.
   */
  #holdOff(l: LowerState, src: string, d: DeviceState, err: unknown): void {
    this.#log.warn(
      `mac guard: cannot switch ${d.id} to ${d.mode} mode: ${errorText(err)}; ` +
        `retrying in ${d.retryMs / 1000} s`,
    );
    l.foreign.add(src);
    this.#refilter(l);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#closed || this.#lowers.get(l.index) !== l) return;
      l.foreign.delete(src);
      this.#refilter(l);
    }, d.retryMs);
    this.#timers.add(timer);
    d.retryMs = Math.min(d.retryMs * 2, RETRY_MAX_MS);
  }

  /** Our device by ifindex, where it was last, else in the host or any peer namespace. */
  #find(d: DeviceState): Link | undefined {
    const tried = new Set<Where>();
    const look = (where: Where): Link | undefined => {
      tried.add(where);
      try {
        const [reply] = request(this.#nl, "RTM_GETLINK", () => getLinkMsg(d.index, where));
        if (!reply) return undefined;
        const link = decodeLink(reply.payload);
        const ours = link.index === d.index && link.kind === "macvtap" &&
          link.parentIndex === d.lowerIndex;
        return ours ? link : undefined;
      } catch (err) {
        if (isErrno(err, "ENODEV") || isErrno(err, "EINVAL")) return undefined;
        throw err;
      }
    };
    let link = look(d.where);
    if (link) return link;
    for (const where of [undefined, ...listNsids(this.#nl)]) {
      if (tried.has(where)) continue;
      link = look(where);
      if (link) {
        d.where = where;
        return link;
      }
    }
    return undefined;
  }

  #setMode(d: DeviceState, mode: MacvlanMode): void {
    if (d.where === undefined) {
      try {
        request(this.#nl, "RTM_NEWLINK", () => setModeMsg(d.index, mode));
        return;
      } catch (err) {
        // Moved into a pod meanwhile: look for it there.
        if (!isErrno(err, "ENODEV") || !this.#find(d) || d.where === undefined) throw err;
      }
    }
    const where = d.where;
    const path = this.#netnsPath(where);
    // A socket holds its namespace alive: one per change, closed at once.
    inNetns(path, () => {
      using s = NetlinkSocket.open({ timeoutMs: 2000 });
      request(s, "RTM_NEWLINK", () => setModeMsg(d.index, mode));
    });
  }

  /** The file under the netns directory of the namespace with id `nsid` (cached, re-checked). */
  #netnsPath(nsid: number): string {
    const cached = this.#nsPaths.get(nsid);
    if (cached !== undefined && this.#nsidAt(cached) === nsid) return cached;
    this.#nsPaths.delete(nsid);
    for (const e of Deno.readDirSync(this.#netnsDir)) {
      const path = `${this.#netnsDir}/${e.name}`;
      const id = this.#nsidAt(path);
      if (id >= 0) this.#nsPaths.set(id, path);
      if (id === nsid) return path;
    }
    throw new Error(
      `no namespace under ${this.#netnsDir} has id ${nsid} (mount the host's /run/netns there)`,
    );
  }

  #nsidAt(path: string): number {
    let ns;
    try {
      ns = openNetns(path);
    } catch {
      return -1;
    }
    using _ns = ns;
    return nsidOf(this.#nl, ns.fd);
  }
}

function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}
