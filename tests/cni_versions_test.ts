/**
 * Spec versions through `dist/macvtap`: 0.1.0 and 0.2.0 (the legacy
 * `ip4`/`ip6` result, ADD and DEL only), the version a config is used at
 * (`cniVersion`, whatever a `cniVersions` passed through says), and IPAM
 * delegation at the old versions (host-local, static, and a delegate that
 * answers in another version or with no address).
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { cni, CNI_BIN, cniHere, describe, Lab, labIgnore, pluginBuilt } from "../lab/mod.ts";
import { DHCP_PLUGIN, DhcpLab } from "./_dhcp.ts";

const ignore = labIgnore([`${CNI_BIN}/host-local`, `${CNI_BIN}/static`]);
const ignoreDhcp = labIgnore([DHCP_PLUGIN, "dnsmasq"]);
type Json = Record<string, unknown>;
const OLD = ["0.1.0", "0.2.0"] as const;

Deno.test({
  name: "0.1.0 and 0.2.0: VERSION lists them; CHECK, GC and STATUS ⇒ 1",
  ignore: !pluginBuilt(),
  async fn(t) {
    for (const v of OLD) {
      await t.step(`VERSION [${v}]`, async () => {
        const c = await cniHere({ command: "VERSION" }, { cniVersion: v });
        assertEquals(c.json, {
          cniVersion: v,
          supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        });
      });
      for (const command of ["CHECK", "GC", "STATUS"]) {
        await t.step(`${command} [${v}] ⇒ 1`, async () => {
          const c = await cniHere({ command, netns: "/run/netns/x" }, {
            cniVersion: v,
            name: "old",
            type: "macvtap",
            master: "lab0",
            ipam: { type: "host-local", subnet: "10.99.0.0/24" },
          });
          assert(c.code !== 0, describe(c));
          assertEquals(
            [c.json?.code, c.json?.msg, c.json?.cniVersion],
            [1, `config version does not allow ${command}`, v],
          );
        });
      }
    }
  },
});

Deno.test({
  name: "versions in a lab: legacy results, L2 refused before anything, selection, delegates",
  ignore,
  async fn(t) {
    await using lab = await Lab.create({ prefix: "vers" });
    const l = await lab.simple();
    const dataDir = await lab.tempDir("ipam");
    const stateDir = await lab.tempDir("state");
    const bin = await lab.tempDir("bin");
    const log = `${bin}/calls`;
    const env = { containerId: "ctrv", netns: l.ctrPath, ifname: "eth0" };
    const hostLocal = {
      type: "host-local",
      ranges: [[{ subnet: "10.99.0.0/24", gateway: "10.99.0.1" }], [{ subnet: "fd99::/64" }]],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "fd20::/64" }],
      dataDir,
    };
    const base = (extra: Json): Json => ({
      name: "vnet",
      type: "macvtap",
      master: l.master,
      stateDir,
      ...extra,
    });

    async function nothingLeft(): Promise<void> {
      assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
      const leases = [...Deno.readDirSync(dataDir)].flatMap((d) =>
        d.isDirectory
          ? [...Deno.readDirSync(`${dataDir}/${d.name}`)].filter((f) => /^[0-9a-f]/.test(f.name))
          : []
      );
      assertEquals(leases.map((f) => f.name), []);
      const records = [...Deno.readDirSync(stateDir)].flatMap((d) =>
        d.isDirectory ? [...Deno.readDirSync(`${stateDir}/${d.name}`)] : []
      );
      assertEquals(records.map((r) => r.name), []);
    }

    /** A fake IPAM plugin `name` in `bin`: prints `add` for ADD, logs every call. */
    async function fakeIpam(name: string, add: Json, versions: string[]): Promise<void> {
      await Deno.writeTextFile(
        `${bin}/${name}`,
        `#!/bin/sh
cat > /dev/null
echo "$CNI_COMMAND" >> ${log}
case "$CNI_COMMAND" in
ADD) printf '%s' '${JSON.stringify(add)}' ;;
VERSION) printf '%s' '${JSON.stringify({ cniVersion: "1.0.0", supportedVersions: versions })}' ;;
esac
exit 0
`,
        { mode: 0o755 },
      );
    }
    const calls = (): string[] => {
      try {
        const text = Deno.readTextFileSync(log).trim().split("\n");
        Deno.removeSync(log);
        return text;
      } catch {
        return [];
      }
    };

    for (const v of OLD) {
      await t.step(`host-local dual stack [${v}]: ip4 and ip6, routes by family`, async () => {
        const conf = base({ cniVersion: v, ipam: hostLocal });
        const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
        assertEquals(add.code, 0, describe(add));
        const r = add.json!;
        assertEquals(Object.keys(r), ["cniVersion", "ip4", "ip6", "dns"]);
        assertEquals(r.cniVersion, v);
        const ip4 = r.ip4 as Json, ip6 = r.ip6 as Json;
        assertMatch(String(ip4.ip), /^10\.99\.0\.\d+\/24$/);
        assertEquals([ip4.gateway, ip4.routes], ["10.99.0.1", [{
          dst: "0.0.0.0/0",
          gw: "10.99.0.1",
        }]]);
        assertMatch(String(ip6.ip), /^fd99::[0-9a-f:]+\/64$/);
        assertEquals(ip6.routes, [{ dst: "fd20::/64", gw: ip6.gateway }]);
        const addrs = await lab.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
          l.ctr,
          "addr",
          "show",
          "eth0",
        );
        const have = addrs[0]!.addr_info.filter((a) => !a.local.startsWith("fe80"))
          .map((a) => `${a.local}/${a.prefixlen}`).sort();
        assertEquals(have, [ip4.ip, ip6.ip].sort());
        // DEL at the old versions gets no prevResult (libcni passes none below 0.4.0).
        const del = await cni(lab, l.host, { command: "DEL", ...env }, conf);
        assertEquals(del.code, 0, describe(del));
        const again = await cni(lab, l.host, { command: "DEL", ...env }, conf);
        assertEquals(again.code, 0, describe(again));
        await nothingLeft();
      });

      await t.step(`static [${v}]: its address, gateway and routes`, async () => {
        const conf = base({
          cniVersion: v,
          ipam: {
            type: "static",
            addresses: [{ address: "10.99.0.77/24", gateway: "10.99.0.1" }],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        });
        const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
        assertEquals(add.code, 0, describe(add));
        assertEquals(add.json, {
          cniVersion: v,
          ip4: {
            ip: "10.99.0.77/24",
            gateway: "10.99.0.1",
            routes: [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }],
          },
          dns: {},
        });
        const del = await cni(lab, l.host, { command: "DEL", ...env }, conf);
        assertEquals(del.code, 0, describe(del));
        await nothingLeft();
      });

      await t.step(`L2 only [${v}] ⇒ 7 before anything is made; DEL succeeds`, async () => {
        for (const ipam of [undefined, {}]) {
          const conf = base({ cniVersion: v, ...(ipam ? { ipam } : {}) });
          const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
          assert(add.code !== 0, describe(add));
          assertEquals(add.json?.code, 7, describe(add));
          assertMatch(String(add.json?.msg), /cniVersion 0\.3\.0 or later/);
          await nothingLeft();
          const del = await cni(lab, l.host, { command: "DEL", ...env }, conf);
          assertEquals(del.code, 0, describe(del));
        }
      });

      await t.step(`IPAM without an address [${v}] ⇒ error, released, link gone`, async () => {
        await fakeIpam("noaddr", { cniVersion: v, dns: {} }, ["0.1.0", "0.2.0"]);
        const conf = base({ cniVersion: v, ipam: { type: "noaddr" } });
        const add = await cni(lab, l.host, {
          command: "ADD",
          ...env,
          path: `${bin}:${CNI_BIN}`,
        }, conf);
        // Refused at every version (plugin/add.ts); at 0.1.0/0.2.0 the result could not say it.
        assert(add.code !== 0, describe(add));
        assertMatch(String(add.json?.msg), /returned no IP address/);
        assertEquals(calls(), ["ADD", "DEL"], "the allocation was released");
        await nothingLeft();
      });

      await t.step(`IPAM answering in 1.0.0 [${v}]: converted down`, async () => {
        await fakeIpam("newer", {
          cniVersion: "1.0.0",
          ips: [{ address: "10.99.0.88/24", gateway: "10.99.0.1" }, { address: "fd99::88/64" }],
          routes: [{ dst: "198.51.100.0/24", gw: "10.99.0.254" }],
        }, ["0.1.0", "0.2.0", "1.0.0"]);
        const conf = base({ cniVersion: v, ipam: { type: "newer" } });
        const add = await cni(lab, l.host, {
          command: "ADD",
          ...env,
          path: `${bin}:${CNI_BIN}`,
        }, conf);
        assertEquals(add.code, 0, describe(add));
        assertEquals(add.json, {
          cniVersion: v,
          ip4: {
            ip: "10.99.0.88/24",
            gateway: "10.99.0.1",
            routes: [{ dst: "198.51.100.0/24", gw: "10.99.0.254" }],
          },
          ip6: { ip: "fd99::88/64" },
          dns: {},
        });
        const del = await cni(lab, l.host, {
          command: "DEL",
          ...env,
          path: `${bin}:${CNI_BIN}`,
        }, conf);
        assertEquals(del.code, 0, describe(del));
        assertEquals(calls(), ["ADD", "DEL"]);
        await nothingLeft();
      });
    }

    await t.step("no cniVersion: used as 0.1.0 (the Go config decoder's rule)", async () => {
      const conf = base({ ipam: hostLocal });
      const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
      assertEquals(add.code, 0, describe(add));
      assertEquals(add.json?.cniVersion, "0.1.0");
      assert(add.json?.ip4 && add.json?.ip6, add.stdout);
      const del = await cni(lab, l.host, { command: "DEL", ...env }, conf);
      assertEquals(del.code, 0, describe(del));
      await nothingLeft();
    });

    await t.step(
      'cniVersion "1.0.0" with cniVersions ["1.0.0","1.1.0"]: the result is 1.0.0',
      async () => {
        const conf = base({
          cniVersion: "1.0.0",
          cniVersions: ["1.0.0", "1.1.0"],
          ipam: hostLocal,
        });
        const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
        assertEquals(add.code, 0, describe(add));
        assertEquals(add.json?.cniVersion, "1.0.0");
        const iface = (add.json?.interfaces as Json[])[0]!;
        assertEquals("mtu" in iface, false, "no 1.1.0 field in a 1.0.0 result");
        // CHECK at 1.0.0 with that result; GC is 1.1.0's and refused.
        const check = await cni(lab, l.host, { command: "CHECK", ...env }, {
          ...conf,
          prevResult: add.json,
        });
        assertEquals(check.code, 0, describe(check));
        const gc = await cni(lab, l.host, { command: "GC", ...env }, conf);
        assertEquals([gc.json?.code, gc.json?.msg], [1, "config version does not allow GC"]);
        const del = await cni(lab, l.host, { command: "DEL", ...env }, {
          ...conf,
          prevResult: add.json,
        });
        assertEquals(del.code, 0, describe(del));
        await nothingLeft();
      },
    );
  },
});

