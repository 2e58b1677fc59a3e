/**
 * The "two tenants" lab (issue 10, seed 002 hostrouteif design): networks X
 * and Y on one node, each with its own state dir (under one state root),
 * both with `hostrouteif: macvtap1` and the same metric. X's pods ping the
 * host (and the host pings them) all the time while Y is hammered: duplicate
 * ADDs (concurrent), hostile IPAM results (X's own addresses, the host's
 * gateway and address, special addresses), ADDs reusing X's container ids,
 * GC with an empty `cni.dev/valid-attachments`, and DEL storms. X must not
 * lose a host route: `ip monitor route` in the host namespace must never
 * print the deletion of one, every ping must succeed, and X's attachments
 * must be intact (link, lease, record, CHECK) afterwards.
 *
 * Readings of the contract where it left a choice (the strictest reasonable one):
 * - "X must not lose a packet's route": no RTM_DELROUTE for an X address is
 *   ever seen, and every single ping (`-c1 -W2`, host → pod and pod → host)
 *   during the hammering succeeds.
 * - A DEL of Y naming an attachment Y never made (no record of Y), with a
 *   prevResult that lists X's addresses, must not remove X's host routes:
 *   those routes are recorded as X's, and Y cannot prove they are its own.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CNI_BIN, type CniCall, describe, type Lab, labIgnore, type Seed002 } from "../lab/mod.ts";
import { HOSTIF, labTest } from "./_hostroute_lab.ts";
import {
  addrOf,
  assertCniError,
  hostRoutesOf,
  ipsOf,
  type Json,
  linkNames,
  macvtaps,
  type Pod,
  present,
  type Roots,
  tempFiles,
  type Tenant,
} from "./_owner.ts";
import { tenantNode, twoTenants } from "./_tenants.ts";

const ignore = labIgnore([`${CNI_BIN}/static`, "busybox"]);

/** Rounds of hammering Y. */
const ROUNDS = 2;

interface Tenants {
  s: Seed002;
  roots: Roots;
  x: Tenant;
  y: Tenant;
  xs: Pod[];
}

/**
 * A test on a fresh lab with tenants X and Y (tests/_tenants.ts) and X's two
 * pods; the node has a default gateway (an address no task may take).
 */
function tenantsTest(name: string, fn: (lab: Lab, t: Tenants) => Promise<void>): void {
  labTest(name, ignore, async (lab) => {
    const node = await tenantNode(lab, { defaultRoutes: true });
    const { s, roots } = node;
    const { x, y } = twoTenants(node, ["tenx", "teny"]);
    const xs = [await x.addOk("x1", s.ctr), await x.addOk("x2", await lab.netns("x2"))];
    await fn(lab, { s, roots, x, y, xs });
  });
}

/** `ip monitor route` in the host namespace, collected until {@linkcode stop}. */
function routeMonitor(lab: Lab, host: string) {
  const child = lab.spawn(host, ["ip", "monitor", "route"], { stdout: "piped", what: "monitor" });
  let text = "";
  const done = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) text += dec.decode(chunk, { stream: true });
  })();
  return {
    /** Wait until the monitor prints events: add and delete a probe route until it shows. */
    async ready(): Promise<void> {
      for (let i = 0; i < 100 && !text.includes("198.51.100.1"); i++) {
        await lab.ip(host, "route", "add", "198.51.100.1/32", "dev", "eth0");
        await lab.ip(host, "route", "del", "198.51.100.1/32", "dev", "eth0");
        await new Promise((r) => setTimeout(r, 50));
      }
      if (!text.includes("198.51.100.1")) throw new Error("ip monitor route printed nothing");
    },
    async stop(): Promise<string> {
      await lab.stop(child);
      await done.catch(() => {});
      return text;
    },
  };
}

/** Deletions of host routes of `addrs` in `monitor` output. */
function deletions(monitor: string, addrs: readonly string[]): string[] {
  return monitor.split("\n").filter((l) =>
    l.startsWith("Deleted") &&
    addrs.some((a) => l.split(/\s+/).some((w) => w === a || w === `${a}/32` || w === `${a}/128`))
  );
}

