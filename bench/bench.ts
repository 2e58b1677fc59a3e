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
 * Options: `--runs N` (default 40), `--only NAME` (a scenario substring;
 * `podman` is one), `--json FILE` (write the figures), `--podman-runs N`
 * (default 15), `--no-podman`.
 *
 * At the end, the end-to-end figure (bench/podman.ts): `podman run --rm
 * --network` with our plugin vs the reference, in a lab of its own driven from
 * the root namespace with nsenter (runc needs that, not `ip netns exec`);
 * skipped with a note when podman is not installed.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OURS = `${root}/dist/macvtap`;
const REF = "/usr/lib/cni/macvlan";
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
if (!(PODMAN_RUNS >= 1)) throw new Error("--podman-runs needs a positive number");
const PODMAN = !argv.includes("--no-podman") && (!ONLY || "podman".includes(ONLY));

async function sh(
  cmd: string[],
  input?: string,
): Promise<{ code: number; out: string; err: string }> {
  const p = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const o = await p.output();
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
  for (const f of [OURS, REF, `${CNI_PATH}/host-local`]) {
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
      const r = await podmanBench({ ours: OURS, ref: REF, runs: PODMAN_RUNS, stats });
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
  Deno.exit(code);
}

// ------------------------------------------------------------------ inner: inside <p>-host
const prefix = argv[argv.indexOf("--inner") + 1]!;
const tmp = argv[argv.indexOf("--inner") + 2]!;
const NETNS = `/run/netns/${prefix}-ctr`;
const floorScript = `${tmp}/floor.js`;
Deno.writeTextFileSync(
  floorScript,
  `const b=new Uint8Array(65536);let n=0;for(;;){const r=Deno.stdin.readSync(b.subarray(n));if(!r)break;n+=r}` +
    `Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({cniVersion:"1.1.0",supportedVersions:["1.1.0"]})))`,
);

function conf(type: string, ipam: "none" | "host-local" | "hostroute"): string {
  const c: Record<string, unknown> = {
    cniVersion: type === "macvtap" ? "1.1.0" : "1.0.0",
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
  return JSON.stringify(c);
}

function env(command: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "bench1",
    CNI_NETNS: NETNS,
    CNI_IFNAME: "eth0",
    CNI_PATH,
    CNI_ARGS: "",
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    MACVTAP_STATE_ROOT: tmp,
  };
}

async function exec(bin: string, command: string, stdin: string): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(bin, {
    env: env(command),
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await child.output();
  const dt = performance.now() - t0;
  if (!out.success) {
    throw new Error(
      `${bin} ${command} failed (${out.code}): ${new TextDecoder().decode(out.stdout)} ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return dt;
}

async function peakRss(bin: string, command: string, stdin: string): Promise<number> {
  const r = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", bin],
    env: env(command),
    clearEnv: true,
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const w = r.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const o = await r.output();
  const lines = new TextDecoder().decode(o.stderr).trim().split("\n");
  return Number(lines.at(-1)) / 1024;
}

interface Row {
  scenario: string;
  op: string;
  ours: { median: number; p95: number };
  ref: { median: number; p95: number };
  ratio: number;
  aboveFloor: number;
}
const rows: Row[] = [];
const rss: Record<string, number> = {};

const floorTimes: number[] = [];
const deno = Deno.execPath();
for (let i = 0; i < RUNS; i++) {
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
  }).output();
  floorTimes.push(performance.now() - t0);
}
const floor = stats(floorTimes);

function add(scenario: string, op: string, ours: number[], ref: number[], starts = 1): void {
  const o = stats(ours), r = stats(ref);
  rows.push({
    scenario,
    op,
    ours: o,
    ref: r,
    ratio: o.median / r.median,
    // Our median minus the Deno floor per process start minus the reference's
    // median (its kernel and IPAM work plus a ~2 ms Go start).
    aboveFloor: o.median - starts * floor.median - r.median,
  });
}

if (!ONLY || "version".includes(ONLY)) {
  const ours: number[] = [], ref: number[] = [];
  const input = '{"cniVersion":"1.0.0"}';
  for (let i = 0; i < RUNS; i++) {
    ours.push(await exec(OURS, "VERSION", input));
    ref.push(await exec(REF, "VERSION", input));
  }
  add("-", "VERSION", ours, ref);
  rss["VERSION ours"] = await peakRss(OURS, "VERSION", input);
  rss["VERSION ref"] = await peakRss(REF, "VERSION", input);
}

for (const scenario of ["none", "host-local", "hostroute"] as const) {
  if (ONLY && !scenario.includes(ONLY)) continue;
  const oc = conf("macvtap", scenario);
  const rc = conf("macvlan", scenario === "hostroute" ? "host-local" : scenario);
  const times = { oa: [] as number[], od: [] as number[], ra: [] as number[], rd: [] as number[] };
  for (let i = 0; i < RUNS + 2; i++) {
    const oa = await exec(OURS, "ADD", oc);
    const od = await exec(OURS, "DEL", oc);
    const ra = await exec(REF, "ADD", rc);
    const rd = await exec(REF, "DEL", rc);
    if (i < 2) continue; // warm-up
    times.oa.push(oa);
    times.od.push(od);
    times.ra.push(ra);
    times.rd.push(rd);
  }
  const label = scenario === "none"
    ? "no IPAM"
    : scenario === "host-local"
    ? "host-local"
    : "host-local+hostrouteif*";
  add(label, "ADD", times.oa, times.ra);
  add(label, "DEL", times.od, times.rd);
  add(
    label,
    "ADD+DEL",
    times.oa.map((x, i) => x + times.od[i]!),
    times.ra.map((x, i) => x + times.rd[i]!),
  );
  rss[`ADD ${label} ours`] = await peakRss(OURS, "ADD", oc);
  rss[`DEL ${label} ours`] = await peakRss(OURS, "DEL", oc);
  rss[`ADD ${label} ref`] = await peakRss(REF, "ADD", rc);
  await exec(REF, "DEL", rc);
}

const f = (x: number) => x.toFixed(1).padStart(6);
console.log(
  `\nmacvtap benchmark: ${RUNS} runs each, interleaved; times in ms (wall, spawn to exit)`,
);
console.log(
  `floor: empty 'deno run' reading stdin: median ${f(floor.median)}  p95 ${f(floor.p95)}\n`,
);
console.log(
  "scenario                  op        ours med   p95 |  ref med   p95 | ratio | ours-floor-ref",
);
for (const r of rows) {
  console.log(
    `${r.scenario.padEnd(25)} ${r.op.padEnd(8)} ${f(r.ours.median)} ${f(r.ours.p95)} | ${
      f(r.ref.median)
    } ${f(r.ref.p95)} | ${r.ratio.toFixed(2).padStart(5)} | ${
      f(r.ours.median - floor.median - r.ref.median)
    }`,
  );
}
console.log("\npeak RSS (MB, /usr/bin/time %M):");
for (const [k, v] of Object.entries(rss)) console.log(`  ${k.padEnd(40)} ${v.toFixed(1)}`);
console.log(
  "\n* the reference macvlan has no hostrouteif: its row is host-local only.\n" +
    "ours-floor-ref: our median minus the Deno floor minus the reference median (the reference's time\n" +
    "is its kernel + IPAM work plus a ~2 ms Go start): what our own code adds.",
);
if (JSON_OUT) Deno.writeTextFileSync(JSON_OUT, JSON.stringify({ floor, rows, rss }, null, 2));
