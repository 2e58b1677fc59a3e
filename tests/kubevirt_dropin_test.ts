/**
 * kubevirt/macvtap-cni's device contract, black-box through `dist/macvtap`
 * (issue "drop-in", item 4): a device KubeVirt's device plugin made (host
 * name `mvt` + the low 48 bits of xxHash64 of the ID, ID `<resource>Mvp<n>`,
 * left up) and that kubelet lists for the pod is imported, checked, deleted
 * and imported again after a restart; a missing one is never replaced by a
 * substitute, with or without `master`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FakeKubelet } from "../lab/kubelet.ts";
import {
  builtDevicePluginArgv,
  cni,
  describe,
  freeTapIndex,
  Lab,
  labIgnore,
  pluginBuilt,
} from "../lab/mod.ts";
import { kubevirtDeviceIfname } from "../internal/_ifname.ts";

const ignore = labIgnore() || !pluginBuilt();
const RESOURCE = "macvtap.network.kubevirt.io/dataplane";

Deno.test({
  name:
    "a device KubeVirt's device plugin made is imported (ADD, CHECK, DEL, re-ADD); a missing one is never substituted [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using lab = await Lab.create({ prefix: "kvd" });
    const l = await lab.simple();
    const kubelet = await FakeKubelet.start(await lab.tempDir("kubelet"));
    lab.defer("stop the kubelet stand-in", () => kubelet[Symbol.asyncDispose]());
    await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
    const pod = { namespace: "vms", name: "virt-launcher-vm1-abcde" };
    const id = "dataplaneMvp3";
    const hostName = kubevirtDeviceIfname(id);
    // As KubeVirt's device plugin Allocate leaves it: named by hash, bridge mode, up. Its
    // index is the kernel's choice there; here a random high one, so that no other
    // namespace of this machine has a /dev/tapN of that index (the import would be refused).
    const index = String(100_000 + Math.floor(Math.random() * 1_000_000));
    const kubevirtAllocate = async () => {
      await lab.macvtap(l.host, l.master, hostName, { index, mode: "bridge" });
      await lab.ip(l.host, "link", "set", hostName, "up");
    };
    await kubevirtAllocate();
    const [before] = await lab.ipJson<{ ifindex: number }[]>(l.host, "link", "show", hostName);
    kubelet.assign(pod, RESOURCE, [[id]]);
    const stateDir = await lab.tempDir("state");
    const conf = {
      cniVersion: "1.0.0",
      name: "macvtapnetwork",
      type: "macvtap",
      master: l.master,
      deviceID: id,
      stateDir,
    };
    const env = (command: string) => ({
      command,
      containerId: "sandbox1",
      netns: l.ctrPath,
      ifname: "net1",
      ...kubelet.cniEnvFor(pod),
    });
    const add = await cni(lab, l.host, env("ADD"), conf);
    assert.equal(add.code, 0, describe(add));
    const [link] = await lab.ipJson<{ ifindex: number }[]>(l.ctr, "link", "show", "net1");
    assert.equal(link?.ifindex, before!.ifindex, "the allocated device, its /dev/tapN kept");
    assert.equal((await Deno.lstat(`/dev/tap${before!.ifindex}`)).uid, 107);
    const hostLinks = await lab.ipJson<{ ifname: string }[]>(
      l.host,
      "link",
      "show",
      "type",
      "macvtap",
    );
    assert.deepEqual(hostLinks, [], "no substitute left on the host");
    const check = await cni(lab, l.host, env("CHECK"), { ...conf, prevResult: add.json });
    assert.equal(check.code, 0, describe(check));
    const del = await cni(lab, l.host, env("DEL"), conf);
    assert.equal(del.code, 0, describe(del));

    // After DEL the device is gone (as with KubeVirt's own CNI). A re-ADD
    // (a sandbox re-created) must not make a substitute at another
    // /dev/tapN, master or not: KubeVirt's device plugin recreates it at its
    // next Allocate.
    for (const c of [conf, { ...conf, master: undefined }]) {
      const again = await cni(lab, l.host, env("ADD"), c);
      assert.equal(again.json?.code, 7, describe(again));
      assert.match(String(again.json?.msg), /cannot be made again|no master/);
      assert.deepEqual(
        await lab.ipJson(l.host, "link", "show", "type", "macvtap"),
        [],
        "no macvtap made",
      );
    }
    // KubeVirt's device plugin makes it again; the re-ADD imports it.
    await kubevirtAllocate();
    const readd = await cni(lab, l.host, env("ADD"), conf);
    assert.equal(readd.code, 0, describe(readd));
    assert.equal((await cni(lab, l.host, env("DEL"), conf)).code, 0);
  },
});

/**
 * kubevirt/macvtap-cni's own plugin tests (`pkg/cni/plugin_test.go`), case by
 * case, black-box: a device made under KubeVirt's name for "dev500" (down, as
 * its test's `CreateMacvtap` leaves it), cniVersion 0.3.1, imported into a
 * pod proven by the kubelet stand-in.
 */
