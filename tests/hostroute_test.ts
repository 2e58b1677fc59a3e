/**
 * Black-box acceptance tests of `hostrouteif` (issue #4, seed 002) through
 * `dist/macvtap`: a "host" namespace with 192.168.10.22/24 + fd10::22/64 on
 * its uplink `eth0`, tasks on the macvtap LAN 192.168.122.0/24 + fd22::/64
 * over the master `eth1` (no address), `hostrouteif: "macvtap1"`, and the
 * IPAM routes back to the host's own address. Real host-local, static and
 * dhcp (dnsmasq + the reference daemon; IPv4 only: dnsmasq serves no DHCPv6
 * here and the reference dhcp IPAM is IPv4-only). Kernel state is read back
 * with `ip -j`; reachability is checked with `busybox ping`.
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import {
  cni,
  CNI_BIN,
  type CniCall,
  describe,
  Lab,
  labIgnore,
  runOk,
  type Seed002,
} from "../lab/mod.ts";
import { DHCP_PLUGIN, DhcpLab } from "./_dhcp.ts";
import {
  addrOf,
  assertBuilt,
  assertHostIf,
  assertNoPing,
  assertOk,
  assertPing,
  assertTaskRoutes,
  eventually,
  expectedHostRoutes,
  HOST_ROUTES,
  HOST_V4,
  HOST_V6,
  hostDst,
  HOSTIF,
  hostIfRoutes,
  hostLocalIpam,
  hostrouteConf,
  type Json,
  labTest,
  leaseFiles,
  METRIC,
  otherRoutes,
  ownHostRoutes,
  recordFiles,
  recordPath,
  resultIps,
  taskAddrs,
} from "./_hostroute_lab.ts";

const ignore = labIgnore([`${CNI_BIN}/static`, "busybox"]);
const ignoreDhcp = labIgnore(["dnsmasq", DHCP_PLUGIN, "busybox"]);

/** The versions every scenario runs for. */
const HR_VERSIONS = ["1.0.0", "0.4.0"] as const;

/** A task: its container id, namespace and, after ADD, its config and result. */
interface Task {
  id: string;
  ns: string;
  path: string;
  conf: Json;
  result?: Json;
}

/** Seed 002 plus `extra` more task namespaces (`ctr2`, `ctr3`, …). */
async function seedLab(lab: Lab, tasks = 2): Promise<{ s: Seed002; nss: [string, string][] }> {
  const s = await lab.seed002();
  const nss: [string, string][] = [[s.ctr, s.ctrPath]];
  for (let i = 2; i <= tasks; i++) {
    const ns = await lab.netns(`ctr${i}`);
    nss.push([ns, lab.path(ns)]);
  }
  return { s, nss };
}

function env(t: Task) {
  return { containerId: t.id, netns: t.path, ifname: "eth0" };
}

function add(lab: Lab, s: Seed002, t: Task): Promise<CniCall> {
  return cni(lab, s.host, { command: "ADD", ...env(t) }, t.conf);
}

function withPrev(t: Task): Json {
  return { ...t.conf, prevResult: t.result };
}

/** What a {@linkcode hostrouteTest} hands its body. */
interface HostrouteFixture {
  lab: Lab;
  s: Seed002;
  stateDir: string;
  dataDir: string;
  /** One hostrouteif config with host-local, for every task. */
  conf: Json;
  /** `task1`… in `ctr`, `ctr2`, … (not added yet). */
  tasks: Task[];
}

/**
 * A test on a fresh seed 002 lab with `n` task namespaces and a hostrouteif
 * config of `version` with host-local for all of them.
 */
function hostrouteTest(
  name: string,
  version: string,
  n: number,
  fn: (f: HostrouteFixture) => Promise<void>,
): void {
  labTest(name, ignore, async (lab) => {
    const { s, nss } = await seedLab(lab, n);
    const stateDir = await lab.tempDir("state");
    const dataDir = await lab.tempDir("ipam");
    const conf = hostrouteConf(version, stateDir, hostLocalIpam(dataDir));
    const tasks: Task[] = nss.map(([ns, path], i) => ({ id: `task${i + 1}`, ns, path, conf }));
    await fn({ lab, s, stateDir, dataDir, conf, tasks });
  });
}

