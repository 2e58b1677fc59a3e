/**
 * Bad input: at least 10,000 generated invocations (malformed JSON, wrong
 * types, unknown modes, MTU out of range, missing or non-existent master,
 * bad MACs and CIDRs, oversized or illegal CNI_IFNAME, missing netns,
 * `ipam.type` with `/` or `..`, unknown CNI_ARGS keys, wrong cniVersion,
 * inputs of several MB, deep nesting, NUL bytes — see `_gen.ts`). Every run
 * either succeeds (and is deleted again) or prints spec error JSON with a
 * legal code — the right one where the input decides it — and a non-zero
 * exit; never a stack trace. After every batch the lab holds no link, lease,
 * host route or record.
 *
 * Why two paths: one exec of `dist/macvtap` costs ~30–60 ms of CPU (Deno's
 * start-up floor is ~22 ms), so 10,000 execs on 2 cores take minutes even
 * 12 at a time. The 10,000 (`CHAOS_BAD_INPUTS`) therefore run through
 * `runSkel` of cni/skel.ts, wired exactly as cmd/cni.ts wires the executable
 * and fed injected env/stdin/stdout — the same code from env validation to
 * the error JSON, minus process start — in worker processes inside the lab's
 * host namespace (`_inproc.ts`, `CHAOS_WORKERS` of them, `CHAOS_BATCH` cases
 * each, leftovers checked after every round). Then a few hundred
 * (`CHAOS_EXEC_RUNS`) go through the real executable, `CHAOS_CONCURRENCY` at
 * a time, which also covers what only a process shows: stdout framing, exit
 * codes, crashes on stderr, stdin larger than the pipe.
 *
 * Replay: `CHAOS_SEED=<printed seed> deno test -A tests/chaos/bad_input_test.ts`.
 */

import { ok as assert } from "node:assert/strict";
import { CNI_BIN, Lab, labIgnore, PLUGIN, pluginBuilt } from "../../lab/mod.ts";
import { envInt, figure, leftovers, pool, runSeed } from "./_chaos.ts";
import { generate, type GenTarget } from "./_gen.ts";
import type { Job, Summary } from "./_inproc.ts";
import { judge } from "./_oracle.ts";

const ignore = labIgnore();
const WORKER = new URL("./_inproc.ts", import.meta.url).pathname;

const IN_PROCESS = envInt("CHAOS_BAD_INPUTS", 10_000);
const WORKERS = Math.max(1, envInt("CHAOS_WORKERS", 2));
const BATCH = Math.max(1, envInt("CHAOS_BATCH", 1250));
const EXEC_RUNS = envInt("CHAOS_EXEC_RUNS", 300);
const CONCURRENCY = Math.max(1, envInt("CHAOS_CONCURRENCY", 12));
const EXEC_BATCH = 100;

interface Problem {
  where: string;
  index?: number;
  mutations?: string[];
  problem: string;
  stdout?: string;
}

function show(p: Problem): string {
  return `${p.where}${p.index !== undefined ? ` case ${p.index}` : ""}` +
    `${p.mutations ? ` [${p.mutations.join("; ")}]` : ""}: ${p.problem}` +
    `${p.stdout ? `\n    stdout: ${p.stdout.slice(0, 300)}` : ""}`;
}

