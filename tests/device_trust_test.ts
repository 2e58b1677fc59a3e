/**
 * Device trust, black-box through `dist/macvtap` (issue "Device trust"):
 *
 * - a `deviceID` is imported only when kubelet's PodResources API lists it
 *   for the pod `CNI_ARGS` names (the kubelet stand-in serves `Get` and
 *   `List` from what it admitted); a tenant naming another pod's device,
 *   before or after that pod's ADD, gets code 7 and changes nothing;
 * - without kubelet, only the node operator's `MACVTAP_DEVICEID_FROM_CONFIG=1`
 *   lets a config name a device, and never where kubelet's socket exists;
 * - `CNI_NETNS` naming the runtime's own namespace is refused first;
 * - `/dev/tapN` of another namespace's device is never imported, chowned or
 *   recreated over.
 *
 * "Nothing changed" is checked in the kernel and the file system: links of
 * every namespace, the `/dev/tapN` node (major:minor, owner), the state dir.
 *
 * @module
 */

import assert from "node:assert/strict";
import { splitDev } from "../internal/_tap_node.ts";
import { resourceNameOf } from "../deviceplugin/mod.ts";
import { deviceIfname, tapIndexCandidates, tapIndexFor } from "../internal/_ifname.ts";
import { devicePluginArgv, FakeKubelet, type PodRef } from "../lab/kubelet.ts";
import {
  cni,
  type CniCall,
  describe,
  DEVICEID_FROM_CONFIG,
  freeTapIndex,
  Lab,
  labIgnore,
  pluginBuilt,
  run,
  VERSIONS,
} from "../lab/mod.ts";

const ignore = labIgnore() || !pluginBuilt();

type Json = Record<string, unknown>;

function hex(): string {
  return crypto.randomUUID().slice(0, 4);
}

function assertRefused(r: CniCall, code: number, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `refused: ${describe(r)}`);
  assert.equal(r.json?.code, code, describe(r));
  assert.match(String(r.json?.msg), pattern, describe(r));
}

/** Names of the links in `ns`. */
async function links(lab: Lab, ns: string): Promise<string[]> {
  return (await lab.ipJson<{ ifname: string }[]>(ns, "link", "show")).map((l) => l.ifname).sort();
}

