/**
 * Black-box tests of STATUS and GC (CNI 1.1.0) through `dist/macvtap`, in
 * the seed 002 lab with host-local and `hostrouteif`: STATUS readiness and
 * code 50, GC releasing the IPAM allocations, host routes, links and
 * records of attachments that are no longer valid (`cni.dev/valid-attachments`,
 * the older `cni.dev/attachments`, or no list at all), and sweeping our
 * protocol-249 host routes that no record claims.
 */

import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { cni, type CniCall, describe, type Lab, labIgnore, type Seed002 } from "../lab/mod.ts";
import {
  addrOf,
  assertHostIf,
  assertOk,
  assertPing,
  BARE_ENV,
  expectedHostRoutes,
  HOSTIF,
  hostLocalIpam,
  hostrouteConf,
  type Json,
  labTest,
  leaseFiles,
  METRIC,
  ownHostRoutes,
  recordFiles,
  resultIps,
} from "./_hostroute_lab.ts";

const ignore = labIgnore(["busybox"]);
const VERSION = "1.1.0";

function status(lab: Lab, s: Seed002, conf: Json): Promise<CniCall> {
  return cni(lab, s.host, { command: "STATUS", extra: BARE_ENV }, conf);
}

function gc(lab: Lab, s: Seed002, conf: Json): Promise<CniCall> {
  return cni(lab, s.host, { command: "GC", extra: BARE_ENV }, conf);
}

/** A test on a fresh seed 002 lab with a state dir. */
function seedTest(
  name: string,
  fn: (lab: Lab, s: Seed002, stateDir: string) => Promise<void>,
): void {
  labTest(name, ignore, async (lab) => fn(lab, await lab.seed002(), await lab.tempDir("state")));
}

seedTest(
  `STATUS: ready with an existing master, no IPAM [${VERSION}]`,
  async (lab, s, stateDir) => {
    const conf = hostrouteConf(VERSION, stateDir, {});
    delete conf.ipam;
    const r = await status(lab, s, conf);
    assertOk(r, "STATUS");
    assertEquals(r.stdout, "");
  },
);

seedTest(
  `STATUS: code 50 when the master is missing [${VERSION}]`,
  async (lab, s, stateDir) => {
    const dataDir = await lab.tempDir("ipam");
    for (const ipam of [undefined, hostLocalIpam(dataDir)]) {
      const conf = hostrouteConf(VERSION, stateDir, ipam ?? {}, { master: "nosuchif" });
      if (!ipam) delete conf.ipam;
      const r = await status(lab, s, conf);
      assertEquals(r.code, 1, describe(r));
      assertEquals(r.json?.code, 50, describe(r));
      assertEquals(r.json?.cniVersion, VERSION, describe(r));
      assertMatch(String(r.json?.msg), /nosuchif/);
    }
    // The same config with the lab's master is ready: the master is what was missing.
    const ok = await status(lab, s, hostrouteConf(VERSION, stateDir, hostLocalIpam(dataDir)));
    assertOk(ok, "STATUS with eth1");
  },
);

seedTest(
  `STATUS: host-local (no 1.1.0 support) ⇒ its STATUS is skipped, ready [${VERSION}]`,
  async (lab, s, stateDir) => {
    const dataDir = await lab.tempDir("ipam");
    const r = await status(lab, s, hostrouteConf(VERSION, stateDir, hostLocalIpam(dataDir)));
    assertOk(r, "STATUS with host-local");
    assertEquals(r.stdout, "");
    assertEquals(await leaseFiles(dataDir), [], "STATUS allocates nothing");
  },
);

seedTest(
  `STATUS: code 50 when ${HOSTIF} is a macvtap on another master [${VERSION}]`,
  async (lab, s, stateDir) => {
    await lab.ip(s.host, "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p");
    await lab.ip(s.host, "link", "add", "link", "eth2", "name", HOSTIF, "type", "macvtap");
    const conf = hostrouteConf(VERSION, stateDir, {});
    delete conf.ipam;
    const r = await status(lab, s, conf);
    assertEquals(r.json?.code, 50, describe(r));
    assertMatch(String(r.json?.msg), new RegExp(HOSTIF));
  },
);

interface Attachment {
  id: string;
  ns: string;
  path: string;
  result: Json;
}

