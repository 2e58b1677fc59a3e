/**
 * Ownership and trust (issue 10), black-box through `dist/macvtap` in the
 * seed 002 lab: every effect the plugin undoes, deletes or sweeps must be
 * one it can prove it owns, and everything derived from input is validated
 * before it touches the host. One test (or a few) per item of the issue.
 *
 * Every call runs with `MACVTAP_STATE_ROOT` and `MACVTAP_LOG_DIR` set to
 * per-test temp dirs; `stateDir` and `logFile` point inside them.
 *
 * Readings of the contract where it left a choice (the strictest reasonable one):
 * - A failed ADD leaves nothing: no link in the task namespace, no record
 *   file, no lease, no host route, and the host's routing tables (all tables,
 *   both families) compare equal before and after. `hostrouteif` itself is
 *   shared and kept by design, so a witness attachment creates it first.
 * - Log records: every non-empty line of the log file parses with
 *   `JSON.parse` as an object with `ts`, `level` and `msg`; no line starts
 *   with injected text.
 * - An unsafe existing log file (symlink, hard link, not root's) is never
 *   written; the command itself still succeeds.
 * - CNI_NETNS that is not a network namespace: ADD, CHECK and DEL all answer
 *   code 103. CNI_IFNAME with `%`: ADD, CHECK and DEL all answer code 4.
 * - A planted record may make GC or DEL report an error, but never delete a
 *   file outside `<stateDir>/<network>/`, never remove a route that is not
 *   the host route of an address the record's attachment holds (a route of
 *   another protocol, another device, or a dst not among the record's
 *   `ips`), and never execute anything named by the record.
 * - IPv4-mapped IPv6 is injected through a fake IPAM printing a canned result
 *   (the reference static plugin normalizes `::ffff:a.b.c.d` to IPv4).
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import {
  cni,
  CNI_BIN,
  describe,
  type Lab,
  labIgnore,
  runOk,
  type Seed002,
  VERSIONS,
} from "../lab/mod.ts";
import { HOSTIF, METRIC } from "./_hostroute_lab.ts";
import {
  type TenantFixture,
  tenantOf,
  type TenantSpec,
  tenantTest,
  twoTenants,
} from "./_tenants.ts";
import { deviceIfname } from "../internal/_ifname.ts";
import {
  addrOf,
  assertCniError,
  fakeCniPath,
  filesUnder,
  HANG_MS,
  hostLocal,
  hostRoutesOf,
  ipsOf,
  type Json,
  linkNames,
  macvtaps,
  plugin,
  type Pod,
  present,
  type Roots,
  routeSnapshot,
  taskNamespaces,
  tempFiles,
  type Tenant,
} from "./_owner.ts";

const ignore = labIgnore([`${CNI_BIN}/static`, "busybox"]);

/**
 * A test with one host-local tenant "tasks" (state dir `<root>/net`) on a
 * fresh seed 002 lab (tests/_tenants.ts `tenantTest`).
 */
function ownershipTest(
  name: string,
  spec: Partial<TenantSpec>,
  fn: (f: TenantFixture) => Promise<void>,
): void {
  tenantTest(name, { ignore, spec: { stateDir: "net", ...spec } }, fn);
}

