/**
 * Storm: `CHAOS_STORM` (default 200) concurrent ADDs, then as many
 * concurrent DELs, on one master with host-local and hostrouteif (every ADD
 * races to create the shared `hr0`). Each task has its own container
 * namespace. `CHAOS_STORM_CONCURRENCY` (default: all of them) processes run
 * at once: 200 plugin processes on 2 cores take ~20 s and ~8 GB. Zero failures, zero
 * leftovers, every task a unique address, and a host route per task while
 * it lives. Throughput is compared with the reference `/usr/lib/cni/macvlan`
 * doing the same in the same lab (without hostrouteif, which it lacks).
 */

import { equal, ok as assert } from "node:assert/strict";
import {
  cni,
  CNI_BIN,
  type CniCall,
  describe,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
} from "../../lab/mod.ts";
import { envInt, figure, leftovers, pool } from "./_chaos.ts";

const ignore = labIgnore([`${CNI_BIN}/macvlan`]);
const TASKS = envInt("CHAOS_STORM", 200);
const CONCURRENCY = Math.max(1, envInt("CHAOS_STORM_CONCURRENCY", TASKS));

type Json = Record<string, unknown>;

interface Phase {
  ms: number;
  failures: string[];
  calls: CniCall[];
}

Deno.test({
  name:
    `storm: ${TASKS} concurrent ADDs then DELs with host-local and hostrouteif, against macvlan`,
  ignore,
  async fn() {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    await using lab = await Lab.create({ prefix: "chaos" });
    const l = await lab.simple();
    const ctrs: string[] = [];
    for (let i = 0; i < TASKS; i++) ctrs.push(await lab.netns(`t${i}`));
    const stateDir = await lab.tempDir("state");

    async function storm(
      bin: string,
      config: Json,
      between: () => Promise<void>,
    ): Promise<{ add: Phase; del: Phase; addrs: string[] }> {
      const run = async (command: string): Promise<Phase> => {
        const t0 = performance.now();
        const calls = await pool(ctrs, CONCURRENCY, (ns, i) =>
          cni(
            lab,
            l.host,
            { command, containerId: `storm-${i}`, netns: lab.path(ns), ifname: "eth0" },
            config,
            bin,
          ));
        const ms = performance.now() - t0;
        const failures = calls.flatMap((c, i) => c.code === 0 ? [] : [`task ${i}: ${describe(c)}`]);
        return { ms, failures, calls };
      };
      const add = await run("ADD");
      const addrs = add.calls.flatMap((c) =>
        ((c.json?.ips as Json[] | undefined) ?? []).map((ip) => String(ip.address))
      );
      await between();
      const del = await run("DEL");
      return { add, del, addrs };
    }

    const ipam = (dataDir: string): Json => ({
      type: "host-local",
      ranges: [[{ subnet: "10.100.0.0/22" }]],
      dataDir,
    });

    // Ours.
    const ourData = await lab.tempDir("ipam");
    const ours = await storm(PLUGIN, {
      cniVersion: "1.0.0",
      name: "storm",
      type: "macvtap",
      master: l.master,
      hostrouteif: "hr0",
      stateDir,
      ipam: ipam(ourData),
    }, async () => {
      // While the tasks live: one host route each, via hr0.
      const routes = (await lab.ip(l.host, "route", "show", "proto", "249")).trim().split("\n");
      equal(routes.filter((r) => / dev hr0 /.test(r)).length, TASKS, routes.join("\n"));
    });
    const ourLeft = await leftovers(lab, {
      host: l.host,
      ctrs,
      dataDir: ourData,
      stateDir,
      hostLinks: new Set(["hr0"]),
    });

    // The reference, same lab, same concurrency.
    const refData = await lab.tempDir("refipam");
    const ref = await storm(`${CNI_BIN}/macvlan`, {
      cniVersion: "1.0.0",
      name: "stormref",
      type: "macvlan",
      master: l.master,
      mode: "bridge",
      ipam: ipam(refData),
    }, async () => {});

    const rate = (p: Phase) => (TASKS / p.ms) * 1000;
    figure(
      "storm",
      `${TASKS} tasks, ${CONCURRENCY} concurrent: ours ADD ${rate(ours.add).toFixed(1)} ops/s, ` +
        `DEL ${rate(ours.del).toFixed(1)} ops/s; macvlan ADD ${rate(ref.add).toFixed(1)} ops/s, ` +
        `DEL ${rate(ref.del).toFixed(1)} ops/s; ADD+DEL throughput ratio ours/macvlan ` +
        `${((ref.add.ms + ref.del.ms) / (ours.add.ms + ours.del.ms)).toFixed(2)} ` +
        `(macvlan is ${
          ((ours.add.ms + ours.del.ms) / (ref.add.ms + ref.del.ms)).toFixed(1)
        }× faster)`,
    );

    const failures = [...ours.add.failures, ...ours.del.failures];
    equal(
      failures.length,
      0,
      `${failures.length} failed calls:\n${failures.slice(0, 10).join("\n")}`,
    );
    equal(ours.addrs.length, TASKS, "one address per task");
    equal(new Set(ours.addrs).size, TASKS, "every task a unique address");
    equal(ourLeft.length, 0, `left behind:\n  ${ourLeft.slice(0, 30).join("\n  ")}`);
    equal(ref.add.failures.length + ref.del.failures.length, 0, "the reference failed too");
  },
});
