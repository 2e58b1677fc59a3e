/**
 * Ownership chaos (issue 10): `CHAOS_OWNERSHIP` (default 100) generated
 * scenarios (`generateScenario` in `_gen.ts`) against a victim network with
 * two live attachments and an attacker network on the same node (seed 002,
 * both with `hostrouteif: macvtap1`, own state dirs under one state root).
 * Step kinds: duplicate ADDs of the victim's attachments, ADDs whose
 * (container id, ifname) collide with the victim's under some separator,
 * hostile IPAM results (special addresses, the host's own and its gateways,
 * the victim's addresses) via static IPAM and the `ips` capability, CNI_NETNS
 * that is not a network namespace (a FIFO among them: every call has a kill
 * timeout), kernel name templates in CNI_IFNAME, planted record files with
 * hostile contents followed by GC, concurrent duplicate ADDs, GCs and DEL
 * storms of the attacker network.
 *
 * Every answer is judged (`judgeStep`), and after every scenario the census
 * (`ownershipProblems`) must show the victim exactly as before (links,
 * leases, records, every host route in every table), no sentinel file
 * outside the state dirs changed, nothing a record named was run, and the
 * attacker's side empty.
 *
 * Replay: `CHAOS_SEED=<printed seed> deno test -A tests/chaos/ownership_test.ts`.
 */

import { ok as assert } from "node:assert/strict";
import { CNI_BIN, Lab, labIgnore, PLUGIN, pluginBuilt, runOk } from "../../lab/mod.ts";
import {
  fakeCniPath,
  filesUnder,
  HANG_MS,
  ipsOf,
  type Json,
  linkNames,
  routeSnapshot,
} from "../_owner.ts";
import { tenantNode, twoTenants } from "../_tenants.ts";
import { envInt, figure, runSeed } from "./_chaos.ts";
import { generateScenario, type OwnershipTarget, type Step } from "./_gen.ts";
import { judgeStep, type OwnershipCensus, ownershipProblems } from "./_oracle.ts";

const ignore = labIgnore([`${CNI_BIN}/static`, "busybox", "mkfifo"]);
const SCENARIOS = envInt("CHAOS_OWNERSHIP", 100);

