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
import { cni, describe, freeTapIndex, Lab, labIgnore, pluginBuilt } from "../lab/mod.ts";
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
      const add = ["link", "add", "link", l.master, "name", hostName, "index", index];
      await lab.ip(l.host, ...add, "type", "macvtap", "mode", "bridge");
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
      const add = ["link", "add", "link", l.master, "name", kubevirtDeviceIfname(id)];
      await lab.ip(l.host, ...add, "index", freeTapIndex(), "type", "macvtap", "mode", "bridge");
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
