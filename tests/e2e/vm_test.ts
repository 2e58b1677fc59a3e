/**
 * The VM path, end to end (issue 12; seeds 003, 004): a real VM whose NIC
 * is the device plugin's macvtap, as KubeVirt runs it.
 *
 * ```
 *  vm-<id>-lan    br0 10.99.0.1/24 (the LAN peer) ── nK ── veth ── lan0 in vm-<id>-nodeK
 *  vm-<id>-nodeK  lan0: the node's "physical NIC"; `macvtap deviceplugin` runs here,
 *                 the kubelet stand-in (lab/kubelet.ts) talks to it over gRPC
 *  vm-<id>-podK   net1: the macvtap CNI ADD imported by deviceID; qemu runs here as 107:107
 *                 on /dev/tapN (fd 3), virtio-net-pci with the macvtap's MAC
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { cni, describe, Lab, pluginBuilt } from "../../lab/mod.ts";
import { devicePluginArgv, FakeKubelet, type PluginConn } from "../../lab/kubelet.ts";
import { note } from "../../lab/e2e.ts";
import { bootVm, buildVmAssets, type VmAssets, vmMissing } from "../../lab/vm.ts";

/** The heap bounds the DaemonSet uses. */
const RESOURCE = "macvtap.network.kubevirt.io";

const missing = vmMissing() ?? (pluginBuilt() ? undefined : "dist/macvtap not built");
if (missing) note(`vm_test skipped: ${missing}`);

/** One node: its netns, its device plugin registered with its own kubelet, a pod netns. */
interface Node {
  ns: string;
  pod: string;
  kubelet: FakeKubelet;
  conn: PluginConn;
  resource: string;
}

async function lanOf(lab: Lab): Promise<string> {
  const lan = await lab.netns("lan");
  await lab.ip(lan, "link", "add", "br0", "type", "bridge");
  await lab.ip(lan, "addr", "add", "10.99.0.1/24", "dev", "br0");
  await lab.ip(lan, "link", "set", "br0", "up");
  return lan;
}

/** Node `k` on the LAN: veth `lan0` into br0, a device plugin for `lan0`, its kubelet. */
async function nodeOf(lab: Lab, lan: string, k: number): Promise<Node> {
  const ns = await lab.netns(`node${k}`);
  const pod = await lab.netns(`pod${k}`);
  await lab.veth(ns, "lan0", lan, `n${k}`);
  await lab.ip(lan, "link", "set", `n${k}`, "master", "br0");
  const dir = await lab.tempDir(`kubelet${k}`);
  const kubelet = await FakeKubelet.start(dir);
  lab.defer(`kubelet ${k}`, () => kubelet[Symbol.asyncDispose]());
  // Longer than 15 bytes, like "production-lan": device IDs are not interface names.
  const resource = `production-lan-${k}`;
  lab.spawn(
    ns,
    devicePluginArgv(dir, {
      env: {
        DP_MACVTAP_CONF: JSON.stringify([{ name: resource, lowerDevice: "lan0", capacity: 4 }]),
      },
    }),
    { what: `macvtap deviceplugin ${k}` },
  );
  await kubelet.servePodResources(`${await lab.tempDir(`podres${k}`)}/kubelet.sock`);
  const reg = await kubelet.waitForRegistration(`${RESOURCE}/${resource}`, { timeoutMs: 30_000 });
  await reg.conn.waitFor(
    (m) => m.devices.length === 4 && m.devices.every((d) => d.health === "Healthy"),
    10_000,
  );
  return { ns, pod, kubelet, conn: reg.conn, resource };
}

/** Allocate `id` (kubelet) then CNI ADD with it (Multus): the pod's tap path and MAC. */
async function attach(
  lab: Lab,
  node: Node,
  id: string,
  containerId: string,
): Promise<{ tapPath: string; mac: string }> {
  // kubelet admits the pod (Allocate), and lists the device for it in PodResources.
  const pod = { namespace: "default", name: `virt-launcher-${containerId}` };
  const alloc = await node.kubelet.admit(pod, `${RESOURCE}/${node.resource}`, [[id]]);
  const dev = alloc.containerResponses[0]?.devices[0];
  assert(dev, `Allocate ${id}: no device`);
  assert.deepStrictEqual(dev.permissions, "rw", "DeviceSpec permissions");
  const add = await cni(lab, node.ns, {
    command: "ADD",
    containerId,
    netns: lab.path(node.pod),
    ifname: "net1",
    ...node.kubelet.cniEnvFor(pod),
  }, netconf(id));
  assert(add.code === 0, `CNI ADD ${id}: ${describe(add)}`);
  const [link] = await lab.ipJson<{ ifindex: number; address: string }[]>(
    node.pod,
    "link",
    "show",
    "net1",
  );
  assert(link, "net1 in the pod");
  assert.deepStrictEqual(
    `/dev/tap${link.ifindex}`,
    dev.hostPath,
    "the pod's link is Allocate's /dev/tapN",
  );
  const st = await Deno.lstat(dev.hostPath);
  assert.deepStrictEqual([st.uid, st.gid], [107, 107], `${dev.hostPath} owner`);
  return { tapPath: dev.hostPath, mac: link.address };
}

