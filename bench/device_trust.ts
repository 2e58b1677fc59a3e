// deno-lint-ignore-file no-console -- part of a command-line tool: stdout is its output
/**
 * The cost of proving a `deviceID` on the ADD path (`deno task bench`, or
 * `deno run -A bench/device_trust.ts [--runs N]` alone): ADD and DEL of a
 * host macvtap imported by `deviceID`, interleaved in one run,
 *
 * - proven through kubelet's PodResources API (the lab's kubelet stand-in,
 *   grpc-js, as kubelet's Go server answers): `Get`, and `List` with `Get`
 *   answering UNIMPLEMENTED (a second stand-in);
 * - imported on the operator's opt-in (`MACVTAP_DEVICEID_FROM_CONFIG=1`, no
 *   socket): no proof, the baseline;
 *
 * and the reference macvlan's plain ADD/DEL beside them for scale (it has no
 * `deviceID`). The device is made with `ip link add … type macvtap` before
 * each ADD, outside the timing.
 *
 * @module
 */

import { FakeKubelet } from "../lab/kubelet.ts";
import { cni, CNI_BIN, describe, DEVICEID_FROM_CONFIG, Lab, PLUGIN } from "../lab/mod.ts";

/** Median, p95 and min of a series (ms). */
export interface Stats {
  median: number;
  p95: number;
  min: number;
}

/** Options of {@linkcode deviceTrustBench}. */
export interface DeviceTrustOptions {
  /** Our plugin (default dist/macvtap). */
  ours?: string;
  /** Measured runs per variant (after one warm-up each). */
  runs: number;
  stats: (xs: number[]) => Stats;
}

/** ADD and DEL figures of one variant. */
export interface VariantFigures {
  add: Stats;
  del: Stats;
  /** Inside the ADD: the proof itself (timing marks), where there is one. */
  proof?: Stats;
}

/** What {@linkcode deviceTrustBench} measured, by variant. */
export type DeviceTrustFigures = Record<string, VariantFigures>;

const POD = { namespace: "bench", name: "vm" };
const RESOURCE = "macvtap.network.kubevirt.io/bench";

