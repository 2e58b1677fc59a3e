/**
 * Black-box tests of `dist/macvtap`: run as a separate process with the CNI
 * environment and stdin, inside namespace labs, for every supported
 * cniVersion and every mode; the kernel state is read back with iproute2.
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import {
  cni,
  describe,
  DEVICEID_FROM_CONFIG,
  freeTapIndex,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
  VERSIONS,
} from "../lab/mod.ts";

const ignore = labIgnore();

function assertBuilt(): void {
  assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
}

type Json = Record<string, unknown>;
interface LinkJson {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

async function leaseFiles(dir: string, network: string): Promise<string[]> {
  try {
    const out: string[] = [];
    for await (const e of Deno.readDir(`${dir}/${network}`)) {
      if (/^[0-9a-f.:]+$/.test(e.name) && e.name.includes(".") || e.name.includes(":")) {
        out.push(e.name);
      }
    }
    return out;
  } catch {
    return [];
  }
}

function ipamConf(dataDir: string): Json {
  return {
    type: "host-local",
    ranges: [[{
      subnet: "10.99.0.0/24",
      rangeStart: "10.99.0.10",
      rangeEnd: "10.99.0.200",
      gateway: "10.99.0.1",
    }]],
    routes: [{ dst: "0.0.0.0/0" }],
    dataDir,
  };
}

for (const version of VERSIONS) {
  Deno.test({
    name: `ADD → CHECK → DEL → DEL → DEL with netns gone, host-local [${version}]`,
    ignore,
    async fn() {
      assertBuilt();
      await using lab = await Lab.create();
      const l = await lab.simple();
      const dataDir = await lab.tempDir("ipam");
      const stateDir = await lab.tempDir("state");
      const config: Json = {
        cniVersion: version,
        name: "labnet",
        type: "macvtap",
        master: l.master,
        mode: "bridge",
        stateDir,
        ipam: ipamConf(dataDir),
      };
      const env = { containerId: "ctr1", netns: l.ctrPath, ifname: "eth0" };

      const add = await cni(lab, l.host, { command: "ADD", ...env }, config);
      assertEquals(add.code, 0, describe(add));
      const result = add.json!;
      assertEquals(result.cniVersion, version);
      let ips: Json[];
      let mac: unknown;
      if (version < "0.3.0") {
        // The 0.1.0/0.2.0 shape: ip4/ip6, no interfaces, dns always there.
        assertEquals(Object.keys(result), ["cniVersion", "ip4", "dns"]);
        const ip4 = result.ip4 as Json;
        assertEquals(ip4.gateway, "10.99.0.1");
        assertEquals(ip4.routes, [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }]);
        assertEquals(result.dns, {});
        ips = [{ address: ip4.ip, gateway: ip4.gateway }];
      } else {
        const ifaces = result.interfaces as Json[];
        assertEquals(ifaces.length, 1);
        assertEquals(ifaces[0]!.name, "eth0");
        assertEquals(ifaces[0]!.sandbox, l.ctrPath);
        assertEquals("mtu" in ifaces[0]!, version === "1.1.0");
        mac = ifaces[0]!.mac;
        ips = result.ips as Json[];
        assertEquals(ips.length, 1);
        assertEquals(ips[0]!.interface, 0);
        if (version < "1.0.0") {
          assertEquals(ips[0]!.version, "4");
          assertEquals(result.dns, {});
        } else {
          assertEquals("version" in ips[0]!, false);
        }
      }
      assertMatch(ips[0]!.address as string, /^10\.99\.0\.\d+\/24$/);
      assertEquals(ips[0]!.gateway, "10.99.0.1");

      const [link] = await lab.ipJson<LinkJson[]>(l.ctr, "link", "show", "eth0");
      if (!link) throw new Error("eth0 does not exist in the container");
      assertEquals(link.linkinfo?.info_kind, "macvtap");
      assertEquals(link.linkinfo?.info_data?.mode, "bridge");
      if (mac !== undefined) assertEquals(link.address, mac);
      assert(link.flags.includes("UP"));
      const addrs = await lab.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
        l.ctr,
        "addr",
        "show",
        "eth0",
      );
      assertEquals(
        addrs[0]!.addr_info.filter((a) => !a.local.startsWith("fe80")).map((a) =>
          `${a.local}/${a.prefixlen}`
        ),
        [ips[0]!.address],
      );
      const routes = await lab.ipJson<{ dst: string; gateway?: string }[]>(l.ctr, "route", "show");
      assert(
        routes.some((r) => r.dst === "default" && r.gateway === "10.99.0.1"),
        JSON.stringify(routes),
      );
      assertEquals((await leaseFiles(dataDir, "labnet")).length, 1);

      const check = await cni(lab, l.host, { command: "CHECK", ...env }, {
        ...config,
        prevResult: result,
      });
      if (version < "0.4.0") {
        assertEquals(check.code, 1, describe(check));
        assertEquals(check.json?.code, 1);
      } else {
        assertEquals(check.code, 0, describe(check));
        assertEquals(check.stdout, "");
      }

      const del = await cni(lab, l.host, { command: "DEL", ...env }, {
        ...config,
        prevResult: result,
      });
      assertEquals(del.code, 0, describe(del));
      assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
      assertEquals(await leaseFiles(dataDir, "labnet"), []);

      const again = await cni(lab, l.host, { command: "DEL", ...env }, config);
      assertEquals(again.code, 0, describe(again));

      const gone = await cni(lab, l.host, {
        command: "DEL",
        ...env,
        netns: "/run/netns/does-not-exist",
      }, config);
      assertEquals(gone.code, 0, describe(gone));
      const empty = await cni(lab, l.host, { command: "DEL", ...env, netns: "" }, config);
      assertEquals(empty.code, 0, describe(empty));
    },
  });
}

for (const mode of ["bridge", "private", "vepa", "passthru"] as const) {
  for (const version of ["0.3.1", "1.1.0"] as const) {
    Deno.test({
      name: `ADD creates a ${mode} macvtap without IPAM, DEL removes it [${version}]`,
      ignore,
      async fn() {
        assertBuilt();
        await using lab = await Lab.create();
        const l = await lab.simple();
        const stateDir = await lab.tempDir("state");
        const config = {
          cniVersion: version,
          name: "l2net",
          type: "macvtap",
          master: l.master,
          mode,
          mtu: 1400,
          mac: "02:11:22:33:44:55",
          promiscMode: true,
          stateDir,
        };
        const env = { containerId: "ctr-l2", netns: l.ctrPath, ifname: "net1" };
        const add = await cni(lab, l.host, { command: "ADD", ...env }, config);
        assertEquals(add.code, 0, describe(add));
        assertEquals((add.json!.interfaces as Json[])[0]!.mac, "02:11:22:33:44:55");
        assertEquals(add.json!.ips ?? [], []);
        const [link] = await lab.ipJson<(LinkJson & { promiscuity: number })[]>(
          l.ctr,
          "link",
          "show",
          "net1",
        );
        if (!link) throw new Error("net1 does not exist in the container");
        assertEquals(link.linkinfo?.info_data?.mode, mode);
        assertEquals(link.mtu, 1400);
        assertEquals(link.address, "02:11:22:33:44:55");
        assert(link.promiscuity > 0, "promiscuous");
        if (version !== "0.3.1") {
          const check = await cni(lab, l.host, { command: "CHECK", ...env }, {
            ...config,
            prevResult: add.json,
          });
          assertEquals(check.code, 0, describe(check));
        }
        const del = await cni(lab, l.host, { command: "DEL", ...env }, config);
        assertEquals(del.code, 0, describe(del));
        assertEquals(await lab.ipJson(l.ctr, "link", "show", "net1").catch(() => []), []);
      },
    });
  }
}

for (const version of ["0.3.1", "1.0.0"] as const) {
  Deno.test({
    name: `deviceID imports a host macvtap keeping its ifindex (seed 001 manual test) [${version}]`,
    ignore,
    async fn() {
      assertBuilt();
      await using lab = await Lab.create();
      const l = await lab.simple();
      const stateDir = await lab.tempDir("state");
      await lab.macvtap(l.host, l.master, "macvtap0", { index: freeTapIndex(), mode: "bridge" });
      const [before] = await lab.ipJson<{ ifindex: number }[]>(l.host, "link", "show", "macvtap0");
      const config = {
        cniVersion: version,
        name: "mynet",
        type: "macvtap",
        master: l.master,
        mode: "bridge",
        mtu: 1400,
        deviceID: "macvtap0",
        stateDir,
      };
      const env = {
        containerId: "ns1",
        netns: l.ctrPath,
        ifname: "eth2",
        args: "MAC=02:03:04:05:06:07",
      };
      // Seed 001 runs without kubelet: the node's operator lets configs name devices.
      const add = await cni(
        lab,
        l.host,
        { command: "ADD", ...env, extra: DEVICEID_FROM_CONFIG },
        config,
      );
      assertEquals(add.code, 0, describe(add));
      assertEquals(await lab.ipJson(l.host, "link", "show", "type", "macvtap"), []);
      const [link] = await lab.ipJson<(LinkJson & { ifindex: number })[]>(
        l.ctr,
        "link",
        "show",
        "eth2",
      );
      if (!link) throw new Error("eth2 is not in the container");
      assertEquals(link.ifindex, before!.ifindex);
      assertEquals([link.mtu, link.address], [1400, "02:03:04:05:06:07"]);
      assertEquals(link.linkinfo?.info_kind, "macvtap");
      assertEquals((add.json!.interfaces as Json[])[0]!.mac, "02:03:04:05:06:07");
      // The move re-created /dev/tapN as root:root; the plugin gives it to qemu (107:107).
      const tap = Deno.statSync(`/dev/tap${link.ifindex}`);
      assertEquals([tap.uid, tap.gid], [107, 107]);
      const del = await cni(lab, l.host, { command: "DEL", ...env }, config);
      assertEquals(del.code, 0, describe(del));
      assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
    },
  });
}

for (const version of VERSIONS) {
  Deno.test({
    name: `ADD result keeps on-link gw 0.0.0.0 and :: and names the gateway it chose [${version}]`,
    ignore,
    async fn() {
      assertBuilt();
      await using lab = await Lab.create();
      const l = await lab.simple();
      const dataDir = await lab.tempDir("ipam");
      const stateDir = await lab.tempDir("state");
      const config: Json = {
        cniVersion: version,
        name: "labnet",
        type: "macvtap",
        master: l.master,
        stateDir,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: "10.99.0.0/24", gateway: "10.99.0.1" }], [{ subnet: "fd99::/64" }]],
          routes: [
            { dst: "192.168.10.22/32", gw: "0.0.0.0" },
            { dst: "fd10::22/128", gw: "::" },
            { dst: "0.0.0.0/0" },
            { dst: "fd20::/64" },
          ],
          dataDir,
        },
      };
      const env = { containerId: "ctr1", netns: l.ctrPath, ifname: "eth0" };
      const add = await cni(lab, l.host, { command: "ADD", ...env }, config);
      assertEquals(add.code, 0, describe(add));
      if (version < "0.3.0") {
        // 0.1.0/0.2.0: each family's routes under its address.
        assertEquals((add.json!.ip4 as Json).routes, [
          { dst: "192.168.10.22/32", gw: "0.0.0.0" },
          { dst: "0.0.0.0/0", gw: "10.99.0.1" },
        ]);
        assertEquals((add.json!.ip6 as Json).routes, [
          { dst: "fd10::22/128", gw: "::" },
          { dst: "fd20::/64", gw: "fd99::1" },
        ]);
      } else {
        assertEquals(add.json!.routes, [
          { dst: "192.168.10.22/32", gw: "0.0.0.0" },
          { dst: "fd10::22/128", gw: "::" },
          // No gw from IPAM: the plugin chose the range's gateway (host-local
          // makes one up when the range has none) and says so.
          { dst: "0.0.0.0/0", gw: "10.99.0.1" },
          { dst: "fd20::/64", gw: "fd99::1" },
        ]);
      }
      const v4 = await lab.ipJson<{ dst: string; gateway?: string; scope?: string }[]>(
        l.ctr,
        "-4",
        "route",
        "show",
      );
      const onLink = v4.find((r) => r.dst === "192.168.10.22");
      assertEquals([onLink?.gateway, onLink?.scope], [undefined, "link"]);
      const v6 = await lab.ipJson<{ dst: string; gateway?: string }[]>(
        l.ctr,
        "-6",
        "route",
        "show",
      );
      assertEquals(
        v6.filter((r) => ["fd10::22", "fd20::/64"].includes(r.dst)).map((r) => r.gateway),
        [undefined, "fd99::1"],
      );
      if (version >= "0.4.0") {
        const check = await cni(lab, l.host, { command: "CHECK", ...env }, {
          ...config,
          prevResult: add.json,
        });
        assertEquals(check.code, 0, describe(check));
      }
      const del = await cni(lab, l.host, { command: "DEL", ...env }, config);
      assertEquals(del.code, 0, describe(del));
    },
  });
}

/**
 * A chain driven by hand as libcni drives it: ADD of ours (MTU 1500 in the
 * config), then a later plugin changes MTU, MAC and promiscuous mode as
 * tuning does and reports them in the final result; CHECK gets that final
 * result. It passes where the final result matches the link, and fails where
 * the final result (not our config) disagrees with the link. Also at 1.1.0,
 * where the result carries `mtu` (cnitool and Debian's tuning stop at 1.0.0).
 */