const KUBEVIRT_CASES: {
  name: string;
  ifname: string;
  conf?: Record<string, unknown>;
  args?: string;
  expect: (link: { address: string; mtu: number; promiscuity: number }) => void;
}[] = [
  {
    name: "imported without further configuration, with a MAC of its own",
    ifname: "macvtap0",
    expect: (l) => assert.match(l.address, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/),
  },
  {
    name: "imported with the MAC from CNI_ARGS",
    ifname: "macvtap0",
    args: "MAC=0a:59:00:dc:6a:e0",
    expect: (l) => assert.equal(l.address, "0a:59:00:dc:6a:e0"),
  },
  {
    name: "imported with the link MTU configured (ifname = device ID)",
    ifname: "dev500",
    conf: { mtu: 1000 },
    expect: (l) => assert.equal(l.mtu, 1000),
  },
  {
    name: "imported with promiscuous mode enabled (ifname = device ID)",
    ifname: "dev500",
    conf: { promiscMode: true },
    expect: (l) => assert.ok(l.promiscuity > 0),
  },
];

for (const c of KUBEVIRT_CASES) {
  Deno.test({
    name: `kubevirt/macvtap-cni plugin_test: ${c.name}; DEL removes it [0.3.1]`,
    ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      await using lab = await Lab.create({ prefix: "kvp" });
      const l = await lab.simple();
      const kubelet = await FakeKubelet.start(await lab.tempDir("kubelet"));
      lab.defer("stop the kubelet stand-in", () => kubelet[Symbol.asyncDispose]());
      await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
      const pod = { namespace: "default", name: "dummy" };
      const id = "dev500";
      const index = freeTapIndex();
      await lab.macvtap(l.host, l.master, kubevirtDeviceIfname(id), { index, mode: "bridge" });
      kubelet.assign(pod, RESOURCE, [[id]]);
      const trust = kubelet.cniEnvFor(pod);
      const env = (command: string) => ({
        command,
        containerId: "dummy",
        netns: l.ctrPath,
        ifname: c.ifname,
        args: `${trust.args}${c.args ? `;${c.args}` : ""}`,
        extra: trust.extra,
      });
      const conf = {
        cniVersion: "0.3.1",
        name: "mynet",
        type: "macvtap",
        deviceID: id,
        stateDir: await lab.tempDir("state"),
        ...c.conf,
      };
      const r = await cni(lab, l.host, env("ADD"), conf);
      assert.equal(r.code, 0, describe(r));
      const [link] = await lab.ipJson<{ address: string; mtu: number; promiscuity: number }[]>(
        l.ctr,
        "link",
        "show",
        c.ifname,
      );
      assert.ok(link, `${c.ifname} in the pod`);
      c.expect(link);
      const del = await cni(lab, l.host, env("DEL"), conf);
      assert.equal(del.code, 0, describe(del));
      assert.deepEqual(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
    },
  });
}

