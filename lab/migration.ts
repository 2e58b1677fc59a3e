/**
 * The two-node live-migration lab (issue 23): a VM on the device plugin's
 * macvtap migrates between node A and node B while clients on both nodes
 * and a LAN peer ping it every 20 ms and keep TCP streams to it.
 *
 * ```
 *  <id>-lan       br0 10.99.0.1/24: the "switch" and the LAN peer; ports nA, nB
 *  <id>-nodeA/B   lan0 (the node's NIC, a veth into br0); `macvtap deviceplugin`
 *                 runs here with its kubelet stand-in
 *  <id>-clientA/B eth0: a bridge-mode macvtap on the node's lan0, 10.99.0.11/.12
 *  <id>-<pod>     net1: the CNI's deviceID import of an allocated device, MAC
 *                 VM_MAC; qemu as 107:107 on its /dev/tapN, monitor on a unix
 *                 socket; pods talk migration streams over veths between them
 * ```
 *
 * IPv6 is off in the VM pods (`net.ipv6.conf.default.disable_ipv6=1` before
 * the link moves in), so the pod's kernel never sends with the VM's MAC.
 *
 * @module
 */

import { cni, describe, type Lab } from "./mod.ts";
import { devicePluginArgv, FakeKubelet, type PluginConn } from "./kubelet.ts";
import { buildVmAssets, QEMU, QEMU_UID, type VmAssets } from "./vm.ts";

/** The VM's MAC, on both nodes (KubeVirt passes the VM's MAC to the CNI). */
export const VM_MAC = "02:a0:00:00:00:50";
/** The guest's address. */
export const VM_IP = "10.99.0.50";
/** The LAN peer (br0 in the switch namespace). */
export const PEER_IP = "10.99.0.1";
const CLIENT_IP = { A: "10.99.0.11", B: "10.99.0.12" } as const;
/** The guest's TCP echo port (busybox `nc -ll -e cat`, a process per connection). */
export const ECHO_PORT = 5000;
const MIGRATION_PORT = 4444;
/**
 * The resource of node `k`. The lab's nodes share one kernel and one `/dev`:
 * equal device IDs on both would give both nodes' devices the same ifindex,
 * hence the same `/dev/tapN` path for two devices (real nodes have a `/dev`
 * each). Distinct names keep the paths apart.
 */
function resourceOf(k: "A" | "B"): string {
  return `migr-lan-${k.toLowerCase()}`;
}

const TCP_PROBE = new URL("./_tcp_probe.ts", import.meta.url).pathname;
/** The heap bounds the DaemonSet uses. */