/** Seed 002 with three host-local + hostrouteif attachments `task1..3`. */
async function threeAttachments(lab: Lab) {
  const s = await lab.seed002();
  const stateDir = await lab.tempDir("state");
  const dataDir = await lab.tempDir("ipam");
  const conf = hostrouteConf(VERSION, stateDir, hostLocalIpam(dataDir));
  const nss: [string, string][] = [[s.ctr, s.ctrPath]];
  for (const role of ["ctr2", "ctr3"]) {
    const ns = await lab.netns(role);
    nss.push([ns, lab.path(ns)]);
  }
  const atts: Attachment[] = [];
  for (const [i, [ns, path]] of nss.entries()) {
    const id = `task${i + 1}`;
    const r = await cni(lab, s.host, { command: "ADD", containerId: id, netns: path }, conf);
    assertOk(r, `ADD ${id}`);
    atts.push({ id, ns, path, result: r.json! });
  }
  const all = atts.flatMap((a) => resultIps(a.result));
  assertEquals(all.length, 6, `v4 + v6 per attachment: ${all}`);
  assertEquals(await ownHostRoutes(lab, s.host), expectedHostRoutes(all));
  assertEquals(await leaseFiles(dataDir), all.map(addrOf).sort());
  assertEquals(await recordFiles(stateDir), ["task1@eth0", "task2@eth0", "task3@eth0"]);
  return { s, stateDir, dataDir, conf, atts };
}

/** Assert exactly the attachments `kept` are still in place (routes, leases, records, links). */
async function assertOnly(
  lab: Lab,
  x: Awaited<ReturnType<typeof threeAttachments>>,
  kept: readonly Attachment[],
): Promise<void> {
  const ips = kept.flatMap((a) => resultIps(a.result));
  assertEquals(await ownHostRoutes(lab, x.s.host), expectedHostRoutes(ips), "host routes");
  assertEquals(await leaseFiles(x.dataDir), ips.map(addrOf).sort(), "host-local allocations");
  assertEquals(await recordFiles(x.stateDir), kept.map((a) => `${a.id}@eth0`), "records");
  for (const a of x.atts) {
    const links = await lab.ipJson<Json[]>(a.ns, "link", "show", "type", "macvtap");
    assertEquals(links.length, kept.includes(a) ? 1 : 0, `${a.id}: container link`);
  }
  await assertHostIf(lab, x.s.host);
}

/** A test on a fresh lab with {@linkcode threeAttachments}. */
function gcTest(
  name: string,
  fn: (lab: Lab, x: Awaited<ReturnType<typeof threeAttachments>>) => Promise<void>,
): void {
  labTest(name, ignore, async (lab) => fn(lab, await threeAttachments(lab)));
}

for (const key of ["cni.dev/valid-attachments", "cni.dev/attachments"] as const) {
  gcTest(
    `GC with ${key} listing one attachment releases the other two, host-local + hostrouteif [${VERSION}]`,
    async (lab, x) => {
      const [, keep] = x.atts as [Attachment, Attachment, Attachment];
      const r = await gc(lab, x.s, {
        ...x.conf,
        [key]: [{ containerID: keep.id, ifname: "eth0" }],
      });
      assertOk(r, "GC");
      assertEquals(r.stdout, "");
      await assertOnly(lab, x, [keep]);

      // The valid one is untouched: reachable, CHECK passes, DEL cleans it up.
      for (const ip of resultIps(keep.result)) {
        await assertPing(lab, x.s.host, addrOf(ip), "host → kept task");
      }
      const env = { containerId: keep.id, netns: keep.path };
      const prev = { ...x.conf, prevResult: keep.result };
      assertOk(await cni(lab, x.s.host, { command: "CHECK", ...env }, prev), "CHECK kept");
      assertOk(await cni(lab, x.s.host, { command: "DEL", ...env }, prev), "DEL kept");
      await assertOnly(lab, x, []);
    },
  );
}

gcTest(
  `GC without a valid-attachments key releases every attachment, host-local + hostrouteif [${VERSION}]`,
  async (lab, x) => {
    const r = await gc(lab, x.s, x.conf);
    assertOk(r, "GC");
    await assertOnly(lab, x, []);
    const again = await gc(lab, x.s, x.conf);
    assertOk(again, "GC again");
  },
);

