/**
 * `deno task demo:vm`: the VM path of seeds 003/004, narrated. A "node"
 * namespace whose physical NIC is a veth to a LAN (a bridge with the peer
 * 10.99.0.1), `macvtap deviceplugin` on that node registered with a kubelet
 * stand-in over real gRPC (Register, ListAndWatch, Allocate), the CNI ADD
 * that imports the allocated macvtap into a pod namespace by `deviceID`
 * (as Multus passes it), and a real VM (qemu as 107:107 on `/dev/tapN`,
 * Debian's kernel, a busybox initramfs built on the spot) that pings the
 * LAN. Then DEL and teardown; nothing is left behind.
 *
 * Needs root and `tools/setup.sh --e2e` (qemu-system-x86, linux-image-amd64,
 * busybox-static). Exit status 0 when every check passed, 1 otherwise.
 *
 * @module
 */

import { cni, Lab } from "../lab/mod.ts";
import { devicePluginArgv, FakeKubelet } from "../lab/kubelet.ts";
import { bootVm, buildVmAssets, vmMissing } from "../lab/vm.ts";
import { check, dim, red, say, section, tell } from "./_story.ts";

async function demo(): Promise<void> {
  await using lab = await Lab.create({ prefix: "demovm" });
  section("1. The lab: a LAN, a node with a veth as its NIC, a pod");
  const lan = await lab.netns("lan");
  await lab.ip(lan, "link", "add", "br0", "type", "bridge");
  await lab.ip(lan, "addr", "add", "10.99.0.1/24", "dev", "br0");
  await lab.ip(lan, "link", "set", "br0", "up");
  const node = await lab.netns("node");
  const pod = await lab.netns("pod");
  await lab.veth(node, "lan0", lan, "n1");
  await lab.ip(lan, "link", "set", "n1", "master", "br0");
  say(`  ${lan}: br0 10.99.0.1/24, the LAN peer`);
  say(`  ${node}: lan0, the node's "physical NIC" (a veth into br0)`);
  say(`  ${pod}: the pod's network namespace, empty`);

  section("2. The device plugin registers with the kubelet (gRPC over unix sockets)");
  const dir = await lab.tempDir("kubelet");
  await using kubelet = await FakeKubelet.start(dir);
  const conf = [{ name: "production-lan", lowerDevice: "lan0", capacity: 4 }];
  say(dim(`  DP_MACVTAP_CONF='${JSON.stringify(conf)}' macvtap deviceplugin --socket-dir ${dir}`));
  lab.spawn(node, devicePluginArgv(dir, { env: { DP_MACVTAP_CONF: JSON.stringify(conf) } }), {
    what: "macvtap deviceplugin",
  });
  await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
  const reg = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/production-lan", {
    timeoutMs: 30_000,
  });
  say(`  Register: ${JSON.stringify(reg.request)}`);
  const list = await reg.conn.waitFor((m) => m.devices.every((d) => d.health === "Healthy"));
  say(`  ListAndWatch: ${list.devices.map((d) => `${d.ID}=${d.health}`).join(" ")}`);

  section("3. kubelet admits a pod: Allocate");
  const id = "production-lan-2";
  const vmPod = { namespace: "default", name: "virt-launcher-demo-vm" };
  const alloc = await kubelet.admit(vmPod, "macvtap.network.kubevirt.io/production-lan", [[id]]);
  const dev = alloc.containerResponses[0]!.devices[0]!;
  say(`  Allocate(${id}) → ${JSON.stringify(dev)}`);
  const host = await lab.ipJson<{ ifname: string; ifindex: number }[]>(node, "link", "show");
  const made = host.find((l) => `/dev/tap${l.ifindex}` === dev.hostPath);
  check(made !== undefined, `the node has macvtap ${made?.ifname} behind ${dev.hostPath}`);

  section("4. Multus runs the CNI with that deviceID: the macvtap moves into the pod");
  const netconf = { cniVersion: "1.0.0", name: "vmnet", type: "macvtap", deviceID: id };
  say(dim(`  CNI_COMMAND=ADD CNI_IFNAME=net1 dist/macvtap <<< '${JSON.stringify(netconf)}'`));
  // The runtime names the pod in CNI_ARGS; the plugin asks kubelet's PodResources API whether
  // the device is that pod's before it moves anything (a NAD could name any device ID).
  const env = {
    containerId: "demo-vm",
    netns: lab.path(pod),
    ifname: "net1",
    ...kubelet.cniEnvFor(vmPod),
  };
  say(
    dim(
      `  CNI_ARGS=${env.args}: kubelet's PodResources lists ${id} for pod ${vmPod.namespace}/${vmPod.name}`,
    ),
  );
  const add = await cni(lab, node, { command: "ADD", ...env }, netconf);
  check(add.code === 0, `ADD exit ${add.code}: ${add.stdout.trim()}`);
  const [link] = await lab.ipJson<{ ifindex: number; address: string }[]>(
    pod,
    "link",
    "show",
    "net1",
  );
  check(
    link?.ifindex !== undefined && `/dev/tap${link.ifindex}` === dev.hostPath,
    "same /dev/tapN in the pod",
  );
  const st = await Deno.lstat(dev.hostPath);
  check(st.uid === 107 && st.gid === 107, `${dev.hostPath} belongs to qemu (107:107)`);

  section("5. A VM on the tap: qemu as 107:107, -netdev tap,fd=3, virtio-net-pci");
  const assets = await buildVmAssets(await lab.tempDir("assets"));
  say(`  guest: Debian kernel ${assets.release}, busybox initramfs with virtio-net modules`);
  const vm = await bootVm(assets, {
    netns: lab.path(pod),
    tapPath: dev.hostPath,
    mac: link?.address ?? "",
    ip: "10.99.0.50/24",
    target: "10.99.0.1",
  });
  for (const line of vm.console.split("\n").filter((l) => l.startsWith("VM-"))) {
    say(dim(`  guest console: ${line.trim()}`));
  }
  check(vm.pingOk, `the VM pinged the LAN peer (${(vm.ms / 1000).toFixed(1)} s, ${vm.accel})`);
  const neigh = await lab.ipJson<{ dst: string; lladdr?: string }[]>(
    lan,
    "neigh",
    "show",
    "dev",
    "br0",
  );
  const seen = neigh.find((n) => n.dst === "10.99.0.50")?.lladdr;
  check(seen === link?.address, `the peer saw the VM at ${seen} (the macvtap's MAC)`);

  section("6. The pod goes away: CNI DEL, teardown");
  const del = await cni(lab, node, { command: "DEL", ...env }, netconf);
  check(del.code === 0, `DEL exit ${del.code}`);
}

async function main(): Promise<number> {
  const missing = vmMissing();
  if (missing) {
    say(red(`demo:vm cannot run: ${missing}`));
    return 1;
  }
  return await tell(demo);
}

Deno.exit(await main());
