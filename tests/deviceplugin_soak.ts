/**
 * Memory soak: `macvtap deviceplugin` in a namespace lab, N Allocates (on
 * real macvtaps) from the kubelet stand-in, then R kubelet restarts (each a
 * new kubelet.sock, re-registration, a new ListAndWatch, one Allocate, the
 * old connection closed); prints RSS along the way. Root only.
 *
 *     deno run -A tests/deviceplugin_soak.ts [N=10000] [--reconnects R=0] [--bundle | --shipped] [--go]
 *
 * `--go` drives it with the grpc-go kubelet (tests/kubelet_go), whose
 * restarts cycle through kubelet's closing styles; by default the grpc-js
 * stand-in in this process (no pipe in the Allocate latency), whose graceful
 * close after a cancelled stream is the shape of denoland/deno#36788.
 *
 * `--bundle` runs the `deno bundle` output with `--no-config` and the
 * DaemonSet's V8 flags; `--shipped` runs `dist/macvtap-deviceplugin` as it
 * is (its launcher's flags; `deno task build` first); otherwise
 * `cmd/deviceplugin.ts` from source with the DaemonSet's V8 flags.
 *
 * @module
 */

import { Lab } from "../lab/mod.ts";
import { FakeKubelet, type PluginConn } from "../lab/kubelet.ts";
import { GoKubelet, type GoRestart } from "./deviceplugin_kubelet_go.ts";
import { DP_MALLOC_ARENA_MAX, DP_V8_FLAGS } from "../cmd/_dp_exec.ts";

const n = Number(
  Deno.args.find((a, i) => /^\d+$/.test(a) && Deno.args[i - 1] !== "--reconnects") ?? 10_000,
);
const useBundle = Deno.args.includes("--bundle");
const shipped = Deno.args.includes("--shipped");
const useGo = Deno.args.includes("--go");
const arenaMax = Deno.env.get("SOAK_MALLOC_ARENA_MAX") ?? DP_MALLOC_ARENA_MAX;
const reconnectsAt = Deno.args.indexOf("--reconnects");
const reconnects = reconnectsAt >= 0 ? Number(Deno.args[reconnectsAt + 1]) : 0;
const V8 = Deno.env.get("SOAK_V8") ?? `--v8-flags=${DP_V8_FLAGS}`;
const root = new URL("..", import.meta.url).pathname;

function out(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

function rss(pid: number): { rss: number; hwm: number; anon: number } {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024, anon: kb("RssAnon") / 1024 };
}

/** Resident MiB per mapped file (anonymous mappings as one line) and how much is dirty, largest first. */
function smapsTop(pid: number): string {
  const by = new Map<string, { rss: number; dirty: number }>();
  let cur = { rss: 0, dirty: 0 };
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1] || "[anon]";
      cur = by.get(name) ?? { rss: 0, dirty: 0 };
      by.set(name, cur);
    }
    const f = /^(Rss|Private_Dirty|Shared_Dirty):\s+(\d+) kB/.exec(line);
    if (f) cur[f[1] === "Rss" ? "rss" : "dirty"] += Number(f[2]) / 1024;
  }
  return [...by].sort((a, b) => b[1].rss - a[1].rss).slice(0, 6)
    .map(([n, v]) => `  ${v.rss.toFixed(1).padStart(6)} MiB (dirty ${v.dirty.toFixed(1)}) ${n}`)
    .join("\n");
}