/** Mount a tmpfs of `size` at `dir` for this test (unmounted with the lab). */
async function mountTmpfs(lab: Lab, dir: string, size: string): Promise<void> {
  await runOk(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  lab.defer(`unmount the tmpfs at ${dir}`, async () => {
    await runOk(["umount", "-l", dir]);
  });
}

/** Fill the blocks of `dir`'s file system with `dir/filler` (inodes stay free: a file can be created, not written). */
async function fillUp(dir: string): Promise<void> {
  const filler = await Deno.open(`${dir}/filler`, { write: true, create: true });
  try {
    const chunk = new Uint8Array(4096);
    for (;;) await filler.write(chunk);
  } catch (err) {
    if (!(err instanceof Error) || !/space|ENOSPC/i.test(err.message)) throw err;
  } finally {
    filler.close();
  }
}

/**
 * Another plugin's attachment `k1`/eth0 in `ns` with `t`'s network name:
 * host-local called directly (the reference macvlan would do the same), so
 * no record of ours knows about it. Returns its v4 + v6 leases.
 */
async function foreignLeases(lab: Lab, s: Seed002, t: Tenant, ns: string): Promise<string[]> {
  const foreign = await cni(
    lab,
    s.host,
    { command: "ADD", containerId: "k1", netns: lab.path(ns), ifname: "eth0" },
    { cniVersion: "1.0.0", name: t.name, ipam: t.o.ipam },
    `${CNI_BIN}/host-local`,
  );
  assertEquals(foreign.code, 0, `host-local ADD: ${describe(foreign)}`);
  const leases = t.leases();
  assertEquals(leases.length, 2, `the foreign v4 + v6 leases: ${leases}`);
  return leases;
}

/** ADD of `id` with `conf`, then its DEL with the result; both must succeed. */
async function addThenDel(t: Tenant, id: string, netns: string, conf: Json, what: string) {
  const add = await t.add(id, netns, "eth0", conf);
  assertEquals(add.code, 0, `ADD with ${what}: ${describe(add)}`);
  const del = await t.call("DEL", { containerId: id, netns }, { ...conf, prevResult: add.json });
  assertEquals(del.code, 0, `DEL with ${what}: ${describe(del)}`);
}

/** Assert no temp file anywhere under the state root. */
function assertNoTemp(roots: Roots, what: string): void {
  assertEquals(tempFiles(roots.stateRoot), [], `${what}: temporary files left`);
}

// ---------------------------------------------------------------- 1. log file

ownershipTest(
  "ownership 1: a logFile outside the log root is a config error (7) and creates nothing",
  {},
  async ({ lab, s, roots, t, dataDir }) => {
    const outside = await lab.tempDir("outside");
    // A root-owned copy of a passwd-like file in a 0700 directory: what today's check accepts.
    const passwd = `${outside}/passwd`;
    await Deno.writeTextFile(passwd, "root:x:0:0:root:/root:/bin/bash\n", { mode: 0o644 });
    const cases: [string, string, string | undefined][] = [
      ["a file in another directory", `${outside}/x.log`, `${outside}/x.log`],
      ["an existing root-owned file elsewhere", passwd, undefined],
      [
        "a path climbing out with ..",
        `${roots.logDir}/../escape.log`,
        `${roots.logDir}/../escape.log`,
      ],
      ["a relative path climbing out", "../escape2.log", `${roots.logDir}/../escape2.log`],
      [
        "a dot-dot inside the root",
        `${roots.logDir}/a/../../escape3.log`,
        `${roots.logDir}/../escape3.log`,
      ],
      ["the log root itself", roots.logDir, undefined],
    ];
    for (const [what, logFile, created] of cases) {
      const r = await t.add("log1", s.ctrPath, "eth0", t.conf({ logFile, logLevel: "debug" }));
      assertCniError(r, 7, `logFile = ${what} (${logFile})`);
      if (created) assert(!present(created), `${what}: ${created} was created`);
      assertEquals(await Deno.readTextFile(passwd), "root:x:0:0:root:/root:/bin/bash\n", what);
      assertEquals(await macvtaps(lab, s.ctr), [], `${what}: no link`);
      assertEquals(t.leases(), [], `${what}: no lease (${dataDir})`);
      assert(!present(t.netDir), `${what}: ${t.netDir} created`);
      assertEquals(filesUnder(roots.logDir), [], `${what}: nothing in the log root`);
    }
  },
);

ownershipTest(
  "ownership 1: logFile in the log root (bare name or subdirectory) is 0600 in 0700 dirs, one JSON object per line, control characters escaped",
  {},
  async ({ lab, s, roots, t }) => {
    const fake = await fakeCniPath(lab);
    // Short enough (≤ 15 bytes) to be looked up as a link name: the plugin logs it.
    const injected = "d\nroot:0:0\r\u001b";
    const noisy = t.with({ path: fake.bin, ipam: { ...t.o.ipam, type: "noisy" } });
    for (
      const [logFile, path] of [
        ["mv.log", `${roots.logDir}/mv.log`],
        [`${roots.logDir}/a/b/mv.log`, `${roots.logDir}/a/b/mv.log`],
      ] as const
    ) {
      // A deviceID with control characters (logged when its link is recreated), and an
      // IPAM plugin whose stderr carries them (logged line by line).
      for (const [tenant, extra] of [[t, { deviceID: injected }], [noisy, {}]] as const) {
        const conf = tenant.conf({ logFile, logLevel: "debug", ...extra });
        await addThenDel(tenant, "log2", s.ctrPath, conf, JSON.stringify(extra));
      }
      assert(present(path), `${logFile}: ${path} was not written`);
      const st = await Deno.lstat(path);
      assertEquals((st.mode ?? 0) & 0o777, 0o600, `${path} mode`);
      assertEquals(st.uid, 0, `${path} owner`);
      if (path.includes("/a/b/")) {
        for (const d of [`${roots.logDir}/a`, `${roots.logDir}/a/b`]) {
          assertEquals(((await Deno.lstat(d)).mode ?? 0) & 0o777, 0o700, `${d} mode`);
        }
      }
      const text = await Deno.readTextFile(path);
      // deno-lint-ignore no-control-regex
      assert(!/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text), `raw control characters in ${path}`);
      const lines = text.split("\n").filter((l) => l !== "");
      assert(lines.length > 0, `${path} is empty`);
      const values: string[] = [];
      for (const line of lines) {
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          throw new Error(`${path}: a line is not JSON: ${JSON.stringify(line)}\n${text}`);
        }
        assert(typeof rec === "object" && rec !== null && !Array.isArray(rec), line);
        const o = rec as Json;
        for (const k of ["ts", "level", "msg"]) assert(k in o, `${path}: no "${k}" in ${line}`);
        assert(!line.startsWith("root:"), `injected line in ${path}: ${line}`);
        values.push(...Object.values(o).filter((v): v is string => typeof v === "string"));
      }
      assert(
        values.some((v) => v.includes(injected)),
        `the deviceID is logged, escaped and intact: ${text}`,
      );
    }
  },
);

ownershipTest(
  "ownership 1: an existing symlink, hard link or non-root file as logFile is never written, the command succeeds",
  {},
  async ({ lab, s, roots, t }) => {
    const outside = await lab.tempDir("outside");
    const target = `${outside}/target`;
    const hard = `${outside}/hard`;
    await Deno.writeTextFile(target, "orig\n", { mode: 0o600 });
    await Deno.writeTextFile(hard, "orig\n", { mode: 0o600 });
    await Deno.symlink(target, `${roots.logDir}/sym.log`);
    await Deno.link(hard, `${roots.logDir}/hard.log`);
    await Deno.writeTextFile(`${roots.logDir}/nobody.log`, "orig\n", { mode: 0o600 });
    await Deno.chown(`${roots.logDir}/nobody.log`, 65534, 65534);
    for (const name of ["sym.log", "hard.log", "nobody.log"]) {
      const conf = t.conf({ logFile: `${roots.logDir}/${name}`, logLevel: "debug" });
      await addThenDel(t, "log3", s.ctrPath, conf, name);
      assertEquals(await Deno.readTextFile(target), "orig\n", `${name}: symlink target written`);
      assertEquals(await Deno.readTextFile(hard), "orig\n", `${name}: hard link written`);
      assertEquals(
        await Deno.readTextFile(`${roots.logDir}/nobody.log`),
        "orig\n",
        `${name}: a file of uid 65534 written`,
      );
    }
  },
);

// ---------------------------------------------------------- 2. duplicate ADD

for (const version of VERSIONS) {
  ownershipTest(
    `ownership 2: a duplicate ADD (same network, container id, ifname) into another netns is refused before any side effect [${version}]`,
    { version },
    async ({ lab, s, roots, t }) => {
      const [nsA, nsB] = await taskNamespaces(lab, s, 2) as [string, string];
      const a = await t.addOk("s1", nsA);
      const records = t.records();
      const leases = t.leases();
      const routes = await routeSnapshot(lab, s.host);
      assertEquals(leases.length, 2, `v4 + v6 lease: ${leases}`);

      const dup = await t.add("s1", lab.path(nsB));
      assertCniError(dup, undefined, "duplicate ADD");
      assertMatch(String(dup.json?.msg), /already/i, describe(dup));
      assertEquals(await macvtaps(lab, nsB), [], "nothing created in netns B");
      await t.assertIntact(a, "after the duplicate ADD");
      assertEquals(t.records(), records, "A's record unchanged");
      assertEquals(t.leases(), leases, "A's leases unchanged");
      assertEquals(await routeSnapshot(lab, s.host), routes, "host routes unchanged");
      assertNoTemp(roots, "duplicate ADD");

      // The same into A's own namespace: refused too, A untouched.
      const dupA = await t.add("s1", a.path);
      assertCniError(dupA, undefined, "duplicate ADD into the same netns");
      await t.assertIntact(a, "after the duplicate ADD into A");

      const del = await t.del(a);
      assertEquals(del.code, 0, `DEL of A: ${describe(del)}`);
      assertEquals(await macvtaps(lab, nsA), [], "A's link gone");
      assertEquals(t.leases(), [], "A's leases released");
      assertEquals(await t.podRoutes(a), [], "A's host routes gone");
      assertEquals(t.records(), [], "A's record gone");
      assert(!present(t.netDir), `${t.netDir} removed after the last DEL`);
    },
  );
}