Deno.test({
  name: "dhcp at 0.1.0 and 0.2.0: the lease in the ip4 shape, released on DEL",
  ignore: ignoreDhcp,
  async fn(t) {
    await using lab = await Lab.create({ prefix: "versdhcp" });
    const l = await lab.simple();
    const stateDir = await lab.tempDir("state");
    await using dhcp = await DhcpLab.start(lab, {
      serverNs: l.peer,
      serverIf: l.peerIf,
      pluginNs: l.host,
      range: ["10.99.0.100", "10.99.0.150"],
      dnsmasqArgs: ["--dhcp-option=option:router,10.99.0.1"],
    });
    for (const v of OLD) {
      await t.step(`[${v}]`, async () => {
        const conf: Json = {
          cniVersion: v,
          name: "vdhcp",
          type: "macvtap",
          master: l.master,
          stateDir,
          ipam: dhcp.ipamConfig(),
        };
        const env = {
          containerId: `dhcp${v.replaceAll(".", "")}`,
          netns: l.ctrPath,
          ifname: "eth0",
        };
        const add = await cni(lab, l.host, { command: "ADD", ...env }, conf);
        assertEquals(add.code, 0, describe(add));
        assertEquals(Object.keys(add.json!), ["cniVersion", "ip4", "dns"]);
        assertEquals(add.json!.cniVersion, v);
        const ip4 = add.json!.ip4 as Json;
        assertMatch(String(ip4.ip), /^10\.99\.0\.1[0-5]\d\/24$/);
        assertEquals(ip4.gateway, "10.99.0.1");
        assertEquals((await dhcp.leases()).map((x) => `${x.ip}/24`), [ip4.ip]);
        const del = await cni(lab, l.host, { command: "DEL", ...env }, conf);
        assertEquals(del.code, 0, describe(del));
        assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
        assertEquals(await dhcp.leases(), [], "DHCPRELEASE reached the server");
      });
    }
  },
});