/** How the tasks get their addresses in one lifecycle scenario. */
type Variant =
  | "host-local"
  | "static, addresses in the config"
  | "static, args.cni.ips"
  | "static, runtimeConfig.ips"
  | "dhcp, IPv4 only";

const VARIANTS: readonly Variant[] = [
  "host-local",
  "static, addresses in the config",
  "static, args.cni.ips",
  "static, runtimeConfig.ips",
  "dhcp, IPv4 only",
];

function staticIps(n: number): string[] {
  return [`192.168.122.${176 + n}/24`, `fd22::${176 + n}/64`];
}

for (const version of HR_VERSIONS) {
  for (const variant of VARIANTS) {
    const dhcp = variant.startsWith("dhcp");
    Deno.test({
      name: `hostrouteif: host ↔ task ping works and stops after DEL, ${variant} [${version}]`,
      ignore: dhcp ? ignoreDhcp : ignore,
      async fn() {
        assertBuilt();
        await using lab = await Lab.create();
        const { s, nss } = await seedLab(lab, 2);
        const stateDir = await lab.tempDir("state");
        const dataDir = await lab.tempDir("ipam");
        const server = dhcp
          ? await DhcpLab.start(lab, {
            serverNs: s.lan,
            serverIf: s.lanIf,
            pluginNs: s.host,
            range: ["192.168.122.100", "192.168.122.150"],
            // RFC 3442 on-link route to the host's own address, as ipam.routes does elsewhere.
            dnsmasqArgs: [`--dhcp-option-force=121,${HOST_V4}/32,0.0.0.0`],
          })
          : undefined;
        const v6 = !dhcp;

        const tasks: Task[] = nss.map(([ns, path], i) => {
          const n = i + 1;
          let ipam: Json;
          let extra: Json = {};
          switch (variant) {
            case "host-local":
              ipam = hostLocalIpam(dataDir);
              break;
            case "static, addresses in the config":
              ipam = {
                type: "static",
                addresses: staticIps(n).map((address) => ({ address })),
                routes: HOST_ROUTES,
              };
              break;
            case "static, args.cni.ips":
              ipam = { type: "static", routes: HOST_ROUTES };
              extra = { args: { cni: { ips: staticIps(n) } } };
              break;
            case "static, runtimeConfig.ips":
              ipam = { type: "static", routes: HOST_ROUTES };
              extra = { runtimeConfig: { ips: staticIps(n) } };
              break;
            case "dhcp, IPv4 only":
              ipam = server!.ipamConfig();
              break;
          }
          return { id: `task${n}`, ns, path, conf: hostrouteConf(version, stateDir, ipam, extra) };
        });

        const before = await otherRoutes(lab, s.host);
        assertEquals(await ownHostRoutes(lab, s.host), [], "no host routes of ours before ADD");

        for (const [i, t] of tasks.entries()) {
          const r = await add(lab, s, t);
          assertOk(r, `ADD ${t.id}`);
          t.result = r.json!;
          assertEquals(t.result.cniVersion, version);
          const ips = resultIps(t.result);
          if (variant.startsWith("static")) {
            assertEquals(ips, staticIps(i + 1), `${t.id} got the static addresses`);
          } else if (dhcp) {
            assertEquals(ips.length, 1, `${t.id}: one DHCP address: ${JSON.stringify(ips)}`);
            assertMatch(ips[0]!, /^192\.168\.122\.(1[0-4]\d|150)\/24$/);
          } else {
            assertEquals(ips.length, 2, `${t.id}: one v4 and one v6 address: ${ips}`);
            assertMatch(ips[0]!, /^192\.168\.122\.17\d\/24$/);
            assertMatch(ips[1]!, /^fd22::17\d\/64$/);
          }
        }
        const all = tasks.flatMap((t) => resultIps(t.result));
        assertEquals(new Set(all).size, all.length, `distinct addresses: ${all}`);

        // Kernel state: hostrouteif, the host routes, the tasks' addresses and routes.
        const hostLl = await assertHostIf(lab, s.host);
        assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes(all));
        const routed = await hostIfRoutes(lab, s.host);
        assertEquals(routed.length, all.length, `only our host routes use ${HOSTIF}: ${routed}`);
        for (const line of routed) {
          const r = JSON.parse(line) as Json;
          assertEquals(r.protocol, "249", line);
          assertEquals(r.metric, METRIC, line);
          if (!String(r.dst).includes(":")) assertEquals(r.scope, "link", line);
          assertEquals(r.gateway, undefined, line);
        }
        assertEquals(await otherRoutes(lab, s.host), before, "no other host route changed");
        for (const t of tasks) {
          assertEquals(await taskAddrs(lab, t.ns), [...resultIps(t.result)].sort(), t.id);
          await assertTaskRoutes(lab, t.ns, v6 ? hostLl : undefined);
        }
        assertEquals((await recordFiles(stateDir)).length, 2, "one record per attachment");
        if (variant === "host-local") {
          assertEquals(
            await leaseFiles(dataDir),
            all.map(addrOf).sort(),
            "host-local holds every address",
          );
        }
        if (server) {
          const leased = (await server.leases()).map((l) => l.ip).sort();
          assertEquals(leased, all.map(addrOf).sort(), "dnsmasq leased every address");
        }

        // Reachability: host → task, task → host, task ↔ task, both families.
        const [t1, t2] = tasks as [Task, Task];
        for (const t of tasks) {
          for (const ip of resultIps(t.result)) {
            await assertPing(lab, s.host, addrOf(ip), `host → ${t.id}`);
          }
          await assertPing(lab, t.ns, HOST_V4, `${t.id} → host (IPv4)`);
          if (v6) await assertPing(lab, t.ns, HOST_V6, `${t.id} → host (IPv6)`);
        }
        for (const ip of resultIps(t2.result)) await assertPing(lab, t1.ns, addrOf(ip), "1 → 2");
        for (const ip of resultIps(t1.result)) await assertPing(lab, t2.ns, addrOf(ip), "2 → 1");

        // CHECK passes, and fails clearly once a host route is deleted by hand.
        for (const t of tasks) {
          const check = await cni(lab, s.host, { command: "CHECK", ...env(t) }, withPrev(t));
          assertOk(check, `CHECK ${t.id}`);
          assertEquals(check.stdout, "");
        }
        const lost = hostDst(resultIps(t1.result)[0]!);
        await lab.ip(s.host, "route", "del", lost, "dev", HOSTIF, "metric", String(METRIC));
        const bad = await cni(lab, s.host, { command: "CHECK", ...env(t1) }, withPrev(t1));
        assert(bad.code !== 0, `CHECK without the host route ${lost} must fail: ${describe(bad)}`);
        assertEquals(typeof bad.json?.code, "number", describe(bad));
        assertMatch(
          String(bad.json?.msg),
          new RegExp(`host route ${lost.replaceAll(".", "\\.")} dev ${HOSTIF} .*missing`),
        );
        const other = await cni(lab, s.host, { command: "CHECK", ...env(t2) }, withPrev(t2));
        assertOk(other, `CHECK ${t2.id} is unaffected`);

        // DEL: pings stop, nothing is left on the host but macvtap1.
        for (const t of tasks) {
          const del = await cni(lab, s.host, { command: "DEL", ...env(t) }, withPrev(t));
          assertOk(del, `DEL ${t.id}`);
          assertEquals(await lab.ipJson(t.ns, "link", "show", "type", "macvtap"), [], t.id);
        }
        for (const ip of all) await assertNoPing(lab, s.host, addrOf(ip), "host → deleted task");
        assertEquals(await ownHostRoutes(lab, s.host), [], "no proto 249 route after DEL");
        assertEquals(await hostIfRoutes(lab, s.host), [], `no route via ${HOSTIF} after DEL`);
        assertEquals(await otherRoutes(lab, s.host), before, "host routing table as before");
        assertEquals(await recordFiles(stateDir), [], "no attachment record after DEL");
        assertEquals(await leaseFiles(dataDir), [], "no host-local allocation after DEL");
        if (server) {
          assert(
            await eventually(async () => (await server.leases()).length === 0),
            `dnsmasq leases after DEL (DHCPRELEASE never arrived): ${
              JSON.stringify(await server.leases())
            }\n${(await server.logs()).split("\n").filter((l) => /releas/i.test(l)).join("\n")}`,
          );
        }
        await assertHostIf(lab, s.host); // kept for other tasks
        for (const t of tasks) {
          const again = await cni(lab, s.host, { command: "DEL", ...env(t) }, withPrev(t));
          assertOk(again, `second DEL ${t.id}`);
        }
      },
    });
  }

  hostrouteTest(
    `hostrouteif: DEL after the task namespace is gone removes the host routes from the record and releases the lease, host-local [${version}]`,
    version,
    2,
    async ({ lab, s, stateDir, dataDir, conf, tasks }) => {
      for (const t of tasks) {
        const r = await add(lab, s, t);
        assertOk(r, `ADD ${t.id}`);
        t.result = r.json!;
      }
      const [t1, t2] = tasks as [Task, Task];
      const ips1 = resultIps(t1.result);
      const ips2 = resultIps(t2.result);

      await runOk(["ip", "netns", "del", t1.ns]);
      // The kernel keeps routes via macvtap1 when the task's namespace goes.
      assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes([...ips1, ...ips2]));

      // No prevResult: the routes can only come from the record.
      const del = await cni(lab, s.host, { command: "DEL", ...env(t1) }, conf);
      assertOk(del, "DEL with the namespace gone");
      assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes(ips2));
      assertEquals(await leaseFiles(dataDir), ips2.map(addrOf).sort(), "task1's lease released");
      assertEquals(await recordFiles(stateDir), ["task2@eth0"]);
      await assertPing(lab, s.host, addrOf(ips2[0]!), "task2 still reachable");

      const again = await cni(lab, s.host, { command: "DEL", ...env(t1), netns: "" }, conf);
      assertOk(again, "DEL again with an empty CNI_NETNS");
      const del2 = await cni(lab, s.host, { command: "DEL", ...env(t2) }, withPrev(t2));
      assertOk(del2, "DEL task2");
      assertEquals(await ownHostRoutes(lab, s.host), []);
      assertEquals(await leaseFiles(dataDir), []);
      assertEquals(await recordFiles(stateDir), []);
      await assertHostIf(lab, s.host);
    },
  );

  hostrouteTest(
    `hostrouteif: DEL with a prevResult but without a record removes the unclaimed host routes, not the link, host-local [${version}]`,
    version,
    1,
    async ({ lab, s, stateDir, dataDir, tasks }) => {
      const t = tasks[0]!;
      const { ns } = t;
      const r = await add(lab, s, t);
      assertOk(r, "ADD");
      t.result = r.json!;
      const ips = resultIps(t.result);
      assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes(ips));

      await Deno.remove(recordPath(stateDir, t.id));
      const del = await cni(lab, s.host, { command: "DEL", ...env(t) }, withPrev(t));
      assertOk(del, "DEL without a record");
      assertEquals(await ownHostRoutes(lab, s.host), [], "host routes derived from prevResult");
      assertEquals(await leaseFiles(dataDir), []);
      assertEquals(await recordFiles(stateDir), []);
      // Without its record nothing proves the link is this network's (another
      // network's ADD may have made an eth0 there first): it stays, and goes
      // with the namespace.
      assertEquals((await lab.ipJson(ns, "link", "show", "type", "macvtap")).length, 1);
      for (const ip of ips) await assertNoPing(lab, s.host, addrOf(ip), "after DEL");
      await assertHostIf(lab, s.host);
    },
  );

  hostrouteTest(
    `hostrouteif: an existing ${HOSTIF} on another master or of another kind fails ADD with code 7 and leaves nothing [${version}]`,
    version,
    1,
    async ({ lab, s, stateDir, dataDir, tasks }) => {
      const t = tasks[0]!;
      const { ns } = t;
      await lab.ip(s.host, "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p");
      await lab.ip(s.host, "link", "set", "eth2", "up");

      const cases: [string, string[]][] = [
        ["a macvtap on eth2", ["link", "add", "link", "eth2", "name", HOSTIF, "type", "macvtap"]],
        ["a bridge", ["link", "add", HOSTIF, "type", "bridge"]],
      ];
      for (const [what, cmd] of cases) {
        await lab.ip(s.host, ...cmd);
        const before = await otherRoutes(lab, s.host);
        const r = await add(lab, s, t);
        assertEquals(r.code, 1, `ADD with ${HOSTIF} = ${what} must fail: ${describe(r)}`);
        assertEquals(r.json?.code, 7, describe(r));
        assertMatch(String(r.json?.msg), new RegExp(`hostrouteif "${HOSTIF}"`));
        assertEquals(await lab.ipJson(ns, "link", "show", "type", "macvtap"), [], what);
        assertEquals(
          (await lab.ipJson<Json[]>(ns, "link", "show")).map((l) => l.ifname),
          ["lo"],
          `${what}: nothing left in the task namespace`,
        );
        assertEquals(await leaseFiles(dataDir), [], `${what}: allocation released`);
        assertEquals(await recordFiles(stateDir), [], `${what}: no record`);
        assertEquals(await ownHostRoutes(lab, s.host), [], `${what}: no host route`);
        assertEquals(await otherRoutes(lab, s.host), before, what);
        const [l] = await lab.ipJson<Json[]>(s.host, "link", "show", HOSTIF);
        if (what.includes("eth2")) assertEquals(l?.link, "eth2", `${HOSTIF} left on eth2`);
        else assertEquals((l?.linkinfo as Json)?.info_kind, "bridge", `${HOSTIF} left as is`);
        await lab.ip(s.host, "link", "del", HOSTIF);
      }
    },
  );
}

