/**
 * `deno task demo`: the seed-002 lab, end to end, through `dist/macvtap`.
 *
 * A "host" namespace has its own address 192.168.10.22/24 (+ fd10::22/64)
 * on an uplink `eth0` to a "router" namespace, and a master `eth1` (no
 * address) whose other end is in a "lan" namespace (192.168.122.1/24,
 * fd22::1/64, a peer/router on the task LAN). Two tasks (container
 * namespaces) are attached by running `dist/macvtap` exactly as a runtime
 * does: a separate process in the host namespace, CNI_* environment, config
 * on stdin; host-local IPAM and `hostrouteif: "macvtap1"`. The demo shows the
 * configuration, the results, what was configured, and pings host ↔ task,
 * task ↔ task and task → LAN peer; then DEL, teardown, and proof that
 * nothing is left.
 *
 * Everything lives in namespaces and a temp dir this script creates; they
 * are removed on success, failure and Ctrl-C. The root namespace's links are
 * never touched (it is only read: `ip netns list`, `ip route show proto 249`).
 *
 * Exit status: 0 when every check passed, 1 when one failed (or a tool is
 * missing), 130 when interrupted.
 *
 * @module
 */

import {
  cni as runCni,
  type CniCall,
  type CniEnv,
  cniEnv,
  exists,
  hasExecutable,
  HOST_LOCAL,
  Lab,
  listNetns,
  markerPath,
  moduleToken,
  PLUGIN,
  run,
} from "../lab/mod.ts";
import { recordKey } from "../plugin/state.ts";

const NETWORK = "tasks";
const HOST_V4 = "192.168.10.22";
const HOST_V6 = "fd10::22";
const LAN_V4 = "192.168.122.1";
const LAN_V6 = "fd22::1";
const TASKS = ["task1", "task2"] as const;
/**
 * 1.1.0, the newest spec. Debian 12's host-local stops at 1.0.0; the plugin
 * then speaks 1.0.0 to it. `DEMO_CNI_VERSION` overrides it.
 */
const CNI_VERSION = Deno.env.get("DEMO_CNI_VERSION") ?? "1.1.0";
type TaskName = typeof TASKS[number];

// ───────────────────────────── output ─────────────────────────────

const encoder = new TextEncoder();
const tty = Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
const sgr = (code: string) => (s: string) => tty ? `\x1b[${code}m${s}\x1b[0m` : s;
const bold = sgr("1");
const dim = sgr("2");
const red = sgr("31");
const green = sgr("32");
const yellow = sgr("33");
const cyan = sgr("36");
const title = sgr("1;34");

/** Print a line; a closed stdout (`| head`) must not stop the cleanup. */
function say(text = ""): void {
  try {
    Deno.stdout.writeSync(encoder.encode(text + "\n"));
  } catch {
    // reader gone
  }
}

function sayErr(text: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(text + "\n"));
  } catch {
    // reader gone
  }
}

function indent(text: string, pad = "    "): string {
  return text.replace(/\n+$/, "").split("\n").map((l) => pad + l).join("\n");
}

let sectionNo = 0;
function section(name: string): void {
  sectionNo++;
  const head = `━━ ${sectionNo}. ${name} `;
  say();
  say(title(head + "━".repeat(Math.max(3, 78 - head.length))));
}

function sub(text: string): void {
  say();
  say(bold(`  ▸ ${text}`));
}

function showCmd(cmd: string): void {
  say(dim(`    $ ${cmd}`));
}

/** One-line JSON with spaces, as a person writes it. */
function flatJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(flatJson).join(", ")}]`;
  if (v !== null && typeof v === "object") {
    const parts = Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${flatJson(x)}`);
    return parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
  }
  return JSON.stringify(v) ?? "null";
}

/**
 * JSON that keeps short objects and arrays on one line. `lead` is how many
 * characters precede the value on its first line (indentation and key).
 */
function prettyJson(v: unknown, pad = "", lead = 0, width = 92): string {
  const flat = flatJson(v);
  if (v === null || typeof v !== "object" || lead + flat.length <= width) return flat;
  const next = pad + "  ";
  if (Array.isArray(v)) {
    return `[\n${
      v.map((x) => next + prettyJson(x, next, next.length, width)).join(",\n")
    }\n${pad}]`;
  }
  const lines = Object.entries(v).map(([k, x]) => {
    const key = JSON.stringify(k);
    return `${next}${cyan(key)}: ${prettyJson(x, next, next.length + key.length + 2, width)}`;
  });
  return `{\n${lines.join(",\n")}\n${pad}}`;
}

