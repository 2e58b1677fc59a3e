/**
 * A pod on two networks, as Multus builds it: `eth0` on network A and `eth1`
 * on network B, both macvtaps on one master, both from the same host-local
 * template (one subnet, default routes for IPv4 and IPv6). Both ADDs
 * succeed, CHECK passes for each, and DEL of either leaves the other's
 * routes working.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { cni, describe, PLUGIN, pluginBuilt, VERSIONS } from "./_cni.ts";
import { Lab, labIgnore } from "./_lab.ts";

const ignore = labIgnore(["/usr/lib/cni/host-local", "busybox"]);

type Json = Record<string, unknown>;
interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

/** The shared template; only the range within the subnet differs per network. */
function template(dataDir: string, first: number): Json {
  return {
    type: "host-local",
    ranges: [
      [{
        subnet: "10.99.0.0/24",
        rangeStart: `10.99.0.${first}`,
        rangeEnd: `10.99.0.${first + 9}`,
        gateway: "10.99.0.1",
      }],
      [{
        subnet: "fd99::/64",
        rangeStart: `fd99::${first}`,
        rangeEnd: `fd99::${first + 9}`,
        gateway: "fd99::1",
      }],
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
    dataDir,
  };
}

/** Devices the default route of `family` leaves through, per `ip -j route show default`. */
async function defaultDevs(lab: Lab, ns: string, family: "-4" | "-6"): Promise<string[]> {
  const routes = await lab.ipJson<RouteJson[]>(ns, family, "route", "show", "default");
  return routes.flatMap((r) => r.nexthops ? r.nexthops.map((h) => h.dev!) : [r.dev!]).sort();
}

for (const version of VERSIONS) {
  for (const delFirst of ["eth0", "eth1"] as const) {
    Deno.test({
      name:
        `two attachments with overlapping routes: both ADDs, DEL ${delFirst} keeps the other's [${version}]`,
      ignore,
      async fn() {
        assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
        await using lab = await Lab.create();
        const l = await lab.simple();
        await lab.ip(l.peer, "addr", "add", "fd99::1/64", "dev", l.peerIf, "nodad");
        const dataDir = await lab.tempDir("ipam");
        const stateDir = await lab.tempDir("state");
        const conf = (name: string, first: number): Json => ({
          cniVersion: version,
          name,
          type: "macvtap",
          master: l.master,
          stateDir,
          ipam: template(dataDir, first),
        });
        const nets = {
          eth0: conf("neta", 10),
          eth1: conf("netb", 100),
        };
        const env = (ifname: string) => ({ containerId: "pod1", netns: l.ctrPath, ifname });
        const results: Record<string, Json> = {};
        for (const [ifname, c] of Object.entries(nets)) {
          const add = await cni(lab, l.host, { command: "ADD", ...env(ifname) }, c);
          assertEquals(add.code, 0, `ADD ${ifname}: ${describe(add)}`);
          results[ifname] = add.json!;
          assertEquals(
            (add.json!.routes as Json[]).map((r) => [r.dst, r.gw]),
            [["0.0.0.0/0", "10.99.0.1"], ["::/0", "fd99::1"]],
          );
        }
        assertEquals(await defaultDevs(lab, l.ctr, "-4"), ["eth0", "eth1"]);
        assertEquals(await defaultDevs(lab, l.ctr, "-6"), ["eth0", "eth1"]);

        const check = async (ifname: string) => {
          if (version < "0.4.0") return;
          const c = await cni(lab, l.host, { command: "CHECK", ...env(ifname) }, {
            ...nets[ifname as keyof typeof nets],
            prevResult: results[ifname],
          });
          assertEquals(c.code, 0, `CHECK ${ifname}: ${describe(c)}`);
        };
        await check("eth0");
        await check("eth1");

        const keep = delFirst === "eth0" ? "eth1" : "eth0";
        const del = await cni(lab, l.host, { command: "DEL", ...env(delFirst) }, {
          ...nets[delFirst],
          ...(version >= "0.4.0" ? { prevResult: results[delFirst] } : {}),
        });
        assertEquals(del.code, 0, `DEL ${delFirst}: ${describe(del)}`);
        assertEquals(await defaultDevs(lab, l.ctr, "-4"), [keep]);
        assertEquals(await defaultDevs(lab, l.ctr, "-6"), [keep]);
        await check(keep);
        for (const target of ["10.99.0.1", "fd99::1"]) {
          const ping = await lab.exec(l.ctr, ["busybox", "ping", "-c1", "-W2", target]);
          assertEquals(
            ping.code,
            0,
            `ping ${target} through ${keep}: ${ping.stdout}${ping.stderr}`,
          );
        }

        const del2 = await cni(lab, l.host, { command: "DEL", ...env(keep) }, nets[keep]);
        assertEquals(del2.code, 0, `DEL ${keep}: ${describe(del2)}`);
        assertEquals(await defaultDevs(lab, l.ctr, "-4"), []);
      },
    });
  }
}
