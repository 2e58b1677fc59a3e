/**
 * Links for VMs, black-box through `dist/macvtap` (issue "Live migration",
 * items 1 and 3):
 *
 * - a silent link (default for `deviceID` without IPAM, `silent: true` on
 *   the plain path) carries no frame of the pod's kernel: its tx counter
 *   stays 0 while the kernel would have sent MLD reports, DAD and router
 *   solicitations with IPv6 on;
 * - every macvtap gets a node-unique ifindex, so two pods' `/dev/tapN` never
 *   collide and one pod's DEL never removes the other's node; `owner` and
 *   `group` apply on the plain path too.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  cni,
  type CniCall,
  describe,
  DEVICEID_FROM_CONFIG,
  freeTapIndex,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
  run,
  VERSIONS,
  waitFor,
} from "../lab/mod.ts";
import { linkMarker } from "../internal/_ifname.ts";
import { compareVersions } from "../cni/mod.ts";
import { makedev, splitDev } from "../internal/_tap_node.ts";

const ignore = labIgnore() || !pluginBuilt();

interface LinkStats {
  ifindex: number;
  address: string;
  stats64: { tx: { packets: number } };
}

async function link(lab: Lab, ns: string, name: string): Promise<LinkStats> {
  const [l] = await lab.ipJson<LinkStats[]>(ns, "-s", "link", "show", name);
  assert.ok(l, `${name} in ${ns}`);
  return l;
}

async function sysctl(lab: Lab, ns: string, key: string): Promise<string> {
  const r = await lab.exec(ns, ["sysctl", "-n", key]);
  assert.ok(r.success, r.stderr);
  return r.stdout.trim();
}

function assertOk(r: CniCall): void {
  assert.equal(r.code, 0, describe(r));
}

// A link without addresses has a result from 0.3.0 on (before, a result is an address).
for (const version of VERSIONS.filter((v) => compareVersions(v, "0.3.0") >= 0)) {
  Deno.test({
    name:
      `a silent link sends nothing from the pod's kernel: deviceID without IPAM, and silent: true [${version}]`,
    ignore,
    async fn() {
      await using lab = await Lab.create({ prefix: "vml" });
      const l = await lab.simple();
      const stateDir = await lab.tempDir("state");
      await lab.macvtap(l.host, l.master, "vmtap0", { index: freeTapIndex() });
      const base = { cniVersion: version, type: "macvtap", stateDir };
      const cases = [
        { ifname: "net1", conf: { ...base, name: "vmdev", deviceID: "vmtap0" } },
        { ifname: "net2", conf: { ...base, name: "vmplain", master: l.master, silent: true } },
      ];
      const env = (ifname: string) => ({
        containerId: "vm1",
        netns: l.ctrPath,
        ifname,
        extra: DEVICEID_FROM_CONFIG,
      });
      for (const c of cases) {
        assertOk(await cni(lab, l.host, { command: "ADD", ...env(c.ifname) }, c.conf));
      }
      // With IPv6 on, the kernel sends an MLD report at once and router
      // solicitations and DAD within a second of the link coming up.
      await new Promise((r) => setTimeout(r, 1500));
      for (const c of cases) {
        assert.equal(await sysctl(lab, l.ctr, `net.ipv6.conf.${c.ifname}.disable_ipv6`), "1");
        const s = await link(lab, l.ctr, c.ifname);
        assert.equal(s.stats64.tx.packets, 0, `${c.ifname} sent ${s.stats64.tx.packets} frames`);
      }
      for (const c of cases) {
        assertOk(await cni(lab, l.host, { command: "DEL", ...env(c.ifname) }, c.conf));
      }

      // silent with IPAM is a contradiction: refused before anything is made.
      const withIpam = {
        ...base,
        name: "vmipam",
        master: l.master,
        silent: true,
        ipam: { type: "static", addresses: [{ address: "10.99.0.40/24" }] },
      };
      const r = await cni(lab, l.host, { command: "ADD", ...env("net3") }, withIpam);
      assert.equal(r.json?.code, 7, describe(r));
      assert.match(String(r.json?.msg), /silent/);
      const left = await lab.ipJson<{ ifname: string }[]>(l.ctr, "link", "show");
      assert.deepEqual(left.map((x) => x.ifname), ["lo"]);
    },
  });
}

Deno.test({
  name:
    "two pods' macvtaps get node-unique ifindexes: each /dev/tapN is its own, one DEL leaves the other's; owner/group on the plain path",
  ignore,
  async fn() {
    await using lab = await Lab.create({ prefix: "vml" });
    const l = await lab.simple();
    const ctr2 = await lab.netns("ctr2");
    const stateDir = await lab.tempDir("state");
    const conf = (owner?: number) => ({
      cniVersion: "1.0.0",
      name: "vmplain",
      type: "macvtap",
      master: l.master,
      stateDir,
      ...(owner === undefined ? {} : { owner, group: owner }),
    });
    const pods = [
      { id: "pod1", ns: l.ctr, owner: 107 },
      { id: "pod2", ns: ctr2, owner: undefined },
    ];
    const env = (p: (typeof pods)[number]) => ({
      containerId: p.id,
      netns: lab.path(p.ns),
      ifname: "net1",
    });
    for (const p of pods) {
      assertOk(await cni(lab, l.host, { command: "ADD", ...env(p) }, conf(p.owner)));
    }
    const indexes: number[] = [];
    for (const p of pods) {
      const { ifindex } = await link(lab, p.ns, "net1");
      indexes.push(ifindex);
      assert.ok(ifindex >= 0x10000, `ifindex ${ifindex} is in the node-unique range`);
      const dev = (await lab.exec(p.ns, ["cat", `/sys/class/net/net1/macvtap/tap${ifindex}/dev`]))
        .stdout.trim();
      const st = await Deno.lstat(`/dev/tap${ifindex}`);
      const [maj, min] = dev.split(":").map(Number);
      assert.equal(st.rdev, makedev(maj!, min!), `/dev/tap${ifindex} is ${p.id}'s device`);
      assert.equal(st.uid, p.owner ?? 0, `${p.id}: owner`);
      assert.equal(st.gid, p.owner ?? 0, `${p.id}: group`);
    }
    assert.notEqual(indexes[0], indexes[1]);
    assertOk(await cni(lab, l.host, { command: "DEL", ...env(pods[0]!) }, conf(107)));
    assert.ok((await Deno.lstat(`/dev/tap${indexes[1]}`)).isCharDevice, "pod2's node stays");
    assertOk(await cni(lab, l.host, { command: "DEL", ...env(pods[1]!) }, conf()));
  },
});

Deno.test({
  name:
    "DEL removes a pod's /dev/tapN before its link, never another pod's node of the same name and index, and finishes a DEL killed half-way [root]",
  ignore: labIgnore(["strace"]) || !pluginBuilt(),
  async fn() {
    await using lab = await Lab.create({ prefix: "vml" });
    const l = await lab.simple();
    const stateDir = await lab.tempDir("state");
    const conf = {
      cniVersion: "1.0.0",
      name: "vmplain",
      type: "macvtap",
      master: l.master,
      stateDir,
      owner: 107,
      group: 107,
    };
    const env = (containerId: string) => ({ containerId, netns: l.ctrPath, ifname: "net1" });

    // 1. A node made with mknod (a /dev that is not devtmpfs, a node a device
    // plugin replaced) stays when the link goes, owned by the VM's user, and
    // the link's minor is the next macvtap's anywhere on the node: removed
    // after the link, it may already name that other device, and no check
    // can tell. The trace shows the order.
    assertOk(await cni(lab, l.host, { command: "ADD", ...env("pod1") }, conf));
    const { ifindex } = await link(lab, l.ctr, "net1");
    const tap = `/dev/tap${ifindex}`;
    const { rdev } = await Deno.lstat(tap);
    await Deno.remove(tap);
    // Minors above 255 are split in dev_t: many macvtaps may exist at once.
    const [major, minor] = splitDev(rdev!);
    const mk = await run(["mknod", tap, "c", String(major), String(minor)]);
    assert.ok(mk.success, mk.stderr);
    const made = await nodeAt(tap);
    lab.defer(`remove ${tap} if the test left it`, async () => {
      if (await nodeAt(tap) === made) await Deno.remove(tap);
    });
    await Deno.chown(tap, 107, 107);
    const trace = `${await lab.tempDir("trace")}/del`;
    const del = await cni(lab, l.host, { command: "DEL", ...env("pod1") }, conf, PLUGIN, {
      wrap: ["strace", "-f", "-qq", "-e", "trace=unlink,unlinkat,sendto,sendmsg", "-o", trace],
    });
    assertOk(del);
    const lines = (await Deno.readTextFile(trace)).split("\n");
    const unlinked = lines.findIndex((x) => x.includes(`"${tap}"`) && /\bunlink(at)?\(/.test(x));
    const deleted = lines.findIndex((x) => /nlmsg_type=(RTM_DELLINK|0x11)\b/.test(x));
    assert.ok(unlinked >= 0, `no unlink of ${tap} in the trace`);
    assert.ok(deleted >= 0, "no RTM_DELLINK in the trace");
    assert.ok(
      unlinked < deleted,
      `${tap} was removed after the link (trace lines ${unlinked}, ${deleted})`,
    );
    assert.equal(await nodeAt(tap), undefined);
    assert.deepEqual(await names(lab, l.ctr), ["lo"]);

    // 2. Another pod's macvtap has the same name and ifindex in its namespace,
    // and /dev/tapN is its node (this pod's went: removed by hand, or a /dev
    // re-populated). This pod's DEL leaves it.
    assertOk(await cni(lab, l.host, { command: "ADD", ...env("pod2") }, conf));
    const index = String((await link(lab, l.ctr, "net1")).ifindex);
    await Deno.remove(`/dev/tap${index}`);
    const ctr2 = await lab.netns("ctr2");
    const wire = await lab.netns("wire");
    await lab.veth(ctr2, "up2", wire, "up2p");
    await lab.macvtap(ctr2, "up2", "net1", { index });
    const theirs = await nodeAt(`/dev/tap${index}`);
    assert.ok(theirs !== undefined, "their node");
    assertOk(await cni(lab, l.host, { command: "DEL", ...env("pod2") }, conf));
    assert.deepEqual(await names(lab, l.ctr), ["lo"], "this pod's link is gone");
    assert.equal(await nodeAt(`/dev/tap${index}`), theirs, "their node stays");
    assert.deepEqual(await names(lab, ctr2), ["lo", "net1", "up2"]);

    // 3. A DEL killed between its rename and the node's removal (strace
    // kills it at the unlink of /dev/tapN, which does not happen): the next
    // DEL finds the link by the marker it was given with its one-time name,
    // also for a record of before markers (no linkAlias).
    for (const legacy of [false, true]) {
      const pod = legacy ? "pod3b" : "pod3";
      assertOk(await cni(lab, l.host, { command: "ADD", ...env(pod) }, conf));
      if (legacy) await dropLinkAlias(stateDir, pod);
      const { ifindex: index3 } = await link(lab, l.ctr, "net1");
      const tap3 = `/dev/tap${index3}`;
      const killed = await cni(lab, l.host, { command: "DEL", ...env(pod) }, conf, PLUGIN, {
        wrap: [
          "strace",
          "-f",
          "-qq",
          "-P",
          tap3,
          "-e",
          "trace=unlink,unlinkat",
          "-e",
          "inject=unlink,unlinkat:error=EPERM:signal=KILL",
          "-o",
          "/dev/null",
        ],
      });
      assert.notEqual(killed.code, 0, `${pod}: the DEL was killed: ${describe(killed)}`);
      const all = await lab.ipJson<{ ifname: string; ifindex: number; ifalias?: string }[]>(
        l.ctr,
        "link",
        "show",
      );
      const left = all.find((x) => x.ifindex === index3);
      assert.match(left?.ifname ?? "", /^mvd[0-9a-f]{12}$/, `${pod}: renamed, not deleted`);
      assert.equal(left?.ifalias, linkMarker("vmplain", pod, "net1"), `${pod}: with the marker`);
      assert.ok(await nodeAt(tap3) !== undefined, `${pod}: the node is still there`);
      assertOk(await cni(lab, l.host, { command: "DEL", ...env(pod) }, conf));
      assert.deepEqual(await names(lab, l.ctr), ["lo"], `${pod}: the next DEL finished it`);
      assert.equal(await nodeAt(tap3), undefined, `${pod}: and removed the node`);
    }

    // 4. Two DELs (or a DEL and a GC) of one attachment at once. The first
    // is held after its rename (strace delays its second look at /dev/tapN).
    const held = (tap: string) =>
      cni(lab, l.host, { command: "DEL", ...env("pod4") }, conf, PLUGIN, {
        wrap: [
          "strace",
          "-f",
          "-qq",
          "-P",
          tap,
          "-e",
          "trace=statx,newfstatat,lstat,stat",
          "-e",
          "inject=statx,newfstatat,lstat,stat:delay_enter=4000000:when=2",
          "-o",
          "/dev/null",
        ],
      });
    const renamed = async (index: number) => {
      let name = "";
      await waitFor("the held DEL's rename", async () => {
        const all = await lab.ipJson<{ ifname: string; ifindex: number }[]>(l.ctr, "link", "show");
        name = all.find((x) => x.ifindex === index && x.ifname.startsWith("mvd"))?.ifname ?? "";
        return name !== "";
      }, 30_000);
      return name;
    };
    // (a) The other one renames the link meanwhile (as a GC that looked it
    // up under its name before the rename would): the held DEL leaves the
    // node and the link to it, and succeeds.
    assertOk(await cni(lab, l.host, { command: "ADD", ...env("pod4") }, conf));
    const { ifindex: index4 } = await link(lab, l.ctr, "net1");
    const tap4 = `/dev/tap${index4}`;
    const first = held(tap4);
    const marker = linkMarker("vmplain", "pod4", "net1");
    await lab.ip(l.ctr, "link", "set", await renamed(index4), "name", "mvdfeedfeedfeed");
    assertOk(await first);
    assert.deepEqual(await names(lab, l.ctr), ["lo", "mvdfeedfeedfeed"], "the link left to it");
    assert.ok(await nodeAt(tap4) !== undefined, "and its node");
    await lab.ip(l.ctr, "link", "del", "mvdfeedfeedfeed");
    // (b) The other one is a DEL that starts while the first is held: it finds
    // the link by its marker, removes node and link; the first then succeeds too.
    assertOk(await cni(lab, l.host, { command: "ADD", ...env("pod4") }, conf));
    const { ifindex: index5 } = await link(lab, l.ctr, "net1");
    const tap5 = `/dev/tap${index5}`;
    const slow = held(tap5);
    const one = await renamed(index5);
    const [onLink] = await lab.ipJson<{ ifalias?: string }[]>(l.ctr, "link", "show", one);
    assert.equal(onLink?.ifalias, marker, "the marker came with the one-time name");
    assertOk(await cni(lab, l.host, { command: "DEL", ...env("pod4") }, conf));
    assertOk(await slow);
    assert.deepEqual(await names(lab, l.ctr), ["lo"]);
    assert.equal(await nodeAt(tap5), undefined);
  },
});

/** Remove `linkAlias` from `pod`'s record under `stateDir` (a record of before markers). */
async function dropLinkAlias(stateDir: string, pod: string): Promise<void> {
  const walk = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) out.push(...await walk(p));
      else if (e.isFile) out.push(p);
    }
    return out;
  };
  for (const file of await walk(stateDir)) {
    const text = await Deno.readTextFile(file);
    if (!text.includes(`"${pod}"`) || !text.includes("linkAlias")) continue;
    const rec = JSON.parse(text);
    delete rec.linkAlias;
    await Deno.writeTextFile(file, JSON.stringify(rec));
    return;
  }
  throw new Error(`no record of ${pod} with a linkAlias under ${stateDir}`);
}

/** `st_rdev` of the char device at `path`, `undefined` when there is none. */
async function nodeAt(path: string): Promise<number | undefined> {
  try {
    const st = await Deno.lstat(path);
    return st.isCharDevice ? st.rdev! : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function names(lab: Lab, ns: string): Promise<string[]> {
  const links = await lab.ipJson<{ ifname: string }[]>(ns, "link", "show");
  return links.map((x) => x.ifname).sort();
}
