/**
 * libvirt as the consumer (issue 23 item 4), as KubeVirt's virt-launcher
 * uses it: a libvirt daemon started by hand inside the pod's namespace with
 * private runtime directories, a domain with
 * `<interface type='ethernet'><target dev='net1' managed='no'/>` on the
 * device plugin's macvtap (imported by the CNI's `deviceID`), and libvirt
 * opening `/dev/tapN` itself. The VM boots and pings the LAN.
 *
 * Session mode as uid 107 (KubeVirt's qemu user; libvirt needs a passwd
 * entry for it, given in a private mount namespace so the host's
 * /etc/passwd is never touched) and system mode as root.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cni, describe, hasExecutable, Lab, pluginBuilt, run, waitFor } from "../../lab/mod.ts";
import { devicePluginArgv, FakeKubelet } from "../../lab/kubelet.ts";
import { note } from "../../lab/e2e.ts";
import { buildVmAssets, QEMU, QEMU_UID, type VmAssets, vmMissing } from "../../lab/vm.ts";

const RESOURCE = "virt-lan";
const LIBVIRTD = "/usr/sbin/libvirtd";
const VIRSH = "/usr/bin/virsh";
/** The VM's MAC in each mode (two up macvtaps on one lower device cannot share one). */
const MACS = { session: "02:b0:00:00:00:60", system: "02:b0:00:00:00:61" } as const;

const missing = vmMissing() ??
  (hasExecutable(LIBVIRTD) && hasExecutable(VIRSH)
    ? undefined
    : "libvirtd/virsh missing (tools/e2e_setup.sh installs libvirt-daemon, libvirt-clients)") ??
  (pluginBuilt() ? undefined : "dist/macvtap not built");
if (missing) note(`libvirt_test skipped: ${missing}`);