for (const version of ["0.4.0", "1.0.0", "1.1.0"] as const) {
  Deno.test({
    name:
      `CHECK follows the final prevResult of a chain (tuning-like MTU, MAC, promisc) [${version}]`,
    ignore,
    async fn() {
      assertBuilt();
      await using lab = await Lab.create();
      const l = await lab.simple();
      const stateDir = await lab.tempDir("state");
      const config: Json = {
        cniVersion: version,
        name: "labnet",
        type: "macvtap",
        master: l.master,
        mtu: 1500,
        stateDir,
      };
      const env = { containerId: "ctr1", netns: l.ctrPath, ifname: "eth0" };
      const add = await cni(lab, l.host, { command: "ADD", ...env }, config);
      assertEquals(add.code, 0, describe(add));
      const mac = "02:42:ac:11:00:2b";
      await lab.ip(l.ctr, "link", "set", "eth0", "mtu", "1400", "address", mac, "promisc", "on");
      const iface = (add.json!.interfaces as Json[])[0]!;
      const final = {
        ...add.json!,
        interfaces: [{ ...iface, mac, ...(version === "1.1.0" ? { mtu: 1400 } : {}) }],
      };
      const check = await cni(lab, l.host, { command: "CHECK", ...env }, {
        ...config,
        prevResult: final,
      });
      assertEquals(check.code, 0, describe(check));

      // What the final result says is what CHECK holds the link to.
      const stale = {
        ...final,
        interfaces: [{ ...iface, ...(version === "1.1.0" ? { mac, mtu: 1500 } : {}) }],
      };
      const bad = await cni(lab, l.host, { command: "CHECK", ...env }, {
        ...config,
        prevResult: stale,
      });
      assertEquals(bad.code !== 0, true, describe(bad));
      assertMatch(
        String(bad.json?.msg),
        version === "1.1.0" ? /MTU is 1400, prevResult says 1500/ : /MAC is .*prevResult says/,
      );
      const del = await cni(lab, l.host, { command: "DEL", ...env }, {
        ...config,
        prevResult: final,
      });
      assertEquals(del.code, 0, describe(del));
    },
  });
}