ownershipTest(
  "ownership 2: an ADD refused before its link is up (interface taken, no master, MTU, the kernel refusing the link) never calls IPAM: another plugin's lease of the same key stays, even for a requested IP",
  {},
  async ({ lab, s, roots, t }) => {
    const [ns] = await taskNamespaces(lab, s, 1) as [string];
    // Another plugin's attachment with the same network, container ID and
    // interface name: host-local called directly (the reference macvlan
    // would do the same), so no record of ours knows about it.
    const leases = await foreignLeases(lab, s, t, ns);
    await lab.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
    // A requested IP makes host-local allocate beside an existing lease of
    // the key, and its DEL releases every lease of the key.
    const requested = { args: { cni: { ips: ["192.168.122.177"] } } };
    const cases: [string, Json, RegExp][] = [
      ["the interface name taken in the container", t.conf(requested), /already exists/],
      ["a missing master", t.conf({ ...requested, master: "nosuch0" }), /nosuch0/],
      ["an MTU above the master's", t.conf({ ...requested, mtu: 65000 }), /MTU/],
      // Passes every check; the kernel refuses passthru beside a bridge-mode macvtap.
      [
        "the kernel refusing the link",
        t.conf({ ...requested, mode: "passthru" }),
        /Cannot create macvtap/,
      ],
    ];
    for (const [i, [what, config, why]] of cases.entries()) {
      // The next cases are refused for the master, with the name free.
      if (i === 1) await lab.ip(ns, "link", "del", "eth0");
      if (i === 3) {
        await lab.ip(s.host, "link", "add", "mvx0", "link", s.master, "type", "macvtap");
        lab.defer("delete mvx0", () => lab.ip(s.host, "link", "del", "mvx0").then(() => {}));
      }
      const r = await t.add("k1", lab.path(ns), "eth0", config);
      assertCniError(r, undefined, what);
      assertMatch(String(r.json?.msg), why, `${what}: ${describe(r)}`);
      assertEquals(t.leases(), leases, `${what}: the foreign leases stay, none added`);
      assertEquals(t.records(), [], `${what}: no record`);
      assertEquals(await macvtaps(lab, ns), [], `${what}: no macvtap`);
    }
    assertNoTemp(roots, "refused ADDs");
  },
);

ownershipTest(
  "ownership 2: an ADD whose IPAM delegate may have allocated (killed at the time limit, died, exit 0 without a usable result) releases it on rollback; a delegate's own error result releases nothing, so another plugin's lease of the key stays",
  { version: "1.0.0" },
  async ({ lab, s, roots, t, dataDir }) => {
    const fake = await fakeCniPath(lab);
    const [ns] = await taskNamespaces(lab, s, 1) as [string];
    const ipamOf = (type: string): Json => ({
      ...hostLocal(dataDir, ["192.168.122.171", "192.168.122.179"], ["fd22::171", "fd22::179"]),
      type,
    });
    const tt = t.with({ path: fake.bin, extra: { ipamTimeoutMs: 500 } });
    const cases: [string, RegExp][] = [
      ["hangs", /timed out after 500 ms/],
      ["dies", /killed by signal/],
      ["garbled", /Cannot decode the result/],
      ["invalid", /ips/],
    ];
    for (const [type, why] of cases) {
      const r = await tt.add("k1", lab.path(ns), "eth0", tt.conf({ ipam: ipamOf(type) }));
      assertCniError(r, undefined, type);
      assertMatch(`${r.json?.msg} ${r.json?.details ?? ""}`, why, `${type}: ${describe(r)}`);
      assertEquals(tt.leases(), [], `${type}: the allocation is released`);
      assertEquals(tt.records(), [], `${type}: no record`);
      assertEquals(await macvtaps(lab, ns), [], `${type}: no macvtap`);
    }

    // Another plugin's lease of the same key (host-local run directly), then
    // a delegate that answers an error of its own: nothing to release.
    const leases = await foreignLeases(lab, s, t, ns);
    const r = await tt.add("k1", lab.path(ns), "eth0", tt.conf({ ipam: ipamOf("declines") }));
    assertCniError(r, 11, "declines");
    assertMatch(String(r.json?.msg), /pool closed/, describe(r));
    assertEquals(tt.leases(), leases, "the foreign leases stay");
    assertEquals(tt.records(), [], "declines: no record");
    assertNoTemp(roots, "failed ADDs");
  },
);

ownershipTest(
  "ownership 2: an ADD that recreated a device-plugin device deletes it on rollback even when its host name was taken meanwhile (another call's recreate), and leaves that other device alone",
  {},
  async ({ lab, s, roots, t }) => {
    const [ns] = await taskNamespaces(lab, s, 1) as [string];
    const id = "0000:00:00.7";
    const hostName = deviceIfname(id);
    // An IPAM that fails after another call recreated the same device on
    // the host (the race two ADDs of one device ID run into).
    const bin = `${await lab.tempDir("cnisq")}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      `${bin}/squatter`,
      `#!/bin/sh\ncat >/dev/null\nip link add ${hostName} type veth peer name sqp0\n` +
        `printf '{"cniVersion":"1.0.0","code":11,"msg":"no addresses"}'\nexit 1\n`,
    );
    await Deno.chmod(`${bin}/squatter`, 0o755);
    const config = t.conf({
      deviceID: id,
      hostrouteif: undefined,
      ipam: { type: "squatter" },
    });
    const r = await plugin(lab, s.host, roots, "ADD", {
      containerId: "dev1",
      netns: lab.path(ns),
      ifname: "eth0",
      path: bin,
    }, config);
    assertCniError(r, 11, "the IPAM failure");
    assertEquals(
      await linkNames(lab, ns),
      ["lo"],
      "the recreated device is gone from the container",
    );
    const squatter = await lab.ipJson<Json[]>(s.host, "link", "show", hostName);
    assertEquals(squatter[0]?.link_type, "ether", "the other device stays on the host");
    assertEquals(squatter.length, 1);
    assertEquals(t.records(), [], "no record");
    await lab.ip(s.host, "link", "del", hostName);
  },
);

