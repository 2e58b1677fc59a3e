// deno-lint-ignore-file no-console -- a command-line tool: stdout is its output
/**
 * `deno task bench`: time `dist/macvtap` against the reference Go plugin
 * `/usr/lib/cni/macvlan` in the same run, same lab, interleaved, and print
 * medians, p95, ratios, the time above the Deno start-up floor, and peak RSS.
 *
 * The lab: namespace `<p>-host` (the runtime's namespace: the bench re-runs
 * itself inside it, so plugins start there exactly as under a runtime) with
 * master veth `lab0`, its peer in `<p>-peer`, and one container namespace.
 * Nothing touches the root namespace's links.
 *
 * What runs is what a node runs: the CNI part of `dist/macvtap` (or of
 * `--ours FILE`), installed with tools/install.ts into /var/tmp/macvtap-bench/bin
 * (one path, so the shared code cache keeps one entry for it), its code cache
 * seeded there.
 *
 * Besides the timed runs, a few runs per command with `MACVTAP_TIMING=1`
 * (internal/_timing.ts) give the breakdown of where our time goes, and the
 * issue-13 targets are printed with their status. Then the limits: the
 * ratio this run would show if our JS took no time (two Deno floors plus our
 * own kernel+IPAM time against the reference), and the CPU per ADD+DEL pair
 * (ours, the reference, two empty Deno starts), which bounds throughput when
 * many attachments run at once.
 *
 * Options: `--runs N` (default 40), `--only NAME` (a scenario substring;
 * `podman` is one), `--json FILE` (write the figures), `--podman-runs N`
 * (default 15), `--no-podman`, `--ours FILE` (another build to measure),
 * `--timing-runs N` (default 10), `--cpu-pairs N` (ADD+DEL pairs per CPU
 * figure, default 20), `--concurrency N` (workers of the concurrent run,
 * default 200; 0 skips it; `--only concurrent` runs only it).
 *
 * Then the cost of proving a `deviceID` through kubelet's PodResources API
 * against the operator's opt-in (bench/device_trust.ts; `--only deviceid`).
 *
 * At the end, the end-to-end figure (bench/podman.ts): `podman run --rm
 * --network` with our plugin vs the reference, in a lab of its own driven from
 * the root namespace with nsenter (runc needs that, not `ip netns exec`);
 * skipped with a note when podman is not installed.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BUILT = `${root}/dist/macvtap`;
const REF = "/usr/lib/cni/macvlan";
/** Where the bench installs the plugin it measures (see the install step). */
const BENCH_BIN_DIR = "/var/tmp/macvtap-bench/bin";
const CNI_PATH = "/usr/lib/cni";

const argv = Deno.args;
function opt(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}
const RUNS = Number(opt("--runs") ?? 40);
const ONLY = opt("--only");
const JSON_OUT = opt("--json");
const PODMAN_RUNS = Number(opt("--podman-runs") ?? 15);
const TIMING_RUNS = Number(opt("--timing-runs") ?? 10);
const CPU_PAIRS = Number(opt("--cpu-pairs") ?? 20);
const OURS_SOURCE = opt("--ours") ?? BUILT;
if (!(PODMAN_RUNS >= 1)) throw new Error("--podman-runs needs a positive number");
const PODMAN = !argv.includes("--no-podman") && (!ONLY || "podman".includes(ONLY));
/** The cost of proving a deviceID (bench/device_trust.ts); `--only deviceid` runs only it. */
const DEVICE_TRUST = !ONLY || "deviceid proof".includes(ONLY);

/** Run `cmd` with `input` on its stdin (none when `undefined`); its output. */
async function runFed(
  cmd: string,
  options: Omit<Deno.CommandOptions, "stdin">,
  input: string | undefined,
): Promise<Deno.CommandOutput> {
  if (input === undefined) {
    return await new Deno.Command(cmd, { ...options, stdin: "null" }).output();
  }
  const child = new Deno.Command(cmd, { ...options, stdin: "piped" }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  return await child.output();
}

async function sh(
  cmd: string[],
  input?: string,
): Promise<{ code: number; out: string; err: string }> {
  const o = await runFed(
    cmd[0]!,
    { args: cmd.slice(1), stdout: "piped", stderr: "piped" },
    input,
  );
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout),
    err: new TextDecoder().decode(o.stderr),
  };
}