Deno.test({
  name: "DEL with CNI_ARGS the IPAM plugin rejects: link gone, IPAM's error, record kept [1.0.0]",
  ignore,
  async fn() {
    assertBuilt();
    await using lab = await Lab.create();
    const l = await lab.simple();
    const dataDir = await lab.tempDir("ipam");
    const stateDir = await lab.tempDir("state");
    const config: Json = {
      cniVersion: "1.0.0",
      name: "labnet",
      type: "macvtap",
      master: l.master,
      stateDir,
      ipam: ipamConf(dataDir),
    };
    const env = { containerId: "ctr1", netns: l.ctrPath, ifname: "eth0" };
    const add = await cni(lab, l.host, { command: "ADD", ...env }, config);
    assertEquals(add.code, 0, describe(add));
    // Our own part of DEL never reads CNI_ARGS; host-local refuses an unknown key.
    const del = await cni(lab, l.host, { command: "DEL", ...env, args: "FOO=bar" }, config);
    assertEquals(del.code, 1, describe(del));
    assertMatch(String(del.json?.msg), /unknown args/);
    const links = await lab.ipJson<{ ifname: string }[]>(l.ctr, "link", "show");
    assertEquals(links.map((x) => x.ifname), ["lo"], "the interface is gone all the same");
    assertEquals((await leaseFiles(dataDir, "labnet")).length, 1, "the lease is still held");
    const records = [...Deno.readDirSync(`${stateDir}/labnet`)].map((e) => e.name);
    assertEquals(records.length, 1, "the record stays for a later DEL or GC");
    const again = await cni(lab, l.host, {
      command: "DEL",
      ...env,
      args: "IgnoreUnknown=1;FOO=bar",
    }, config);
    assertEquals(again.code, 0, describe(again));
    assertEquals(await leaseFiles(dataDir, "labnet"), []);
  },
});
