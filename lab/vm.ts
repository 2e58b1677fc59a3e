/**
 * A real VM on a macvtap's `/dev/tapN`, as KubeVirt's virt-launcher runs it:
 * qemu-system-x86_64 with Debian's kernel (`linux-image-amd64`) and a tiny
 * initramfs built here from busybox-static and the kernel package's
 * virtio-net modules, started inside the pod's netns as uid:gid 107:107 with
 * the tap opened by that user (`-netdev tap,fd=3`) and `virtio-net-pci`
 * carrying the macvtap's MAC.
 *
 * The guest's `/init` reads `vm.ip`, `vm.target`, `vm.tries` and `vm.linger`
 * from the kernel command line, configures `eth0`, pings the target and
 * prints `VM-MAC <mac>` and `VM-PING-OK <target>` (or `VM-PING-FAIL`) on the
 * serial console, then powers off.
 *
 * @module
 */

import { run } from "./run.ts";
import { note } from "./e2e.ts";

/** KubeVirt's qemu user and group. */
export const QEMU_UID = 107;

/** What a VM boot needs on the host. */
export interface VmAssets {
  /** The guest kernel, copied readable for uid 107. */
  kernel: string;
  /** The initramfs (newc cpio, uncompressed). */
  initramfs: string;
  /** The kernel release the modules came from. */
  release: string;
}

/** Modules the guest loads for a virtio-net NIC, with their dependencies (modules.dep). */
const GUEST_MODULES = ["virtio_pci", "virtio_net"];

const BUSYBOX = "/bin/busybox";
export const QEMU = "/usr/bin/qemu-system-x86_64";

/** Why the VM test cannot run on this machine, or `undefined` when it can. */
export function vmMissing(): string | undefined {
  if (Deno.uid() !== 0) return "needs root";
  for (const p of [QEMU, BUSYBOX, "/usr/bin/setpriv"]) {
    try {
      Deno.statSync(p);
    } catch {
      return `${p} missing (tools/setup.sh --e2e installs it)`;
    }
  }
  if (!findKernel()) return "no /boot/vmlinuz-* with /lib/modules (linux-image-amd64)";
  return undefined;
}

/** The newest `/boot/vmlinuz-<release>` that has `/lib/modules/<release>/modules.dep`. */
function findKernel(): { path: string; release: string } | undefined {
  let names: string[];
  try {
    names = [...Deno.readDirSync("/boot")].map((e) => e.name);
  } catch {
    return undefined;
  }
  const releases = names.filter((n) => n.startsWith("vmlinuz-")).map((n) => n.slice(8))
    .filter((r) => {
      try {
        return Deno.statSync(`/lib/modules/${r}/modules.dep`).isFile;
      } catch {
        return false;
      }
    }).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const release = releases.at(-1);
  return release ? { path: `/boot/vmlinuz-${release}`, release } : undefined;
}

/** Module files (relative to /lib/modules/<release>) of `names` and their deps, load order. */
function moduleClosure(release: string, names: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of Deno.readTextFileSync(`/lib/modules/${release}/modules.dep`).split("\n")) {
    const [mod, rest] = line.split(":");
    if (mod && rest !== undefined) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map<string, string>();
  for (const mod of deps.keys()) {
    const base = mod.slice(mod.lastIndexOf("/") + 1).replace(/\.ko(\.\w+)?$/, "");
    byName.set(base.replaceAll("-", "_"), mod);
  }
  const order: string[] = [];
  const visit = (mod: string) => {
    if (order.includes(mod)) return;
    for (const d of deps.get(mod) ?? []) visit(d);
    order.push(mod);
  };
  for (const n of names) {
    const mod = byName.get(n);
    // Built into the kernel: nothing to load.
    if (mod) visit(mod);
  }
  for (const mod of order) {
    if (!/\.ko$/.test(mod)) {
      throw new Error(`compressed module ${mod}: the guest's busybox insmod needs plain .ko`);
    }
  }
  return order;
}

const INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in $(cat /modules.order); do insmod "/lib/modules/$m" || echo "VM-INSMOD-FAIL $m"; done
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "\${a#*=}";; esac; done; }
ip=$(arg vm.ip); target=$(arg vm.target); tries=$(arg vm.tries); linger=$(arg vm.linger)
ip link set lo up
ip link set eth0 up
ip addr add "$ip" dev eth0
echo "VM-MAC $(cat /sys/class/net/eth0/address)"
ok=0; i=0
while [ "$i" -lt "\${tries:-5}" ]; do
  if ping -c 1 -W 1 "$target" >/dev/null 2>&1; then ok=1; break; fi
  i=$((i + 1))
