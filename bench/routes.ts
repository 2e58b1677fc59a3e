// deno-lint-ignore-file no-console -- a command-line tool: stdout is its output
/**
 * `deno task bench:routes`: host-route cleanup at scale (issue: route
 * cleanup was quadratic, one full route dump per route).
 *
 * In a namespace lab of its own (`<p>-host` with master veth `lab0` and the
 * hostrouteif `macvtap1`; nothing in the root namespace):
 *
 * 1. DEL whose prevResult lists `--ips N` addresses (default 20,000) while
 *    the host has `--routes M` of our host routes (default 3,000) to the
 *    first M of them, the netns gone and no record (the prevResult path).
 * 2. GC with an empty `cni.dev/valid-attachments` over M/10 records of 10
 *    host routes each (M routes).
 *
 * Prints wall time per command (median of `--runs R`, default 3) and checks
 * that every route is gone. Target: (1) under 1 s.
 *
 * @module
 */

import { run, runOk } from "../lab/mod.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OURS = `${root}/dist/macvtap`;

const argv = Deno.args;
function opt(name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}
const IPS = opt("--ips", 20_000);
const ROUTES = opt("--routes", 3_000);
const RUNS = opt("--runs", 3);
const METRIC = 50;

/** The i-th address of 10.0.0.0/8 whose last byte is 1 to 254. */
function ip(i: number): string {
  const rest = Math.floor(i / 254);
  return `10.${(rest >> 8) & 255}.${rest & 255}.${(i % 254) + 1}`;
}

const p = `mvr${Deno.pid}`;
const host = `${p}-host`;
const peer = `${p}-peer`;
const tmp = Deno.makeTempDirSync({ prefix: "macvtap-bench-routes-" });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function ourRoutes(): Promise<number> {
  const out = await runOk(["ip", "-n", host, "route", "show", "proto", "249"]);
  return out.split("\n").filter((l) => l.trim()).length;
}

async function addRoutes(count: number): Promise<void> {
  const lines = [];
  for (let i = 0; i < count; i++) {
    lines.push(`route add ${ip(i)}/32 dev macvtap1 proto 249 metric ${METRIC} scope link`);
  }
  await runOk(["ip", "-n", host, "-batch", "-"], { stdin: lines.join("\n") + "\n" });
}

async function plugin(command: string, config: unknown, containerId: string): Promise<number> {
  const t0 = performance.now();
  const r = await new Deno.Command("ip", {
    args: ["netns", "exec", host, OURS],
    env: {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: "",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      MACVTAP_STATE_ROOT: tmp,
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = r.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(config)));
  await w.close();
  const o = await r.output();
  const ms = performance.now() - t0;
  if (o.code !== 0) {
    throw new Error(`${command} failed: ${new TextDecoder().decode(o.stdout)}`);
  }
  return ms;
}

try {
  await runOk(["ip", "netns", "add", host]);
  await runOk(["ip", "netns", "add", peer]);
  await runOk([
    "ip",
    "-n",
    host,
    "link",
    "add",
    "lab0",
    "type",
    "veth",
    "peer",
    "lab0p",
    "netns",
    peer,
  ]);
  await runOk(["ip", "-n", host, "link", "set", "lab0", "up"]);
  await runOk(["ip", "-n", host, "link", "add", "macvtap1", "link", "lab0", "type", "macvtap"]);
  await runOk(["ip", "-n", host, "link", "set", "macvtap1", "up"]);
  const hostIndex = Number(
    JSON.parse(await runOk(["ip", "-n", host, "-j", "link", "show", "macvtap1"]))[0].ifindex,
  );
  const base = {
    cniVersion: "1.0.0",
    name: "scale",
    type: "macvtap",
    master: "lab0",
    hostrouteif: "macvtap1",
    hostrouteMetric: METRIC,
    stateDir: `${tmp}/state`,
  };

  // 1. DEL with a huge prevResult, no record.
  const prevResult = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", sandbox: "" }],
    ips: Array.from({ length: IPS }, (_, i) => ({ address: `${ip(i)}/8`, interface: 0 })),
  };
  const delMs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await addRoutes(ROUTES);
    delMs.push(await plugin("DEL", { ...base, prevResult }, "scale1"));
    const left = await ourRoutes();
    if (left !== 0) throw new Error(`DEL left ${left} of ${ROUTES} routes`);
  }

  // 2. GC over ROUTES routes in ROUTES/10 records.
  const gcMs: number[] = [];
  const records = Math.max(1, Math.floor(ROUTES / 10));
  for (let run = 0; run < RUNS; run++) {
    await addRoutes(records * 10);
    const dir = `${tmp}/state/scale`;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (let r = 0; r < records; r++) {
      const hostRoutes = Array.from({ length: 10 }, (_, k) => ({
        family: 4,
        dst: `${ip(r * 10 + k)}/32`,
        metric: METRIC,
      }));
      const rec = {
        containerId: `gc${r}`,
        ifname: "eth0",
        netns: "",
        ips: [],
        hostrouteif: "macvtap1",
        hostrouteIndex: hostIndex,
        hostRoutes,
        hostRoutesState: "added",
      };
      Deno.writeTextFileSync(`${dir}/gc${r}@eth0`, JSON.stringify(rec), { mode: 0o600 });
    }
    gcMs.push(
      await plugin("GC", { ...base, cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }, ""),
    );
    const left = await ourRoutes();
    if (left !== 0) throw new Error(`GC left ${left} of ${records * 10} routes`);
  }

  const del = median(delMs);
  console.log(
    `DEL, prevResult with ${IPS} addresses, ${ROUTES} host routes to remove: ` +
      `median ${del.toFixed(0)} ms over ${RUNS} runs (target < 1000 ms: ${
        del < 1000 ? "met" : "MISSED"
      })`,
  );
  console.log(
    `GC, ${records} stale records with ${records * 10} host routes: median ${
      median(gcMs).toFixed(0)
    } ms over ${RUNS} runs`,
  );
} finally {
  await run(["ip", "netns", "del", host]);
  await run(["ip", "netns", "del", peer]);
  Deno.removeSync(tmp, { recursive: true });
}