function stats(xs: number[]): { median: number; p95: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * (s.length - 1) + 0.5))]!;
  return { median: q(0.5), p95: q(0.95), min: s[0]! };
}

// ------------------------------------------------------------------ outer: the lab
if (!argv.includes("--inner")) {
  for (const f of [OURS_SOURCE, REF, `${CNI_PATH}/host-local`]) {
    try {
      Deno.statSync(f);
    } catch {
      console.error(`bench: ${f} is missing (run deno task build / tools/setup.sh)`);
      Deno.exit(1);
    }
  }
  const p = `mvb${Deno.pid}`;
  const made: string[] = [];
  const tmp = Deno.makeTempDirSync({ prefix: "macvtap-bench-" });
  let code = 1;
  try {
    // What a node runs: the installed CNI part, its code cache seeded.
    const { installPlugin } = await import("../tools/install.ts");
    const { seedCodeCache } = await import("../tools/_code_cache.ts");
    // A fixed directory, not the temp one: Deno keys its code cache on the
    // script's path, and a new path per run would add an entry to the shared
    // cache every run (it grew past 20 MB), slowing every later start.
    const installed = await installPlugin({ from: OURS_SOURCE, cniBinDir: BENCH_BIN_DIR });
    const problem = await seedCodeCache(installed);
    if (problem) console.error(`bench: code cache not seeded: ${problem}`);
    for (const n of ["host", "peer", "ctr"]) {
      await sh(["ip", "netns", "add", `${p}-${n}`]);
      made.push(`${p}-${n}`);
    }
    const steps = [
      [
        "ip",
        "-n",
        `${p}-host`,
        "link",
        "add",
        "lab0",
        "type",
        "veth",
        "peer",
        "name",
        "lab0p",
        "netns",
        `${p}-peer`,
      ],
      ["ip", "-n", `${p}-host`, "link", "set", "lab0", "up"],
      ["ip", "-n", `${p}-host`, "link", "set", "lo", "up"],
      ["ip", "-n", `${p}-host`, "addr", "add", "192.168.10.22/24", "dev", "lab0"],
      ["ip", "-n", `${p}-peer`, "link", "set", "lab0p", "up"],
    ];
    for (const s of steps) {
      const r = await sh(s);
      if (r.code) throw new Error(`${s.join(" ")}: ${r.err}`);
    }
    const inner = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        `${p}-host`,
        Deno.execPath(),
        "run",
        "-A",
        import.meta.filename!,
        "--inner",
        p,
        tmp,
        ...argv,
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    code = inner.code;
  } finally {
    for (const n of made.reverse()) await sh(["ip", "netns", "del", n]);
    Deno.removeSync(tmp, { recursive: true });
  }
  if (PODMAN) {
    const { podmanBench, printPodman } = await import("./podman.ts");
    try {
      const r = await podmanBench({ ours: OURS_SOURCE, ref: REF, runs: PODMAN_RUNS, stats });
      printPodman(r);
      if (JSON_OUT && typeof r !== "string") {
        let all: Record<string, unknown> = {};
        try {
          all = JSON.parse(Deno.readTextFileSync(JSON_OUT));
        } catch {
          // the inner run wrote nothing (it failed or --only podman)
        }
        Deno.writeTextFileSync(JSON_OUT, JSON.stringify({ ...all, podman: r }, null, 2));
      }
    } catch (err) {
      console.error(`bench: podman end-to-end failed: ${err instanceof Error ? err.stack : err}`);
      code ||= 1;
    }
  }
  if (DEVICE_TRUST) {
    const { deviceTrustBench, printDeviceTrust } = await import("./device_trust.ts");
    try {
      const runs = Math.max(5, Math.round(RUNS / 2));
      printDeviceTrust(await deviceTrustBench({ ours: OURS_SOURCE, runs, stats }), runs);
    } catch (err) {
      console.error(`bench: deviceID proof failed: ${err instanceof Error ? err.stack : err}`);
      code ||= 1;
    }
  }
  Deno.exit(code);
}