// ───────────────────────────── checks ─────────────────────────────

const failures: string[] = [];
/** Things that worked, but not at once (shown in the summary). */
const warnings: string[] = [];
let passed = 0;

function check(ok: boolean, what: string, detail = ""): boolean {
  if (ok) {
    passed++;
    say(`    ${green("✔")} ${what}${detail ? dim(`  ${detail}`) : ""}`);
  } else {
    failures.push(detail ? `${what}: ${detail}` : what);
    say(`    ${red("✘")} ${what}${detail ? red(`  — ${detail}`) : ""}`);
  }
  return ok;
}

/** A failure after which the demo cannot go on (teardown still runs). */
class Fatal extends Error {}
class Interrupted extends Error {}

// ──────────────────────── interruption and cleanup ────────────────────────

let interrupted = false;
let lab: Lab | undefined;
let teardownPromise: Promise<void> | undefined;

function ensureRunning(): void {
  if (interrupted) throw new Interrupted("interrupted");
}

function teardown(): Promise<void> {
  teardownPromise ??= (async () => {
    if (lab) await lab[Symbol.asyncDispose]();
  })();
  return teardownPromise;
}

function onSignal(sig: Deno.Signal): void {
  if (teardownPromise) {
    sayErr(yellow(`\n${sig}: cleanup is in progress, please wait…`));
    return;
  }
  if (!interrupted) {
    interrupted = true;
    sayErr(yellow(`\n${sig}: stopping after the current command, then cleaning up…`));
    return;
  }
  sayErr(yellow(`\n${sig} again: cleaning up now…`));
  teardown().finally(() => {
    removeModuleToken();
    sayErr("cleaned up; interrupted");
    Deno.exit(130);
  });
}

const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const handlers = new Map<Deno.Signal, () => void>();

function removeModuleToken(): void {
  try {
    Deno.removeSync(moduleToken);
  } catch {
    // gone already
  }
}

// ───────────────────────────── commands ─────────────────────────────

function theLab(): Lab {
  if (!lab) throw new Error("no lab");
  return lab;
}

async function ip(ns: string, ...args: string[]): Promise<string> {
  ensureRunning();
  try {
    return await theLab().ip(ns, ...args);
  } finally {
    ensureRunning(); // a child killed by Ctrl-C must not read as a result
  }
}

async function ipJson<T>(ns: string, ...args: string[]): Promise<T[]> {
  ensureRunning();
  const r = await theLab().exec(ns, ["ip", "-j", "-d", ...args], { timeoutMs: 10_000 });
  ensureRunning();
  if (!r.success) return [];
  const text = r.stdout.trim();
  return text === "" ? [] : JSON.parse(text) as T[];
}