done
if [ "$ok" = 1 ]; then echo "VM-PING-OK $target"; else echo "VM-PING-FAIL $target"; fi
sleep "\${linger:-0}"
poweroff -f
`;

/** One entry of a newc cpio archive. */
interface CpioEntry {
  name: string;
  /** st_mode, type bits included. */
  mode: number;
  data?: Uint8Array;
  /** Char devices: major, minor. */
  rdev?: [number, number];
}

/** A newc ("070701") cpio archive, as the kernel unpacks an initramfs. */
function cpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
    const pad = (4 - (size % 4)) % 4;
    if (pad) {
      parts.push(new Uint8Array(pad));
      size += pad;
    }
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let ino = 1;
  for (const e of [...entries, { name: "TRAILER!!!", mode: 0 }]) {
    const data = (e as CpioEntry).data ?? new Uint8Array();
    const [rmaj, rmin] = (e as CpioEntry).rdev ?? [0, 0];
    const name = enc.encode(`${e.name}\0`);
    const header = "070701" + [
      ino++,
      e.mode,
      0,
      0,
      (e.mode & 0o170000) === 0o040000 ? 2 : 1,
      0,
      data.length,
      0,
      0,
      rmaj,
      rmin,
      name.length,
      0,
    ].map(hex).join("");
    const head = new Uint8Array(header.length + name.length);
    head.set(enc.encode(header));
    head.set(name, header.length);
    push(head);
    if (data.length) push(data);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Build the guest kernel and initramfs into `dir` (made readable for uid 107).
 * Takes milliseconds: busybox plus a few modules, no compression. `init`
 * replaces the guest's `/init` script (lab/migration.ts serves instead of
 * pinging once).
 */
export async function buildVmAssets(
  dir: string,
  options: { init?: string } = {},
): Promise<VmAssets> {
  const k = findKernel();
  if (!k) throw new Error("no guest kernel (apt-get install linux-image-amd64)");
  const mods = moduleClosure(k.release, GUEST_MODULES);
  const enc = new TextEncoder();
  const entries: CpioEntry[] = [
    { name: "bin", mode: 0o040755 },
    { name: "dev", mode: 0o040755 },
    { name: "dev/console", mode: 0o020600, rdev: [5, 1] },
    { name: "lib", mode: 0o040755 },
    { name: "lib/modules", mode: 0o040755 },
    { name: "bin/busybox", mode: 0o100755, data: await Deno.readFile(BUSYBOX) },
    { name: "init", mode: 0o100755, data: enc.encode(options.init ?? INIT) },
  ];
  const order: string[] = [];
  for (const mod of mods) {
    const base = mod.slice(mod.lastIndexOf("/") + 1);
    order.push(base);
    entries.push({
      name: `lib/modules/${base}`,
      mode: 0o100644,
      data: await Deno.readFile(`/lib/modules/${k.release}/${mod}`),
    });
  }
  entries.push({ name: "modules.order", mode: 0o100644, data: enc.encode(order.join("\n")) });
  await Deno.chmod(dir, 0o755);
  const kernel = `${dir}/vmlinuz`;
  const initramfs = `${dir}/initramfs.cpio`;
  await Deno.copyFile(k.path, kernel);
  await Deno.chmod(kernel, 0o644);
  await Deno.writeFile(initramfs, cpioNewc(entries), { mode: 0o644 });
  await Deno.chmod(initramfs, 0o644);
  return { kernel, initramfs, release: k.release };
}

/** Whether uid 107 could open `/dev/kvm`: its group, when the group grants rw. */
async function kvmGroup(): Promise<number | undefined> {
  try {
    const st = await Deno.stat("/dev/kvm");
    if (!st.isCharDevice || st.gid === null || ((st.mode ?? 0) & 0o060) !== 0o060) {
      return undefined;
    }
    return st.gid;
  } catch {
    return undefined;
  }
}

interface Accel {
  accel: "kvm" | "tcg";
  /** The group of /dev/kvm qemu joins (KVM only). */
  kvmGid: number | undefined;
}

let accelChoice: Promise<Accel> | undefined;

/**
 * KVM when it works, else TCG; decided once per process. "Works" means the
 * guest kernel boots to its no-root panic under `-accel kvm -cpu host` within
 * 20 s (nested KVM can fail at once on an MSR, or hang). `E2E_VM_ACCEL=tcg|kvm`
 * overrides the probe.
 */
function chooseAccel(assets: VmAssets): Promise<Accel> {
  accelChoice ??= (async (): Promise<Accel> => {
    const forced = Deno.env.get("E2E_VM_ACCEL");
    const kvmGid = await kvmGroup();
    if (forced === "tcg" || (forced !== "kvm" && kvmGid === undefined)) {
      return { accel: "tcg", kvmGid: undefined };
    }
    if (forced === "kvm") return { accel: "kvm", kvmGid };
    const probe = await run([
      QEMU,
      ...["-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"],
      ...["-no-reboot", "-accel", "kvm", "-cpu", "host", "-m", "64"],
      ...["-kernel", assets.kernel, "-append", "console=ttyS0 panic=-1 loglevel=1"],
    ], { timeoutMs: 20_000 });
    if (probe.success && /Kernel panic/.test(probe.stdout)) return { accel: "kvm", kvmGid };
    const why = probe.stderr.trim().split("\n")[0] || `no boot within 20 s (exit ${probe.code})`;
    note(`KVM does not work here (${why}): TCG`);
    return { accel: "tcg", kvmGid: undefined };
  })();
  return accelChoice!;
}

/** One guest boot. */
export interface VmSpec {
  /** The pod's netns path (`/run/netns/…`). */
  netns: string;
  /** `/dev/tapN` of the pod's macvtap. */
  tapPath: string;
  /** The macvtap's MAC: the only one its bridge mode lets in. */
  mac: string;
  /** Guest address with prefix, e.g. `10.99.0.50/24`. */
  ip: string;
  /** Who the guest pings. */
  target: string;
  /** Pings (1 s each) before giving up. */
  tries?: number;
  /** Seconds the guest stays up after pinging (so another VM can ping it). */
  linger?: number;
}

/** What the guest printed, and how it ran. */
export interface VmRun {
  code: number;
  console: string;
  accel: "kvm" | "tcg";
  ms: number;
  /** The guest's `eth0` MAC, from `VM-MAC`. */
  guestMac: string | undefined;
  pingOk: boolean;
}

/**
 * Boot the guest inside `spec.netns` as 107:107: the user opens `/dev/tapN`
 * itself (proof the CNI's chown works) and hands it to qemu as fd 3.
 */
export async function bootVm(assets: VmAssets, spec: VmSpec): Promise<VmRun> {
  const { accel, kvmGid: kvm } = await chooseAccel(assets);
  const append = [
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "rdinit=/init",
    `vm.ip=${spec.ip}`,
    `vm.target=${spec.target}`,
    `vm.tries=${spec.tries ?? 10}`,
    `vm.linger=${spec.linger ?? 0}`,
  ].join(" ");
  const qemu = [
    QEMU,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
    "-accel",
    accel,
    "-cpu",
    accel === "kvm" ? "host" : "max",
    "-m",
    "192",
    "-smp",
    "1",
    "-kernel",
    assets.kernel,
    "-initrd",
    assets.initramfs,
    "-append",
    append,
    "-netdev",
    "tap,id=net0,fd=3",
    "-device",
    `virtio-net-pci,netdev=net0,mac=${spec.mac},romfile=`,
  ];
  const t0 = performance.now();
  const r = await run([
    "nsenter",
    `--net=${spec.netns}`,
    "setpriv",
    `--reuid=${QEMU_UID}`,
    `--regid=${QEMU_UID}`,
    ...(accel === "tcg" || kvm === undefined ? ["--clear-groups"] : [`--groups=${kvm}`]),
    "--",
    "sh",
    "-c",
    'exec 3<>"$0" && exec "$@"',
    spec.tapPath,
    ...qemu,
  ], { timeoutMs: 150_000 });
  const console = r.stdout + r.stderr;
  return {
    code: r.code,
    console,
    accel,
    ms: performance.now() - t0,
    guestMac: /VM-MAC ([0-9a-f:]{17})/.exec(console)?.[1],
    pingOk: console.includes(`VM-PING-OK ${spec.target}`),
  };
}