// ------------------------------------------------------------------ inner: inside <p>-host
const prefix = argv[argv.indexOf("--inner") + 1]!;
const tmp = argv[argv.indexOf("--inner") + 2]!;
const NETNS = `/run/netns/${prefix}-ctr`;
const OURS = `${BENCH_BIN_DIR}/macvtap`;
const floorScript = `${tmp}/floor.js`;
Deno.writeTextFileSync(
  floorScript,
  `const t0=performance.now();const b=new Uint8Array(65536);let n=0;for(;;){const r=Deno.stdin.readSync(b.subarray(n));if(!r)break;n+=r}` +
    `Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({cniVersion:"1.1.0",supportedVersions:["1.1.0"]})));` +
    `Deno.stderr.writeSync(new TextEncoder().encode(t0+"\\n"))`,
);

type Ipam = "none" | "host-local" | "hostroute";

function conf(type: string, ipam: Ipam, version: string, prevResult?: unknown): string {
  const c: Record<string, unknown> = {
    cniVersion: version,
    name: "benchnet",
    type,
    master: "lab0",
    mode: "bridge",
  };
  if (ipam !== "none") {
    c.ipam = {
      type: "host-local",
      ranges: [[{ subnet: "192.168.122.0/24" }]],
      routes: [{ dst: "192.168.10.22/32", gw: "0.0.0.0" }],
      dataDir: `${tmp}/ipam-${type}`,
    };
  }
  if (ipam === "hostroute") c.hostrouteif = "macvtap1";
  if (type === "macvtap") c.stateDir = `${tmp}/state`;
  if (prevResult !== undefined) c.prevResult = prevResult;
  return JSON.stringify(c);
}

function env(command: string, timing = false): Record<string, string> {
  const e: Record<string, string> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "bench1",
    CNI_NETNS: NETNS,
    CNI_IFNAME: "eth0",
    CNI_PATH,
    CNI_ARGS: "",
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    MACVTAP_STATE_ROOT: tmp,
  };
  if (timing) e.MACVTAP_TIMING = "1";
  return e;
}

interface Run {
  ms: number;
  stdout: string;
  stderr: string;
}

