/**
 * Memory soak: `macvtap deviceplugin` in a namespace lab, N Allocates (each
 * recreating a real macvtap) from the kubelet stand-in; prints RSS before and
 * after. Root only.
 *
 *     deno run -A tests/deviceplugin_soak.ts [N=10000] [--bundle]
 *
 * `--bundle` runs the `deno bundle` output with `--no-config`, as the
 * DaemonSet does; otherwise `cmd/deviceplugin.ts` from source. The V8 flags
 * are the DaemonSet's.
 *
 * @module
 */

import { Lab } from "../lab/mod.ts";
import { FakeKubelet } from "../lab/kubelet.ts";

const n = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const useBundle = Deno.args.includes("--bundle");
const V8 = "--v8-flags=--max-old-space-size=48,--max-semi-space-size=1";
const root = new URL("..", import.meta.url).pathname;

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

function rss(pid: number): { rss: number; hwm: number } {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

await using lab = await Lab.create({ prefix: "dpt" });
const host = await lab.netns("host");
const peer = await lab.netns("peer");
await lab.veth(host, "lan0", peer, "lan0p");
const dir = await lab.tempDir("kubelet");
let program: string[];
if (useBundle) {
  const bdir = await lab.tempDir("bundle");
  const b = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "-o",
      `${bdir}/dp.js`,
      `${root}cmd/deviceplugin.ts`,
    ],
    cwd: root,
  }).output();
  if (!b.success) throw new Error(new TextDecoder().decode(b.stderr));
  program = [Deno.execPath(), "run", "-A", "--no-config", "--no-lock", V8, `${bdir}/dp.js`];
} else {
  program = [
    Deno.execPath(),
    "run",
    "-A",
    "--config",
    `${root}deno.json`,
    V8,
    `${root}cmd/deviceplugin.ts`,
  ];
}
await using kubelet = await FakeKubelet.start(dir);
const child = lab.spawn(host, [
  "env",
  `DP_MACVTAP_CONF=[{"name":"soak","lowerDevice":"lan0","capacity":100}]`,
  ...program,
  "--socket-dir",
  dir,
  "--log-level",
  "warn",
]);
const t0 = performance.now();
const reg = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/soak", {
  timeoutMs: 30_000,
});
const startMs = performance.now() - t0;
await reg.conn.waitFor((m) => m.devices.length === 100);
const before = rss(child.pid);
const times: number[] = [];
for (let i = 0; i < n; i++) {
  const s = performance.now();
  await reg.conn.allocate([[`soak-${i % 100}`]]);
  times.push(performance.now() - s);
  if ((i + 1) % 2000 === 0) {
    const r = rss(child.pid);
    out(`${i + 1} Allocates: RSS ${r.rss.toFixed(1)} MiB (peak ${r.hwm.toFixed(1)})`);
  }
}
const after = rss(child.pid);
times.sort((a, b) => a - b);
const p = (q: number) =>
  times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
out(
  `${useBundle ? "bundle" : "source"}, ${V8}: spawn→registered ${startMs.toFixed(0)} ms; ` +
    `RSS after register ${before.rss.toFixed(1)} MiB; after ${n} Allocates ${
      after.rss.toFixed(1)
    } MiB ` +
    `(peak ${after.hwm.toFixed(1)}); Allocate p50/p90/p99/max ${p(0.5)}/${p(0.9)}/${p(0.99)}/${
      times.at(-1)!.toFixed(2)
    } ms`,
);
child.kill("SIGTERM");
out(`exit ${(await child.status).code}`);