/** The domain KubeVirt would define: the pod's macvtap as an unmanaged ethernet interface. */
function domainXml(
  a: VmAssets,
  o: { name: string; console: string; ip: string; mac: string },
): string {
  const cmdline = [
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "rdinit=/init",
    `vm.ip=${o.ip}/24`,
    "vm.target=10.99.0.1",
    "vm.tries=60",
    "vm.linger=0",
  ].join(" ");
  return `<domain type='qemu'>
  <name>${o.name}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${a.kernel}</kernel>
    <initrd>${a.initramfs}</initrd>
    <cmdline>${cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${QEMU}</emulator>
    <interface type='ethernet'>
      <mac address='${o.mac}'/>
      <target dev='net1' managed='no'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <serial type='file'>
      <source path='${o.console}'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** The end of libvirtd's log, for a failure message. */
async function logTail(home: string): Promise<string> {
  try {
    return `\nlibvirtd.log:\n${(await Deno.readTextFile(`${home}/libvirtd.log`)).slice(-3000)}`;
  } catch {
    return "";
  }
}

Deno.test({
  name: "libvirt (session as uid 107, and system) runs a VM on the device plugin's macvtap " +
    "through <interface type='ethernet'> managed='no' [root]",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using lab = await Lab.create({ prefix: "virt" });
    const assets = await buildVmAssets(await lab.tempDir("assets"));
    const lan = await lab.netns("lan");
    await lab.ip(lan, "link", "add", "br0", "type", "bridge");
    await lab.ip(lan, "addr", "add", "10.99.0.1/24", "dev", "br0");
    await lab.ip(lan, "link", "set", "br0", "up");
    const node = await lab.netns("node");
    await lab.veth(node, "lan0", lan, "n1");
    await lab.ip(lan, "link", "set", "n1", "master", "br0");
    const kdir = await lab.tempDir("kubelet");
    const kubelet = await FakeKubelet.start(kdir);
    lab.defer("kubelet", () => kubelet[Symbol.asyncDispose]());
    await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
    lab.spawn(
      node,
      devicePluginArgv(kdir, {
        env: {
          DP_MACVTAP_CONF: JSON.stringify([{ name: RESOURCE, lowerDevice: "lan0", capacity: 2 }]),
        },
      }),
      { what: "macvtap deviceplugin" },
    );
    const reg = await kubelet.waitForRegistration(`macvtap.network.kubevirt.io/${RESOURCE}`, {
      timeoutMs: 30_000,
    });

    let round = 0;
    for (const mode of ["session", "system"] as const) {
      await t.step(`${mode} mode`, async () => {
        round++;
        const pod = await lab.netns(`pod${round}`);
        const id = `${RESOURCE}-${round - 1}`;
        const containerId = `${lab.id}-virt-${mode}`;
        // kubelet admits the pod and lists its device; the CNI asks before it imports it.
        const vmPod = { namespace: "vms", name: `virt-launcher-${mode}` };
        const alloc = await kubelet.admit(vmPod, reg.request.resourceName, [[id]]);
        const trust = kubelet.cniEnvFor(vmPod);
        const tapPath = alloc.containerResponses[0]?.devices[0]?.hostPath;
        assert(tapPath, `Allocate ${id}: no device`);
        const conf = { cniVersion: "1.0.0", name: "virtnet", type: "macvtap", deviceID: id };
        const env = { containerId, netns: lab.path(pod), ifname: "net1" };
        const add = await cni(
          lab,
          node,
          { command: "ADD", ...env, args: `${trust.args};MAC=${MACS[mode]}`, extra: trust.extra },
          conf,
        );
        assert(add.code === 0, `CNI ADD: ${describe(add)}`);
        lab.defer(`CNI DEL ${mode}`, async () => {
          const del = await cni(lab, node, { command: "DEL", ...env }, conf);
          if (del.code !== 0) note(`CNI DEL ${mode}: ${describe(del)}`);
        });

        // Private runtime, config and cache dirs, owned by the daemon's user.
        const home = await lab.tempDir(`home${mode}`);
        const uid = mode === "session" ? QEMU_UID : 0;
        for (const d of ["run", "config", "cache", "state"]) {
          await Deno.mkdir(`${home}/${d}`, { recursive: true });
        }
        await run(["chown", "-R", `${uid}:${uid}`, home]);
        // A passwd entry for 107 (Debian's libvirt looks `libvirt-qemu` up in
        // both modes), bind-mounted in a private mount namespace.
        const passwd = `${home}/passwd`;
        await Deno.writeTextFile(
          passwd,
          (await Deno.readTextFile("/etc/passwd")) +
            `libvirt-qemu:x:${QEMU_UID}:${QEMU_UID}::${home}:/bin/sh\n`,
        );
        const group = `${home}/group`;
        await Deno.writeTextFile(
          group,
          (await Deno.readTextFile("/etc/group")) +
            `libvirt-qemu:x:${QEMU_UID}:\n`,
        );
        const daemonEnv = [
          `HOME=${home}`,
          `XDG_RUNTIME_DIR=${home}/run`,
          `XDG_CONFIG_HOME=${home}/config`,
          `XDG_CACHE_HOME=${home}/cache`,
          `XDG_STATE_HOME=${home}/state`,
          "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
          // libvirtd's errors (its node-device driver looks at the host's sysfs) go to a file.
          `LIBVIRT_LOG_OUTPUTS=3:file:${home}/libvirtd.log`,
        ];
        if (mode === "session") {
          // Session mode reads $XDG_CONFIG_HOME/libvirt/qemu.conf: console files without virtlogd.
          await Deno.mkdir(`${home}/config/libvirt`, { recursive: true });
          await Deno.writeTextFile(`${home}/config/libvirt/qemu.conf`, 'stdio_handler = "file"\n');
          await run(["chown", "-R", `${uid}:${uid}`, `${home}/config`]);
        }
        if (mode === "system") {
          // System mode reads /etc/libvirt: ours, bind-mounted in the private mount namespace.
          await Deno.mkdir(`${home}/etc`);
          await Deno.writeTextFile(
            `${home}/etc/libvirtd.conf`,
            `unix_sock_dir = "${home}/run"\nauth_unix_ro = "none"\nauth_unix_rw = "none"\n`,
          );
          // qemu as 107:107 as in KubeVirt; no cgroups, no private /dev, no virtlogd here.
          await Deno.writeTextFile(
            `${home}/etc/qemu.conf`,
            [
              `user = "+${QEMU_UID}"`,
              `group = "+${QEMU_UID}"`,
              "dynamic_ownership = 0",
              "remember_owner = 0",
              "cgroup_controllers = [ ]",
              "namespaces = [ ]",
              'security_driver = "none"',
              'stdio_handler = "file"',
              "",
            ].join("\n"),
          );
        }
        // The daemon (and, in session mode, virsh) run in a private mount
        // namespace with the passwd entry; system mode also gets empty /run,
        // /var/lib, /var/cache and /var/log there. The pod's netns is opened
        // (fd 9) before /run is covered.
        const wrap = (cmd: string[], netns: boolean): string[] => [
          "unshare",
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          [
            'exec 9<"$3"',
            'mount --bind "$0" /etc/passwd',
            'mount --bind "$1" /etc/group',
            ...(mode === "system"
              ? [
                'mount --bind "$2/etc" /etc/libvirt',
                "for d in /run /var/lib /var/cache /var/log; do mount -t tmpfs none $d || exit 1; done",
              ]
              : []),
            "shift 3",
            'exec "$@"',
          ].join(" && "),
          passwd,
          group,
          home,
          lab.path(pod),
          ...(netns ? ["nsenter", "--net=/proc/self/fd/9"] : []),
          ...(uid !== 0
            ? ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"]
            : []),
          "env",
          "-i",
          ...daemonEnv,
          ...cmd,
        ];
        const uri = mode === "session"
          ? "qemu:///session"
          : `qemu+unix:///system?socket=${home}/run/libvirt-sock`;
        const t0 = performance.now();
        const daemon = lab.spawn(
          null,
          wrap([LIBVIRTD, "--timeout", "0"], true),
          { what: `libvirtd (${mode})`, stderr: "null" },
        );
        let exited: Deno.CommandStatus | undefined;
        daemon.status.then((st) => exited = st);
        const virsh = (...args: string[]) =>
          run(wrap([VIRSH, "-q", "-c", uri, ...args], false), { timeoutMs: 60_000 });
        await waitFor(
          `libvirtd (${mode}) to answer`,
          async () => {
            if (exited) {
              throw new Error(`libvirtd (${mode}) exited: ${exited.code}${await logTail(home)}`);
            }
            return (await virsh("version")).success;
          },
          90_000,
        );
        const started = performance.now() - t0;
        const consoleDir = `${home}/console`;
        await Deno.mkdir(consoleDir);
        await Deno.chown(consoleDir, QEMU_UID, QEMU_UID);
        const console = `${consoleDir}/console.log`;
        const xml = `${home}/domain.xml`;
        await Deno.writeTextFile(
          xml,
          domainXml(assets, {
            name: `vm-${mode}`,
            console,
            ip: `10.99.0.${60 + round}`,
            mac: MACS[mode],
          }),
        );
        await run(["chown", `${uid}:${uid}`, xml]);
        const def = await virsh("define", xml);
        assert(def.success, `virsh define: ${def.stderr}`);
        const t1 = performance.now();
        const start = await virsh("start", `vm-${mode}`);
        assert(start.success, `virsh start: ${start.stdout}${start.stderr}${await logTail(home)}`);
        const startMs = performance.now() - t1;
        let text = "";
        await waitFor(`the VM (${mode}) to ping`, async () => {
          try {
            text = await Deno.readTextFile(console);
          } catch {
            text = "";
          }
          return /VM-PING-(OK|FAIL)/.test(text);
        }, 150_000);
        assert(text.includes("VM-PING-OK 10.99.0.1"), `the VM did not reach the LAN:\n${text}`);
        assert(text.includes(`VM-MAC ${MACS[mode]}`), `the guest's MAC is the macvtap's:\n${text}`);
        note(
          `libvirt ${mode}: daemon up in ${(started / 1000).toFixed(1)} s, virsh start ` +
            `${(startMs / 1000).toFixed(1)} s, VM pinged the LAN (${tapPath})`,
        );
        await virsh("destroy", `vm-${mode}`);
        await virsh("undefine", `vm-${mode}`);
        await lab.stop(daemon, 5000);
      });
    }
  },
});