async function execRun(bin: string, command: string, stdin: string, timing = false): Promise<Run> {
  const t0 = performance.now();
  const out = await runFed(bin, {
    env: env(command, timing),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }, stdin);
  const ms = performance.now() - t0;
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${bin} ${command} failed (${out.code}): ${stdout} ${stderr}`);
  return { ms, stdout, stderr };
}

async function exec(bin: string, command: string, stdin: string): Promise<number> {
  return (await execRun(bin, command, stdin)).ms;
}

async function peakRss(bin: string, command: string, stdin: string): Promise<number> {
  const o = await runFed("/usr/bin/time", {
    args: ["-f", "%M", bin],
    env: env(command),
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }, stdin);
  const lines = new TextDecoder().decode(o.stderr).trim().split("\n");
  return Number(lines.at(-1)) / 1024;
}

/**
 * CPU time (user + system, the process and the children it waited for, as
 * `/usr/bin/time` reports) per ADD+DEL pair, averaged over `n` pairs run in
 * one shell loop: what a node's CPUs pay per attachment, hence the bound on
 * throughput when many run at once.
 */
async function cpuPerPair(bin: string, confText: string, n: number): Promise<number> {
  const file = `${tmp}/cpu-conf.json`;
  Deno.writeTextFileSync(file, confText);
  const loop = `i=0; while [ $i -lt ${n} ]; do ` +
    `CNI_COMMAND=ADD "$0" < "$1" > /dev/null || exit 1; ` +
    `CNI_COMMAND=DEL "$0" < "$1" > /dev/null || exit 1; i=$((i+1)); done`;
  const { CNI_COMMAND: _, ...base } = env("ADD");
  const o = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%U %S", "sh", "-c", loop, bin, file],
    env: base,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const last = new TextDecoder().decode(o.stderr).trim().split("\n").at(-1) ?? "";
  if (!o.success) throw new Error(`${bin}: the CPU loop failed: ${last}`);
  const [u, sy] = last.split(" ").map(Number);
  return ((u! + sy!) * 1000) / n;
}

/** The same for `n` empty Deno starts (the floor script). */
async function cpuPerFloor(n: number): Promise<number> {
  const loop = `i=0; while [ $i -lt ${n} ]; do "$0" run -A -q --no-config --no-lock ` +
    `--v8-flags=--single-threaded "$1" < /dev/null > /dev/null 2>&1 || exit 1; i=$((i+1)); done`;
  const o = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%U %S", "sh", "-c", loop, Deno.execPath(), floorScript],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const [u, sy] = new TextDecoder().decode(o.stderr).trim().split("\n").at(-1)!.split(" ")
    .map(Number);
  return ((u! + sy!) * 1000) / n;
}

// ------------------------------------------------------------------ breakdown (MACVTAP_TIMING)

/** One command's in-process timing, as internal/_timing.ts writes it. */
interface Timing {
  marks: [string, number][];
  spans: [string, number, number][];
}

function parseTiming(stderr: string): Timing | undefined {
  const line = stderr.split("\n").find((l) => l.startsWith("MACVTAP_TIMING "));
  return line ? JSON.parse(line.slice("MACVTAP_TIMING ".length)) as Timing : undefined;
}

/** Total length of the union of intervals (overlapping IPAM and netlink count once). */
function unionMs(intervals: [number, number][]): number {
  const s = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0, end = -Infinity;
  for (const [a, b] of s) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** The stretches of one run, in ms: named parts that add up to its wall time. */
function breakdown(t: Timing, wall: number): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (k: string, v: number) => (out[k] = (out[k] ?? 0) + v);
  let prev = 0;
  for (const [label, at] of t.marks) {
    add(
      label === "start"
        ? "deno start, bundle load, module init"
        : label === "skel"
        ? "stdin, env, config"
        : label,
      at - prev,
    );
    prev = at;
  }
  add("process exec/exit (outside JS)", wall - prev);
  const prevMark = prev;
  const netlink = t.spans.filter(([l]) => l.startsWith("netlink "));
  const ipam = t.spans.filter(([l]) => l.startsWith("ipam "));
  const dlopen = t.spans.filter(([l]) => l.startsWith("dlopen "));
  out["  in it: netlink requests"] = netlink.reduce((n, [, a, b]) => n + b - a, 0);
  out["  in it: IPAM delegate runs"] = ipam.reduce((n, [, a, b]) => n + b - a, 0);
  out["  in it: IPAM delegate calls (count)"] = ipam.length;
  out["  in it: dlopen"] = dlopen.reduce((n, [, a, b]) => n + b - a, 0);
  out["  kernel+IPAM (union)"] = unionMs([...netlink, ...ipam].map(([, a, b]) => [a, b]));
  out["  wall - kernel+IPAM"] = wall - out["  kernel+IPAM (union)"];
  out["  in JS - kernel+IPAM"] = prevMark - out["  kernel+IPAM (union)"];
  return out;
}

const breakdowns: Record<string, Record<string, number>> = {};

function recordBreakdown(key: string, runs: { t: Timing; wall: number }[]): void {
  const per = runs.map(({ t, wall }) => breakdown(t, wall));
  const keys = [...new Set(per.flatMap((p) => Object.keys(p)))];
  const med: Record<string, number> = {};
  for (const k of keys) med[k] = stats(per.map((p) => p[k] ?? 0)).median;
  med["wall"] = stats(runs.map((r) => r.wall)).median;
  breakdowns[key] = med;
}

// ------------------------------------------------------------------ the runs

interface Row {
  scenario: string;
  op: string;
  ours: { median: number; p95: number };
  ref: { median: number; p95: number };
  ratio: number;
  /** Deno starts per measured operation (2 for ADD+DEL). */
  starts: number;
}
const rows: Row[] = [];
const rss: Record<string, number> = {};
/** CPU ms per ADD+DEL pair (ours, ref) per scenario, and per empty Deno start. */
const cpu: Record<string, { ours: number; ref: number }> = {};
/** Our kernel+IPAM time (union of spans, medians) per scenario: ADD + DEL. */
const kernelIpam: Record<string, number> = {};

const floorTimes: number[] = [];
const floorFirstLine: number[] = [];
const deno = Deno.execPath();
/**
 * One empty Deno start (the floor). Besides the first batch, one runs in
 * every iteration of every scenario, so the floor drifts with the machine as
 * our times do (a floor taken only at the start made "above floor" figures
 * swing by several ms between runs).
 */
async function runFloor(): Promise<void> {
  const t0 = performance.now();
  await new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      "-q",
      "--no-config",
      "--no-lock",
      "--v8-flags=--single-threaded",
      floorScript,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output().then((o) => floorFirstLine.push(Number(new TextDecoder().decode(o.stderr))));
  floorTimes.push(performance.now() - t0);
}
for (let i = 0; i < RUNS; i++) await runFloor();
rss["floor (empty deno run)"] = await (async () => {
  const r = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", deno, "run", "-A", "-q", "--no-config", "--no-lock", floorScript],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return Number(new TextDecoder().decode(r.stderr).trim().split("\n").at(-1)) / 1024;
})();

function add(scenario: string, op: string, ours: number[], ref: number[], starts = 1): void {
  const o = stats(ours), r = stats(ref);
  rows.push({
    scenario,
    op,
    ours: o,
    ref: r,
    ratio: o.median / r.median,
    starts,
  });
}

if (!ONLY || "version".includes(ONLY)) {
  const ours: number[] = [], ref: number[] = [];
  const input = '{"cniVersion":"1.0.0"}';
  for (let i = 0; i < RUNS; i++) {
    ours.push(await exec(OURS, "VERSION", input));
    ref.push(await exec(REF, "VERSION", input));
    await runFloor();
  }
  add("-", "VERSION", ours, ref);
  const timed = [];
  for (let i = 0; i < TIMING_RUNS; i++) {
    const r = await execRun(OURS, "VERSION", input, true);
    const t = parseTiming(r.stderr);
    if (t) timed.push({ t, wall: r.ms });
  }
  if (timed.length) recordBreakdown("VERSION", timed);
  rss["VERSION ours"] = await peakRss(OURS, "VERSION", input);
  rss["VERSION ref"] = await peakRss(REF, "VERSION", input);
}

/** The scenarios: ours at `version`, the reference (which stops at 1.0.0) at 1.0.0. */
const SCENARIOS: { label: string; ipam: Ipam; version: string }[] = [
  { label: "no IPAM 1.1.0", ipam: "none", version: "1.1.0" },
  { label: "host-local 1.0.0", ipam: "host-local", version: "1.0.0" },
  { label: "host-local 1.1.0", ipam: "host-local", version: "1.1.0" },
  { label: "host-local+hostrouteif* 1.1.0", ipam: "hostroute", version: "1.1.0" },
];

for (const { label, ipam, version } of SCENARIOS) {
  if (ONLY && !label.includes(ONLY)) continue;
  const oc = conf("macvtap", ipam, version);
  const rc = conf("macvlan", ipam === "hostroute" ? "host-local" : ipam, "1.0.0");
  const times = {
    oa: [] as number[],
    oc: [] as number[],
    od: [] as number[],
    ra: [] as number[],
    rc: [] as number[],
    rd: [] as number[],
  };
  for (let i = 0; i < RUNS + 2; i++) {
    const oa = await execRun(OURS, "ADD", oc);
    const occ = await exec(OURS, "CHECK", conf("macvtap", ipam, version, JSON.parse(oa.stdout)));
    const od = await exec(OURS, "DEL", oc);
    const ra = await execRun(REF, "ADD", rc);
    // The reference's CHECK fails on an on-link route (gw 0.0.0.0: "Expected Route … not
    // found"), a bug of its own: then its CHECK column stays empty.
    const rcc = await exec(
      REF,
      "CHECK",
      conf("macvlan", ipam === "hostroute" ? "host-local" : ipam, "1.0.0", JSON.parse(ra.stdout)),
    ).catch(() => NaN);
    const rd = await exec(REF, "DEL", rc);
    await runFloor();
    if (i < 2) continue; // warm-up
    times.oa.push(oa.ms);
    times.oc.push(occ);
    times.od.push(od);
    times.ra.push(ra.ms);
    if (!Number.isNaN(rcc)) times.rc.push(rcc);
    times.rd.push(rd);
  }
  add(label, "ADD", times.oa, times.ra);
  add(label, "CHECK", times.oc, times.rc.length ? times.rc : [NaN]);
  add(label, "DEL", times.od, times.rd);
  add(
    label,
    "ADD+DEL",
    times.oa.map((x, i) => x + times.od[i]!),
    times.ra.map((x, i) => x + times.rd[i]!),
    2,
  );
  // The breakdown: separate runs with MACVTAP_TIMING=1.
  const timed: Record<string, { t: Timing; wall: number }[]> = { ADD: [], CHECK: [], DEL: [] };
  for (let i = 0; i < TIMING_RUNS; i++) {
    const a = await execRun(OURS, "ADD", oc, true);
    const c = await execRun(
      OURS,
      "CHECK",
      conf("macvtap", ipam, version, JSON.parse(a.stdout)),
      true,
    );
    const d = await execRun(OURS, "DEL", oc, true);
    for (const [op, r] of [["ADD", a], ["CHECK", c], ["DEL", d]] as const) {
      const t = parseTiming(r.stderr);
      if (t) timed[op]!.push({ t, wall: r.ms });
    }
  }
  for (const op of ["ADD", "CHECK", "DEL"]) {
    if (timed[op]!.length) recordBreakdown(`${op} ${label}`, timed[op]!);
  }
  kernelIpam[label] = ["ADD", "DEL"].reduce(
    (sum, op) => sum + (breakdowns[`${op} ${label}`]?.["  kernel+IPAM (union)"] ?? NaN),
    0,
  );
  cpu[label] = {
    ours: await cpuPerPair(OURS, oc, CPU_PAIRS),
    ref: await cpuPerPair(REF, rc, CPU_PAIRS),
  };
  rss[`ADD ${label} ours`] = await peakRss(OURS, "ADD", oc);
  rss[`DEL ${label} ours`] = await peakRss(OURS, "DEL", oc);
  rss[`ADD ${label} ref`] = await peakRss(REF, "ADD", rc);
  await exec(REF, "DEL", rc);
}

// ------------------------------------------------------------------ concurrency

/** How long N attachments at once took (each an ADD then a DEL), and what they left. */
interface Burst {
  ms: number;
  failures: string[];
  leaks: string[];
}

/**
 * `n` workers at once, each ADD then DEL of its own container (namespace
 * `<p>-b<i>`), host-local on a /16; ours also with `hostrouteif`. Then what
 * is left: links in the containers, leases, records, host routes of ours.
 */
async function burst(type: "macvtap" | "macvlan", n: number): Promise<Burst> {
  const ipamDir = `${tmp}/burst-ipam-${type}`;
  const stateDir = `${tmp}/burst-state`;
  const config = JSON.stringify({
    cniVersion: type === "macvtap" ? "1.1.0" : "1.0.0",
    name: "burstnet",
    type,
    master: "lab0",
    mode: "bridge",
    ipam: { type: "host-local", ranges: [[{ subnet: "10.77.0.0/16" }]], dataDir: ipamDir },
    ...(type === "macvtap" ? { hostrouteif: "macvtap1", stateDir } : {}),
  });
  const failures: string[] = [];
  const call = async (i: number, command: "ADD" | "DEL") => {
    const out = await runFed(type === "macvtap" ? OURS : REF, {
      env: { ...env(command), CNI_CONTAINERID: `burst${i}`, CNI_NETNS: burstNetns(i) },
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }, config);
    if (!out.success) {
      failures.push(`${command} burst${i}: ${new TextDecoder().decode(out.stdout).trim()}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      await call(i, "ADD");
      await call(i, "DEL"); // after a failed ADD too, as runtimes do
    }),
  );
  const ms = performance.now() - t0;

  const leaks: string[] = [];
  for (let i = 0; i < n; i++) {
    const links = (await sh(["ip", "-n", `${prefix}-b${i}`, "-o", "link", "show"])).out
      .split("\n").filter((l) => l.trim() && !/^\d+: lo:/.test(l));
    if (links.length) leaks.push(`burst${i}: ${links.length} link(s) left`);
  }
  const leases = listDir(`${ipamDir}/burstnet`).filter((f) =>
    f !== "lock" && !f.startsWith("last_reserved_ip")
  );
  if (leases.length) leaks.push(`${leases.length} host-local lease(s) left`);
  if (type === "macvtap") {
    const records = listDir(`${stateDir}/burstnet`);
    if (records.length) leaks.push(`${records.length} record(s) left`);
    const routes = (await sh(["ip", "-o", "route", "show", "proto", "249"])).out.trim();
    if (routes) leaks.push(`${routes.split("\n").length} host route(s) left`);
  }
  return { ms, failures, leaks };
}