ownershipTest(
  "ownership 2: 8 concurrent ADDs of the same attachment into 8 namespaces: one wins and keeps everything, the others leave nothing",
  {},
  async ({ lab, s, roots, t }) => {
    const nss = await taskNamespaces(lab, s, 8);
    // Another attachment of the network, in its own namespace (its task route to the
    // host would collide with the winner's in a shared one).
    const w = await t.addOk("witness", await lab.netns("wit"));
    const calls = await Promise.all(nss.map((ns) => t.add("same", lab.path(ns))));
    const winners = calls.flatMap((c, i) => c.code === 0 ? [i] : []);
    assertEquals(winners.length, 1, `exactly one winner: ${calls.map(describe).join("\n---\n")}`);
    const i = winners[0]!;
    const win: Pod = {
      id: "same",
      ifname: "eth0",
      ns: nss[i]!,
      path: lab.path(nss[i]!),
      result: calls[i]!.json!,
    };
    for (const [k, c] of calls.entries()) {
      if (k === i) continue;
      assertCniError(c, undefined, `loser ${k}`);
      assertEquals(await macvtaps(lab, nss[k]!), [], `loser ${k} link`);
    }
    await t.assertIntact(win, "winner");
    await t.assertIntact(w, "witness");
    assertEquals(
      t.leases(),
      [...ipsOf(win.result), ...ipsOf(w.result)].map(addrOf).sort(),
      "leases: the winner's and the witness's only",
    );
    assertNoTemp(roots, "concurrent ADDs");
    assertEquals((await t.del(win)).code, 0, "DEL winner");
    assertEquals((await t.del(w)).code, 0, "DEL witness");
    assertEquals(t.leases(), []);
    assertEquals(t.records(), []);
    for (const ip of [...ipsOf(win.result), ...ipsOf(w.result)]) {
      assertEquals(await hostRoutesOf(lab, s.host, ip), [], `route of ${ip}`);
    }
  },
);

// ---------------------------------------------------------- 3. host routes

/** Static IPAM handing out `addresses` (with a v4 route to the host). */
function staticIpam(...addresses: string[]): Json {
  return { type: "static", addresses: addresses.map((address) => ({ address })) };
}

/**
 * `refuse(conf, what, cniPath?)`: run an ADD of `t` into `ns` that must be
 * refused (7), and assert it left nothing behind and `keep` intact.
 */
function refuser(
  lab: Lab,
  s: Seed002,
  t: Tenant,
  ns: string,
  keep: Pod[],
): (conf: Json, what: string, cniPath?: string) => Promise<void> {
  return (conf, what, cniPath) => assertRefused(lab, s, t, ns, conf, what, keep, cniPath);
}

async function assertRefused(
  lab: Lab,
  s: Seed002,
  t: Tenant,
  ns: string,
  conf: Json,
  what: string,
  keep: Pod[],
  cniPath?: string,
): Promise<void> {
  const routes = await routeSnapshot(lab, s.host);
  const records = t.records();
  const leases = t.leases();
  const r = await t.call("ADD", {
    containerId: "bad",
    netns: lab.path(ns),
    ...(cniPath ? { path: cniPath } : {}),
  }, conf);
  assertCniError(r, 7, what);
  assertEquals(await linkNames(lab, ns), ["lo"], `${what}: task namespace left as it was`);
  assertEquals(await routeSnapshot(lab, s.host), routes, `${what}: host routes changed`);
  assertEquals(t.records(), records, `${what}: records changed`);
  assertEquals(t.leases(), leases, `${what}: leases changed`);
  for (const p of keep) await t.assertIntact(p, `${what}: witness`, false);
}

ownershipTest(
  "ownership 3: hostrouteif refuses (7) IPAM addresses that are not unicast host addresses, IPv4 and IPv6, leaving nothing",
  {
    ipam: () => staticIpam("192.168.122.180/24", "fd22::180/64"),
  },
  async ({ lab, s, t }) => {
    const [, bad] = await taskNamespaces(lab, s, 2) as [string, string];
    const witness = await t.addOk("witness", s.ctr);
    const refuse = refuser(lab, s, t, bad, [witness]);
    const special = [
      "0.0.0.0/24",
      "0.0.0.0/0",
      "224.0.0.1/24",
      "239.1.2.3/8",
      "255.255.255.255/32",
      "255.255.255.255/24",
      "127.0.0.1/8",
      "127.1.2.3/8",
      "169.254.10.10/16",
      "240.0.0.1/8",
      "250.1.1.1/24",
      "::/64",
      "::/0",
      "ff02::1/64",
      "ff05::2/64",
      "::1/128",
      "fe80::1234/64",
    ];
    for (const a of special) {
      await refuse(t.conf({ ipam: staticIpam(a) }), `static ${a}`);
    }
    // The same through the `ips` capability.
    for (const a of ["224.0.0.1/24", "127.0.0.1/8", "ff02::1/64"]) {
      await refuse(
        t.conf({ ipam: { type: "static" }, runtimeConfig: { ips: [a] } }),
        `runtimeConfig.ips ${a}`,
      );
    }
    // One good and one bad address: refused as a whole.
    await refuse(
      t.conf({ ipam: staticIpam("192.168.122.181/24", "169.254.1.1/16") }),
      "a good and a link-local address",
    );
    // IPv4-mapped IPv6 and 0.0.0.0/0 as a raw IPAM result (a third-party allocator's answer).
    const fake = await fakeCniPath(lab);
    for (const address of ["::ffff:192.168.122.9/128", "::ffff:10.1.1.1/96", "0.0.0.0/0"]) {
      await Deno.writeTextFile(
        `${fake.dir}/result.json`,
        JSON.stringify({ cniVersion: "1.0.0", ips: [{ address }] }),
      );
      await refuse(t.conf({ ipam: { type: "canned" } }), `IPAM result ${address}`, fake.bin);
    }
    assertEquals((await t.del(witness)).code, 0, "DEL witness");
  },
);