/** Ping X's pods from the host and the host from X's pods until `stop()`. */
function pinger(lab: Lab, s: Seed002, xs: readonly Pod[]) {
  let running = true;
  const failures: string[] = [];
  let count = 0;
  const loop = (async () => {
    while (running) {
      for (const p of xs) {
        for (const ip of ipsOf(p.result)) {
          const a = addrOf(ip);
          const r = await lab.exec(s.host, ["busybox", "ping", "-c1", "-W2", a]);
          count++;
          if (!r.success) failures.push(`host → ${p.id} ${a}: ${r.stdout}${r.stderr}`);
        }
        for (const hostIp of ["192.168.10.22", "fd10::22"]) {
          const r = await lab.exec(p.ns, ["busybox", "ping", "-c1", "-W2", hostIp]);
          count++;
          if (!r.success) failures.push(`${p.id} → host ${hostIp}: ${r.stdout}${r.stderr}`);
        }
      }
    }
  })();
  return {
    async stop(): Promise<{ count: number; failures: string[] }> {
      running = false;
      await loop;
      return { count, failures };
    },
  };
}

async function assertXIntact(t: Tenants, what: string): Promise<void> {
  for (const p of t.xs) {
    await t.x.assertIntact(p, what);
    const check = await t.x.call(
      "CHECK",
      { containerId: p.id, netns: p.path, ifname: p.ifname },
      t.x.conf({ prevResult: p.result }),
    );
    assertEquals(check.code, 0, `${what}: CHECK ${p.id}: ${describe(check)}`);
  }
}

function staticIpam(...addresses: string[]): Json {
  return { type: "static", addresses: addresses.map((address) => ({ address })) };
}