await using lab = await Lab.create({ prefix: "dpt" });
const host = await lab.netns("host");
const peer = await lab.netns("peer");
await lab.veth(host, "lan0", peer, "lan0p");
const dir = await lab.tempDir("kubelet");
// The plugin runs its own copy of Deno, as in the DaemonSet (the image's
// /usr/local/bin/deno is not the file this script runs on): the kernel never
// pages out file pages another process maps, and RSS counts them in full.
const denoCopy = `${await lab.tempDir("deno")}/deno`;
await Deno.copyFile(Deno.execPath(), denoCopy);
let program: string[];
if (shipped) {
  const launcher = await Deno.readTextFile(`${root}dist/macvtap-deviceplugin`);
  const copy = `${await lab.tempDir("dist")}/macvtap-deviceplugin`;
  // Line 2 of the launcher execs Deno by its absolute path (tools/build.ts).
  await Deno.writeTextFile(copy, launcher.replace(/ exec \S+ run /, ` exec ${denoCopy} run `));
  await Deno.chmod(copy, 0o755);
  program = [copy];
} else if (useBundle) {
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
  program = [denoCopy, "run", "-A", "--no-config", "--no-lock", V8, `${bdir}/dp.js`];
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
const RESOURCE = "macvtap.network.kubevirt.io/soak";
const ENDPOINT = "macvtap.network.kubevirt.io_soak";

/** What the soak needs from a kubelet stand-in. */
interface SoakKubelet extends AsyncDisposable {
  /** Wait for Register (after the last restart) and the full healthy device list. */
  registered(timeoutMs: number): Promise<void>;
  allocate(id: string): Promise<void>;
  /** Restart the kubelet, the `r`-th time. */
  restart(r: number): Promise<void>;
}

/** grpc-js, in this process: Allocate latency without a pipe in the way. */
async function jsKubelet(): Promise<SoakKubelet> {
  const k = await FakeKubelet.start(dir);
  let conn: PluginConn | undefined;
  let since = 0;
  return {
    async registered(timeoutMs) {
      const reg = await k.waitForRegistration(RESOURCE, { since, timeoutMs });
      await reg.conn.waitFor((m) => m.devices.length === 100 && m.devices[0]!.health === "Healthy");
      conn = reg.conn;
    },
    async allocate(id) {
      await conn!.allocate([[id]]);
    },
    async restart(r) {
      since = performance.now();
      // The old kubelet closes its connection (RST_STREAM, GOAWAY) as it goes.
      conn?.close();
      await k.restart({ onlyKubeletSock: r % 2 === 1 });
    },
    [Symbol.asyncDispose]: () => k[Symbol.asyncDispose](),
  };
}

/** grpc-go, as kubelet is: restarts cycle through its closing styles. */
async function goKubelet(): Promise<SoakKubelet> {
  const k = await GoKubelet.start(dir);
  const modes: GoRestart[] = ["goaway", "graceful", "abrupt"];
  let since = 0;
  return {
    async registered(timeoutMs) {
      await k.waitForRegistration(RESOURCE, timeoutMs);
      const gen = k.gen;
      await k.waitFor((e) =>
        e.gen === gen && e.event === "devices" && e.endpoint === ENDPOINT &&
        e.devices?.length === 100 && e.devices[0]!.health === "Healthy", { since, timeoutMs });
    },
    async allocate(id) {
      await k.allocate(ENDPOINT, [id]);
    },
    async restart(r) {
      since = await k.restart(modes[r % 3]!, Math.floor(r / 3) % 2 === 1);
    },
    [Symbol.asyncDispose]: () => k[Symbol.asyncDispose](),
  };
}

await using kubelet = useGo ? await goKubelet() : await jsKubelet();
const child = lab.spawn(host, [
  "env",
  `DP_MACVTAP_CONF=[{"name":"soak","lowerDevice":"lan0","capacity":100}]`,
  // The DaemonSet's (deploy/macvtap.yaml); SOAK_MALLOC_ARENA_MAX="" to see glibc's default.
  ...(arenaMax ? [`MALLOC_ARENA_MAX=${arenaMax}`] : []),
  ...program,
  "--socket-dir",
  dir,
  "--log-level",
  "warn",
]);
const t0 = performance.now();
await kubelet.registered(30_000);
const startMs = performance.now() - t0;
// Settle: the plugin pages out its start-up pages 2 s after registering.
await new Promise((r) => setTimeout(r, 3000));
const before = rss(child.pid);
if (Deno.env.get("SOAK_SMAPS")) out(smapsTop(child.pid));
const times: number[] = [];
for (let i = 0; i < n; i++) {
  const s = performance.now();
  await kubelet.allocate(`soak-${i % 100}`);
  times.push(performance.now() - s);
  if ((i + 1) % 2000 === 0) {
    const r = rss(child.pid);
    out(
      `${i + 1} Allocates: RSS ${r.rss.toFixed(1)} MiB (anon ${r.anon.toFixed(1)}, peak ${
        r.hwm.toFixed(1)
      })`,
    );
  }
}
const after = rss(child.pid);
if (Deno.env.get("SOAK_SMAPS")) out(smapsTop(child.pid));
times.sort((a, b) => a - b);
const p = (q: number) =>
  times[Math.min(times.length - 1, Math.floor(q * times.length))]?.toFixed(2) ?? "-";
const mode =
  (shipped ? "shipped dist/macvtap-deviceplugin" : `${useBundle ? "bundle" : "source"}, ${V8}`) +
  `, ${useGo ? "grpc-go" : "grpc-js"} kubelet`;
out(
  `${mode}: spawn→registered ${startMs.toFixed(0)} ms; ` +
    `RSS after register ${before.rss.toFixed(1)} MiB; after ${n} Allocates ${
      after.rss.toFixed(1)
    } MiB ` +
    `(peak ${after.hwm.toFixed(1)}); Allocate p50/p90/p99/max ${p(0.5)}/${p(0.9)}/${p(0.99)}/${
      times.at(-1)?.toFixed(2) ?? "-"
    } ms`,
);

const regMs: number[] = [];
for (let r = 0; r < reconnects; r++) {
  const since = performance.now();
  await kubelet.restart(r);
  await kubelet.registered(30_000);
  regMs.push(performance.now() - since);
  await kubelet.allocate(`soak-${r % 100}`);
  if ((r + 1) % 200 === 0) {
    const x = rss(child.pid);
    out(`${r + 1} kubelet restarts: RSS ${x.rss.toFixed(1)} MiB (peak ${x.hwm.toFixed(1)})`);
  }
}
if (reconnects > 0) {
  await new Promise((r) => setTimeout(r, 3000)); // the page-out after the last registration
  const x = rss(child.pid);
  regMs.sort((a, b) => a - b);
  out(
    `after ${reconnects} kubelet restarts: RSS ${x.rss.toFixed(1)} MiB (peak ${
      x.hwm.toFixed(1)
    }); restart→registered with devices p50/p99 ${
      regMs[Math.floor(regMs.length / 2)]!.toFixed(1)
    }/${regMs[Math.floor(regMs.length * 0.99)]!.toFixed(1)} ms`,
  );
}
child.kill("SIGTERM");
out(`exit ${(await child.status).code}`);