/** Measure; every namespace, process and socket goes with the lab. */
export async function deviceTrustBench(options: DeviceTrustOptions): Promise<DeviceTrustFigures> {
  const bin = options.ours ?? PLUGIN;
  await using lab = await Lab.create({ prefix: "bdt" });
  const l = await lab.simple();
  const stateDir = await lab.tempDir("state");
  const stand = async (role: string, get: boolean) => {
    const kubelet = await FakeKubelet.start(await lab.tempDir(role));
    lab.defer(`stop ${role}`, () => kubelet[Symbol.asyncDispose]());
    await kubelet.servePodResources(`${await lab.tempDir(`${role}pr`)}/kubelet.sock`, { get });
    return kubelet;
  };
  const withGet = await stand("kget", true);
  const listOnly = await stand("klist", false);
  const variants: Record<string, (id: string) => { args?: string; extra: Record<string, string> }> =
    {
      "proof (Get)": (id) => {
        withGet.assign(POD, RESOURCE, [[id]]);
        return withGet.cniEnvFor(POD);
      },
      "proof (List)": (id) => {
        listOnly.assign(POD, RESOURCE, [[id]]);
        return listOnly.cniEnvFor(POD);
      },
      "opt-in, no proof": () => ({ extra: DEVICEID_FROM_CONFIG }),
    };
  const times: Record<string, { add: number[]; del: number[] }> = {};
  /** The "device proof" stretch of the ADD's timing marks (internal/_timing.ts). */
  const proofTimes: Record<string, number[]> = {};
  for (const name of [...Object.keys(variants), "reference macvlan"]) {
    times[name] = { add: [], del: [] };
  }
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    const r = await fn();
    return [r, performance.now() - t0];
  };
  for (let i = 0; i <= options.runs; i++) {
    for (const [name, envFor] of Object.entries(variants)) {
      const id = `bt${i % 1000}x${Object.keys(variants).indexOf(name)}`;
      await lab.ip(l.host, "link", "add", "link", l.master, "name", id, "type", "macvtap");
      const conf = { cniVersion: "1.0.0", name: "bdt", type: "macvtap", deviceID: id, stateDir };
      const trust = envFor(id);
      const env = {
        containerId: id,
        netns: l.ctrPath,
        ifname: "net1",
        ...trust,
        extra: { ...trust.extra, MACVTAP_TIMING: "1" },
      };
      const [add, addMs] = await timed(() =>
        cni(lab, l.host, { command: "ADD", ...env }, conf, bin)
      );
      if (add.code !== 0) throw new Error(`${name}: ADD failed: ${describe(add)}`);
      const [del, delMs] = await timed(() =>
        cni(lab, l.host, { command: "DEL", ...env }, conf, bin)
      );
      if (del.code !== 0) throw new Error(`${name}: DEL failed: ${describe(del)}`);
      if (i > 0) {
        times[name]!.add.push(addMs);
        times[name]!.del.push(delMs);
        const proof = proofMs(add.stderr);
        if (proof !== undefined) (proofTimes[name] ??= []).push(proof);
      }
    }
    const ref = { cniVersion: "1.0.0", name: "bdtref", type: "macvlan", master: l.master };
    const env = { containerId: `r${i}`, netns: l.ctrPath, ifname: "net1" };
    const refBin = `${CNI_BIN}/macvlan`;
    const [add, addMs] = await timed(() =>
      cni(lab, l.host, { command: "ADD", ...env }, ref, refBin)
    );
    if (add.code !== 0) throw new Error(`reference ADD failed: ${describe(add)}`);
    const [, delMs] = await timed(() => cni(lab, l.host, { command: "DEL", ...env }, ref, refBin));
    if (i > 0) {
      times["reference macvlan"]!.add.push(addMs);
      times["reference macvlan"]!.del.push(delMs);
    }
  }
  const out: DeviceTrustFigures = {};
  for (const [name, t] of Object.entries(times)) {
    const proof = proofTimes[name];
    out[name] = {
      add: options.stats(t.add),
      del: options.stats(t.del),
      ...(proof?.length ? { proof: options.stats(proof) } : {}),
    };
  }
  return out;
}

/** The "device proof" stretch (ms) of an ADD's `MACVTAP_TIMING` line. */
function proofMs(stderr: string): number | undefined {
  const line = stderr.split("\n").find((l) => l.startsWith("MACVTAP_TIMING "));
  if (!line) return undefined;
  const { marks } = JSON.parse(line.slice("MACVTAP_TIMING ".length)) as {
    marks: [string, number][];
  };
  const i = marks.findIndex(([label]) => label === "device proof");
  return i > 0 ? marks[i]![1] - marks[i - 1]![1] : undefined;
}

/** Print the figures, with the proof's cost over the opt-in baseline. */
export function printDeviceTrust(f: DeviceTrustFigures, runs: number): void {
  const base = f["opt-in, no proof"]!.add.median;
  const ref = f["reference macvlan"]!.add.median;
  console.log(`\ndeviceID proof on the ADD path (${runs} runs each, interleaved; wall ms):`);
  console.log(
    "  variant               ADD med   p95 | DEL med | ADD − opt-in | proof med  p95 | ADD / ref ADD",
  );
  for (const [name, v] of Object.entries(f)) {
    const n = (x: number) => x.toFixed(1).padStart(7);
    const proof = v.proof ? `${n(v.proof.median)} ${n(v.proof.p95)}` : " ".repeat(15);
    console.log(
      `  ${name.padEnd(20)} ${n(v.add.median)} ${n(v.add.p95)} | ${n(v.del.median)} | ${
        n(v.add.median - base)
      }      | ${proof} | ${(v.add.median / ref).toFixed(2)}`,
    );
  }
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--runs");
  const runs = i >= 0 ? Number(Deno.args[i + 1]) : 20;
  const stats = (xs: number[]): Stats => {
    const s = [...xs].sort((a, b) => a - b);
    const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
    return { median: at(0.5), p95: at(0.95), min: s[0]! };
  };
  printDeviceTrust(await deviceTrustBench({ runs, stats }), runs);
}
