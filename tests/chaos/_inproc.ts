/**
 * In-process bad-input worker (not a test file). Run inside the lab's host
 * namespace by `bad_input_test.ts`:
 *
 *     ip netns exec HOST deno run -A tests/chaos/_inproc.ts '<json job>'
 *
 * For cases `start … start+count-1` of the generator it calls `runSkel` of
 * cni/skel.ts with the handlers wired exactly as cmd/cni.ts wires them, with
 * injected env, stdin and stdout: the plugin's code path minus the process
 * start. Successful ADDs are deleted again (same env and stdin, DEL). Writes
 * a JSON summary to the file `out`.
 *
 * @module
 */

import { runSkel } from "../../cni/skel.ts";
import { cniHandlers } from "../../cmd/cni.ts";
import { generate, type GenTarget } from "./_gen.ts";
import { judge } from "./_oracle.ts";
import { TEST_ROOTS } from "../../lab/mod.ts";

// The plugin's roots come from the process environment (the runtime's).
for (const [k, v] of Object.entries(TEST_ROOTS)) Deno.env.set(k, v);

/** What the test hands the worker. */
export interface Job {
  seed: number;
  start: number;
  count: number;
  target: GenTarget;
  out: string;
}

/** What the worker reports. */
export interface Summary {
  runs: number;
  succeeded: number;
  failed: number;
  byCode: Record<string, number>;
  problems: { index: number; mutations: string[]; problem: string; stdout: string }[];
  ms: number;
}

// The same handlers the executable registers.
const handlers = cniHandlers;

async function invoke(
  env: Record<string, string | undefined>,
  stdin: Uint8Array,
): Promise<{ exit: number; stdout: string }> {
  let stdout = "";
  const exit = await runSkel(handlers, {
    env,
    stdin: () => stdin,
    stdout: (t) => (stdout += t),
    stderr: () => {},
  });
  return { exit, stdout };
}

const job = JSON.parse(Deno.args[0]!) as Job;
const summary: Summary = { runs: 0, succeeded: 0, failed: 0, byCode: {}, problems: [], ms: 0 };
const t0 = performance.now();
for (let i = job.start; i < job.start + job.count; i++) {
  const c = generate(job.seed, i, job.target);
  const command = c.env.CNI_COMMAND;
  let out: { exit: number; stdout: string };
  try {
    out = await invoke(c.env, c.stdin);
  } catch (err) {
    // runSkel itself must never throw: that would be a crash of the executable.
    out = { exit: -1, stdout: `runSkel threw: ${err instanceof Error ? err.stack : err}` };
  }
  summary.runs++;
  let problem = out.exit === -1 ? out.stdout : judge(command, out, c.expect);
  if (out.exit === 0) summary.succeeded++;
  else {
    summary.failed++;
    let code = "?";
    try {
      code = String(JSON.parse(out.stdout).code);
    } catch {
      // judged above
    }
    summary.byCode[code] = (summary.byCode[code] ?? 0) + 1;
  }
  if (out.exit === 0 && command === "ADD") {
    const del = await invoke({ ...c.env, CNI_COMMAND: "DEL" }, c.stdin).catch((err) => ({
      exit: -1,
      stdout: String(err),
    }));
    summary.runs++;
    if (del.exit !== 0) {
      problem = `${problem ?? ""}; DEL after a successful ADD failed: ${del.stdout}`;
    }
  }
  if (problem) {
    summary.problems.push({
      index: i,
      mutations: c.mutations,
      problem,
      stdout: out.stdout.slice(0, 600),
    });
  }
}
summary.ms = performance.now() - t0;
await Deno.writeTextFile(job.out, JSON.stringify(summary));