ownershipTest(
  "ownership 3: hostrouteif refuses (7) the host's own addresses, gateways of host routes (any table) and addresses with a host route it does not own; a connected subnet may be shadowed",
  {
    ipam: () => staticIpam("192.168.122.180/24", "fd22::180/64"),
  },
  async ({ lab, s, roots, t }) => {
    const [, bad, ok2] = await taskNamespaces(lab, s, 3) as [string, string, string];
    const witness = await t.addOk("witness", s.ctr);
    const refuse = refuser(lab, s, t, bad, [witness]);
    const h = s.host;
    await lab.ip(h, "route", "add", "default", "via", "192.168.10.1");
    await lab.ip(h, "route", "add", "10.60.0.0/16", "via", "192.168.10.5", "table", "100");
    await lab.ip(h, "-6", "route", "add", "default", "via", "fd10::1");
    await lab.ip(h, "-6", "route", "add", "fd60::/48", "via", "fd10::5", "table", "100");
    await lab.ip(h, "addr", "add", "10.77.0.1/32", "dev", "lo");
    await lab.ip(h, "addr", "add", "fd77::1/128", "dev", "lo");
    await lab.ip(h, "route", "add", "192.168.122.200/32", "dev", "eth0");
    await lab.ip(h, "-6", "route", "add", "fd22::200/128", "dev", "eth0");
    await lab.ip(h, "route", "add", "192.168.122.201/32", "dev", HOSTIF, "metric", String(METRIC));
    await lab.ip(h, "route", "add", "192.168.122.202/32", "dev", "eth0", "table", "100");

    const refused: [string, string][] = [
      ["192.168.10.22/24", "the host's address on eth0"],
      ["fd10::22/64", "the host's IPv6 address on eth0"],
      ["10.77.0.1/24", "an address on the host's lo"],
      ["fd77::1/64", "an IPv6 address on the host's lo"],
      ["192.168.10.1/24", "the host's default gateway"],
      ["192.168.10.5/24", "a gateway in table 100"],
      ["fd10::1/64", "the host's IPv6 default gateway"],
      ["fd10::5/64", "an IPv6 gateway in table 100"],
      ["192.168.122.200/24", "an address with a host route via eth0"],
      ["fd22::200/64", "an IPv6 address with a host route via eth0"],
      ["192.168.122.201/24", `an address with a foreign host route via ${HOSTIF}`],
      ["192.168.122.202/24", "an address with a host route in table 100"],
    ];
    for (const [a, what] of refused) {
      await refuse(t.conf({ ipam: staticIpam(a) }), `${a}: ${what}`);
    }
    await refuse(
      t.conf({ ipam: { type: "static" }, runtimeConfig: { ips: ["192.168.10.1/24"] } }),
      "runtimeConfig.ips: the host's gateway",
    );
    // The same static address for a second pod: refused, the first keeps its route.
    await refuse(t.conf({ ipam: staticIpam("192.168.122.180/24") }), "the witness's address again");
    await refuse(t.conf({ ipam: staticIpam("fd22::180/64") }), "the witness's IPv6 address again");
    // Shadowing the host's connected 192.168.10.0/24 for one task address is what hostrouteif is for.
    const shadow = await t.addOk(
      "shadow",
      ok2,
      "eth0",
      t.conf({ ipam: staticIpam("192.168.10.77/24", "fd10::77/64") }),
    );
    assertEquals(
      await hostRoutesOf(lab, h, "192.168.10.77"),
      [`192.168.10.77/32 dev ${HOSTIF} metric ${METRIC} proto 249`],
    );
    assertEquals((await t.del(shadow)).code, 0, "DEL shadow");
    assertEquals(await hostRoutesOf(lab, h, "192.168.10.77"), []);
    assertEquals((await t.del(witness)).code, 0, "DEL witness");
    assertEquals(await hostRoutesOf(lab, h, "192.168.122.201"), [
      `192.168.122.201/32 dev ${HOSTIF} metric ${METRIC} proto boot`,
    ], "the foreign route stays");
    assertNoTemp(roots, "host route checks");
  },
);

// ---------------------------------------------------------- 4. GC per network

ownershipTest(
  "ownership 4: GC of network Y (own stateDir, empty valid list) never removes network X's host routes, same hostrouteif and metric, live traffic",
  {},
  async (node) => {
    const { lab, s } = node;
    const { x, y } = twoTenants(node, ["netx", "nety"], {
      ranges: [
        { v4: ["192.168.122.171", "192.168.122.174"], v6: ["fd22::171", "fd22::174"] },
        { v4: ["192.168.122.175", "192.168.122.179"], v6: ["fd22::175", "fd22::179"] },
      ],
    });
    const [n1, n2, n3] = await taskNamespaces(lab, s, 3) as [string, string, string];
    const px = await x.addOk("px", n1);
    const py1 = await y.addOk("py1", n2);
    const py2 = await y.addOk("py2", n3);
    const xAddr = addrOf(ipsOf(px.result)[0]!);

    for (let round = 0; round < 3; round++) {
      const gc = await y.gc([]);
      assertEquals(gc.code, 0, `GC Y: ${describe(gc)}`);
      await x.assertIntact(px, `round ${round}: X after GC of Y`);
      assertEquals(await macvtaps(lab, n2), [], "Y's pod 1 collected");
      assertEquals(await macvtaps(lab, n3), [], "Y's pod 2 collected");
      assertEquals(y.records(), [], "Y's records gone");
      assertEquals(y.leases(), [], "Y's leases gone");
      assert(!present(y.netDir), `${y.netDir} removed by GC`);
      assert(
        (await lab.exec(s.host, ["busybox", "ping", "-c1", "-W2", xAddr])).success,
        "host → X",
      );
      assert(
        (await lab.exec(n1, ["busybox", "ping", "-c1", "-W2", "192.168.10.22"])).success,
        "X → host",
      );
    }
    for (const ip of [...ipsOf(py1.result), ...ipsOf(py2.result)]) {
      assertEquals(await hostRoutesOf(lab, s.host, ip), [], `Y's route of ${ip}`);
    }
    assertEquals((await x.del(px)).code, 0, "DEL X");
  },
);

// ---------------------------------------------------------- 5. records

ownershipTest(
  "ownership 5: record keys never collide (a-b + c vs a + b-c): DEL of one keeps the other's record and host routes",
  {},
  async ({ lab, s, roots, t }) => {
    const [n1, n2] = await taskNamespaces(lab, s, 2) as [string, string];
    const p1 = await t.addOk("a-b", n1, "c");
    const p2 = await t.addOk("a", n2, "b-c");
    assertEquals(t.records().length, 2, `two records: ${t.records()}`);
    assertEquals((await t.del(p2, false)).code, 0, "DEL a/b-c (no prevResult: from the record)");
    await t.assertIntact(p1, "a-b/c after DEL of a/b-c");
    assertEquals(await t.podRoutes(p2), [], "a/b-c's routes gone");
    assertEquals((await t.del(p1, false)).code, 0, "DEL a-b/c");
    assertEquals(await t.podRoutes(p1), [], "a-b/c's routes gone");
    assertEquals(t.leases(), []);
    assertEquals(t.records(), []);
    assertNoTemp(roots, "colliding keys");
    // And in the other order, with GC.
    const q1 = await t.addOk("a-b", n1, "c");
    const q2 = await t.addOk("a", n2, "b-c");
    const gc = await t.gc([q1]);
    assertEquals(gc.code, 0, `GC: ${describe(gc)}`);
    await t.assertIntact(q1, "a-b/c after GC of a/b-c");
    assertEquals(await t.podRoutes(q2), []);
    assertEquals((await t.gc([])).code, 0, "GC all");
    assertEquals(t.records(), []);
    assert(!present(t.netDir), `${t.netDir} removed by GC`);
  },
);