function burstNetns(i: number): string {
  return `/run/netns/${prefix}-b${i}`;
}

function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch {
    return [];
  }
}

const BURST = Number(opt("--concurrency") ?? 200);
let bursts: { ours: Burst; ref: Burst; n: number } | undefined;
if ((!ONLY || "concurrent".includes(ONLY)) && BURST > 0) {
  const names = Array.from({ length: BURST }, (_, i) => `${prefix}-b${i}`);
  const made: string[] = [];
  try {
    for (const name of names) {
      const r = await sh(["ip", "netns", "add", name]);
      if (r.code) throw new Error(`ip netns add ${name}: ${r.err}`);
      made.push(name);
    }
    bursts = { n: BURST, ours: await burst("macvtap", BURST), ref: await burst("macvlan", BURST) };
  } finally {
    for (const name of made) await sh(["ip", "netns", "del", name]);
  }
}

// ------------------------------------------------------------------ report

const floor = stats(floorTimes);
/**
 * Our median minus the Deno floor per process start minus the reference's
 * median (its kernel and IPAM work plus a ~2 ms Go start).
 */
const aboveFloor = (r: Row) => r.ours.median - r.starts * floor.median - r.ref.median;

const f = (x: number) => x.toFixed(1).padStart(6);
console.log(
  `\nmacvtap benchmark: ${RUNS} runs each, interleaved; times in ms (wall, spawn to exit)`,
);
console.log(`ours: ${OURS} (the CNI part of ${OURS_SOURCE})`);
console.log(
  `floor: empty 'deno run' reading stdin: median ${f(floor.median)}  p95 ${f(floor.p95)}  ` +
    `(p95/median ${(floor.p95 / floor.median).toFixed(2)}: the noise of this run); ` +
    `time origin -> its first line: ${stats(floorFirstLine).median.toFixed(1)}\n`,
);
console.log(
  "scenario                       op        ours med   p95 |  ref med   p95 | ratio | ours-floor-ref",
);
for (const r of rows) {
  console.log(
    `${r.scenario.padEnd(30)} ${r.op.padEnd(8)} ${f(r.ours.median)} ${f(r.ours.p95)} | ${
      f(r.ref.median)
    } ${f(r.ref.p95)} | ${r.ratio.toFixed(2).padStart(5)} | ${f(aboveFloor(r))}`,
  );
}