Deno.test({
  name: "bad input: ≥10,000 generated invocations answer per spec and leave nothing behind",
  ignore,
  async fn() {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    const seed = runSeed("bad input");
    await using lab = await Lab.create({ prefix: "chaos" });
    const l = await lab.simple();
    // A default route, so a config without `master` has one to find.
    await lab.ip(l.host, "route", "add", "default", "dev", l.master);
    await lab.veth(l.host, "pt0", l.peer, "pt0p");
    const dataDir = await lab.tempDir("ipam");
    const stateDir = await lab.tempDir("state");
    const jobDir = await lab.tempDir("jobs");
    const hostrouteifs = ["hr0", "hr1"];
    const census = {
      host: l.host,
      ctrs: [l.ctr],
      dataDir,
      stateDir,
      hostLinks: new Set(hostrouteifs),
    };
    const target = (tag: string, execSafe: boolean): GenTarget => ({
      master: l.master,
      passthruMaster: "pt0",
      ctrPath: l.ctrPath,
      dataDir,
      stateDir,
      cniPath: CNI_BIN,
      hostrouteifs,
      execSafe,
      tag,
    });

    const problems: Problem[] = [];
    const seenLeft = new Set<string>();
    async function checkLeft(where: string): Promise<void> {
      for (const x of await leftovers(lab, census)) {
        if (seenLeft.has(x)) continue;
        seenLeft.add(x);
        problems.push({ where, problem: `left behind: ${x}` });
      }
    }

    // 1. In-process through runSkel, WORKERS processes at a time.
    const byCode: Record<string, number> = {};
    let runs = 0, succeeded = 0;
    const t0 = performance.now();
    let next = 0, round = 0;
    while (next < IN_PROCESS) {
      const jobs: Job[] = [];
      for (let w = 0; w < WORKERS && next < IN_PROCESS; w++) {
        const count = Math.min(BATCH, IN_PROCESS - next);
        jobs.push({
          seed,
          start: next,
          count,
          target: target(`w${w}`, false),
          out: `${jobDir}/r${round}w${w}.json`,
        });
        next += count;
      }
      const results = await Promise.all(
        jobs.map((job) =>
          lab.exec(l.host, [Deno.execPath(), "run", "-A", "-q", WORKER, JSON.stringify(job)], {
            timeoutMs: 600_000,
          })
        ),
      );
      for (const [k, r] of results.entries()) {
        const job = jobs[k]!;
        if (!r.success) {
          problems.push({
            where: `worker ${job.start}…${job.start + job.count - 1}`,
            problem: `worker crashed (exit ${r.code}): ${r.stderr.slice(-1500)}`,
          });
          continue;
        }
        const s = JSON.parse(await Deno.readTextFile(job.out)) as Summary;
        runs += s.runs;
        succeeded += s.succeeded;
        for (const [c, n] of Object.entries(s.byCode)) byCode[c] = (byCode[c] ?? 0) + n;
        for (const p of s.problems) problems.push({ where: "in-process", ...p });
      }
      await checkLeft(`after in-process round ${round}`);
      round++;
    }
    const inMs = performance.now() - t0;
    figure(
      "bad input, in-process (runSkel)",
      `${IN_PROCESS} cases, ${runs} invocations incl. DELs, ${succeeded} succeeded, ` +
        `in ${(inMs / 1000).toFixed(1)} s = ${(IN_PROCESS / inMs * 1000).toFixed(0)} cases/s ` +
        `(${WORKERS} workers); error codes ${JSON.stringify(byCode)}`,
    );

    // 2. The real executable, CONCURRENCY at a time.
    const execCodes: Record<string, number> = {};
    let execOk = 0, execInvocations = 0;
    const t1 = performance.now();
    for (let b = 0; b < EXEC_RUNS; b += EXEC_BATCH) {
      const indexes = Array.from(
        { length: Math.min(EXEC_BATCH, EXEC_RUNS - b) },
        (_, k) => IN_PROCESS + b + k,
      );
      await pool(indexes, CONCURRENCY, async (index) => {
        const c = generate(seed, index, target("x", true));
        const env = Object.fromEntries(
          Object.entries(c.env).filter((e): e is [string, string] => e[1] !== undefined),
        );
        const r = await lab.exec(l.host, [PLUGIN], { stdin: c.stdin, env, clearEnv: true });
        execInvocations++;
        const out = { exit: r.code, stdout: r.stdout, stderr: r.stderr };
        let problem = judge(c.env.CNI_COMMAND, out, c.expect);
        if (r.code === 0) execOk++;
        else {
          let code = "?";
          try {
            code = String(JSON.parse(r.stdout).code);
          } catch {
            // judged
          }
          execCodes[code] = (execCodes[code] ?? 0) + 1;
        }
        if (r.code === 0 && c.env.CNI_COMMAND === "ADD") {
          const del = await lab.exec(l.host, [PLUGIN], {
            stdin: c.stdin,
            env: { ...env, CNI_COMMAND: "DEL" },
            clearEnv: true,
          });
          execInvocations++;
          if (del.code !== 0) {
            problem = `${problem ?? ""}; DEL after a successful ADD failed: ${del.stdout}`;
          }
        }
        if (problem) {
          problems.push({
            where: "exec",
            index,
            mutations: c.mutations,
            problem,
            stdout: r.stdout.slice(0, 600) +
              (r.stderr ? `\n    stderr: ${r.stderr.slice(0, 400)}` : ""),
          });
        }
      });
      await checkLeft(`after exec batch ${b / EXEC_BATCH}`);
    }
    const exMs = performance.now() - t1;
    figure(
      "bad input, dist/macvtap",
      `${EXEC_RUNS} cases, ${execInvocations} execs incl. DELs, ${execOk} succeeded, in ` +
        `${(exMs / 1000).toFixed(1)} s = ${(execInvocations / exMs * 1000).toFixed(1)} execs/s ` +
        `(${CONCURRENCY} concurrent); error codes ${JSON.stringify(execCodes)}`,
    );
    figure("bad input", `${problems.length} problems (seed ${seed})`);
    // Sanity: the suite exercised both answers.
    assert(
      succeeded > 0 || IN_PROCESS === 0,
      "no generated case succeeded: the base config is broken",
    );

    if (problems.length) {
      const shown = problems.slice(0, 25).map(show).join("\n  ");
      throw new Error(
        `${problems.length} bad-input problems (seed ${seed}, replay with CHAOS_SEED=${seed}):\n  ${shown}`,
      );
    }
  },
});
