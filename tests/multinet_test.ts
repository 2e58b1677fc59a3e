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
import {
  cni,
  CNI_BIN,
  describe,
  DEVICEID_FROM_CONFIG,
  freeTapIndex,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
  VERSIONS,
} from "../lab/mod.ts";
import { deviceIfname } from "../internal/_ifname.ts";

const ignore = labIgnore([`${CNI_BIN}/static`, "busybox"]);

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
          // 0.1.0/0.2.0 results keep each family's routes under ip4/ip6.
          const routes = version < "0.3.0"
            ? [add.json!.ip4, add.json!.ip6].flatMap((f) => ((f as Json).routes as Json[]))
            : add.json!.routes as Json[];
          assertEquals(
            routes.map((r) => [r.dst, r.gw]),
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

/**
 * The plugin called exactly as Multus delegates a secondary network to it:
 * the NetworkAttachmentDefinition's config with `deviceID` injected (Multus
 * reads it from the kubelet checkpoint for the resource named in the NAD's
 * `k8s.v1.cni.cncf.io/resourceName` annotation; here the device is created
 * on the master under the device plugin's name, as Allocate does),
 * `runtimeConfig` with `mac` and `ips` for the capabilities the config
 * declares, `CNI_ARGS` with `IgnoreUnknown` and the K8S_* keys, ifname
 * `net1`; then DEL with the cached ADD result as prevResult, and DEL again.
 * The same without `deviceID` (plain master) too.
 */
for (const version of ["0.3.1", "1.0.0", "1.1.0"] as const) {
  for (const viaDevice of [true, false]) {
    Deno.test({
      name: `as Multus delegates: ${
        viaDevice ? "deviceID from the resource" : "plain master"
      }, runtimeConfig mac+ips, K8S_* CNI_ARGS, DEL with the cached result [${version}]`,
      ignore,
      async fn() {
        assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
        await using lab = await Lab.create();
        const l = await lab.simple();
        const stateDir = await lab.tempDir("state");
        const deviceId = `macvtap-lab0-${version.replaceAll(".", "")}`;
        let index: number | undefined;
        if (viaDevice) {
          const name = deviceIfname(deviceId);
          await lab.macvtap(l.host, l.master, name, { index: freeTapIndex() });
          index = (await lab.ipJson<{ ifindex: number }[]>(l.host, "link", "show", name))[0]!
            .ifindex;
        }
        const infraId = "9f3c2a1b".repeat(8);
        const args = [
          "IgnoreUnknown=true",
          "K8S_POD_NAMESPACE=default",
          "K8S_POD_NAME=vm-fedora-7d9c",
          `K8S_POD_INFRA_CONTAINER_ID=${infraId}`,
          "K8S_POD_UID=3d1f0c4e-8a2b-4c6d-9e0f-1a2b3c4d5e6f",
        ].join(";");
        const mac = "02:5a:00:00:00:07";
        const config: Json = {
          cniVersion: version,
          name: "macvtap-lan",
          type: "macvtap",
          ...(viaDevice ? { deviceID: deviceId } : { master: l.master }),
          mode: "bridge",
          stateDir,
          capabilities: { mac: true, ips: true },
          ipam: { type: "static" },
          runtimeConfig: { mac, ips: ["10.99.0.55/24"] },
        };
        const env = { containerId: infraId, netns: l.ctrPath, ifname: "net1", args };
        // No kubelet here to prove the device: the node's opt-in stands in for it
        // (tests/device_trust_test.ts proves through the kubelet stand-in).
        const add = await cni(
          lab,
          l.host,
          { command: "ADD", ...env, extra: DEVICEID_FROM_CONFIG },
          config,
        );
        assertEquals(add.code, 0, describe(add));
        const result = add.json!;
        const iface = (result.interfaces as Json[])[0]!;
        assertEquals([iface.name, iface.mac, iface.sandbox], ["net1", mac, l.ctrPath]);
        assertEquals(
          (result.ips as Json[]).map((ip) => [ip.address, ip.interface]),
          [["10.99.0.55/24", 0]],
        );
        const [link] = await lab.ipJson<{ ifindex: number; address: string }[]>(
          l.ctr,
          "link",
          "show",
          "net1",
        );
        assertEquals(link?.address, mac);
        if (index !== undefined) {
          assertEquals(link?.ifindex, index, "the device keeps its ifindex (/dev/tapN)");
          const st = await Deno.stat(`/dev/tap${index}`).catch(() => undefined);
          if (st) assertEquals([st.uid, st.gid], [107, 107], "/dev/tapN is qemu's");
        }
        const ping = await lab.exec(l.ctr, ["busybox", "ping", "-c1", "-W2", "10.99.0.1"]);
        assertEquals(ping.code, 0, `ping the LAN from net1: ${ping.stdout}${ping.stderr}`);

        // Multus DEL: the same delegate config plus the cached result.
        const withPrev = version >= "0.4.0" ? { ...config, prevResult: result } : config;
        for (const what of ["DEL", "DEL again"]) {
          const del = await cni(lab, l.host, { command: "DEL", ...env }, withPrev);
          assertEquals(del.code, 0, `${what}: ${describe(del)}`);
        }
        const left = await lab.ipJson<{ ifname: string }[]>(l.ctr, "link", "show");
        assertEquals(left.map((x) => x.ifname), ["lo"], "net1 is gone from the pod");
      },
    });
  }
}
