/**
 * Faults during ADD and between ADD and DEL. After each, a DEL (same
 * container id and ifname) or a GC (`cni.dev/valid-attachments: []`) must
 * bring the lab back to zero leftovers: links, host-local leases, host routes
 * (protocol 249), hostrouteif records.
 *
 * - IPAM fails at ADD (a fake IPAM in a temp CNI_PATH dir): its code passes
 *   through, the ADD rolls back.
 * - IPAM hangs at ADD: `ipamTimeoutMs` bounds it; the child is killed.
 * - The container namespace vanishes mid-ADD (a fake IPAM deletes it, then
 *   execs host-local).
 * - The master vanishes between ADD and DEL (and between ADD and GC).
 * - SIGKILL at a random point of ADD (`CHAOS_KILLS` iterations, delay
 *   uniform in 0…`CHAOS_KILL_MAX_MS`, default 60 ms, or 1.25× the measured
 *   ADD time if longer, so some ADDs finish), cleaned up by DEL and GC alternately.
 */

import { equal, ok as assert } from "node:assert/strict";
import {
  cni,
  type CniCall,
  cniEnv,
  describe,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
} from "../../lab/mod.ts";
import {
  type Census,
  envInt,
  figure,
  leftovers,
  runSeed,
  stats,
  waitNoPids,
  writeScript,
} from "./_chaos.ts";
import { errorJsonProblem, Rng } from "./_oracle.ts";

const ignore = labIgnore();
const KILLS = envInt("CHAOS_KILLS", 40);
const KILL_MAX_MS = envInt("CHAOS_KILL_MAX_MS", 60);

type Json = Record<string, unknown>;

interface Rig {
  lab: Lab;
  host: string;
  peer: string;
  dataDir: string;
  stateDir: string;
  cniPath: string;
  base: Json;
}

async function rig(lab: Lab): Promise<Rig> {
  const l = await lab.simple();
  const dataDir = await lab.tempDir("ipam");
  const stateDir = await lab.tempDir("state");
  const fake = await lab.tempDir("bin");
  await writeScript(
    fake,
    "fail-ipam",
    `#!/bin/sh
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","code":117,"msg":"fake IPAM failure","details":"injected by the chaos suite"}'
exit 1
`,
  );
  await writeScript(
    fake,
    "hang-ipam",
    `#!/bin/sh
[ "$CNI_COMMAND" = ADD ] || exit 0
exec sleep 3600
`,
  );
  await writeScript(
    fake,
    "vanish-ipam",
    `#!/bin/sh
# Delete the container namespace, then allocate as host-local would.
[ "$CNI_COMMAND" = ADD ] && ip netns del "$(basename "$CNI_NETNS")"
exec /usr/lib/cni/host-local
`,
  );
  const base: Json = {
    cniVersion: "1.0.0",
    name: "faultnet",
    type: "macvtap",
    master: l.master,
    hostrouteif: "hr0",
    stateDir,
    ipamTimeoutMs: 1500,
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: "10.99.0.0/24", rangeStart: "10.99.0.10", rangeEnd: "10.99.0.250" }]],
      dataDir,
    },
  };
  return {
    lab,
    host: l.host,
    peer: l.peer,
    dataDir,
    stateDir,
    cniPath: `${fake}:/usr/lib/cni`,
    base,
  };
}

function census(r: Rig, ctrs: string[]): Census {
  return {
    host: r.host,
    ctrs,
    dataDir: r.dataDir,
    stateDir: r.stateDir,
    hostLinks: new Set(["hr0"]),
  };
}

async function call(
  r: Rig,
  command: string,
  id: string,
  ns: string,
  config: Json,
): Promise<CniCall> {
  return await cni(
    r.lab,
    r.host,
    { command, containerId: id, netns: ns, ifname: "eth0", path: r.cniPath },
    config,
  );
}

function gcConfig(r: Rig): Json {
  return { ...r.base, cniVersion: "1.1.0", "cni.dev/valid-attachments": [] };
}