/** The guest's /init: address, an echo server, an announcement, then it idles. */
export const MIGRATION_INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/lib/modules/$m" || echo "VM-INSMOD-FAIL $m"; done
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "\${a#*=}";; esac; done; }
ip=$(arg vm.ip)
ip link set lo up
ip link set eth0 up
ip addr add "$ip" dev eth0
nc -ll -p ${ECHO_PORT} -e cat &
arping -U -c 1 -I eth0 "\${ip%/*}" >/dev/null 2>&1
echo VM-READY
while :; do sleep 3600; done
`;

/** Wall-clock milliseconds with sub-ms resolution (comparable across processes). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One node: its netns, device plugin process, kubelet stand-in. */
export interface MigrationNode {
  name: "A" | "B";
  ns: string;
  conn: PluginConn;
  dp: Deno.ChildProcess;
  /** The node's kubelet stand-in: it admits pods and serves their devices in PodResources. */
  kubelet: FakeKubelet;
  /** Next device number of the resource to allocate. */
  next: number;
  /** Stop the device plugin and start a new one (an upgrade of the DaemonSet). */
  restart: () => Promise<void>;
}

/** A VM pod: its namespace, its device, and its qemu once started. */
export interface VmPod {
  role: string;
  node: MigrationNode;
  ns: string;
  id: string;
  containerId: string;
  tapPath: string;
  dir: string;
  /** CNI DEL done. */
  removed: boolean;
  qemu?: Deno.ChildProcess | undefined;
  hmp?: Hmp | undefined;
}

/** A qemu human monitor over its unix socket. */
export class Hmp {
  #conn: Deno.UnixConn;
  #buf = "";
  #dec = new TextDecoder();
  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /** Connect (retrying while qemu creates the socket) and read the banner. */
  static async open(path: string, timeoutMs = 30_000): Promise<Hmp> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const h = new Hmp(await Deno.connect({ transport: "unix", path }));
        await h.#prompt();
        return h;
      } catch (err) {
        if (Date.now() > end) throw new Error(`qemu monitor ${path}: ${err}`);
        await sleep(50);
      }
    }
  }

  async #prompt(): Promise<string> {
    const chunk = new Uint8Array(65536);
    for (;;) {
      const at = this.#buf.indexOf("(qemu) ");
      if (at >= 0) {
        const out = this.#buf.slice(0, at);
        this.#buf = this.#buf.slice(at + 7);
        return out;
      }
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("qemu monitor closed");
      this.#buf += this.#dec.decode(chunk.subarray(0, n));
    }
  }

  /** Run one command; its output without the echo and terminal escapes. */
  async cmd(line: string): Promise<string> {
    await this.#conn.write(new TextEncoder().encode(`${line}\n`));
    // deno-lint-ignore no-control-regex
    return (await this.#prompt()).replace(/\x1b\[[0-9;]*[A-Za-z]|\r/g, "");
  }

  /** Close the connection (qemu keeps running). */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

/** What `info migrate` said at the end. */
export interface MigrationResult {
  status: string;
  totalMs?: number;
  downtimeMs?: number;
  /** Wall-clock time the source saw the end. */
  at: number;
}

/** The lab: switch, two nodes, two clients; VM pods on demand. */
export class MigrationLab {
  readonly lab: Lab;
  readonly lan: string;
  readonly nodes: { A: MigrationNode; B: MigrationNode };
  readonly clients: { A: string; B: string };
  readonly assets: VmAssets;
  #links = 0;

  private constructor(
    lab: Lab,
    lan: string,
    nodes: { A: MigrationNode; B: MigrationNode },
    clients: { A: string; B: string },
    assets: VmAssets,
  ) {
    this.lab = lab;
    this.lan = lan;
    this.nodes = nodes;
    this.clients = clients;
    this.assets = assets;
  }

  /** Build the switch, the nodes (device plugins with the MAC guard on or off) and the clients. */
  static async create(lab: Lab, options: { guard: boolean }): Promise<MigrationLab> {
    const assets = await buildVmAssets(await lab.tempDir("assets"), { init: MIGRATION_INIT });
    const lan = await lab.netns("lan");
    await lab.ip(lan, "link", "add", "br0", "type", "bridge");
    await lab.ip(lan, "addr", "add", `${PEER_IP}/24`, "dev", "br0");
    await lab.ip(lan, "link", "set", "br0", "up");
    const nodes = {
      A: await nodeOf(lab, lan, "A", options.guard),
      B: await nodeOf(lab, lan, "B", options.guard),
    };
    const clients = { A: "", B: "" };
    for (const k of ["A", "B"] as const) {
      const ns = await lab.netns(`client${k.toLowerCase()}`);
      await lab.ip(
        nodes[k].ns,
        ..."link add link lan0 name eth0 netns".split(" "),
        ns,
        ..."type macvtap mode bridge".split(" "),
      );
      await lab.ip(ns, "addr", "add", `${CLIENT_IP[k]}/24`, "dev", "eth0");
      await lab.ip(ns, "link", "set", "eth0", "up");
      clients[k] = ns;
    }
    return new MigrationLab(lab, lan, nodes, clients, assets);
  }

  /**
   * A VM pod on `node`: kubelet's Allocate of the next device, then CNI ADD
   * with `deviceID` and the VM's MAC (as KubeVirt's virt-launcher pod gets it).
   */
  async pod(node: MigrationNode, role: string): Promise<VmPod> {
    const ns = await this.lab.netns(role);
    await this.lab.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1");
    await this.lab.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1");
    const id = `${resourceOf(node.name)}-${node.next++}`;
    // kubelet admits the pod (Allocate) and lists the device for it; the CNI
    // asks kubelet's PodResources API before it imports the device.
    const vmPod = { namespace: "vms", name: `virt-launcher-${this.lab.id}-${role}` };
    const resource = `macvtap.network.kubevirt.io/${resourceOf(node.name)}`;
    const alloc = await node.kubelet.admit(vmPod, resource, [[id]]);
    const dev = alloc.containerResponses[0]?.devices[0];
    if (!dev) throw new Error(`Allocate ${id}: no device`);
    const containerId = `${this.lab.id}-${role}`;
    const add = await cni(this.lab, node.ns, {
      command: "ADD",
      containerId,
      netns: this.lab.path(ns),
      ifname: "net1",
      ...node.kubelet.cniEnvFor(vmPod),
    }, netconf(id));
    if (add.code !== 0) throw new Error(`CNI ADD ${id} on ${node.name}: ${describe(add)}`);
    const dir = await this.lab.tempDir(`qemu${role}`);
    await Deno.chown(dir, QEMU_UID, QEMU_UID);
    const pod: VmPod = {
      role,
      node,
      ns,
      id,
      containerId,
      tapPath: dev.hostPath,
      dir,
      removed: false,
    };
    // Whatever happens: qemu stopped, the attachment deleted (its record and device).
    this.lab.defer(`pod ${role}`, async () => {
      await this.quit(pod);
      if (!pod.removed) await this.remove(pod);
    });
    return pod;
  }

  /** CNI DEL of a pod whose qemu is gone. */
  async remove(pod: VmPod): Promise<void> {
    pod.removed = true;
    const del = await cni(this.lab, pod.node.ns, {
      command: "DEL",
      containerId: pod.containerId,
      netns: this.lab.path(pod.ns),
      ifname: "net1",
    }, netconf(pod.id));
    if (del.code !== 0) throw new Error(`CNI DEL ${pod.id}: ${describe(del)}`);
  }

  /** A veth between two pods for the migration stream; returns the address on `to`. */
  async link(from: VmPod, to: VmPod): Promise<string> {
    const n = ++this.#links;
    await this.lab.veth(from.ns, `mig${n}`, to.ns, `mig${n}p`);
    await this.lab.ip(from.ns, "addr", "add", `192.168.${200 + n}.1/24`, "dev", `mig${n}`);
    await this.lab.ip(to.ns, "addr", "add", `192.168.${200 + n}.2/24`, "dev", `mig${n}p`);
    return `192.168.${200 + n}.2`;
  }

  /** Start qemu in `pod` (as 107:107 on its tap), fresh or waiting for a migration on `incoming`. */
  async start(pod: VmPod, incoming?: string): Promise<void> {
    const a = this.assets;
    const qemu = [
      QEMU,
      ...["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"],
      ...["-serial", `file:${pod.dir}/console.log`],
      ...["-monitor", `unix:${pod.dir}/mon.sock,server=on,wait=off`],
      ...["-accel", "tcg", "-cpu", "max", "-m", "128", "-smp", "1"],
      ...["-kernel", a.kernel, "-initrd", a.initramfs],
      ...["-append", `console=ttyS0 quiet panic=-1 rdinit=/init vm.ip=${VM_IP}/24`],
      ...["-netdev", "tap,id=net0,fd=3"],
      ...["-device", `virtio-net-pci,netdev=net0,mac=${VM_MAC},romfile=`],
      ...(incoming ? ["-incoming", `tcp:${incoming}:${MIGRATION_PORT}`] : []),
    ];
    pod.qemu = this.lab.spawn(null, [
      "nsenter",
      `--net=${this.lab.path(pod.ns)}`,
      "setpriv",
      `--reuid=${QEMU_UID}`,
      `--regid=${QEMU_UID}`,
      "--clear-groups",
      "--",
      "sh",
      "-c",
      'exec 3<>"$0" && exec "$@"',
      pod.tapPath,
      ...qemu,
    ], { what: `qemu ${pod.role}` });
    pod.hmp = await Hmp.open(`${pod.dir}/mon.sock`);
  }

  /** Wait until the guest printed `VM-READY` on its console. */
  async ready(pod: VmPod, timeoutMs = 120_000): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      let text = "";
      try {
        text = await Deno.readTextFile(`${pod.dir}/console.log`);
      } catch {
        // not yet
      }
      if (text.includes("VM-READY")) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(`the VM in ${pod.role} did not come up:\n${text.slice(-2000)}`);
      }
      await sleep(100);
    }
  }

  /**
   * Migrate the VM of `src` to `dst` (started with `incoming` = `ip`). With
   * `cancelAfterMs`, the bandwidth is throttled and the migration cancelled
   * after that long.
   */
  async migrate(
    src: VmPod,
    ip: string,
    options: { cancelAfterMs?: number } = {},
  ): Promise<MigrationResult> {
    const hmp = src.hmp!;
    const bw = options.cancelAfterMs === undefined ? "1G" : "64K";
    await hmp.cmd(`migrate_set_parameter max-bandwidth ${bw}`);
    const out = await hmp.cmd(`migrate -d tcp:${ip}:${MIGRATION_PORT}`);
    if (/error|fail/i.test(out)) throw new Error(`migrate: ${out}`);
    const t0 = performance.now();
    let cancelled = false;
    for (;;) {
      const info = await hmp.cmd("info migrate");
      const status = /Migration status: (\S+)/.exec(info)?.[1] ?? "?";
      if (["completed", "failed", "cancelled"].includes(status)) {
        const num = (re: RegExp) => {
          const m = re.exec(info);
          return m ? Number(m[1]) : undefined;
        };
        const total = num(/total time: (\d+) ms/);
        const down = num(/downtime: (\d+) ms/);
        return {
          status,
          at: wallNow(),
          ...(total === undefined ? {} : { totalMs: total }),
          ...(down === undefined ? {} : { downtimeMs: down }),
        };
      }
      if (
        !cancelled && options.cancelAfterMs !== undefined &&
        performance.now() - t0 >= options.cancelAfterMs
      ) {
        await hmp.cmd("migrate_cancel");
        cancelled = true;
      }
      if (performance.now() - t0 > 120_000) throw new Error(`migration stuck: ${info}`);
      await sleep(5);
    }
  }

  /** `info status` of a pod's qemu. */
  async status(pod: VmPod): Promise<string> {
    const s = await pod.hmp!.cmd("info status");
    return /VM status: (.*)/.exec(s)?.[1]?.trim() ?? s.trim();
  }

  /** Stop a pod's qemu (monitor `quit`, then the lab's kill) and wait for it. */
  async quit(pod: VmPod): Promise<void> {
    if (!pod.qemu) return;
    try {
      await pod.hmp?.cmd("quit");
    } catch {
      // exited already or while answering
    }
    pod.hmp?.close();
    await this.lab.stop(pod.qemu, 3000);
    pod.qemu = undefined;
    pod.hmp = undefined;
  }

  /** CPU time (ms, user + system) and RSS (KiB) of node `k`'s device plugin. */
  async usage(k: "A" | "B"): Promise<{ cpuMs: number; rssKiB: number }> {
    const pid = this.nodes[k].dp.pid;
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]);
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { cpuMs: ticks * 10, rssKiB: rss };
  }
}

function netconf(id: string) {
  return {
    cniVersion: "1.0.0",
    name: "vmnet",
    type: "macvtap",
    deviceID: id,
    runtimeConfig: { mac: VM_MAC },
  };
}

async function nodeOf(lab: Lab, lan: string, k: "A" | "B", guard: boolean) {
  const ns = await lab.netns(`node${k.toLowerCase()}`);
  await lab.veth(ns, "lan0", lan, `n${k}`);
  await lab.ip(lan, "link", "set", `n${k}`, "master", "br0");
  const dir = await lab.tempDir(`kubelet${k.toLowerCase()}`);
  const kubelet = await FakeKubelet.start(dir);
  lab.defer(`kubelet ${k}`, () => kubelet[Symbol.asyncDispose]());
  await kubelet.servePodResources(`${await lab.tempDir(`podres${k.toLowerCase()}`)}/kubelet.sock`);
  const node: MigrationNode = {
    name: k,
    ns,
    kubelet,
    next: 0,
    ...await startDevicePlugin(lab, { ns, dir, kubelet, guard, what: k }),
    restart: async () => {
      await lab.stop(node.dp, 5000);
      Object.assign(node, await startDevicePlugin(lab, { ns, dir, kubelet, guard, what: k }));
    },
  };
  return node;
}

/** `macvtap deviceplugin` in the node's namespace, registered with its kubelet and healthy. */
async function startDevicePlugin(
  lab: Lab,
  o: { ns: string; dir: string; kubelet: FakeKubelet; guard: boolean; what: "A" | "B" },
): Promise<{ conn: PluginConn; dp: Deno.ChildProcess }> {
  const since = performance.now();
  const dp = lab.spawn(
    o.ns,
    devicePluginArgv(o.dir, {
      env: {
        DP_MACVTAP_CONF: JSON.stringify([{
          name: resourceOf(o.what),
          lowerDevice: "lan0",
          capacity: 4,
        }]),
        MACVTAP_DP_MAC_GUARD: o.guard ? "1" : "0",
      },
      logLevel: Deno.env.get("MIGRATION_DP_LOG") ?? "warn",
    }),
    { what: `macvtap deviceplugin ${o.what}` },
  );
  const resource = `macvtap.network.kubevirt.io/${resourceOf(o.what)}`;
  const reg = await o.kubelet.waitForRegistration(resource, {
    since,
    timeoutMs: 30_000,
  });
  await reg.conn.waitFor(
    (m) => m.devices.length === 4 && m.devices.every((d) => d.health === "Healthy"),
    10_000,
  );
  return { conn: reg.conn, dp };
}

// ------------------------------------------------------------ probes

/** One reply of a pinger. */
interface Reply {
  seq: number;
  /** Arrival, wall-clock ms. */
  at: number;
  rtt: number;
}

/** busybox `ping -i 0.02` from a namespace, each reply timestamped on arrival. */
export class Pinger {
  readonly name: string;
  readonly replies: Reply[] = [];
  #child: Deno.ChildProcess;
  #done: Promise<void>;
  readonly started: number;

  constructor(lab: Lab, ns: string, name: string, target = VM_IP) {
    this.name = name;
    this.started = wallNow();
    this.#child = lab.spawn(ns, ["/bin/busybox", "ping", "-i", "0.02", target], {
      what: `ping from ${name}`,
      stdout: "piped",
      stderr: "null",
    });
    const child = this.#child;
    this.#done = (async () => {
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const at = wallNow();
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const l of lines) {
          const m = /seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(l);
          if (m) this.replies.push({ seq: Number(m[1]), at, rtt: Number(m[2]) });
        }
      }
    })();
  }

  /** Stop the pinger and wait for its output. */
  async stop(lab: Lab): Promise<void> {
    await lab.stop(this.#child, 1000);
    await this.#done;
  }

  /** Losses, late answers and the longest silence within `[t0, t1)`. */
  stats(t0: number, t1: number): PhaseStats {
    const rs = this.replies;
    if (rs.length < 2) return { sent: 0, lost: 0, late: 0, maxGapMs: t1 - t0 };
    // Send time of seq n, fitted on the answered ones (busybox's interval drifts a little).
    const a = rs[0]!, b = rs[rs.length - 1]!;
    const sa = a.at - a.rtt, sb = b.at - b.rtt;
    const per = b.seq > a.seq ? (sb - sa) / (b.seq - a.seq) : 20;
    const sendAt = (seq: number) => sa + (seq - a.seq) * per;
    const answered = new Map(rs.map((r) => [r.seq, r]));
    let sent = 0, lost = 0, late = 0;
    const lastSeq = Math.floor((Math.min(t1, b.at) - sa) / per) + a.seq;
    for (let seq = Math.max(0, Math.ceil((t0 - sa) / per) + a.seq); seq <= lastSeq; seq++) {
      const s = sendAt(seq);
      if (s < t0 || s >= t1) continue;
      sent++;
      const r = answered.get(seq);
      if (!r) lost++;
      else if (r.rtt > 1000) late++;
    }
    const arrivals = rs.filter((r) => r.at >= t0 && r.at < t1).map((r) => r.at);
    let maxGap = 0, prev = t0;
    for (const t of [...arrivals, t1]) {
      maxGap = Math.max(maxGap, t - prev);
      prev = t;
    }
    return { sent, lost, late, maxGapMs: maxGap };
  }
}

/** One phase's figures for one client. */
export interface PhaseStats {
  sent: number;
  lost: number;
  /** Answered more than 1 s late. */
  late: number;
  /** Longest time without an answer arriving. */
  maxGapMs: number;
}

/** A TCP stream to the guest's echo server (lab/_tcp_probe.ts in a namespace). */
export class StreamProbe {
  readonly name: string;
  readonly gaps: { from: number; to: number }[] = [];
  connected = false;
  end: { sent: number; echoed: number; error?: string } | undefined;
  #child: Deno.ChildProcess;
  #done: Promise<void>;

  constructor(lab: Lab, ns: string, name: string) {
    this.name = name;
    this.#child = lab.spawn(ns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      "--no-config",
      "--no-lock",
      TCP_PROBE,
      VM_IP,
      String(ECHO_PORT),
    ], { what: `tcp probe ${name}`, stdout: "piped" });
    const child = this.#child;
    this.#done = (async () => {
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const l of lines) {
          const ev = JSON.parse(l);
          if (ev.ev === "connected") this.connected = true;
          else if (ev.ev === "gap") this.gaps.push({ from: ev.from, to: ev.to });
          else if (ev.ev === "end") this.end = ev;
        }
      }
    })();
  }

  /** Wait until connected. */
  async connect(timeoutMs = 20_000): Promise<void> {
    const t0 = performance.now();
    while (!this.connected) {
      if (this.end) throw new Error(`stream ${this.name}: ${this.end.error}`);
      if (performance.now() - t0 > timeoutMs) throw new Error(`stream ${this.name}: no connect`);
      await sleep(50);
    }
  }

  /** Stop it (SIGTERM: it prints its totals) and wait. */
  async stop(lab: Lab): Promise<void> {
    await lab.stop(this.#child, 2000);
    await this.#done;
  }

  /** Longest silence between echoes that overlaps `[t0, t1)`. */
  maxGap(t0: number, t1: number): number {
    return Math.max(
      0,
      ...this.gaps.filter((g) => g.to > t0 && g.from < t1).map((g) => g.to - g.from),
    );
  }
}

/** A named time window of the scenario. */
export interface Phase {
  name: string;
  t0: number;
  t1: number;
}

/** Everything one scenario run measured. */
export interface ScenarioReport {
  guard: boolean;
  sourceQemu: ScenarioOptions["sourceQemu"];
  phases: Phase[];
  /** Per client, per phase. */
  pings: Record<string, Record<string, PhaseStats>>;
  /** Per stream: longest silence per phase, and its end state. */
  streams: Record<
    string,
    { perPhase: Record<string, number>; sent: number; echoed: number; error?: string }
  >;
  migrations: Record<string, MigrationResult>;
  /** Device plugin CPU (ms) over idle and migration windows, and RSS (KiB). */
  usage: Record<string, { cpuMs: number; windowMs: number; rssKiB: number }>;
  bootMs: number;
}

/** Scenario timings. */
export interface ScenarioOptions {
  guard: boolean;
  /** How long the source keeps its paused qemu and pod after A→B (≥ 10 s in the issue). */
  holdMs: number;
  /** How long a prepared target waits before its migration starts. */
  prepareMs: number;
  /**
   * The source qemu during the hold: `exited` as libvirt ends it once the
   * migration is confirmed (its pod and macvtap stay), or `paused` holding
   * its tap fd (frames queued there hold TCP segments of senders on the
   * same kernel: they are not retransmitted while a clone is queued).
   */
  sourceQemu: "exited" | "paused";
  /**
   * Restart node A's device plugin while the VM runs there, before the
   * target is prepared (the new process must take over the devices).
   */
  restartDevicePlugin?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * The whole story: boot on A; clients and peer ping and stream; target on B;
 * A→B; hold; source gone; target on A; B→A; a cancelled A→B. Returns the
 * figures; throws only when the lab itself fails (a VM that does not boot, a
 * migration that does not complete).
 */
export async function runScenario(lab: Lab, o: ScenarioOptions): Promise<ScenarioReport> {
  const say = o.log ?? (() => {});
  const m = await MigrationLab.create(lab, { guard: o.guard });
  const usage: ScenarioReport["usage"] = {};
  const window = async (name: string, from: Sample) => {
    const to = await sample(m);
    for (const k of ["A", "B"] as const) {
      usage[`${name}, node ${k}`] = {
        cpuMs: to[k].cpuMs - from[k].cpuMs,
        windowMs: to.t - from.t,
        rssKiB: to[k].rssKiB,
      };
    }
  };
  // Idle: registered, nothing allocated.
  const idle0 = await sample(m);
  await sleep(3000);
  await window("idle", idle0);
  const a1 = await m.pod(m.nodes.A, "a1");
  await m.start(a1);
  const bootMs = await m.ready(a1);
  say(`VM booted on A in ${(bootMs / 1000).toFixed(1)} s`);
  const pingers = [
    new Pinger(lab, m.clients.A, "client on A"),
    new Pinger(lab, m.clients.B, "client on B"),
    new Pinger(lab, m.lan, "LAN peer"),
  ];
  const streams = [
    new StreamProbe(lab, m.clients.A, "client on A"),
    new StreamProbe(lab, m.clients.B, "client on B"),
    new StreamProbe(lab, m.lan, "LAN peer"),
  ];
  const phases: Phase[] = [];
  const migrations: Record<string, MigrationResult> = {};
  let t = wallNow();
  const phase = (name: string) => {
    const now = wallNow();
    phases.push({ name, t0: t, t1: now });
    t = now;
  };
  try {
    for (const s of streams) await s.connect();
    const steady0 = await sample(m);
    await sleep(3000);
    await window("VM on A, 150 pings/s and 3 streams", steady0);
    phase("VM on A");
    if (o.restartDevicePlugin) {
      await m.nodes.A.restart();
      say("device plugin on A restarted");
      await sleep(500);
      phase("device plugin on A restarted");
    }

    const b1 = await m.pod(m.nodes.B, "b1");
    const toB = await m.link(a1, b1);
    await m.start(b1, toB);
    await sleep(o.prepareMs);
    phase("target prepared on B");

    const mig0 = await sample(m);
    migrations["A→B"] = await m.migrate(a1, toB);
    say(`A→B: ${JSON.stringify(migrations["A→B"])}`);
    if (o.sourceQemu === "exited") await m.quit(a1);
    await sleep(o.holdMs);
    await window("A→B and the hold", mig0);
    phase(`A→B, source kept ${o.holdMs / 1000} s (qemu ${o.sourceQemu})`);

    await m.quit(a1);
    await m.remove(a1);
    const a2 = await m.pod(m.nodes.A, "a2");
    const toA = await m.link(b1, a2);
    await m.start(a2, toA);
    await sleep(o.prepareMs);
    phase("source gone, target prepared on A");

    migrations["B→A"] = await m.migrate(b1, toA);
    say(`B→A: ${JSON.stringify(migrations["B→A"])}`);
    if (o.sourceQemu === "exited") await m.quit(b1);
    await sleep(Math.min(o.holdMs, 3000));
    phase("B→A");
    await m.quit(b1);
    await m.remove(b1);

    const b2 = await m.pod(m.nodes.B, "b2");
    const toB2 = await m.link(a2, b2);
    await m.start(b2, toB2);
    await sleep(o.prepareMs);
    migrations["A→B cancelled"] = await m.migrate(a2, toB2, { cancelAfterMs: 300 });
    say(`A→B cancelled: ${JSON.stringify(migrations["A→B cancelled"])}`);
    await sleep(2000);
    phase("cancelled A→B, VM stays on A");
    await m.quit(b2);
    await m.remove(b2);
  } catch (err) {
    try {
      say(`console of a1:\n${await Deno.readTextFile(`${a1.dir}/console.log`)}`);
    } catch {
      // no console
    }
    throw err;
  } finally {
    for (const p of pingers) await p.stop(lab);
    for (const s of streams) await s.stop(lab);
  }
  const pings: ScenarioReport["pings"] = {};
  for (const p of pingers) {
    pings[p.name] = Object.fromEntries(phases.map((ph) => [ph.name, p.stats(ph.t0, ph.t1)]));
  }
  const streamOut: ScenarioReport["streams"] = {};
  for (const s of streams) {
    streamOut[s.name] = {
      perPhase: Object.fromEntries(phases.map((ph) => [ph.name, s.maxGap(ph.t0, ph.t1)])),
      sent: s.end?.sent ?? 0,
      echoed: s.end?.echoed ?? 0,
      ...(s.end?.error ? { error: s.end.error } : {}),
    };
  }
  return {
    guard: o.guard,
    sourceQemu: o.sourceQemu,
    phases,
    pings,
    streams: streamOut,
    migrations,
    usage,
    bootMs,
  };
}

interface Sample {
  A: { cpuMs: number; rssKiB: number };
  B: { cpuMs: number; rssKiB: number };
  t: number;
}

async function sample(m: MigrationLab): Promise<Sample> {
  return { A: await m.usage("A"), B: await m.usage("B"), t: wallNow() };
}

/** The report as a table a person can read. */
export function formatReport(r: ScenarioReport): string {
  const lines = [
    `MAC guard ${r.guard ? "ON" : "OFF"}, source qemu ${r.sourceQemu} after a migration`,
  ];
  const mig = Object.entries(r.migrations).map(([k, v]) =>
    `${k}: ${v.status}${v.totalMs !== undefined ? ` in ${v.totalMs} ms` : ""}${
      v.downtimeMs !== undefined ? `, downtime ${v.downtimeMs} ms` : ""
    }`
  );
  lines.push(`  migrations: ${mig.join("; ")}`);
  for (const ph of r.phases) {
    lines.push(`  ${ph.name} (${((ph.t1 - ph.t0) / 1000).toFixed(1)} s)`);
    for (const [client, per] of Object.entries(r.pings)) {
      const s = per[ph.name]!;
      const tcp = r.streams[client]?.perPhase[ph.name] ?? 0;
      lines.push(
        `    ${client.padEnd(12)} ping: longest gap ${s.maxGapMs.toFixed(0).padStart(5)} ms, ` +
          `lost ${s.lost}/${s.sent}${s.late ? `, ${s.late} answered >1 s late` : ""}; ` +
          `TCP longest silence ${tcp.toFixed(0)} ms`,
      );
    }
  }
  for (const [client, s] of Object.entries(r.streams)) {
    lines.push(
      `  TCP ${client}: ${s.echoed}/${s.sent} echoed${
        s.error ? `, BROKEN: ${s.error}` : ", alive"
      }`,
    );
  }
  for (const [k, u] of Object.entries(r.usage)) {
    lines.push(
      `  device plugin ${k}: ${u.cpuMs} ms CPU in ${(u.windowMs / 1000).toFixed(1)} s, ` +
        `RSS ${(u.rssKiB / 1024).toFixed(1)} MiB`,
    );
  }
  return lines.join("\n");
}