Deno.test({
  name: `ownership chaos: ${SCENARIOS} generated scenarios never harm the victim network`,
  ignore,
  async fn() {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    const seed = runSeed("ownership");
    await using lab = await Lab.create({ prefix: "chaos" });
    const node = await tenantNode(lab, { defaultRoutes: true });
    const { s, roots } = node;
    const fake = await fakeCniPath(lab);
    const { x: victim, y: attacker } = twoTenants(node, ["victim", "attacker"], {
      common: { path: fake.bin },
    });
    const nets = { victim, attacker };
    const v2ns = await lab.netns("v2");
    const victims = [
      await nets.victim.addOk("v-1_x.y", s.ctr, "e-0_a.b"),
      await nets.victim.addOk("v2", v2ns, "eth0"),
    ];
    const attackerNs: string[] = [];
    for (let i = 1; i <= 4; i++) attackerNs.push(lab.path(await lab.netns(`a${i}`)));
    const odd = await lab.tempDir("notns");
    await runOk(["mkfifo", `${odd}/fifo`]);
    await Deno.writeTextFile(`${odd}/file`, "");
    await Deno.mkdir(`${odd}/dir`);
    const sentinels = [
      `${roots.stateRoot}/x`,
      `${roots.stateRoot}/x-eth0`,
      `${roots.stateRoot}/x@eth0`,
      `${roots.stateRoot}/victim/x`,
      `${fake.dir}/sentinel`,
    ];
    for (const f of sentinels) await Deno.writeTextFile(f, "keep\n");
    const target: OwnershipTarget = {
      victims: victims.map((p) => ({
        id: p.id,
        ifname: p.ifname,
        path: p.path,
        ips: ipsOf(p.result),
      })),
      attackerNs,
      notNamespaces: [`${odd}/fifo`, `${odd}/file`, `${odd}/dir`, "/dev/null"],
      hostAddrs: ["192.168.10.22/24", "fd10::22/64", "192.168.10.1/24", "fd10::1/64"],
      sentinels,
      stateDir: nets.victim.o.stateDir,
    };

    async function census(): Promise<OwnershipCensus> {
      const victimLinks: string[] = [];
      for (const p of victims) {
        for (const l of await linkNames(lab, p.ns)) victimLinks.push(`${p.ns}/${l}`);
      }
      const attackerLinks: string[] = [];
      for (const path of attackerNs) {
        const ns = path.slice(path.lastIndexOf("/") + 1);
        for (const l of await linkNames(lab, ns)) if (l !== "lo") attackerLinks.push(`${ns}/${l}`);
      }
      const sent: Record<string, string> = {};
      for (const f of sentinels) {
        try {
          sent[f] = await Deno.readTextFile(f);
        } catch (err) {
          sent[f] = `unreadable: ${err}`;
        }
      }
      const ran: string[] = [];
      for (const f of [`${fake.dir}/evil-ran`, "/tmp/pwned"]) {
        try {
          await Deno.lstat(f);
          ran.push(f);
        } catch {
          // good
        }
      }
      return {
        victimLinks: victimLinks.sort(),
        victimLeases: nets.victim.leases(),
        victimRecords: nets.victim.records(),
        hostRoutes: await routeSnapshot(lab, s.host),
        sentinels: sent,
        attackerLinks: attackerLinks.sort(),
        attackerState: [
          ...nets.attacker.records().map((f) => `record ${f}`),
          ...nets.attacker.leases().map((f) => `lease ${f}`),
        ],
        ran,
      };
    }

    async function runStep(step: Step): Promise<string[]> {
      const net = nets[step.net];
      const config: Json = step.command === "GC"
        ? net.conf({
          ...step.config,
          "cni.dev/valid-attachments": (step.valid ?? []).map((v) => ({
            containerID: v.id,
            ifname: v.ifname,
          })),
        })
        : net.conf(step.config ?? {});
      const call = (netns: string | undefined) =>
        net.call(step.command, {
          ...(step.containerId !== undefined ? { containerId: step.containerId } : {}),
          ...(step.ifname !== undefined ? { ifname: step.ifname } : {}),
          netns: netns ?? "",
          timeoutMs: HANG_MS,
        }, config);
      const calls = step.fanout
        ? await Promise.all(step.fanout.map((ns) => call(ns)))
        : [await call(step.netns)];
      const problems = calls.flatMap((c) =>
        c.code === 137 ? [`blocked: killed after ${HANG_MS} ms`] : []
      );
      problems.push(
        ...judgeStep(
          step.command,
          calls.map((c) => ({ exit: c.code, stdout: c.stdout, stderr: c.stderr })),
          step.expect,
        ).map((p) => `${p} (${calls.map((c) => c.stdout.slice(0, 300)).join(" | ")})`),
      );
      if (step.delAfter && step.command === "ADD") {
        for (const [i, c] of calls.entries()) {
          if (c.code !== 0) continue;
          const netns = step.fanout ? step.fanout[i] : step.netns;
          const del = await net.call("DEL", {
            ...(step.containerId !== undefined ? { containerId: step.containerId } : {}),
            ...(step.ifname !== undefined ? { ifname: step.ifname } : {}),
            netns: netns ?? "",
            timeoutMs: HANG_MS,
          }, net.conf({ ...step.config, prevResult: c.json }));
          if (del.code !== 0) problems.push(`DEL after the ADD failed: ${del.stdout}`);
        }
      }
      return problems;
    }

    const failures: string[] = [];
    const baseline = await census();
    let steps = 0;
    const t0 = performance.now();
    for (let index = 0; index < SCENARIOS; index++) {
      const sc = generateScenario(seed, index, target);
      const planted: string[] = [];
      const problems: string[] = [];
      for (const step of sc.steps) {
        steps++;
        if (step.plant) {
          const dir = nets[step.net].netDir;
          await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
          const path = `${dir}/${step.plant.name}`;
          try {
            await Deno.writeTextFile(path, step.plant.content, { createNew: true });
            planted.push(path);
          } catch (err) {
            if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
            continue; // a real record of that name: not ours to overwrite
          }
        }
        for (const p of await runStep(step)) problems.push(`${step.what}: ${p}`);
      }
      for (const path of planted) await Deno.remove(path).catch(() => {});
      const now = await census();
      problems.push(...ownershipProblems(baseline, now));
      if (problems.length) {
        failures.push(`scenario ${index}:\n    ${problems.join("\n    ")}`);
        // Reset the attacker's side so later scenarios are judged on their own.
        await nets.attacker.gc([]);
        for (const l of now.attackerLinks) {
          const [ns, ifname] = l.split("/") as [string, string];
          await lab.ip(ns, "link", "del", ifname).catch(() => {});
        }
        if (now.ran.includes("/tmp/pwned")) await Deno.remove("/tmp/pwned").catch(() => {});
        if (failures.length >= 10) break;
      }
    }
    const ms = performance.now() - t0;
    figure(
      "ownership",
      `${SCENARIOS} scenarios, ${steps} steps in ${(ms / 1000).toFixed(1)} s; ` +
        `${failures.length} failed (seed ${seed})`,
    );
    // The victim still works end to end after all that.
    for (const p of victims) {
      const del = await nets.victim.del(p);
      if (del.code !== 0) failures.push(`final DEL of ${p.id}: ${del.stdout}`);
    }
    if (filesUnder(nets.victim.netDir).length) {
      failures.push(`victim records left: ${filesUnder(nets.victim.netDir)}`);
    }
    if (failures.length) {
      throw new Error(
        `ownership chaos (seed ${seed}, replay with CHAOS_SEED=${seed}):\n  ${
          failures.join("\n  ")
        }`,
      );
    }
  },
});