/** What a refused ADD must not have changed about `/dev/tap<index>`. */
async function node(index: number): Promise<{ rdev: number | null; uid: number | null } | null> {
  try {
    const st = await Deno.lstat(`/dev/tap${index}`);
    return { rdev: st.rdev, uid: st.uid };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/**
 * A node with the device plugin (one resource on `lan0`) registered with the
 * kubelet stand-in, which also serves PodResources on `socket`.
 */
async function dpNode(lab: Lab, options: { get?: boolean } = {}) {
  const host = await lab.netns("host");
  const peer = await lab.netns("peer");
  await lab.veth(host, "lan0", peer, "lan0p");
  const dir = await lab.tempDir("kubelet");
  const socket = `${await lab.tempDir("podres")}/kubelet.sock`;
  const kubelet = await FakeKubelet.start(dir);
  lab.defer("stop the kubelet stand-in", () => kubelet[Symbol.asyncDispose]());
  await kubelet.servePodResources(socket, options);
  const name = `tr${hex()}`;
  lab.spawn(
    host,
    devicePluginArgv(dir, {
      env: { DP_MACVTAP_CONF: JSON.stringify([{ name, lowerDevice: "lan0" }]) },
    }),
    { what: "macvtap deviceplugin" },
  );
  const resource = resourceNameOf(name);
  await kubelet.waitForRegistration(resource, { timeoutMs: 20_000 });
  const stateDir = await lab.tempDir("state");
  const env = { MACVTAP_PODRESOURCES_SOCKET: socket };
  const conf = (extra: Json) => ({
    cniVersion: "1.0.0",
    name: "vmnet",
    type: "macvtap",
    stateDir,
    ...extra,
  });
  return { host, name, resource, kubelet, socket, stateDir, env, conf };
}

for (const get of [true, false]) {
  Deno.test({
    name: `deviceID: imported only when kubelet lists it for the pod (${
      get ? "Get" : "List, Get UNIMPLEMENTED"
    }); p2 naming p1's device is refused before and after p1's ADD [root]`,
    ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      await using lab = await Lab.create({ prefix: "trust" });
      const n = await dpNode(lab, { get });
      const ctr1 = await lab.netns("ctr1");
      const ctr2 = await lab.netns("ctr2");
      const p1 = { namespace: "tenant-a", name: "vm1" };
      const p2 = { namespace: "tenant-b", name: "vm2" };
      const id1 = `${n.name}-1`;
      const id2 = `${n.name}-2`;
      await n.kubelet.admit(p1, n.resource, [[id1]]);
      await n.kubelet.admit(p2, n.resource, [[id2]]);
      const index1 = tapIndexFor(id1);
      const add = (pod: PodRef, ns: string, id: string, extra: Json = {}) =>
        cni(lab, n.host, {
          command: "ADD",
          containerId: pod.name,
          netns: lab.path(ns),
          ifname: "net1",
          ...n.kubelet.cniEnvFor(pod),
        }, n.conf({ deviceID: id, ...extra }));
      const del = (pod: PodRef, ns: string, id: string) =>
        cni(lab, n.host, {
          command: "DEL",
          containerId: pod.name,
          netns: lab.path(ns),
          ifname: "net1",
          ...n.kubelet.cniEnvFor(pod),
        }, n.conf({ deviceID: id }));

      // (a) Before p1's ADD: p2 names p1's device.
      const hostBefore = await links(lab, n.host);
      assert.ok(hostBefore.includes(deviceIfname(id1)), "Allocate made p1's device");
      const nodeBefore = await node(index1);
      const takeover = await add(p2, ctr2, id1, { owner: 4242 });
      assertRefused(takeover, 7, /did not allocate it to pod tenant-b\/vm2.*"tr\w+-2"/);
      assert.deepEqual(
        await links(lab, n.host),
        hostBefore,
        "nothing moved or created on the host",
      );
      assert.deepEqual(await links(lab, ctr2), ["lo"], "nothing in p2's namespace");
      assert.deepEqual(await node(index1), nodeBefore, "p1's /dev/tapN untouched");
      assert.deepEqual(await files(n.stateDir), [], "nothing recorded");

      // A host link named like the ID (another tenant's hostrouteif, an operator's
      // macvtap) is not the device kubelet allocated: p1's ADD imports the latter.
      await lab.macvtap(n.host, "lan0", id1, { index: freeTapIndex() });
      // p1's own ADD imports it, with the index Allocate announced.
      const ok1 = await add(p1, ctr1, id1);
      assert.equal(ok1.code, 0, describe(ok1));
      const [link1] = await lab.ipJson<{ ifindex: number }[]>(ctr1, "link", "show", "net1");
      assert.equal(link1?.ifindex, index1);
      const owned = await node(index1);
      assert.equal(owned?.uid, 107, "p1's /dev/tapN is its qemu's");
      assert.ok((await links(lab, n.host)).includes(id1), "the same-named host link stays");

      // (b) After p1's ADD: p2 names it again, asking for its own owner.
      const again = await add(p2, ctr2, id1, { owner: 4242 });
      assertRefused(again, 7, /did not allocate it to pod tenant-b\/vm2/);
      assert.deepEqual(await node(index1), owned, "p1's live /dev/tapN keeps its owner");
      assert.deepEqual(await links(lab, ctr2), ["lo"]);

      // A pod kubelet does not know, and CNI_ARGS without a pod.
      const stranger = await add({ namespace: "x", name: "nobody" }, ctr2, id2);
      assertRefused(stranger, 7, /kubelet lists no pod x\/nobody/);
      const anonymous = await cni(lab, n.host, {
        command: "ADD",
        containerId: "anon",
        netns: lab.path(ctr2),
        ifname: "net1",
        extra: n.env,
      }, n.conf({ deviceID: id2 }));
      assertRefused(anonymous, 7, /CNI_ARGS names no pod/);
      // The operator's opt-in does not apply where kubelet's socket exists.
      const optedIn = await cni(lab, n.host, {
        command: "ADD",
        containerId: "anon",
        netns: lab.path(ctr2),
        ifname: "net1",
        extra: { ...n.env, ...DEVICEID_FROM_CONFIG },
      }, n.conf({ deviceID: id2 }));
      assertRefused(optedIn, 7, /CNI_ARGS names no pod/);
      assert.deepEqual(await links(lab, ctr2), ["lo"]);

      // p2's own device imports.
      const ok2 = await add(p2, ctr2, id2);
      assert.equal(ok2.code, 0, describe(ok2));
      for (const [pod, ns, id] of [[p1, ctr1, id1], [p2, ctr2, id2]] as const) {
        const r = await del(pod, ns, id);
        assert.equal(r.code, 0, describe(r));
      }
      assert.deepEqual(await files(n.stateDir), []);
    },
  });
}

Deno.test({
  name:
    "deviceID without kubelet: refused with how to allow it, imported with MACVTAP_DEVICEID_FROM_CONFIG=1 [root]",
  ignore,
  async fn() {
    await using lab = await Lab.create({ prefix: "trust" });
    const l = await lab.simple();
    const stateDir = await lab.tempDir("state");
    await lab.macvtap(l.host, l.master, "vtap0", { index: freeTapIndex() });
    const config = {
      cniVersion: "1.0.0",
      name: "mesos",
      type: "macvtap",
      deviceID: "vtap0",
      stateDir,
    };
    const env = { containerId: "t1", netns: l.ctrPath, ifname: "net1" };
    const refused = await cni(lab, l.host, { command: "ADD", ...env }, config);
    assertRefused(refused, 7, /no kubelet PodResources socket.*MACVTAP_DEVICEID_FROM_CONFIG=1/);
    assert.ok((await links(lab, l.host)).includes("vtap0"), "vtap0 stays on the host");
    assert.deepEqual(await links(lab, l.ctr), ["lo"]);
    assert.deepEqual(await files(stateDir), []);

    // The opt-in is the runtime's environment; a config saying so changes nothing.
    const inConfig = await cni(lab, l.host, { command: "ADD", ...env }, {
      ...config,
      MACVTAP_DEVICEID_FROM_CONFIG: "1",
    });
    assertRefused(inConfig, 7, /MACVTAP_DEVICEID_FROM_CONFIG=1/);

    const ok = await cni(
      lab,
      l.host,
      { command: "ADD", ...env, extra: DEVICEID_FROM_CONFIG },
      config,
    );
    assert.equal(ok.code, 0, describe(ok));
    assert.deepEqual(await links(lab, l.ctr), ["lo", "net1"]);
    // A /dev without devtmpfs (or a node a device plugin replaced): the node was made
    // with mknod, so the kernel will not remove it with the link.
    const [net1] = await lab.ipJson<{ ifindex: number }[]>(l.ctr, "link", "show", "net1");
    const tap = `/dev/tap${net1!.ifindex}`;
    const st = await Deno.lstat(tap);
    // Minors above 255 are split in dev_t: many macvtaps may exist at once.
    const [major, minor] = splitDev(st.rdev!);
    await Deno.remove(tap);
    const mk = await run(["mknod", tap, "c", String(major), String(minor)]);
    assert.ok(mk.success, mk.stderr);
    const made = (await Deno.lstat(tap)).rdev;
    lab.defer(`remove ${tap} if the test left it`, async () => {
      const left = await Deno.lstat(tap).catch(() => undefined);
      if (left?.isCharDevice && left.rdev === made) await Deno.remove(tap);
    });
    await Deno.chown(tap, 107, 107);
    const del = await cni(lab, l.host, { command: "DEL", ...env }, config);
    assert.equal(del.code, 0, describe(del));
    assert.deepEqual(await links(lab, l.ctr), ["lo"], "DEL removes it");
    assert.equal(await node(net1!.ifindex), null, "and the mknod'd node, which no device has now");
  },
});

for (const version of VERSIONS) {
  Deno.test({
    name:
      `CNI_NETNS naming the runtime's own namespace is refused before anything is done [${version}]`,
    ignore,
    async fn() {
      await using lab = await Lab.create({ prefix: "trust" });
      const l = await lab.simple();
      const stateDir = await lab.tempDir("state");
      const linkDir = await lab.tempDir("links");
      await Deno.symlink(lab.path(l.host), `${linkDir}/host`);
      const config = {
        cniVersion: version,
        name: "ownns",
        type: "macvtap",
        master: l.master,
        stateDir,
        ipam: {
          type: "static",
          addresses: [{ address: "10.99.0.77/24", gateway: "10.99.0.1" }],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      };
      const linksBefore = await links(lab, l.host);
      // The kernel's own routes come and go by themselves (an IPv6 link-local
      // address finishing DAD); anything the plugin adds is not "proto kernel".
      const routes = async () =>
        (await lab.ip(l.host, "route", "show", "table", "all")).split("\n")
          .filter((r) => !r.includes("proto kernel")).join("\n");
      const routesBefore = await routes();
      for (
        const path of [
          "/proc/self/ns/net",
          "/proc/thread-self/ns/net",
          lab.path(l.host),
          `${linkDir}/host`,
        ]
      ) {
        const r = await cni(lab, l.host, {
          command: "ADD",
          containerId: "own",
          netns: path,
          ifname: "net9",
        }, config);
        assertRefused(r, 4, /is the runtime's own network namespace/);
        assert.deepEqual(await links(lab, l.host), linksBefore, `${path}: no link on the host`);
        assert.equal(
          await routes(),
          routesBefore,
          `${path}: no route on the host`,
        );
        assert.deepEqual(await files(stateDir), [], `${path}: nothing recorded`);
      }
    },
  });
}

/**
 * Another pod's namespace with its own uplink: `live(index)` makes a macvtap
 * there at ifindex `index`, a live device whose `/dev/tap<index>` is the
 * node's, and returns that node's `st_rdev`.
 */
async function otherPod(lab: Lab): Promise<(index: number, name?: string) => Promise<number>> {
  const other = await lab.netns("other");
  const far = await lab.netns("far");
  await lab.veth(other, "up0", far, "up0p");
  return async (index, name = `vm${index}`) => {
    await lab.macvtap(other, "up0", name, { index: String(index) });
    const st = await Deno.lstat(`/dev/tap${index}`);
    assert.ok(st.isCharDevice, `/dev/tap${index} is the other namespace's node`);
    return st.rdev!;
  };
}

Deno.test({
  name:
    "deviceID: a device whose /dev/tapN is another namespace's device is never imported, chowned or recreated over [root]",
  ignore,
  async fn() {
    await using lab = await Lab.create({ prefix: "trust" });
    const l = await lab.simple();
    const stateDir = await lab.tempDir("state");
    const conf = { cniVersion: "1.0.0", name: "tapnode", type: "macvtap", stateDir };
    const env = (id: string) => ({
      command: "ADD",
      containerId: id,
      netns: l.ctrPath,
      ifname: "net1",
      extra: DEVICEID_FROM_CONFIG,
    });

    // 1. A host macvtap made at an index that is live in another namespace:
    //    the kernel keeps /dev/tapN the other device's.
    const live = await otherPod(lab);
    const index = 3000 + Math.floor(Math.random() * 1000);
    // Same name and same index as the host device: only the namespace differs.
    const theirs = await live(index, "clash0");
    await lab.macvtap(l.host, l.master, "clash0", { index: String(index) });
    const r1 = await cni(lab, l.host, env("c1"), { ...conf, deviceID: "clash0", owner: 4242 });
    assertRefused(r1, 7, new RegExp(`/dev/tap${index} is device .*live in another namespace`));
    assert.ok((await links(lab, lab.name("other"))).includes("clash0"), "theirs stays theirs");
    assert.ok((await links(lab, l.host)).includes("clash0"), "clash0 stays on the host");
    assert.deepEqual(await links(lab, l.ctr), ["lo"]);
    const after = await Deno.lstat(`/dev/tap${index}`);
    assert.equal(after.rdev, theirs, "the node is still the other device's");
    assert.equal(after.uid, 0, "and keeps its owner");
    assert.deepEqual(await files(stateDir), []);

    // 2. Recreating a missing device-plugin device: its first /dev/tapN index
    //    is live elsewhere, so the device is made at another candidate, and
    //    the other node is left alone.
    const id = `lan${hex()}-7`;
    const first = tapIndexFor(id);
    assert.equal(tapIndexCandidates(id)[0], first);
    const theirs2 = await live(first);
    const r2 = await cni(lab, l.host, env("c2"), { ...conf, deviceID: id, master: l.master });
    assert.equal(r2.code, 0, describe(r2));
    const [link] = await lab.ipJson<{ ifindex: number }[]>(l.ctr, "link", "show", "net1");
    assert.notEqual(link?.ifindex, first, "not recreated at the live index");
    const other = await Deno.lstat(`/dev/tap${first}`);
    assert.equal(other.rdev, theirs2, "the other device's node is still its own");
    assert.equal(other.uid, 0, "and was not chowned");
    assert.equal((await Deno.lstat(`/dev/tap${link!.ifindex}`)).uid, 107);
    const del = await cni(lab, l.host, { ...env("c2"), command: "DEL" }, {
      ...conf,
      deviceID: id,
      master: l.master,
    });
    assert.equal(del.code, 0, describe(del));
  },
});
