/**
 * `linkInContainer: true` (issue "drop-in", item 1), black-box through
 * `dist/macvtap` (the upstream macvlan suite's "master in the container"
 * cases, re-expressed; Debian 12's reference macvlan, plugins 1.1.1, predates
 * `linkInContainer` (plugins 1.4.0) and answers "Link not found", so it is
 * not run beside ours here): the
 * master is an interface of the container's namespace (a veth end moved
 * there after creation), the link is made there, addresses work, CHECK
 * holds, DEL removes only what the attachment made (the master stays), and
 * what does not apply is refused before anything is made.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  cni,
  type CniCall,
  describe,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
  VERSIONS,
} from "../lab/mod.ts";
import { compareVersions } from "../cni/mod.ts";

const ignore = labIgnore() || !pluginBuilt();

interface LinkJson {
  ifname: string;
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

function ok(r: CniCall, what: string): void {
  assert.equal(r.code, 0, `${what}: ${describe(r)}`);
}

/** The container's links by name: kind and the name of the link it sits on. */
async function ctrLinks(lab: Lab, ns: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const l of await lab.ipJson<LinkJson[]>(ns, "link", "show")) {
    if (l.ifname === "lo") continue;
    out[l.ifname] = `${l.linkinfo?.info_kind ?? "?"}${l.link ? ` on ${l.link}` : ""}`;
  }
  return out;
}

for (const version of VERSIONS) {
  const check = compareVersions(version, "0.4.0") >= 0;
  Deno.test({
    name: `linkInContainer: a macvtap on the container's own interfaces [${version}]`,
    ignore,
    async fn() {
      await using lab = await Lab.create({ prefix: "lic" });
      const host = await lab.netns("host");
      const peer = await lab.netns("peer");
      const ctr = await lab.netns("ctr");
      // The container's second NIC: a veth end in the container, its peer on the LAN.
      await lab.veth(ctr, "eth1", peer, "lan0p");
      await lab.ip(peer, "addr", "add", "10.77.0.1/24", "dev", "lan0p");
      // And a second NIC, moved there after creation (VLANs, which the upstream cases use,
      // need the 8021q module, which this machine's kernel lacks).
      await lab.veth(host, "eth2", peer, "lan1p");
      await lab.ip(host, "link", "set", "eth2", "netns", ctr);
      await lab.ip(ctr, "link", "set", "eth2", "up");
      const stateDir = await lab.tempDir("state");
      const plugins = [{ type: "macvtap", bin: PLUGIN, ip: "10.77.0.10/24", kind: "macvtap" }];
      for (const [i, p] of plugins.entries()) {
        for (const master of ["eth1", "eth2"]) {
          const ifname = `net${i}${master === "eth1" ? "a" : "b"}`;
          const conf = {
            cniVersion: version,
            name: `lic-${p.type}`,
            type: p.type,
            master,
            linkInContainer: true,
            stateDir,
            ipam: {
              type: "static",
              addresses: [{ address: master === "eth1" ? p.ip : `10.78.0.${10 + i}/24` }],
            },
          };
          const env = { containerId: `c-${p.type}`, netns: lab.path(ctr), ifname };
          const add = await cni(lab, host, { command: "ADD", ...env }, conf, p.bin);
          ok(add, `${p.type} ADD on ${master}`);
          assert.equal(
            (await ctrLinks(lab, ctr))[ifname],
            `${p.kind} on ${master}`,
            `${p.type}: ${ifname}`,
          );
          if (master === "eth1") {
            const ping = await lab.exec(ctr, [
              "busybox",
              "ping",
              "-c1",
              "-W2",
              "-I",
              ifname,
              "10.77.0.1",
            ]);
            assert.ok(ping.success, `${p.type}: the LAN answers through ${ifname}: ${ping.stdout}`);
          }
          if (check) {
            const prevResult = add.json;
            const c = await cni(
              lab,
              host,
              { command: "CHECK", ...env },
              { ...conf, prevResult },
              p.bin,
            );
            ok(c, `${p.type} CHECK`);
          }
          ok(await cni(lab, host, { command: "DEL", ...env }, conf, p.bin), `${p.type} DEL`);
          ok(await cni(lab, host, { command: "DEL", ...env }, conf, p.bin), `${p.type} DEL again`);
          assert.deepEqual(
            await ctrLinks(lab, ctr),
            { eth1: "veth", eth2: "veth" },
            `${p.type}: DEL left the masters and removed only ${ifname}`,
          );
        }
      }
      // Nothing on the host side.
      assert.deepEqual(
        (await lab.ipJson<LinkJson[]>(host, "link", "show")).map((l) => l.ifname),
        ["lo"],
      );
    },
  });
}

Deno.test({
  name:
    "linkInContainer: a master missing in the container, with deviceID or hostrouteif: refused, nothing made",
  ignore,
  async fn() {
    await using lab = await Lab.create({ prefix: "lic" });
    const l = await lab.simple();
    const stateDir = await lab.tempDir("state");
    const base = {
      cniVersion: "1.0.0",
      name: "lic",
      type: "macvtap",
      linkInContainer: true,
      stateDir,
    };
    const env = { command: "ADD", containerId: "c1", netns: l.ctrPath, ifname: "net1" };
    // lab0 exists on the host, not in the container.
    const missing = await cni(lab, l.host, env, { ...base, master: l.master });
    assert.equal(missing.json?.code, 7, describe(missing));
    assert.match(String(missing.json?.msg), /master: interface "lab0" not found/);
    for (const extra of [{ deviceID: "lan-1" }, { master: l.master, hostrouteif: "mvh0" }]) {
      const r = await cni(lab, l.host, env, { ...base, ...extra });
      assert.equal(r.json?.code, 7, describe(r));
      assert.match(String(r.json?.msg), /linkInContainer/);
    }
    assert.deepEqual((await lab.ipJson<LinkJson[]>(l.ctr, "link", "show")).map((x) => x.ifname), [
      "lo",
    ]);
    assert.deepEqual(
      (await lab.ipJson<LinkJson[]>(l.host, "link", "show")).map((x) => x.ifname),
      ["lo", "lab0"],
    );
  },
});