console.log(
  `\nwhere our time goes (medians of ${TIMING_RUNS} runs with MACVTAP_TIMING=1, ms; the stretches add up to wall):`,
);
for (const [key, b] of Object.entries(breakdowns)) {
  console.log(`  ${key}  (wall ${b.wall!.toFixed(1)})`);
  for (const [k, v] of Object.entries(b)) {
    if (k === "wall") continue;
    console.log(`    ${k.padEnd(40)} ${k.endsWith("(count)") ? v.toFixed(0).padStart(6) : f(v)}`);
  }
}

console.log("\npeak RSS (MB, /usr/bin/time %M):");
for (const [k, v] of Object.entries(rss)) console.log(`  ${k.padEnd(44)} ${v.toFixed(1)}`);

// What is Deno's and what is ours, per ADD+DEL: the ratio this run would
// show if our JS took no time at all (two floors plus our own kernel+IPAM
// time), and the CPU each pair costs, which bounds throughput when many
// attachments run at once (a 2-core node is CPU-bound long before 200).
const floorCpu = Object.keys(cpu).length ? await cpuPerFloor(CPU_PAIRS) : NaN;
const limits: Record<string, unknown> = {};
if (Object.keys(cpu).length) {
  console.log(
    `\nlimits per ADD+DEL (floor CPU per empty Deno start: ${floorCpu.toFixed(1)} ms, ` +
      `mean of ${CPU_PAIRS}):`,
  );
  console.log(
    "  scenario                        zero-JS ratio | CPU ms ours    ref  floorx2 | " +
      "throughput bound ours/ref",
  );
}
for (const [label, c] of Object.entries(cpu)) {
  const row = rows.find((r) => r.scenario === label && r.op === "ADD+DEL");
  const zeroJs = row ? (2 * floor.median + kernelIpam[label]!) / row.ref.median : NaN;
  limits[label] = { zeroJsRatio: zeroJs, cpu: c, floorCpu, throughputBound: c.ref / c.ours };
  console.log(
    `  ${label.padEnd(32)} ${zeroJs.toFixed(2).padStart(6)} | ${f(c.ours)} ${f(c.ref)} ${
      f(2 * floorCpu)
    } | ${(c.ref / c.ours).toFixed(2)} (with zero JS: ${(c.ref / (2 * floorCpu)).toFixed(2)})`,
  );
}