function netconf(id: string) {
  return { cniVersion: "1.0.0", name: "vmnet", type: "macvtap", deviceID: id };
}

async function detach(lab: Lab, node: Node, id: string, containerId: string): Promise<void> {
  const del = await cni(lab, node.ns, {
    command: "DEL",
    containerId,
    netns: lab.path(node.pod),
    ifname: "net1",
  }, netconf(id));
  assert(del.code === 0, `CNI DEL ${id}: ${describe(del)}`);
}

/** The LAN peer's neighbour entry for `ip`: the MAC it learned, if any. */
async function peerSaw(lab: Lab, lan: string, ip: string): Promise<string | undefined> {
  const neigh = await lab.ipJson<{ dst: string; lladdr?: string }[]>(
    lan,
    "neigh",
    "show",
    "to",
    ip,
    "dev",
    "br0",
  );
  return neigh.find((n) => n.dst === ip)?.lladdr;
}

function report(what: string, r: { accel: string; ms: number }): void {
  note(`${what}: ran (boot, ping, power-off) in ${(r.ms / 1000).toFixed(1)} s (${r.accel})`);
}

Deno.test({
  name: "a VM on the device plugin's macvtap pings the LAN, then the device is reused [root]",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using lab = await Lab.create({ prefix: "vm" });
    const assets: VmAssets = await buildVmAssets(await lab.tempDir("assets"));
    const lan = await lanOf(lab);
    const node = await nodeOf(lab, lan, 1);
    const id = `${node.resource}-3`;

    for (const [round, ip] of [[1, "10.99.0.50"], [2, "10.99.0.51"]] as const) {
      const containerId = `vm-round-${round}`;
      const { tapPath, mac } = await attach(lab, node, id, containerId);
      const vm = await bootVm(assets, {
        netns: lab.path(node.pod),
        tapPath,
        mac,
        ip: `${ip}/24`,
        target: "10.99.0.1",
      });
      assert(
        vm.pingOk,
        `round ${round}: the VM did not reach the peer (exit ${vm.code}):\n${vm.console}`,
      );
      assert.deepStrictEqual(vm.guestMac, mac, "the guest's NIC has the macvtap's MAC");
      assert.deepStrictEqual(await peerSaw(lab, lan, ip), mac, "the peer learned the VM's MAC");
      report(`round ${round} (${tapPath})`, vm);
      await detach(lab, node, id, containerId);
      const left = await lab.ipJson(node.pod, "link", "show");
      assert(!left.some((l) => l.ifname === "net1"), "DEL removed net1 from the pod");
    }
  },
});

Deno.test({
  name: "two nodes on one LAN: two device plugins, two pods, two VMs ping each other [root]",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using lab = await Lab.create({ prefix: "vm" });
    const assets = await buildVmAssets(await lab.tempDir("assets"));
    const lan = await lanOf(lab);
    const nodes = [await nodeOf(lab, lan, 1), await nodeOf(lab, lan, 2)];
    const ips = ["10.99.0.61", "10.99.0.62"];
    const attached: { tapPath: string; mac: string }[] = [];
    for (const [i, node] of nodes.entries()) {
      attached.push(await attach(lab, node, `${node.resource}-0`, `vm-pair-${i}`));
    }
    // Both boot at once; each pings the other (retrying while it boots) and
    // stays up a while after, so the slower one finds it.
    const vms = await Promise.all(nodes.map((node, i) =>
      bootVm(assets, {
        netns: lab.path(node.pod),
        tapPath: attached[i]!.tapPath,
        mac: attached[i]!.mac,
        ip: `${ips[i]}/24`,
        target: ips[1 - i]!,
        tries: 90,
        linger: 4,
      })
    ));
    for (const [i, vm] of vms.entries()) {
      assert(vm.pingOk, `VM ${i + 1} did not reach VM ${2 - i} (exit ${vm.code}):\n${vm.console}`);
      report(`VM ${i + 1} → VM ${2 - i}`, vm);
    }
    for (const [i, node] of nodes.entries()) {
      await detach(lab, node, `${node.resource}-0`, `vm-pair-${i}`);
    }
  },
});
