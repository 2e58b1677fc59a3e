/**
 * Ownership marks (issue 10, after the adversarial review): what the plugin
 * touches on the host and in pods must carry proof that it is this
 * attachment's, not just the right name.
 *
 * - The container link carries the attachment's marker (`IFLA_IFALIAS`);
 *   DEL leaves a link of that name without it alone, and a DEL of another
 *   network (no record) never deletes the first network's link.
 * - A hostrouteif the plugin did not make is used as it is: never brought up
 *   or tuned (a down one is refused).
 * - `deviceID` never imports a macvtap the host uses (up, or carrying routes).
 *
 * Black-box through `dist/macvtap`, in a seed-002 lab.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { describe, freeTapIndex, labIgnore } from "../lab/mod.ts";
import { HOSTIF } from "./_hostroute_lab.ts";
import { assertCniError, linkNames } from "./_owner.ts";
import { type TenantFixture, tenantOf, tenantTest } from "./_tenants.ts";

const ignore = labIgnore(["busybox"]);

/** A test with one IPv4-only host-local tenant ("tasks" unless named) on a fresh lab. */
function marksTest(
  name: string,
  network: string,
  fn: (f: TenantFixture) => Promise<void>,
): void {
  tenantTest(name, { ignore, spec: { name: network, v6: null } }, fn);
}

interface LinkJson {
  ifname: string;
  ifalias?: string;
  flags: string[];
}

marksTest(
  "marks: the container link carries the attachment's marker; DEL leaves a link without it",
  "tasks",
  async ({ lab, s, t }) => {
    const pod = await t.addOk("m1", s.ctr);
    const [link] = await lab.ipJson<LinkJson[]>(s.ctr, "link", "show", "eth0");
    assert(link?.ifalias?.startsWith("macvtap-cni/"), `alias ${link?.ifalias}`);
    // Someone in the pod (or another plugin) replaced the link's identity.
    await lab.ip(s.ctr, "link", "set", "eth0", "alias", "not-yours");
    const del = await t.del(pod);
    assertEquals(del.code, 0, describe(del));
    assert((await linkNames(lab, s.ctr)).includes("eth0"), "a link without the marker stays");
    assertEquals(t.leases(), [], "the lease is released");
  },
);

marksTest(
  "marks: DEL of another network with the same container and ifname (its ADD failed) keeps the first network's link",
  "netx",
  async ({ lab, s, roots, t }) => {
    const y = tenantOf({ lab, s, roots, dataDir: await lab.tempDir("ipamy") }, {
      name: "nety",
      v4: ["192.168.122.181", "192.168.122.189"],
      v6: null,
    });
    const pod = await t.addOk("p1", s.ctr);
    const failed = await y.add("p1", s.ctrPath);
    assertCniError(failed, undefined, "Y's ADD onto X's eth0");
    const del = await y.call("DEL", { containerId: "p1", netns: s.ctrPath, ifname: "eth0" });
    assertEquals(del.code, 0, describe(del));
    assert((await linkNames(lab, s.ctr)).includes("eth0"), "X's eth0 survives Y's DEL");
    const delX = await t.del(pod);
    assertEquals(delX.code, 0, describe(delX));
    assert(!(await linkNames(lab, s.ctr)).includes("eth0"), "X's DEL removes it");
  },
);

marksTest(
  "marks: a hostrouteif the plugin did not make is used as it is (never brought up or tuned); a down one is refused",
  "tasks",
  async ({ lab, s, t }) => {
    // An administrator's macvlan on the master, down.
    await lab.ip(s.host, "link", "add", "link", s.master, "name", HOSTIF, "type", "macvlan");
    const dad = `/proc/sys/net/ipv6/conf/${HOSTIF}/accept_dad`;
    const dadBefore = (await lab.exec(s.host, ["cat", dad])).stdout.trim();
    const refused = await t.add("h1", s.ctrPath);
    assertCniError(refused, 7, "a down hostrouteif the plugin did not make");
    let [link] = await lab.ipJson<LinkJson[]>(s.host, "link", "show", HOSTIF);
    assert(!link?.flags.includes("UP"), "still down");
    assertEquals(t.leases(), [], "nothing allocated");
    // Brought up by its owner: used, and left as it was.
    await lab.ip(s.host, "link", "set", HOSTIF, "up");
    const pod = await t.addOk("h1", s.ctr);
    assertEquals((await lab.exec(s.host, ["cat", dad])).stdout.trim(), dadBefore, "DAD untouched");
    [link] = await lab.ipJson<LinkJson[]>(s.host, "link", "show", HOSTIF);
    assertEquals(link?.ifalias, undefined, "not marked as ours");
    assertEquals((await t.del(pod)).code, 0);
  },
);

marksTest(
  "marks: deviceID never imports a macvtap the host uses (up, or a hostrouteif)",
  "tasks",
  async ({ lab, s, t }) => {
    // A VM's tap (up) and the hostrouteif the plugin made for another pod.
    await lab.macvtap(s.host, s.master, "vmtap0", { index: freeTapIndex() });
    await lab.ip(s.host, "link", "set", "vmtap0", "up");
    const other = await t.addOk("o1", s.ctr);
    const ctr2 = await lab.netns("ctr2");
    for (const id of ["vmtap0", HOSTIF]) {
      const r = await t.add("d1", lab.path(ctr2), "net1", t.conf({ deviceID: id, ipam: {} }));
      assertCniError(r, 7, `deviceID ${id}`);
      assert((await linkNames(lab, s.host)).includes(id), `${id} stays on the host`);
    }
    assertEquals(await linkNames(lab, ctr2), ["lo"]);
    assertEquals((await t.del(other)).code, 0);
  },
);