// The issue-13 targets, with their status in this run.
const targets: string[] = [];
const status = (ok: boolean) => (ok ? "ok  " : "MISS");
// Per timing run: its wall time minus its own kernel+IPAM time; the median of
// that minus the floor is what our code and Deno's extra start-up add.
// The same from the marks alone (immune to spawn noise, assuming the time
// outside JS is Deno's, as in the floor): in-JS time minus kernel+IPAM minus
// the floor's own time origin -> first line.
const floorInJs = stats(floorFirstLine).median;
for (const [key, b] of Object.entries(breakdowns)) {
  const over = b["  wall - kernel+IPAM"]! - floor.median;
  const inJs = b["  in JS - kernel+IPAM"]! - floorInJs;
  targets.push(
    `${status(over <= 3)} ${key.padEnd(40)} wall - (kernel+IPAM ${
      b["  kernel+IPAM (union)"]!.toFixed(1)
    }) - floor = ${over.toFixed(1)} ms; in JS: ${inJs.toFixed(1)} ms (target <= 3)`,
  );
}
for (const r of rows) {
  if (r.op !== "ADD+DEL" || r.scenario.includes("hostrouteif")) continue;
  const limit = r.scenario.startsWith("no IPAM") ? 2.4 : 2.2;
  targets.push(
    `${status(r.ratio <= limit)} ADD+DEL ${r.scenario.padEnd(32)} ratio ${
      r.ratio.toFixed(2)
    } (target <= ${limit})`,
  );
}
for (const [k, v] of Object.entries(rss)) {
  if (k.endsWith(" ours")) {
    targets.push(`${status(v <= 35)} peak RSS ${k.padEnd(39)} ${v.toFixed(1)} MB (target <= 35)`);
  }
}
if (bursts) {
  const { n, ours, ref } = bursts;
  const share = ref.ms / ours.ms;
  console.log(
    `\n${n} concurrent ADD+DEL (each worker ADD then DEL, host-local; ours with hostrouteif):\n` +
      `  ours ${f(ours.ms)} ms (${(n / ours.ms * 1000).toFixed(0)} pairs/s), ` +
      `failures ${ours.failures.length}, leaks ${ours.leaks.length}\n` +
      `  ref  ${f(ref.ms)} ms (${(n / ref.ms * 1000).toFixed(0)} pairs/s), ` +
      `failures ${ref.failures.length}, leaks ${ref.leaks.length}\n` +
      `  throughput ours/ref ${share.toFixed(2)}`,
  );
  for (const x of [...ours.failures, ...ours.leaks].slice(0, 10)) console.log(`  ours: ${x}`);
  for (const x of [...ref.failures, ...ref.leaks].slice(0, 10)) console.log(`  ref: ${x}`);
  targets.push(
    `${status(ours.failures.length === 0 && ours.leaks.length === 0 && share >= 0.4)} ` +
      `${n} concurrent ADD+DEL with hostrouteif: ${ours.failures.length} failures, ` +
      `${ours.leaks.length} leaks, throughput ${
        share.toFixed(2)
      } of the reference's (target 0, 0, >= 0.40)`,
  );
}
console.log("\ntargets (issue 13):");
for (const t of targets) console.log(`  ${t}`);
console.log(
  "\n* the reference macvlan has no hostrouteif: its row is host-local only. The reference runs at\n" +
    "cniVersion 1.0.0 (its newest). ours-floor-ref: our median minus the Deno floor per process minus\n" +
    "the reference median (its kernel + IPAM work plus a ~2 ms Go start). The 3 ms targets use our own\n" +
    "kernel+IPAM time instead (the union of the netlink-request and IPAM-delegate spans), from the\n" +
    "timing runs: median(wall - kernel+IPAM) - floor.",
);
if (JSON_OUT) {
  Deno.writeTextFileSync(
    JSON_OUT,
    JSON.stringify({ floor, rows, rss, breakdowns, targets, limits, bursts }, null, 2),
  );
}