ownershipTest(
  "ownership 5: hostile record contents never make DEL or GC delete outside files, remove unproven routes or run anything",
  {},
  async ({ lab, s, roots, stateDir, t }) => {
    const fake = await fakeCniPath(lab);
    const tt = t.with({ path: fake.bin });
    const nss = await taskNamespaces(lab, s, 4);
    const victim = await tt.addOk("victim", nss[3]!);
    // Files a traversal would hit: <stateDir>/<net>/../../x… and the state root.
    const sentinels = [
      `${stateDir}/../x`,
      `${stateDir}/../x-eth0`,
      `${stateDir}/x-eth0`,
      `${roots.stateRoot}/../x-eth0`,
      `${fake.dir}/sentinel`,
    ];
    for (const f of sentinels) await Deno.writeTextFile(f, "keep\n");
    const h = s.host;
    await lab.ip(h, "route", "add", "10.9.9.9/32", "dev", HOSTIF, "metric", String(METRIC));
    await lab.ip(
      h,
      "route",
      "add",
      "10.9.9.10/32",
      "dev",
      HOSTIF,
      "metric",
      String(METRIC),
      "proto",
      "249",
    );
    const before = await routeSnapshot(lab, h);

    const hostile = (ips: string[]): Json => ({
      containerId: "../../x",
      ifname: "eth0",
      netns: "/etc/passwd",
      ipamType: "../evil",
      cniArgs: "IgnoreUnknown=1;X=$(touch /tmp/pwned)",
      ips,
      hostrouteif: HOSTIF,
      hostRoutes: [
        { family: 4, dst: "10.9.9.9/32", metric: METRIC },
        { family: 4, dst: "10.9.9.10/32", metric: METRIC },
        { family: 4, dst: "192.168.10.0/24", metric: 0 },
        { family: 4, dst: "0.0.0.0/0", metric: 0 },
        { family: 6, dst: "fd10::/64", metric: 256 },
      ],
    });
    /** Overwrite every record file the ADD of `p` created with hostile content. */
    const plantOver = (files: string[], ips: string[]) => {
      for (const f of files) {
        Deno.writeTextFileSync(`${t.netDir}/${f}`, JSON.stringify(hostile(ips)));
      }
    };
    const check = async (what: string) => {
      for (const f of sentinels) {
        assertEquals(await Deno.readTextFile(f), "keep\n", `${what}: ${f}`);
      }
      assert(!present(`${fake.dir}/evil-ran`), `${what}: ran the record's ipamType`);
      assert(!present("/tmp/pwned"), `${what}: ran the record's cniArgs`);
      const now = await routeSnapshot(lab, h);
      for (const r of before.filter((r) => !now.includes(r))) {
        // Only the victim's and the pods' own host routes may come and go.
        assert(
          !/10\.9\.9\.|192\.168\.10\.0|"default"|fd10::/.test(r),
          `${what}: removed a route it cannot own: ${r}`,
        );
      }
      await tt.assertIntact(victim, `${what}: victim`);
    };

    // 1. DEL of an attachment whose record was replaced.
    const known = tt.records();
    const p1 = await tt.addOk("p1", nss[0]!);
    const p1Files = tt.records().filter((f) => !known.includes(f));
    assertEquals(p1Files.length, 1, `one new record for p1: ${tt.records()}`);
    plantOver(p1Files, ipsOf(p1.result));
    const del = await tt.del(p1, false);
    await check(`DEL over a hostile record (${describe(del)})`);

    // 2. GC over a replaced record (valid: the victim only).
    const known2 = tt.records();
    const p2 = await tt.addOk("p2", nss[1]!);
    plantOver(tt.records().filter((f) => !known2.includes(f)), ["10.9.9.9/32"]);
    const gc = await tt.gc([victim]);
    await check(`GC over a hostile record (${describe(gc)})`);
    void p2;

    // 3. Planted files with other names and shapes, then GC and DEL of their claimed ids.
    const planted: [string, string][] = [
      ["planted", JSON.stringify(hostile(["10.9.9.9/32"]))],
      ["..%2f..%2fx", JSON.stringify({ ...hostile([]), containerId: "victim" })],
      ["victim-eth0", JSON.stringify({ ...hostile(ipsOf(victim.result)), netns: victim.path })],
      ["garbage", "{not json"],
      ["huge", JSON.stringify({ ...hostile([]), ips: Array(100000).fill("10.9.9.9/32") })],
    ];
    for (const [name, content] of planted) {
      try {
        await Deno.writeTextFile(`${t.netDir}/${name}`, content, { createNew: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    }
    await Deno.symlink("/etc/passwd", `${t.netDir}/link`);
    const gc2 = await tt.gc([victim]);
    await check(`GC over planted files (${describe(gc2)})`);
    const del2 = await tt.call("DEL", { containerId: "../../x", netns: nss[2]!, ifname: "eth0" });
    if (del2.code !== 0) assertCniError(del2, undefined, "DEL of a traversal id");
    await check(`DEL ../../x (${describe(del2)})`);
    assertEquals(await Deno.readTextFile("/etc/passwd").then((x) => x.length > 0), true);
  },
);

ownershipTest(
  "ownership 5: a config failing validation or master resolution, or a stateDir outside the state root, creates nothing",
  {},
  async ({ lab, s, roots, t }) => {
    const outside = await lab.tempDir("outside");
    const bad: [string, Json, number][] = [
      ["an unknown mode", { mode: "fast" }, 7],
      ["a missing master", { master: "nosuch0" }, 7],
      ["a bad MTU", { mtu: 70000 }, 7],
      ["a bad hostrouteif name", { hostrouteif: "a/b" }, 7],
      ["a bad logLevel", { logLevel: "loud" }, 7],
      ["a stateDir outside the state root", { stateDir: `${outside}/state` }, 7],
      ["a stateDir climbing out of the root", { stateDir: `${roots.stateRoot}/../escape` }, 7],
      // It would sit where another tenant's registry entry goes, and block it.
      ["a stateDir in the plugin's registry", {
        stateDir: `${roots.stateRoot}/.statedirs/d2f`,
      }, 7],
      ["the state root's parent", {
        stateDir: roots.stateRoot.slice(0, roots.stateRoot.lastIndexOf("/")),
      }, 7],
    ];
    for (const [what, extra, code] of bad) {
      const r = await t.add("cfg", s.ctrPath, "eth0", t.conf(extra));
      assertCniError(r, code, what);
      assert(!present(t.netDir), `${what}: created ${t.netDir}`);
      assertEquals(filesUnder(roots.stateRoot), [], `${what}: files in the state root`);
      assertEquals(
        [...Deno.readDirSync(roots.stateRoot)].map((e) => e.name),
        [],
        `${what}: state root`,
      );
      assertEquals([...Deno.readDirSync(outside)].map((e) => e.name), [], `${what}: outside dir`);
      assert(!present(`${roots.stateRoot}/../escape`), `${what}: escape dir`);
      assertEquals(await linkNames(lab, s.ctr), ["lo"], what);
      assertEquals(t.leases(), [], what);
    }
    // DEL and GC with a stateDir outside the root (a config from before the
    // root: an upgrade) succeed reading it, and write nothing there.
    for (const cmd of ["DEL", "GC"]) {
      const conf = t.conf({ stateDir: `${outside}/state` });
      const r = await t.call(cmd, { containerId: "cfg", netns: s.ctrPath }, conf);
      assertEquals(r.code, 0, `${cmd} with a stateDir outside the root: ${describe(r)}`);
      assertEquals([...Deno.readDirSync(outside)].map((e) => e.name), [], `${cmd}: outside dir`);
    }
    // The default stateDir (no key) is the root itself: accepted.
    const conf = t.conf();
    delete conf.stateDir;
    const ok = await t.add("cfg", s.ctrPath, "eth0", conf);
    assertEquals(ok.code, 0, `ADD with the default stateDir: ${describe(ok)}`);
    assert(present(`${roots.stateRoot}/tasks`), "records under the state root");
    const del = await t.call("DEL", { containerId: "cfg", netns: s.ctrPath }, {
      ...conf,
      prevResult: ok.json,
    });
    assertEquals(del.code, 0, describe(del));
    assert(!present(`${roots.stateRoot}/tasks`), "network dir removed after the last DEL");
  },
);

ownershipTest(
  "ownership 5: with a read-only state dir DEL removes link, lease and host routes, then fails naming what it could not remove",
  {},
  async ({ lab, s, roots, stateDir, t }) => {
    const [n1, n2] = await taskNamespaces(lab, s, 2) as [string, string];
    const keep = await t.addOk("keep", n2);
    const p = await t.addOk("ro", n1);
    const records = t.records();
    // `ip netns exec` gives the plugin its own mount namespace: the ro bind mount stays private.
    const wrap = [
      "sh",
      "-c",
      'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
      stateDir,
    ];
    const del = await t.call(
      "DEL",
      { containerId: p.id, netns: p.path, wrap },
      t.conf({ prevResult: p.result }),
    );
    assertCniError(del, undefined, "DEL with a read-only state dir");
    assertMatch(
      `${del.json?.msg} ${del.json?.details ?? ""}`,
      /record|state|read-only|EROFS/i,
      `the error names the record it could not remove: ${describe(del)}`,
    );
    assertEquals(await macvtaps(lab, n1), [], "link removed");
    assertEquals(await t.podRoutes(p), [], "host routes removed");
    assertEquals(
      t.leases(),
      ipsOf(keep.result).map(addrOf).sort(),
      "lease released (only keep's left)",
    );
    assertEquals(t.records(), records, "records as they were (the state dir was read-only)");
    await t.assertIntact(keep, "the other attachment");
    // Writable again: DEL finishes, GC too; no temp file anywhere, and the network dir goes.
    const again = await t.del(p);
    assertEquals(again.code, 0, `DEL again: ${describe(again)}`);
    assertNoTemp(roots, "after DEL");
    assertEquals((await t.del(keep)).code, 0, "DEL keep");
    assertEquals(t.records(), []);
    assert(!present(t.netDir), `${t.netDir} removed after the last DEL`);
    assertNoTemp(roots, "end");
  },
);

ownershipTest(
  "ownership 5: with a full state dir ADD fails leaving nothing (no partial record or temp file), DEL still removes link, lease and host routes",
  {},
  async ({ lab, s, roots, stateDir, t }) => {
    const [n1, n2] = await taskNamespaces(lab, s, 2) as [string, string];
    // A small tmpfs as the state dir, mounted for the test only.
    await Deno.mkdir(stateDir, { mode: 0o700 });
    await mountTmpfs(lab, stateDir, "64k");
    const p = await t.addOk("full1", n1);
    const records = t.records();
    await fillUp(stateDir);
    const hostRoutes = await routeSnapshot(lab, s.host);
    const leases = t.leases();
    const add = await t.add("full2", lab.path(n2));
    assertCniError(add, undefined, "ADD with a full state dir");
    assertEquals(await linkNames(lab, n2), ["lo"], "no link");
    assertEquals(t.leases(), leases, "no lease");
    assertEquals(await routeSnapshot(lab, s.host), hostRoutes, "no host route");
    assertEquals(t.records(), records, "no partial record");
    assertNoTemp(roots, "failed ADD");

    const del = await t.del(p);
    assertEquals(await macvtaps(lab, n1), [], `link removed (${describe(del)})`);
    assertEquals(await t.podRoutes(p), [], "host routes removed");
    assertEquals(t.leases(), [], "lease released");
    if (del.code === 0) assertEquals(t.records(), [], "a successful DEL removed the record");
    else assertMatch(String(del.json?.msg), /record|state|space|ENOSPC/i, describe(del));
    assertNoTemp(roots, "DEL");
  },
);

ownershipTest(
  "ownership 5: when the state root's registry cannot be written, a hostrouteif ADD fails leaving no entry (a cut entry would hide the directory's claims); with space back it registers whole",
  {},
  async ({ lab, s, roots, stateDir, t }) => {
    const [n1, n2] = await taskNamespaces(lab, s, 2) as [string, string];
    // hostrouteif is shared and kept: a witness of another state directory
    // creates it (and registers there) first.
    const witness = tenantOf({ lab, s, roots, dataDir: await lab.tempDir("ipamw") }, {
      name: "witness",
      v4: ["192.168.122.181", "192.168.122.189"],
      v6: null,
    });
    const w = await witness.addOk("w1", n2);
    // The registry on a small full tmpfs of its own; records still fit.
    const registry = `${roots.stateRoot}/.statedirs`;
    await mountTmpfs(lab, registry, "16k");
    await fillUp(registry);
    const hostRoutes = await routeSnapshot(lab, s.host);
    const add = await t.add("reg1", lab.path(n1));
    assertCniError(add, undefined, "ADD with a full registry");
    assertMatch(String(add.json?.msg), /regist/i, describe(add));
    // The registry's lock file (.lock) is no entry.
    const entriesOf = () => filesUnder(registry).filter((f) => f !== ".lock");
    assertEquals(entriesOf(), ["filler"], "no entry, not even an empty one");
    assertEquals(await linkNames(lab, n1), ["lo"], "no link");
    assertEquals(t.leases(), [], "no lease");
    assertEquals(t.records(), [], "no record");
    assertEquals(await routeSnapshot(lab, s.host), hostRoutes, "no host route");
    assertNoTemp(roots, "failed ADD");

    await Deno.remove(`${registry}/filler`);
    const p = await t.addOk("reg1", n1);
    const entries = entriesOf();
    assertEquals(entries.length, 1, `one entry: ${entries}`);
    assertEquals(await Deno.readTextFile(`${registry}/${entries[0]}`), stateDir, "whole");
    for (const [tenant, pod] of [[t, p], [witness, w]] as const) {
      const del = await tenant.del(pod);
      assertEquals(del.code, 0, describe(del));
    }
  },
);

// ---------------------------------------------------------- 6. bounded inputs

ownershipTest(
  "ownership 6: a CNI_NETNS that is a FIFO, a regular file, /dev/null or a directory is refused (103) by ADD, CHECK and DEL without blocking",
  {},
  async ({ lab, s, roots, t }) => {
    const dir = await lab.tempDir("nsfiles");
    await runOk(["mkfifo", `${dir}/fifo`]);
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.mkdir(`${dir}/dir`);
    // The prevResult names the same netns: only CNI_NETNS being no namespace is wrong.
    const prevResult = (netns: string) => ({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: netns }],
      ips: [{ address: "192.168.122.171/24", interface: 0 }],
    });
    const hostLinks = await linkNames(lab, s.host);
    const calls = [];
    for (
      const netns of [`${dir}/fifo`, `${dir}/file`, "/dev/null", `${dir}/dir`, "/proc/self/ns/mnt"]
    ) {
      for (const cmd of ["ADD", "CHECK", "DEL"]) {
        const conf = cmd === "ADD" ? t.conf() : t.conf({ prevResult: prevResult(netns) });
        calls.push(
          plugin(lab, s.host, roots, cmd, { containerId: "nsf", netns, timeoutMs: HANG_MS }, conf)
            .then((r) => [netns, cmd, r] as const),
        );
      }
    }
    for (const [netns, cmd, r] of await Promise.all(calls)) {
      assert(r.code !== 137, `${cmd} with CNI_NETNS=${netns} blocked (killed after ${HANG_MS} ms)`);
      assertCniError(r, 103, `${cmd} with CNI_NETNS=${netns}`);
    }
    assertEquals(await linkNames(lab, s.host), hostLinks, "no link created on the host");
    assertEquals(t.leases(), [], "no lease");
    assertEquals(t.records(), [], "no record");
    assertEquals(filesUnder(dir), ["fifo", "file"], "nothing written next to them");
  },
);

ownershipTest(
  "ownership 6: a kernel name template in CNI_IFNAME (eth%d) is refused (4) and creates no link",
  {},
  async ({ lab, s, t }) => {
    const hostLinks = await linkNames(lab, s.host);
    for (const ifname of ["eth%d", "%d", "e%s", "x%%", "c%d0", "%"]) {
      for (const cmd of ["ADD", "CHECK", "DEL"]) {
        const conf = cmd === "ADD" ? t.conf() : t.conf({
          prevResult: {
            cniVersion: "1.1.0",
            interfaces: [{ name: ifname, mac: "02:00:00:00:00:01", sandbox: s.ctrPath }],
            ips: [],
          },
        });
        const r = await t.call(cmd, { containerId: "tpl", netns: s.ctrPath, ifname }, conf);
        assertCniError(r, 4, `${cmd} with CNI_IFNAME=${ifname}`);
        assertEquals(await linkNames(lab, s.ctr), ["lo"], `${cmd} ${ifname}: task namespace`);
        assertEquals(await linkNames(lab, s.host), hostLinks, `${cmd} ${ifname}: host namespace`);
        assertEquals(t.leases(), [], `${cmd} ${ifname}: lease`);
        assertEquals(t.records(), [], `${cmd} ${ifname}: record`);
      }
    }
  },
);

// ---------------------------------------------------------- 7. stateful IPAM DEL

ownershipTest(
  "ownership 7: when IPAM DEL fails, DEL removes the link and host routes first, reports the IPAM error and keeps the record; GC releases it later",
  {},
  async ({ lab, s, roots, t, dataDir }) => {
    const fake = await fakeCniPath(lab);
    const tt = t.with({
      path: fake.bin,
      ipam: {
        ...hostLocal(dataDir, ["192.168.122.171", "192.168.122.179"], ["fd22::171", "fd22::179"]),
        type: "flaky",
      },
    });
    const [n1, n2] = await taskNamespaces(lab, s, 2) as [string, string];
    const keep = await tt.addOk("keep", n2);
    const p = await tt.addOk("stuck", n1);
    await Deno.writeTextFile(`${fake.dir}/fail-del`, "");
    const del = await tt.del(p);
    assertCniError(del, undefined, "DEL with a failing IPAM DEL");
    assertMatch(`${del.json?.msg} ${del.json?.details ?? ""}`, /allocator down/, describe(del));
    assertEquals(await macvtaps(lab, n1), [], "link removed before the IPAM error");
    assertEquals(await tt.podRoutes(p), [], "host routes removed before the IPAM error");
    assertEquals(tt.leases().length, 4, `the failed release keeps the lease: ${tt.leases()}`);
    assert(tt.records().length >= 2, `the record stays for GC: ${tt.records()}`);
    await tt.assertIntact(keep, "the other attachment");

    // A GC while IPAM still fails keeps it too.
    const gc1 = await tt.gc([keep]);
    assertCniError(gc1, undefined, "GC with IPAM DEL failing");
    assertEquals(tt.leases().length, 4, "still held");

    await Deno.remove(`${fake.dir}/fail-del`);
    const gc2 = await tt.gc([keep]);
    assertEquals(gc2.code, 0, `GC with IPAM working: ${describe(gc2)}`);
    assertEquals(tt.leases(), ipsOf(keep.result).map(addrOf).sort(), "released by GC");
    await tt.assertIntact(keep, "after GC");
    assertEquals((await tt.del(keep)).code, 0, "DEL keep");
    assertEquals(tt.records(), []);
    assert(!present(tt.netDir), `${tt.netDir} removed`);
    assertNoTemp(roots, "end");
  },
);