async function assertClean(r: Rig, ctrs: string[], what: string): Promise<void> {
  const left = await leftovers(r.lab, census(r, ctrs));
  equal(left.length, 0, `${what}: left behind:\n  ${left.join("\n  ")}`);
}

function assertSpecError(c: CniCall, code?: number): void {
  assert(c.code !== 0, `expected an error: ${describe(c)}`);
  const problem = errorJsonProblem(c.stdout.trim());
  assert(!problem, `${problem}: ${describe(c)}`);
  if (code !== undefined) equal(c.json?.code, code, describe(c));
}

Deno.test({
  name: "faults: IPAM fails or hangs at ADD, netns and master vanish; DEL/GC leave nothing",
  ignore,
  async fn(t) {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    await using lab = await Lab.create({ prefix: "chaos" });
    const r = await rig(lab);

    await t.step("IPAM fails at ADD ⇒ its code, rolled back; DEL succeeds", async () => {
      const ns = await lab.netns("fail");
      const conf = { ...r.base, ipam: { type: "fail-ipam" } };
      const add = await call(r, "ADD", "f1", lab.path(ns), conf);
      assertSpecError(add, 117);
      await assertClean(r, [ns], "after the failed ADD");
      const del = await call(r, "DEL", "f1", lab.path(ns), conf);
      equal(del.code, 0, describe(del));
      await assertClean(r, [ns], "after DEL");
    });

    await t.step(
      "IPAM hangs at ADD ⇒ timeout error within ipamTimeoutMs, child killed",
      async () => {
        const ns = await lab.netns("hang");
        const conf = { ...r.base, ipamTimeoutMs: 800, ipam: { type: "hang-ipam" } };
        const t0 = performance.now();
        const add = await call(r, "ADD", "h1", lab.path(ns), conf);
        const ms = performance.now() - t0;
        assertSpecError(add, 102);
        assert(ms < 5000, `ADD took ${ms.toFixed(0)} ms with ipamTimeoutMs 800`);
        const survivors = await waitNoPids(r.host, 2000);
        equal(survivors.length, 0, `processes left in the host namespace: ${survivors}`);
        await assertClean(r, [ns], "after the timed-out ADD");
        const del = await call(r, "DEL", "h1", lab.path(ns), conf);
        equal(del.code, 0, describe(del));
        await assertClean(r, [ns], "after DEL");
        figure("faults", `hanging IPAM answered in ${ms.toFixed(0)} ms (ipamTimeoutMs 800)`);
      },
    );

    for (const cleanup of ["DEL", "GC"] as const) {
      await t.step(`namespace vanishes mid-ADD ⇒ ${cleanup} cleans up`, async () => {
        const ns = await lab.netns(`van${cleanup.toLowerCase()}`);
        const conf = { ...r.base, ipam: { ...(r.base.ipam as Json), type: "vanish-ipam" } };
        const add = await call(r, "ADD", `v-${cleanup}`, lab.path(ns), conf);
        if (add.code !== 0) assertSpecError(add);
        const c = cleanup === "DEL"
          ? await call(r, "DEL", `v-${cleanup}`, lab.path(ns), conf)
          : await call(r, "GC", "", "", { ...gcConfig(r), ipam: conf.ipam });
        equal(c.code, 0, `${cleanup}: ${describe(c)}`);
        await assertClean(r, [ns], `after ${cleanup}`);
        figure(
          "faults",
          `netns vanished mid-ADD: ADD exit ${add.code} ${add.stdout.slice(0, 160)}`,
        );
      });

      await t.step(`master vanishes between ADD and ${cleanup}`, async () => {
        const ns = await lab.netns(`mst${cleanup.toLowerCase()}`);
        const add = await call(r, "ADD", `m-${cleanup}`, lab.path(ns), r.base);
        equal(add.code, 0, describe(add));
        await lab.ip(r.host, "link", "del", "lab0");
        try {
          const c = cleanup === "DEL"
            ? await call(r, "DEL", `m-${cleanup}`, lab.path(ns), r.base)
            : await call(r, "GC", "", "", gcConfig(r));
          equal(c.code, 0, `${cleanup}: ${describe(c)}`);
          await assertClean(r, [ns], `after ${cleanup}`);
        } finally {
          await lab.veth(r.host, "lab0", r.peer, "lab0p");
        }
      });
    }
  },
});