tenantsTest(
  "two tenants: X keeps every host route and ping while Y gets duplicate ADDs, hostile IPAM results, empty-list GCs and DEL storms",
  async (lab, t) => {
    const { s, x, y, xs } = t;
    const xAddrs = xs.flatMap((p) => ipsOf(p.result)).map(addrOf);
    const yNs: string[] = [];
    for (let i = 1; i <= 6; i++) yNs.push(await lab.netns(`y${i}`));
    const monitor = routeMonitor(lab, s.host);
    await monitor.ready();
    const ping = pinger(lab, s, xs);
    const problems: string[] = [];
    const expectFail = (
      c: CniCall,
      code: number | undefined,
      what: string,
    ) => {
      try {
        assertCniError(c, code, what);
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    };

    try {
      for (let round = 0; round < ROUNDS; round++) {
        // Y's own pods, one of them with X's container id and ifname (another network: allowed).
        const y1 = await y.addOk("y1", yNs[0]!);
        const yx = await y.addOk("x1", yNs[1]!);

        // Concurrent duplicate ADDs of y1 into four other namespaces: all refused.
        const dups = await Promise.all(yNs.slice(2).map((ns) => y.add("y1", lab.path(ns))));
        dups.forEach((d, i) => expectFail(d, undefined, `round ${round}: duplicate ADD ${i}`));

        // Hostile IPAM results: X's addresses, the host's, special ones; via config and `ips`.
        const hostile = [
          ...xs.flatMap((p) => ipsOf(p.result)),
          "192.168.10.22/24",
          "192.168.10.1/24",
          "fd10::1/64",
          "0.0.0.0/0",
          "224.0.0.1/24",
          "255.255.255.255/32",
          "fe80::1/64",
        ];
        // Each its own attachment (id, ifname), so only the address decides.
        const bad = await Promise.all(hostile.flatMap((a, i) => [
          y.add(`h${round}-${i}`, lab.path(yNs[5]!), `h${i}`, y.conf({ ipam: staticIpam(a) })),
          y.add(
            `r${round}-${i}`,
            lab.path(yNs[4]!),
            `r${i}`,
            y.conf({
              ipam: { type: "static" },
              runtimeConfig: { ips: [a] },
            }),
          ),
        ]));
        bad.forEach((b, i) => expectFail(b, 7, `round ${round}: hostile ${hostile[i >> 1]}`));

        // GC of Y with an empty list, twice, while X is live.
        for (let k = 0; k < 2; k++) {
          const gc = await y.gc([]);
          if (gc.code !== 0) problems.push(`round ${round}: GC of Y failed: ${describe(gc)}`);
        }
        for (const p of [y1, yx]) {
          if ((await macvtaps(lab, p.ns)).length) problems.push(`GC left ${p.id}'s link`);
        }

        // DEL storm on Y: its pods again, X's ids (in Y), ids it never had; all at once.
        const dels = await Promise.all([
          y.del(y1),
          y.del(yx),
          ...xs.map((p) =>
            y.call("DEL", { containerId: p.id, netns: lab.path(yNs[2]!), ifname: "eth0" })
          ),
          ...Array.from(
            { length: 8 },
            (_, i) =>
              y.call("DEL", { containerId: `ghost${i}`, netns: lab.path(yNs[3]!), ifname: "eth0" }),
          ),
          y.gc([]),
        ]);
        dels.forEach((d, i) => {
          if (d.code !== 0) {
            problems.push(`round ${round}: DEL storm call ${i} failed: ${describe(d)}`);
          }
        });
        try {
          await assertXIntact(t, `round ${round}`);
        } catch (err) {
          problems.push(err instanceof Error ? err.message : String(err));
          break;
        }
        assertEquals(y.records(), [], `round ${round}: Y has no record`);
        assertEquals(y.leases(), [], `round ${round}: Y has no lease`);
        assert(!present(y.netDir), `round ${round}: ${y.netDir} removed`);
        for (const ns of yNs) {
          assertEquals(await linkNames(lab, ns), ["lo"], `round ${round}: ${ns} is empty`);
        }
      }
    } finally {
      const pings = await ping.stop();
      const mon = await monitor.stop();
      problems.push(...pings.failures);
      problems.push(...deletions(mon, xAddrs).map((l) => `X lost a host route: ${l}`));
      assert(pings.count > 0, "the pinger ran");
    }
    assertEquals(problems, [], "X was disturbed or Y answered wrongly");
    await assertXIntact(t, "end");
    for (const a of xAddrs) {
      assertEquals(
        (await hostRoutesOf(lab, s.host, a)).filter((r) => r.includes(HOSTIF)).length,
        1,
        `one host route for ${a}`,
      );
    }
    assertEquals(tempFiles(t.roots.stateRoot), [], "temporary files");
    for (const p of xs) assertEquals((await x.del(p)).code, 0, `DEL ${p.id}`);
    assertEquals(x.records(), []);
    assertEquals(x.leases(), []);
    for (const a of xAddrs) assertEquals(await hostRoutesOf(lab, s.host, a), [], a);
  },
);

tenantsTest(
  "two tenants: a DEL of Y with a prevResult listing X's addresses (no record of Y) leaves X's host routes",
  async (lab, t) => {
    const { s, y, xs } = t;
    const ns = await lab.netns("y1");
    const monitor = routeMonitor(lab, s.host);
    await monitor.ready();
    let mon = "";
    try {
      for (const p of xs) {
        // The attachment Y "had": X's result, relabelled for Y's namespace.
        const prev = {
          ...p.result,
          interfaces: [{ name: "eth0", sandbox: lab.path(ns) }],
        };
        const del = await y.call(
          "DEL",
          { containerId: `forged-${p.id}`, netns: lab.path(ns), ifname: "eth0" },
          y.conf({ prevResult: prev }),
        );
        assertEquals(del.code, 0, `DEL with a forged prevResult: ${describe(del)}`);
        const gone = await y.call(
          "DEL",
          { containerId: `forged-${p.id}`, netns: "", ifname: "eth0" },
          y.conf({ prevResult: p.result }),
        );
        assertEquals(gone.code, 0, `DEL with a forged prevResult, netns gone: ${describe(gone)}`);
      }
    } finally {
      mon = await monitor.stop();
    }
    const xAddrs = xs.flatMap((p) => ipsOf(p.result)).map(addrOf);
    assertEquals(deletions(mon, xAddrs), [], "X's host routes were deleted");
    await assertXIntact(t, "after the forged DELs");
  },
);