Deno.test({
  name:
    "drop-in: ours starts where kubevirt/macvtap-cni's device plugin served running VM pods (same ConfigMap): their devices stay untouched, CHECK and DEL pass, new pods get ours [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using lab = await Lab.create({ prefix: "kvs" });
    const l = await lab.simple();
    const dir = await lab.tempDir("kubelet");
    const kubelet = await FakeKubelet.start(dir);
    lab.defer("stop the kubelet stand-in", () => kubelet[Symbol.asyncDispose]());
    await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
    const stateDir = await lab.tempDir("state");
    const conf = (id: string) => ({
      cniVersion: "0.3.1",
      name: "macvtapnetwork",
      type: "macvtap",
      deviceID: id,
      stateDir,
    });

    // Before the swap: kubevirt/macvtap-cni's device plugin allocated dataplaneMvp0/1 and its
    // CNI moved them into two VM pods (named net1, up, /dev/tapN given to qemu's 107).
    const old = [];
    for (const n of [0, 1]) {
      const id = `dataplaneMvp${n}`;
      const ns = await lab.netns(`old${n}`);
      const name = kubevirtDeviceIfname(id);
      const index = freeTapIndex();
      await lab.macvtap(l.host, l.master, name, { index: index, mode: "bridge" });
      await lab.ip(l.host, "link", "set", name, "netns", ns);
      await lab.ip(ns, "link", "set", name, "name", "net1", "up");
      await Deno.chown(`/dev/tap${index}`, 107, 107);
      const pod = { namespace: "vms", name: `virt-launcher-old${n}` };
      kubelet.assign(pod, RESOURCE, [[id]]);
      const [link] = await lab.ipJson<{ address: string; ifindex: number }[]>(
        ns,
        "link",
        "show",
        "net1",
      );
      const node = await Deno.lstat(`/dev/tap${index}`);
      old.push({ id, ns, pod, link: link!, rdev: node.rdev });
    }

    // The swap: our device plugin, with kubevirt's ConfigMap text (`master`, same resource name).
    const dpConf = JSON.stringify([{ name: "dataplane", master: l.master, capacity: 4 }]);
    lab.spawn(l.host, builtDevicePluginArgv(dir, { env: { DP_MACVTAP_CONF: dpConf } }), {
      what: "macvtap-deviceplugin",
    });
    const reg = await kubelet.waitForRegistration(RESOURCE, { timeoutMs: 30_000 });
    await reg.conn.waitFor((m) => m.devices.length === 4, 10_000);
    // Let its MAC guard adopt what it would adopt.
    await new Promise((r) => setTimeout(r, 500));

    for (const o of old) {
      const [now] = await lab.ipJson<
        {
          address: string;
          ifindex: number;
          flags: string[];
          linkinfo: { info_data: { mode: string } };
        }[]
      >(o.ns, "link", "show", "net1");
      assert.equal(now?.ifindex, o.link.ifindex, `${o.id}: the same device`);
      assert.ok(now?.flags.includes("UP"), `${o.id}: still up`);
      assert.equal(
        now?.linkinfo.info_data.mode,
        "bridge",
        `${o.id}: not touched by our device plugin`,
      );
      const node = await Deno.lstat(`/dev/tap${o.link.ifindex}`);
      assert.deepEqual([node.rdev, node.uid], [o.rdev, 107], `${o.id}: its /dev/tapN`);
      // CHECK with the result kubevirt's CNI gave the runtime.
      const prevResult = {
        cniVersion: "0.3.1",
        interfaces: [{ name: "net1", mac: o.link.address, sandbox: lab.path(o.ns) }],
      };
      const check = await cni(lab, l.host, {
        command: "CHECK",
        containerId: o.pod.name,
        netns: lab.path(o.ns),
        ifname: "net1",
        ...kubelet.cniEnvFor(o.pod),
      }, {
        ...conf(o.id),
        cniVersion: "0.4.0",
        prevResult: { ...prevResult, cniVersion: "0.4.0" },
      });
      assert.equal(check.code, 0, `${o.id} CHECK: ${describe(check)}`);
    }

    // A new VM pod gets a device of ours, imported through the proof.
    const pod = { namespace: "vms", name: "virt-launcher-new" };
    const ns = await lab.netns("newpod");
    const alloc = await kubelet.admit(pod, RESOURCE, [["dataplane-0"]]);
    const add = await cni(lab, l.host, {
      command: "ADD",
      containerId: pod.name,
      netns: lab.path(ns),
      ifname: "net1",
      ...kubelet.cniEnvFor(pod),
    }, conf("dataplane-0"));
    assert.equal(add.code, 0, describe(add));
    const [link] = await lab.ipJson<{ ifindex: number }[]>(ns, "link", "show", "net1");
    assert.equal(`/dev/tap${link!.ifindex}`, alloc.containerResponses[0]!.devices[0]!.hostPath);

    // The old pods' DEL passes (their link goes with their namespace: no record of ours names it).
    for (const o of old) {
      const del = await cni(lab, l.host, {
        command: "DEL",
        containerId: o.pod.name,
        netns: lab.path(o.ns),
        ifname: "net1",
      }, conf(o.id));
      assert.equal(del.code, 0, `${o.id} DEL: ${describe(del)}`);
    }
    const del = await cni(lab, l.host, {
      command: "DEL",
      containerId: pod.name,
      netns: lab.path(ns),
      ifname: "net1",
    }, conf("dataplane-0"));
    assert.equal(del.code, 0, describe(del));
  },
});