hostrouteTest(
  `hostrouteif: concurrent ADDs creating ${HOSTIF} at once all succeed, host-local [1.0.0]`,
  "1.0.0",
  4,
  async ({ lab, s, stateDir, dataDir, tasks }) => {
    for (let round = 1; round <= 3; round++) {
      assertEquals(await lab.ipJson(s.host, "link", "show", "type", "macvtap"), []);
      const adds = await Promise.all(tasks.map((t) => add(lab, s, t)));
      for (const [i, r] of adds.entries()) {
        assertOk(r, `round ${round}: concurrent ADD ${tasks[i]!.id}`);
        tasks[i]!.result = r.json!;
      }
      await assertHostIf(lab, s.host);
      const macvtaps = await lab.ipJson<Json[]>(s.host, "link", "show", "type", "macvtap");
      assertEquals(macvtaps.map((l) => l.ifname), [HOSTIF], `round ${round}: one ${HOSTIF}`);
      const all = tasks.flatMap((t) => resultIps(t.result));
      assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes(all));
      for (const t of tasks) {
        await assertPing(lab, s.host, addrOf(resultIps(t.result)[0]!), `round ${round}: ${t.id}`);
        await assertPing(lab, t.ns, HOST_V6, `round ${round}: ${t.id} → host (IPv6)`);
      }
      const dels = await Promise.all(
        tasks.map((t) => cni(lab, s.host, { command: "DEL", ...env(t) }, withPrev(t))),
      );
      for (const r of dels) assertOk(r, `round ${round}: DEL`);
      assertEquals(await ownHostRoutes(lab, s.host), []);
      assertEquals(await leaseFiles(dataDir), []);
      assertEquals(await recordFiles(stateDir), []);
      await lab.ip(s.host, "link", "del", HOSTIF);
    }
  },
);