/** Run `ip -n NS ARGS` and print it with its output. */
async function showIp(ns: string, label: string, ...args: string[]): Promise<void> {
  showCmd(`ip -n ${ns} ${args.join(" ")}${dim(`        # ${label}`)}`);
  try {
    const out = await ip(ns, ...args);
    say(out.trim() === "" ? dim("      (nothing)") : indent(out, "      "));
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    say(red(indent(err instanceof Error ? err.message : String(err), "      ")));
  }
}

/** A finished plugin call and how long it took. */
interface CniOutcome extends CniCall {
  ms: number;
}

/** Run `dist/macvtap` as a runtime does: in the host namespace, clean env, config on stdin. */
async function cni(
  hostNs: string,
  command: string,
  task: TaskName,
  netnsPath: string,
  config: Record<string, unknown>,
  stdinNote: string,
): Promise<CniOutcome> {
  ensureRunning();
  const e: CniEnv = {
    command,
    containerId: `demo-${task}`,
    netns: netnsPath,
    // The demo keeps its state in its work directory (under /tmp); no CNI_ARGS, default log root.
    extra: { MACVTAP_STATE_ROOT: "/tmp", CNI_ARGS: undefined, MACVTAP_LOG_DIR: undefined },
  };
  const env = cniEnv(e);
  showCmd(`ip netns exec ${hostNs} env -i PATH=${env.PATH} \\`);
  say(
    dim(
      `          CNI_COMMAND=${command} CNI_CONTAINERID=${env.CNI_CONTAINERID} CNI_IFNAME=eth0 \\`,
    ),
  );
  say(dim(`          CNI_NETNS=${netnsPath} CNI_PATH=${env.CNI_PATH} \\`));
  say(dim(`          ${PLUGIN} < ${stdinNote}`));
  const t0 = performance.now();
  const r = await runCni(theLab(), hostNs, e, config, PLUGIN, { timeoutMs: 30_000 });
  const ms = performance.now() - t0;
  ensureRunning();
  const status = r.code === 0 ? green(`exit 0`) : red(`exit ${r.code}`);
  say(`    → ${status} ${dim(`in ${ms.toFixed(0)} ms`)}`);
  if (r.stderr.trim() !== "") {
    say(dim("    stderr:"));
    say(dim(indent(r.stderr, "      ")));
  }
  return { ...r, ms };
}

// ───────────────────────────── ping ─────────────────────────────

interface Pinger {
  label: string;
  argv(addr: string): string[];
}

function findPinger(): Pinger | undefined {
  if (hasExecutable("ping")) {
    return { label: "ping (iputils)", argv: (a) => ["ping", "-n", "-c1", "-W1", a] };
  }
  if (hasExecutable("busybox")) {
    return { label: "busybox ping", argv: (a) => ["busybox", "ping", "-c1", "-W1", a] };
  }
  return undefined;
}

let pinger: Pinger = { label: "", argv: (a) => ["ping", a] };

interface Probe {
  from: string;
  ns: string;
  to: string;
  addr: string;
}

async function ping(
  p: Probe,
  expectReply: boolean,
): Promise<{ ok: boolean; text: string }> {
  // Up to 4 tries when a reply is expected: a fresh IPv6 link-local is
  // tentative (DAD) for 1–2 s. A late reply passes, with a warning.
  const tries = expectReply ? 4 : 1;
  let last = "";
  for (let i = 1; i <= tries; i++) {
    ensureRunning();
    const r = await theLab().exec(p.ns, pinger.argv(p.addr), { timeoutMs: 5_000 });
    ensureRunning();
    if (r.success) {
      const time = /time[=<]([\d.]+) ?ms/.exec(r.stdout)?.[1];
      const text = `reply${time ? ` in ${time} ms` : ""}`;
      if (i === 1) return { ok: true, text };
      warnings.push(`${p.from} → ${p.to} ${p.addr}: no reply to the first ${i - 1} ping(s)`);
      return { ok: true, text: `${text} ${yellow(`(only to try ${i}: ${i - 1} lost)`)}` };
    }
    const lines = `${r.stderr}\n${r.stdout}`.split("\n").map((l) => l.trim());
    last = lines.find((l) => /unreachable|error|cannot|bad address|invalid/i.test(l)) ??
      "no reply within 1 s";
    last = last.replace(/^ping: /, "");
  }
  return { ok: false, text: tries > 1 ? `${last} (${tries} tries)` : last };
}

async function pingTable(probes: Probe[], expectReply: boolean): Promise<void> {
  const w1 = Math.max(...probes.map((p) => p.from.length));
  const w2 = Math.max(...probes.map((p) => p.to.length));
  const w3 = Math.max(...probes.map((p) => p.addr.length));
  for (const p of probes) {
    const r = await ping(p, expectReply);
    const what = `${p.from.padEnd(w1)} → ${p.to.padEnd(w2)}  ${p.addr.padEnd(w3)}`;
    const good = r.ok === expectReply;
    const text = expectReply ? r.text : (r.ok ? `unexpected ${r.text}` : `no: ${r.text}`);
    check(good, what, text);
  }
}

// ───────────────────────────── the demo ─────────────────────────────

interface TaskState {
  name: TaskName;
  ns: string;
  path: string;
  result?: Record<string, unknown>;
  v4?: string | undefined;
  v6?: string | undefined;
}

interface IpLink {
  ifname: string;
  link?: string;
  operstate?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}
interface IpAddr {
  addr_info?: { family: string; local: string; prefixlen: number; scope: string }[];
}
interface IpRoute {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  scope?: string;
}

function addrOf(cidr: unknown): string {
  return typeof cidr === "string" ? cidr.replace(/\/\d+$/, "") : "";
}

/** What the scenes share: built by {@linkcode sceneLab}, filled in by {@linkcode sceneAdd}. */
interface Stage {
  /** The plugin's namespace (seed 002 "host"). */
  host: string;
  tasks: [TaskState, TaskState];
  /** The temp dir with tasks.conf, ipam/ and state/. */
  work: string;
  config: Record<string, unknown>;
}

/** The demo: scenes in order; each checks what it shows. */
async function demo(): Promise<void> {
  const stage = await sceneLab();
  await sceneConfig(stage);
  await sceneAdd(stage);
  await sceneConfigured(stage);
  await sceneCheck(stage);
  await sceneTraffic(stage);
  await sceneDel(stage);
}

/** Scene 1: the seed 002 lab with two empty task namespaces, shown and sanity-checked. */
async function sceneLab(): Promise<Stage> {
  const l = theLab();
  section("The lab (seed 002), built in network namespaces of its own");
  const { host, router, lan } = await l.seed002Net();
  const tasks: TaskState[] = [];
  for (const name of TASKS) {
    const ns = await l.netns(name);
    tasks.push({ name, ns, path: l.path(ns) });
  }
  const [t1, t2] = tasks as [TaskState, TaskState];
  ensureRunning();
  const work = await l.tempDir("work");

  const row = (name: string, addrs: string, note = "") =>
    say(
      note
        ? `      ${name.padEnd(8)}${addrs.padEnd(32)}${dim(note)}`
        : `      ${name.padEnd(8)}${addrs}`,
    );
  const nsRow = (role: string, ns: string, note = "") =>
    say(
      note
        ? `    ${bold(role.padEnd(8))}${ns.padEnd(34)}${dim(note)}`
        : `    ${bold(role.padEnd(8))}${ns}`,
    );
  const wire = () => say(dim("        │ veth"));
  say();
  nsRow("router", router);
  row("eth0p", "192.168.10.1/24  fd10::1/64");
  wire();
  row("eth0", `${HOST_V4}/24 ${HOST_V6}/64`, "the host's own address (the agent)");
  nsRow("host", host, "the plugin runs here");
  row("eth1", "(no address)", "master of the task macvtaps and of macvtap1");
  wire();
  row("lan0", `${LAN_V4}/24 ${LAN_V6}/64`, "a peer/router on the task LAN");
  nsRow("lan", lan);
  say();
  nsRow("task1", t1.ns, "empty container namespaces: the plugin gives");
  nsRow("task2", t2.ns, "each an eth0, a bridge-mode macvtap on eth1");
  say();
  say(`    temp dir ${work}`);
  say(dim("      tasks.conf, ipam/ (host-local dataDir), state/ (the plugin's stateDir)"));
  sub("the host namespace");
  await showIp(host, "addresses", "-br", "addr");
  await showIp(host, "routes", "route");
  sub("sanity: the uplink works, and the task LAN is not reachable from the host yet");
  await pingTable([{ from: "host", ns: host, to: "router", addr: "192.168.10.1" }], true);
  await pingTable([{ from: "host", ns: host, to: "LAN peer", addr: LAN_V4 }], false);
  return { host, tasks: [t1, t2], work, config: demoConfig(work) };
}

/** The network configuration of the demo; state and IPAM data under `work`. */
function demoConfig(work: string): Record<string, unknown> {
  return {
    cniVersion: CNI_VERSION,
    name: NETWORK,
    type: "macvtap",
    master: "eth1",
    mode: "bridge",
    hostrouteif: "macvtap1",
    stateDir: `${work}/state`,
    ipam: {
      type: "host-local",
      dataDir: `${work}/ipam`,
      ranges: [
        [{
          subnet: "192.168.122.0/24",
          rangeStart: "192.168.122.171",
          rangeEnd: "192.168.122.179",
        }],
        [{ subnet: "fd22::/64", rangeStart: "fd22::171", rangeEnd: "fd22::179" }],
      ],
      routes: [{ dst: `${HOST_V4}/32`, gw: "0.0.0.0" }, { dst: `${HOST_V6}/128`, gw: "::" }],
    },
  };
}

/** Scene 2: the configuration the runtime passes on stdin. */
async function sceneConfig({ work, config }: Stage): Promise<void> {
  section("The network configuration (what the runtime passes on stdin)");
  await Deno.writeTextFile(`${work}/tasks.conf`, JSON.stringify(config, null, 2) + "\n");
  say(indent(prettyJson(config)));
  say(dim(`
    hostrouteif: the host reaches the tasks through macvtap1, a bridge-mode sibling on eth1
    (a macvtap cannot talk to its own lower device's host stack); ipam.routes give each task
    an on-link route back to the host's own address (IPv6: via macvtap1's link-local).`));
}

/** Scene 3: ADD both tasks, as a runtime does; records each result and addresses. */
async function sceneAdd({ host, tasks, config }: Stage): Promise<void> {
  section("ADD: attach the two tasks, as a runtime does");
  for (const t of tasks) {
    sub(`ADD ${t.name}`);
    const r = await cni(host, "ADD", t.name, t.path, config, "tasks.conf");
    if (r.code !== 0 || !r.json) {
      check(false, `ADD ${t.name}`, `exit ${r.code}: ${r.stdout.trim() || r.stderr.trim()}`);
      throw new Fatal(`ADD ${t.name} failed`);
    }
    say(indent(prettyJson(r.json)));
    t.result = r.json;
    const ips = Array.isArray(r.json.ips) ? r.json.ips as Record<string, unknown>[] : [];
    t.v4 = ips.map((i) => addrOf(i.address)).find((a) => a.includes("."));
    t.v6 = ips.map((i) => addrOf(i.address)).find((a) => a.includes(":"));
    const n4 = Number(t.v4?.split(".")[3] ?? -1);
    check(
      t.v4 !== undefined && t.v4.startsWith("192.168.122.") && n4 >= 171 && n4 <= 179,
      `${t.name}: IPv4 address from the range`,
      t.v4 ?? "none",
    );
    check(
      t.v6 !== undefined && t.v6.startsWith("fd22::"),
      `${t.name}: IPv6 address`,
      t.v6 ?? "none",
    );
    const ifs = Array.isArray(r.json.interfaces)
      ? r.json.interfaces as Record<string, unknown>[]
      : [];
    check(
      ifs.some((i) => i.name === "eth0" && i.sandbox === t.path),
      `${t.name}: result names eth0 in the task's namespace`,
    );
    if (!t.v4 || !t.v6) throw new Fatal(`ADD ${t.name}: no addresses to test with`);
  }
}

/** Scene 4: what the plugin configured, in the tasks, on the host and on disk. */
async function sceneConfigured({ host, tasks, work }: Stage): Promise<void> {
  section("What the plugin configured");
  const [mv1] = await ipJson<IpLink>(host, "link", "show", "macvtap1");
  const [mv1Addr] = await ipJson<IpAddr>(host, "addr", "show", "dev", "macvtap1");
  const ll = mv1Addr?.addr_info?.find((a) => a.family === "inet6" && a.scope === "link")?.local;
  for (const t of tasks) {
    sub(`${t.name} (${t.ns})`);
    await showIp(t.ns, "the task's interface", "addr", "show", "dev", "eth0");
    await showIp(t.ns, "IPv4 routes", "route");
    await showIp(t.ns, "IPv6 routes", "-6", "route");
    const [link] = await ipJson<IpLink>(t.ns, "link", "show", "eth0");
    check(
      link?.linkinfo?.info_kind === "macvtap" && link.linkinfo.info_data?.mode === "bridge",
      `${t.name}: eth0 is a bridge-mode macvtap`,
      `${link?.linkinfo?.info_kind ?? "missing"} ${link?.linkinfo?.info_data?.mode ?? ""}`.trim(),
    );
    check(link?.flags?.includes("UP") === true, `${t.name}: eth0 is up`);
    const [a] = await ipJson<IpAddr>(t.ns, "addr", "show", "dev", "eth0");
    const locals = (a?.addr_info ?? []).map((x) => `${x.local}/${x.prefixlen}`);
    check(
      locals.includes(`${t.v4}/24`) && locals.includes(`${t.v6}/64`),
      `${t.name}: eth0 has ${t.v4}/24 and ${t.v6}/64`,
    );
    const r4 = await ipJson<IpRoute>(t.ns, "route", "show", `${HOST_V4}/32`);
    check(
      r4.some((r) => r.dev === "eth0" && r.scope === "link" && !r.gateway),
      `${t.name}: on-link route to the host ${HOST_V4}`,
      r4.map((r) => `${r.dst} dev ${r.dev} scope ${r.scope}`).join(" ") || "missing",
    );
    const r6 = await ipJson<IpRoute>(t.ns, "-6", "route", "show", `${HOST_V6}/128`);
    check(
      r6.some((r) => r.dev === "eth0" && ll !== undefined && r.gateway === ll),
      `${t.name}: route to the host ${HOST_V6} via macvtap1's link-local`,
      `${r6.map((r) => `via ${r.gateway ?? "-"}`).join(" ") || "missing"}, macvtap1 has ${
        ll ?? "no link-local"
      }`,
    );
  }
  sub(`host (${host})`);
  await showIp(host, "the host route interface", "addr", "show", "dev", "macvtap1");
  await showIp(host, "IPv4 routes through it", "route", "show", "dev", "macvtap1");
  await showIp(host, "IPv6 routes through it", "-6", "route", "show", "dev", "macvtap1");
  check(
    mv1?.linkinfo?.info_kind === "macvtap" && mv1.linkinfo.info_data?.mode === "bridge" &&
      mv1.link === "eth1",
    "host: macvtap1 is a bridge-mode macvtap on eth1",
    mv1 ? `${mv1.linkinfo?.info_kind} ${mv1.linkinfo?.info_data?.mode} on ${mv1.link}` : "missing",
  );
  check(mv1?.flags?.includes("UP") === true, "host: macvtap1 is up");
  const global = (mv1Addr?.addr_info ?? []).filter((x) => x.scope !== "link");
  check(
    global.length === 0,
    "host: macvtap1 has no address of its own",
    global.map((x) => x.local).join(" "),
  );
  const own4 = await ipJson<IpRoute>(host, "route", "show", "proto", "249");
  const own6 = await ipJson<IpRoute>(host, "-6", "route", "show", "proto", "249");
  for (const t of tasks) {
    check(
      own4.some((r) => r.dst === t.v4 && r.dev === "macvtap1"),
      `host: route ${t.v4}/32 dev macvtap1 proto 249`,
    );
    check(
      own6.some((r) => r.dst === t.v6 && r.dev === "macvtap1"),
      `host: route ${t.v6}/128 dev macvtap1 proto 249`,
    );
  }
  sub("records");
  for (const t of tasks) {
    const rec = `${work}/state/${NETWORK}/${recordKey(`demo-${t.name}`, "eth0")}`;
    check(await exists(rec), `plugin record ${rec.slice(work.length + 1)}`);
    const lease4 = `${work}/ipam/${NETWORK}/${t.v4}`;
    const lease6 = `${work}/ipam/${NETWORK}/${t.v6}`;
    check(
      await exists(lease4) && await exists(lease6),
      `host-local leases ipam/${NETWORK}/{${t.v4},${t.v6}}`,
    );
  }
}

/** Scene 5: CHECK compares the live state with each ADD result. */
async function sceneCheck({ host, tasks, config }: Stage): Promise<void> {
  section("CHECK: the plugin compares the live state with the ADD result");
  for (const t of tasks) {
    sub(`CHECK ${t.name}`);
    const r = await cni(
      host,
      "CHECK",
      t.name,
      t.path,
      { ...config, prevResult: t.result },
      "tasks.conf + prevResult (the ADD result, as libcni sends it)",
    );
    check(
      r.code === 0 && r.stdout.trim() === "",
      `CHECK ${t.name}`,
      r.code === 0 ? "" : r.stdout.trim(),
    );
  }
}

/** Scene 6: host ↔ task, task ↔ task and task → LAN peer pings. */
async function sceneTraffic({ host, tasks }: Stage): Promise<void> {
  const [t1, t2] = tasks;
  section(`Traffic (${pinger.label} -c1 -W1, run inside the namespaces)`);
  const probes: Probe[] = [];
  for (const t of tasks) {
    probes.push({ from: "host", ns: host, to: t.name, addr: t.v4! });
    probes.push({ from: "host", ns: host, to: t.name, addr: t.v6! });
  }
  for (const t of tasks) {
    probes.push({ from: t.name, ns: t.ns, to: "host", addr: HOST_V4 });
    probes.push({ from: t.name, ns: t.ns, to: "host", addr: HOST_V6 });
  }
  for (const [a, b] of [[t1, t2], [t2, t1]] as const) {
    probes.push({ from: a.name, ns: a.ns, to: b.name, addr: b.v4! });
    probes.push({ from: a.name, ns: a.ns, to: b.name, addr: b.v6! });
  }
  for (const t of tasks) {
    probes.push({ from: t.name, ns: t.ns, to: "LAN peer", addr: LAN_V4 });
    probes.push({ from: t.name, ns: t.ns, to: "LAN peer", addr: LAN_V6 });
  }
  sub("host ↔ task (through macvtap1), task ↔ task and task → LAN peer (macvtap bridge mode)");
  await pingTable(probes, true);
}

/** Scene 7: DEL both tasks (and one again), then prove their traces are gone. */
async function sceneDel({ host, tasks, work, config }: Stage): Promise<void> {
  const [t1] = tasks;
  section("DEL: detach both tasks");
  for (const t of tasks) {
    sub(`DEL ${t.name}`);
    const r = await cni(
      host,
      "DEL",
      t.name,
      t.path,
      { ...config, prevResult: t.result },
      "tasks.conf + prevResult",
    );
    check(r.code === 0, `DEL ${t.name}`, r.code === 0 ? "" : r.stdout.trim() || r.stderr.trim());
  }
  sub("DEL task1 again (a runtime may repeat DEL; it must succeed)");
  const again = await cni(host, "DEL", "task1", t1.path, config, "tasks.conf");
  check(again.code === 0, "DEL task1 again", again.code === 0 ? "" : again.stdout.trim());

  sub("what is left");
  await showIp(host, "our routes (proto 249), IPv4", "route", "show", "proto", "249");
  await showIp(host, "our routes (proto 249), IPv6", "-6", "route", "show", "proto", "249");
  await showIp(host, "kept for the next task (shared)", "-br", "link", "show", "macvtap1");
  const left4 = await ipJson<IpRoute>(host, "route", "show", "proto", "249");
  const left6 = await ipJson<IpRoute>(host, "-6", "route", "show", "proto", "249");
  check(
    left4.length + left6.length === 0,
    "host: no routes with proto 249",
    [...left4, ...left6].map((r) => r.dst).join(" "),
  );
  for (const t of tasks) {
    const links = await ipJson<IpLink>(t.ns, "link", "show");
    const names = links.map((x) => x.ifname);
    check(
      !names.includes("eth0"),
      `${t.name}: eth0 is gone`,
      `links: ${names.join(" ")}`,
    );
    check(
      !(await exists(`${work}/state/${NETWORK}/${recordKey(`demo-${t.name}`, "eth0")}`)),
      `${t.name}: record removed`,
    );
    check(
      !(await exists(`${work}/ipam/${NETWORK}/${t.v4}`)) &&
        !(await exists(`${work}/ipam/${NETWORK}/${t.v6}`)),
      `${t.name}: host-local leases released`,
    );
  }
  sub("pings stop working");
  const gone: Probe[] = [];
  for (const t of tasks) {
    gone.push({ from: "host", ns: host, to: t.name, addr: t.v4! });
    gone.push({ from: "host", ns: host, to: t.name, addr: t.v6! });
  }
  gone.push({ from: "task1", ns: t1.ns, to: "host", addr: HOST_V4 });
  gone.push({ from: "task1", ns: t1.ns, to: "host", addr: HOST_V6 });
  await pingTable(gone, false);
}

/** After a fatal failure: what the namespaces look like, for the bug report. */
async function dumpState(): Promise<void> {
  const l = theLab();
  const all = l.namespaces;
  const host = all.find((n) => n.endsWith("-host"));
  const tasks = all.filter((n) => /-task\d$/.test(n));
  if (!host) return;
  sub("state at the failure (before teardown)");
  for (const ns of tasks) await showIp(ns, "task links", "-br", "link");
  await showIp(host, "host links", "-br", "link");
  await showIp(host, "our routes (proto 249)", "route", "show", "proto", "249");
  await showIp(host, "our routes (proto 249)", "-6", "route", "show", "proto", "249");
  for (const d of l.dirs) {
    const r = await run(["find", d, "-mindepth", "1"]);
    showCmd(`find ${d} -mindepth 1`);
    say(indent(r.stdout.trim() || "(nothing)", "      "));
  }
}

async function rootOwnRoutes(): Promise<string[]> {
  // Read-only look at the root namespace's routing tables.
  const v4 = await run(["ip", "route", "show", "table", "all", "proto", "249"]);
  const v6 = await run(["ip", "-6", "route", "show", "table", "all", "proto", "249"]);
  return `${v4.stdout}\n${v6.stdout}`.split("\n").map((s) => s.trim()).filter((s) => s !== "");
}

async function proveClean(
  id: string,
  namespaces: readonly string[],
  dirs: readonly string[],
  rootBefore: string[],
): Promise<void> {
  section("Teardown: nothing is left");
  showCmd(`ip netns list | grep ${id}`);
  const left = (await listNetns()).filter((n) => n.startsWith(`${id}-`) || namespaces.includes(n));
  say(left.length === 0 ? dim("      (nothing)") : indent(left.join("\n"), "      "));
  check(left.length === 0, `no lab namespaces (${namespaces.length} created)`, left.join(" "));

  const tmpParents = new Set(dirs.map((d) => d.slice(0, d.lastIndexOf("/")) || "/"));
  tmpParents.add(Deno.env.get("TMPDIR") ?? "/tmp");
  const leftDirs: string[] = [];
  for (const parent of tmpParents) {
    try {
      for await (const e of Deno.readDir(parent)) {
        if (e.name.startsWith(`${id}-`)) leftDirs.push(`${parent}/${e.name}`);
      }
    } catch {
      // unreadable: the per-dir check below still runs
    }
  }
  for (const d of dirs) if (await exists(d) && !leftDirs.includes(d)) leftDirs.push(d);
  showCmd(`ls -d ${[...tmpParents].map((p) => `${p}/${id}-*`).join(" ")}`);
  say(leftDirs.length === 0 ? dim("      (nothing)") : indent(leftDirs.join("\n"), "      "));
  check(leftDirs.length === 0, "no temp dirs", leftDirs.join(" "));

  showCmd("ip route show table all proto 249; ip -6 route show table all proto 249");
  const rootAfter = await rootOwnRoutes();
  const added = rootAfter.filter((r) => !rootBefore.includes(r));
  say(rootAfter.length === 0 ? dim("      (nothing)") : indent(rootAfter.join("\n"), "      "));
  check(
    added.length === 0,
    "no routes with proto 249 in the root namespace",
    rootBefore.length > 0 ? `${rootBefore.length} were there before the demo` : "",
  );
  check(!(await exists(markerPath(id))), "lab marker removed");
}

function preflight(): Pinger {
  const problems: string[] = [];
  if (Deno.uid() !== 0) problems.push("run as root: the demo creates network namespaces");
  if (!hasExecutable("ip")) problems.push("`ip` is missing: apt-get install iproute2");
  if (!hasExecutable(HOST_LOCAL)) {
    problems.push(`${HOST_LOCAL} is missing: apt-get install containernetworking-plugins`);
  }
  if (!hasExecutable(PLUGIN)) problems.push(`${PLUGIN} is missing: run \`deno task build\``);
  const p = findPinger();
  if (!p) problems.push("no ping: apt-get install iputils-ping (or busybox)");
  if (problems.length > 0 || !p) {
    sayErr(red("demo: cannot run:"));
    for (const x of problems) sayErr(`  - ${x}`);
    sayErr("tools/setup.sh (or `tools/run demo`) installs what is missing.");
    Deno.exit(1);
  }
  return p;
}

async function main(): Promise<number> {
  const t0 = performance.now();
  pinger = preflight();
  const rootBefore = await rootOwnRoutes();
  for (const sig of signals) {
    const h = () => onSignal(sig);
    handlers.set(sig, h);
    Deno.addSignalListener(sig, h);
  }
  say(bold("macvtap demo — seed 002: tasks on another LAN, reached from the host via hostrouteif"));
  say(dim(`plugin ${PLUGIN}, IPAM ${HOST_LOCAL}, ${pinger.label}`));

  lab = await Lab.create({ prefix: "demo" });
  const id = lab.id;
  let fatal: string | undefined;
  try {
    await demo();
  } catch (err) {
    if (err instanceof Interrupted) fatal = "interrupted";
    else if (err instanceof Fatal) fatal = err.message;
    else fatal = err instanceof Error ? (err.stack ?? err.message) : String(err);
  }
  if (fatal && fatal !== "interrupted") {
    failures.push(fatal);
    say();
    say(red(`  ✘ stopped: ${fatal}`));
    await dumpState().catch(() => {});
  }
  const namespaces = lab.namespaces;
  const dirs = lab.dirs;
  await teardown();
  await proveClean(id, namespaces, dirs, rootBefore);
  removeModuleToken();

  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  say();
  if (interrupted) {
    say(yellow(`Interrupted after ${secs} s; everything the demo created was removed.`));
    return 130;
  }
  if (failures.length > 0) {
    say(red(bold(`FAILED: ${failures.length} of ${passed + failures.length} checks (${secs} s)`)));
    for (const f of failures) say(red(`  - ${f}`));
    for (const w of warnings) say(yellow(`  - warning: ${w}`));
    return 1;
  }
  say(green(bold(`All ${passed} checks passed in ${secs} s.`)));
  if (warnings.length > 0) {
    say(yellow(`${warnings.length} warning(s):`));
    for (const w of warnings) say(yellow(`  - ${w}`));
  }
  return 0;
}

const code = await main().catch(async (err) => {
  sayErr(red(`demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
  await teardown().catch(() => {});
  removeModuleToken();
  return 1;
});
for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
Deno.exit(code);