gcTest(
  `GC leaves host routes it cannot attribute to its network (proto 249, no record) [${VERSION}]`,
  async (lab, x) => {
    const m = String(METRIC);
    // Our protocol mark, but no record of this network claims them: another
    // network's (another stateDir) for all GC can tell. They stay.
    const foreign = ["192.168.122.250/32", "fd22::250/128"];
    for (const dst of foreign) {
      await lab.ip(x.s.host, "route", "add", dst, "dev", HOSTIF, "metric", m, "proto", "249");
    }
    await lab.ip(x.s.host, "route", "add", "192.168.122.251/32", "dev", HOSTIF, "metric", m);
    const r = await gc(lab, x.s, { ...x.conf, "cni.dev/valid-attachments": [] });
    assertOk(r, "GC");
    for (const dst of [...foreign, "192.168.122.251/32"]) {
      const family = dst.includes(":") ? "-6" : "-4";
      const live = await lab.ipJson<Json[]>(x.s.host, family, "route", "show", dst);
      assertEquals(live.length, 1, `${dst} stays`);
    }
  },
);

labTest(
  `STATUS: every way of not being able to service ADD is code 50, reason in msg/details [${VERSION}]`,
  ignore,
  async (lab, t) => {
    const s = await lab.seed002();
    const stateDir = await lab.tempDir("state");
    const bin = await lab.tempDir("bin");
    // An IPAM plugin speaking 1.1.0 whose STATUS fails with the code in its name.
    for (const code of [999, 51, 11]) {
      await Deno.writeTextFile(
        `${bin}/ipam-status-${code}`,
        `#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}' ;;
STATUS) echo '{"cniVersion":"1.1.0","code":${code},"msg":"pool exhausted","details":"d${code}"}'; exit 1 ;;
*) exit 1 ;;
esac
`,
        { mode: 0o755 },
      );
    }
    await Deno.writeTextFile(`${bin}/not-executable`, "#!/bin/sh\n", { mode: 0o644 });
    const path = `${bin}:/usr/lib/cni`;
    const run = (conf: Json) =>
      cni(lab, s.host, { command: "STATUS", path, extra: BARE_ENV }, conf);
    const base = () => {
      const c = hostrouteConf(VERSION, stateDir, {});
      delete c.ipam;
      return c;
    };
    const cases: [string, Json, number, RegExp, RegExp | undefined][] = [
      ["IPAM type not in CNI_PATH", { ...base(), ipam: { type: "nope" } }, 50, /nope/, /code 101/],
      [
        "IPAM plugin not executable",
        { ...base(), ipam: { type: "not-executable" } },
        50,
        /not-executable/,
        /code \d+/,
      ],
      [
        "IPAM STATUS fails with 999",
        { ...base(), ipam: { type: "ipam-status-999" } },
        50,
        /ipam-status-999.*pool exhausted/,
        /code 999: d999/,
      ],
      [
        "IPAM STATUS fails with 11",
        { ...base(), ipam: { type: "ipam-status-11" } },
        50,
        /pool exhausted/,
        /code 11/,
      ],
      ["IPAM STATUS says 51", { ...base(), ipam: { type: "ipam-status-51" } }, 51, /pool/, /d51/],
      ["master missing", { ...base(), master: "nosuchif" }, 50, /nosuchif/, /code 7/],
      [
        "no master and no default route",
        (() => {
          const c = base();
          delete c.master;
          delete c.hostrouteif;
          return c;
        })(),
        50,
        /default route/,
        undefined,
      ],
      [
        "deviceID missing, no master",
        (() => {
          const c = base();
          delete c.master;
          delete c.hostrouteif;
          return { ...c, deviceID: "nosuchdev" };
        })(),
        50,
        /nosuchdev/,
        undefined,
      ],
    ];
    for (const [what, conf, code, msg, details] of cases) {
      await t.step(what, async () => {
        const r = await run(conf);
        assertEquals(r.code, 1, describe(r));
        assertEquals(r.json?.code, code, describe(r));
        assertMatch(String(r.json?.msg), msg);
        if (details) assertMatch(String(r.json?.details), details);
      });
    }
  },
);