Deno.test({
  name: "faults: SIGKILL at random points of ADD; DEL or GC leaves nothing",
  ignore,
  async fn() {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    const seed = runSeed("SIGKILL");
    const rng = new Rng(seed);
    await using lab = await Lab.create({ prefix: "chaos" });
    const r = await rig(lab);
    const ns = await lab.netns("kill");
    const nsPath = lab.path(ns);

    // How long an undisturbed ADD takes here, to spread the kills over it.
    const durations: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const add = await call(r, "ADD", `probe${i}`, nsPath, r.base);
      durations.push(performance.now() - t0);
      equal(add.code, 0, describe(add));
      const del = await call(r, "DEL", `probe${i}`, nsPath, r.base);
      equal(del.code, 0, describe(del));
    }
    const addMs = stats(durations).p50;
    const maxDelay = Math.max(KILL_MAX_MS, Math.ceil(addMs * 1.25));

    let killed = 0, finished = 0, byDel = 0, byGc = 0, midway = 0;
    const failures: string[] = [];
    for (let i = 0; i < KILLS; i++) {
      const id = `kill${i}`;
      const delay = rng.int(maxDelay + 1);
      const child = new Deno.Command("ip", {
        args: ["netns", "exec", r.host, PLUGIN],
        env: cniEnv({
          command: "ADD",
          containerId: id,
          netns: nsPath,
          ifname: "eth0",
          path: r.cniPath,
        }),
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(JSON.stringify(r.base))).catch(() => {});
      await w.close().catch(() => {});
      await new Promise((res) => setTimeout(res, delay));
      try {
        child.kill("SIGKILL");
      } catch {
        // finished already
      }
      const out = await child.output();
      if (out.signal === "SIGKILL") killed++;
      else finished++;
      // An orphaned IPAM child may still be allocating: let it finish first.
      await waitNoPids(r.host, 5000);
      if (out.signal === "SIGKILL" && (await leftovers(lab, census(r, [ns]))).length) midway++;
      const useGc = i % 2 === 1;
      const c = useGc
        ? await call(r, "GC", "", "", gcConfig(r))
        : await call(r, "DEL", id, nsPath, r.base);
      if (useGc) byGc++;
      else byDel++;
      if (c.code !== 0) {
        failures.push(`#${i} (kill at ${delay} ms): ${useGc ? "GC" : "DEL"} failed: ${c.stdout}`);
      }
      const left = await leftovers(lab, census(r, [ns]));
      if (left.length) {
        failures.push(
          `#${i} (kill at ${delay} ms, ${useGc ? "GC" : "DEL"}): left ${left.join("; ")}`,
        );
        // Clean by hand so the next iteration is judged on its own.
        await lab.exec(ns, [
          "sh",
          "-c",
          "for l in $(ip -o link show type macvtap | cut -d: -f2 | cut -d@ -f1); do ip link del $l; done",
        ]);
        await lab.ip(r.host, "route", "flush", "proto", "249");
        await lab.ip(r.host, "-6", "route", "flush", "proto", "249");
        await Deno.remove(r.dataDir, { recursive: true }).catch(() => {});
        await Deno.mkdir(r.dataDir);
        await Deno.remove(r.stateDir, { recursive: true }).catch(() => {});
        await Deno.mkdir(r.stateDir);
      }
    }
    figure(
      "SIGKILL",
      `${KILLS} ADDs killed after 0–${maxDelay} ms (undisturbed ADD p50 ${addMs.toFixed(0)} ms): ` +
        `${killed} killed (${midway} of them with side effects to undo), ${finished} finished first; cleaned by DEL ${byDel}, GC ${byGc}; ` +
        `${failures.length} failures`,
    );
    equal(failures.length, 0, `seed ${seed}:\n  ${failures.slice(0, 20).join("\n  ")}`);
  },
});
