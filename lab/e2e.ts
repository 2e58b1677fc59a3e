/**
 * Shared pieces of the end-to-end suite: which plugin is under test, the
 * namespace lab every engine test runs in, and the checks all engines share.
 *
 * Plugin under test: `E2E_PLUGIN` (a path; the CNI `type` is its basename),
 * default `dist/macvtap` of this repository. Switching to the reference
 * plugin is `E2E_PLUGIN=/usr/lib/cni/macvlan deno task test:e2e`.
 *
 * E2eLab (recipes: shared/notes/real-clients.md §1):
 *
 * ```
 *  <id>-host      (the plugin's and the engines' "host" netns; no default route)
 *    lab0  ── veth ──  lab0p 10.99.0.1/24   in <id>-peer (the LAN peer)
 *    wan0  10.98.0.2/24 (the host address, another LAN; its veth peer wan0p stays down-stream)
 *    e2ehr0 (macvtap only) the hostrouteif the plugin creates on lab0
 *  tasks: 10.99.0.10-200 from host-local, dataDir in the lab's temp dir
 * ```
 *
 * Engines run as `nsenter --net=/run/netns/<id>-host …` (not `ip netns
 * exec`, which remounts /sys and breaks runc). Nothing touches a root-netns
 * interface. Disposing a lab runs every registered cleanup in reverse order,
 * also after a failure, and then deletes namespaces, mounts and files.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ExecOptions, type ExecResult, run, runOk, waitFor } from "./run.ts";

export { waitFor };
import { CNI_BIN } from "./cni.ts";
import { Lab, labLog } from "./lab.ts";

const repoRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Where tools/e2e_setup.sh puts cnitool and the busybox image. */
export const CACHE: string = Deno.env.get("E2E_CACHE") ?? "/var/cache/macvtap-e2e";

/** Debian's reference plugins (host-local, loopback, macvlan). */
export const REF_CNI_DIR: string = CNI_BIN;

/** The LAN the tasks live on. */
export const LAN = {
  subnet: "10.99.0.0/24",
  peer: "10.99.0.1",
  rangeStart: "10.99.0.10",
  rangeEnd: "10.99.0.200",
} as const;

/** The host's own address, on another LAN (seed 002). */
export const HOST_IP = "10.98.0.2";

/** hostrouteif name used in macvtap configs (inside the lab host netns). */
export const HOSTROUTEIF = "e2ehr0";

/** The plugin under test. */
export interface PluginUnderTest {
  /** Absolute path of the executable. */
  path: string;
  /** CNI `type`: the file's basename. */
  type: string;
  /** Our plugin: hostrouteif checks apply. */
  isMacvtap: boolean;
}

/** A diagnostic line on stderr (lint forbids console; stdout stays clean). */
export function note(msg: string): void {
  labLog(msg, "e2e");
}

/** Whether `path` exists (a file, or a directory such as the image store). */
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function resolvePlugin(): PluginUnderTest | string {
  const env = Deno.env.get("E2E_PLUGIN");
  let path = env ?? `${repoRoot}/dist/macvtap`;
  if (!path.startsWith("/")) path = `${Deno.cwd()}/${path}`;
  if (!exists(path)) {
    return env
      ? `E2E_PLUGIN=${env} does not exist`
      : `dist/macvtap is missing: run \`deno task build\`, or set E2E_PLUGIN ` +
        `(e.g. E2E_PLUGIN=${REF_CNI_DIR}/macvlan for the reference plugin)`;
  }
  const type = path.slice(path.lastIndexOf("/") + 1);
  return { path, type, isMacvtap: type === "macvtap" };
}

function missingPrereq(): string | undefined {
  if (Deno.build.os !== "linux") return "Linux only";
  if (Deno.uid() !== 0) return "needs root (network namespaces, engines)";
  for (
    const f of ["/usr/bin/nsenter", "/usr/bin/jq", "/bin/busybox", `${REF_CNI_DIR}/host-local`]
  ) {
    if (!exists(f)) return `${f} is missing: run tools/e2e_setup.sh`;
  }
  return undefined;
}

const resolved = resolvePlugin();
const prereq = missingPrereq();

/** Why the whole suite is skipped, or undefined when it runs. */
export const skipReason: string | undefined = prereq ??
  (typeof resolved === "string" ? resolved : undefined);

/** The plugin under test; only valid when `skipReason` is undefined. */
export const plugin: PluginUnderTest = typeof resolved === "string"
  ? { path: "", type: "", isMacvtap: false }
  : resolved;

if (skipReason) note(`skipping the end-to-end suite: ${skipReason}`);
else note(`plugin under test: ${plugin.path} (type "${plugin.type}")`);

/**
 * Why one engine's tests are skipped (missing tools), or undefined.
 * @param files executables the test needs
 */
export function skipUnless(...files: string[]): string | undefined {
  if (skipReason) return skipReason;
  for (const f of files) {
    if (!exists(f)) {
      const why = `${f} is missing: run tools/e2e_setup.sh`;
      note(`skipping: ${why}`);
      return why;
    }
  }
  return undefined;
}

/**
 * One test's throwaway world, built on a {@linkcode Lab} (prefix `e2e`):
 * namespaces `<id>-host` and `<id>-peer`, a temp dir, a CNI network named
 * `<id>`, a plugin dir with the plugin under test (behind a spy that logs
 * every call) plus host-local and loopback.
 */
export class E2eLab implements AsyncDisposable {
  /** The namespace lab underneath: namespaces, temp dir, cleanups. */
  readonly lab: Lab;
  /** The lab id (`e2e-<pid>-<n>`) shared by everything this world creates. */
  readonly id: string;
  /** Temp dir (absolute). */
  readonly dir: string;
  /** CNI network name. */
  readonly net: string;
  /** Namespace names. */
  readonly hostNs: string;
  readonly peerNs: string;
  /** Plugin dir: `<type>` (spy → plugin under test), `host-local`, `loopback`. */
  readonly binDir: string;
  /** host-local state dir. */
  readonly ipamDir: string;
  /** Spy log: one JSON line per plugin call. */
  readonly spyLog: string;

  private constructor(lab: Lab, dir: string, hostNs: string, peerNs: string) {
    this.lab = lab;
    this.id = lab.id;
    this.dir = dir;
    this.net = lab.id;
    this.hostNs = hostNs;
    this.peerNs = peerNs;
    this.binDir = `${dir}/cni-bin`;
    this.ipamDir = `${dir}/ipam`;
    this.spyLog = `${dir}/spy.log`;
  }

  /** Build the world (see the module doc). Cleans up after itself if that fails. */
  static async create(): Promise<E2eLab> {
    const lab = await Lab.create({ prefix: "e2e" });
    try {
      const dir = await lab.tempDir("e2e");
      // Runs after every cleanup registered later, before the lab deletes
      // namespaces and removes the temp dir (never through a live mount).
      lab.defer("unmount and drop libcni's result cache", async () => {
        await unmountUnder(dir);
        await dropResultCache(lab.id);
      });
      const world = new E2eLab(lab, dir, await lab.netns("host"), await lab.netns("peer"));
      await world.#build();
      return world;
    } catch (err) {
      await lab[Symbol.asyncDispose]();
      throw err;
    }
  }

  async #build(): Promise<void> {
    const h = this.hostNs, p = this.peerNs;
    const batch = (ns: string, lines: string[]) =>
      runOk(["ip", "-n", ns, "-batch", "-"], { stdin: lines.join("\n") + "\n" });
    await batch(h, [
      `link add lab0 type veth peer name lab0p netns ${p}`,
      "link set lab0 up",
      // The host's own address on another "LAN" (no dummy driver here: a veth pair).
      "link add wan0 type veth peer name wan0p",
      `addr add ${HOST_IP}/24 dev wan0`,
      "link set wan0p up",
      "link set wan0 up",
    ]);
    await batch(p, [`addr add ${LAN.peer}/24 dev lab0p`, "link set lab0p up"]);
    await Deno.mkdir(this.binDir, { recursive: true });
    await Deno.mkdir(this.ipamDir, { recursive: true });
    await Deno.symlink(`${REF_CNI_DIR}/host-local`, `${this.binDir}/host-local`);
    await Deno.symlink(`${REF_CNI_DIR}/loopback`, `${this.binDir}/loopback`);
    await this.writeSpy(`${this.binDir}/${plugin.type}`);
  }

  /** A task namespace for direct plugin/cnitool calls: `<id>-<role>`; returns its path. */
  async taskNetns(role: string): Promise<string> {
    return this.lab.path(await this.lab.netns(role));
  }

  /**
   * Write an executable spy named like the plugin at `path`: it appends the
   * call (env CNI_*, stdin) to `spyLog` as one JSON line and execs the plugin
   * under test with the same stdin (real-clients.md §8).
   */
  async writeSpy(path: string): Promise<void> {
    const script = `#!/bin/sh
in=$(cat)
printf '%s\\n' "$(jq -cn --arg in "$in" --arg pid "$$" \\
  '{pid: $pid, command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: (env.CNI_NETNS // ""),
    ifname: env.CNI_IFNAME, args: (env.CNI_ARGS // ""), path: env.CNI_PATH, stdin: $in}')" >> ${this.spyLog}
printf '%s' "$in" | exec ${plugin.path} "$@"
`;
    await Deno.writeTextFile(path, script, { mode: 0o755 });
    await Deno.chmod(path, 0o755);
  }

  /** Calls the spy saw, in order. */
  async spyCalls(): Promise<SpyCall[]> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.spyLog);
    } catch {
      return [];
    }
    return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as SpyCall);
  }

  /** Register a cleanup; they run in reverse order on dispose. */
  defer(what: string, fn: () => unknown | Promise<unknown>): void {
    this.lab.defer(what, async () => {
      await fn();
    });
  }

  /** Run `argv` with the lab host as its network namespace (nsenter). */
  inHost(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(["nsenter", `--net=/run/netns/${this.hostNs}`, ...argv], opts);
  }

  /** The plugin's entry in a network config list, under test or not. */
  pluginConf(): Record<string, unknown> {
    const routes: Record<string, string>[] = [{ dst: "0.0.0.0/0" }];
    if (plugin.isMacvtap) routes.push({ dst: `${HOST_IP}/32`, gw: "0.0.0.0" });
    return {
      type: plugin.type,
      master: "lab0",
      mode: "bridge",
      ...(plugin.isMacvtap ? { hostrouteif: HOSTROUTEIF } : {}),
      ipam: {
        type: "host-local",
        subnet: LAN.subnet,
        rangeStart: LAN.rangeStart,
        rangeEnd: LAN.rangeEnd,
        gateway: LAN.peer,
        routes,
        dataDir: this.ipamDir,
      },
    };
  }

  /** A network config list for the plugin under test. */
  conflist(cniVersion = "1.0.0", extra: Record<string, unknown>[] = []): string {
    return JSON.stringify({
      cniVersion,
      name: this.net,
      plugins: [this.pluginConf(), ...extra],
    });
  }

  /** IP addresses host-local currently has leased in this lab's network. */
  async leases(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(`${this.ipamDir}/${this.net}`)) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name) || e.name.includes(":")) out.push(e.name);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return out.sort();
  }

  /** Routes of the lab host whose destination is exactly `ip/32`. */
  async hostRoutesTo(ip: string): Promise<{ dst: string; dev?: string; protocol?: string }[]> {
    const out = await runOk(["ip", "-j", "-n", this.hostNs, "-4", "route", "show", "table", "all"]);
    const routes = JSON.parse(out || "[]") as { dst: string; dev?: string; protocol?: string }[];
    return routes.filter((r) => r.dst === ip || r.dst === `${ip}/32`);
  }

  /** `ping -c1` from namespace `nsPath` (a path) to `ip`; true when answered. */
  async pingFrom(nsPath: string, ip: string): Promise<boolean> {
    const r = await run(["nsenter", `--net=${nsPath}`, "busybox", "ping", "-c1", "-W2", ip]);
    return r.code === 0;
  }

  /** Clean up everything, in reverse order; report (not throw) failures (see {@linkcode Lab}). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.lab[Symbol.asyncDispose]();
  }
}

/** One plugin call as the spy logged it. */
export interface SpyCall {
  pid: string;
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
  stdin: string;
}

/** Remove libcni's cached results of network `net`, left only when a DEL never ran. */
async function dropResultCache(net: string): Promise<void> {
  try {
    for await (const e of Deno.readDir("/var/lib/cni/results")) {
      if (e.name.startsWith(`${net}-`)) await Deno.remove(`/var/lib/cni/results/${e.name}`);
    }
  } catch {
    // no cache dir
  }
}

/** Unmount every mount point at or below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 3; pass++) {
    const info = await Deno.readTextFile("/proc/self/mountinfo");
    const points = info.split("\n").map((l) => l.split(" ")[4] ?? "")
      .map((p) => p.replace(/\\040/g, " "))
      .filter((p) => p === dir || p.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
    if (!points.length) return;
    for (const p of points) await run(["umount", "-l", p]);
  }
}

/**
 * The checks every engine makes while a task is up: it got exactly one
 * address from host-local, reaches the LAN peer both ways and, for macvtap,
 * reaches the host (and the host it) through the hostrouteif.
 *
 * @param lab the lab
 * @param taskNs path of the task's network namespace
 * @returns the task's address
 */
export async function checkTaskUp(lab: E2eLab, taskNs: string): Promise<string> {
  const leases = await lab.leases();
  assert.deepStrictEqual(
    leases.length,
    1,
    `expected one host-local lease, found ${leases.join(", ")}`,
  );
  const ip = leases[0]!;
  const addrs = JSON.parse(
    await runOk(["nsenter", `--net=${taskNs}`, "ip", "-j", "-4", "addr", "show", "dev", "eth0"]),
  ) as { addr_info: { local: string; prefixlen: number }[] }[];
  const local = addrs[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`) ?? [];
  assert.deepStrictEqual(local, [`${ip}/24`], "task eth0 address");
  assert(await lab.pingFrom(taskNs, LAN.peer), `task ${ip} cannot ping the LAN peer ${LAN.peer}`);
  assert(
    await lab.pingFrom(`/run/netns/${lab.peerNs}`, ip),
    `the LAN peer cannot ping task ${ip}`,
  );
  if (plugin.isMacvtap) {
    const routes = await lab.hostRoutesTo(ip);
    assert(
      routes.some((r) => r.dev === HOSTROUTEIF),
      `no host route ${ip}/32 dev ${HOSTROUTEIF}: ${JSON.stringify(routes)}`,
    );
    assert(await lab.pingFrom(taskNs, HOST_IP), `task ${ip} cannot reach the host ${HOST_IP}`);
    assert(
      await lab.pingFrom(`/run/netns/${lab.hostNs}`, ip),
      `host cannot reach task ${ip} via ${HOSTROUTEIF}`,
    );
  }
  return ip;
}

/**
 * The checks after a task is gone: no lease left and (macvtap) no host route.
 * Engines may tear down asynchronously, so this polls briefly.
 */
export async function checkTaskGone(lab: E2eLab, ip: string): Promise<void> {
  await waitFor(`the host-local lease of ${ip} to be released`, async () => {
    return (await lab.leases()).length === 0;
  }, 5_000);
  if (plugin.isMacvtap) {
    await waitFor(`the host route to ${ip} to be removed`, async () => {
      return (await lab.hostRoutesTo(ip)).length === 0;
    }, 5_000);
  }
}

/** The local busybox image store that tools/e2e_setup.sh filled (read-only for podman). */
export const PODMAN_IMAGE_STORE = `${CACHE}/podman-images`;

/**
 * Write podman's containers.conf and storage.conf for a CNI-backend run into
 * `dir` (plus `dir/net.d` for network configs), and return the environment
 * that points podman at them. Settings and reasons: real-clients.md §5.
 */
export async function writePodmanConfig(
  dir: string,
  options: { pluginDirs: readonly string[]; runroot?: string },
): Promise<Record<string, string>> {
  await Deno.mkdir(`${dir}/net.d`, { recursive: true });
  await Deno.mkdir(`${dir}/tmp`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/containers.conf`,
    `[containers]
log_driver = "k8s-file"
# podman asks nofile 1048576; without CAP_SYS_RESOURCE setrlimit cannot raise it.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${dir}/events.log"
# crun 1.8.1 rejects cgroup v1 hybrid hosts.
runtime = "runc"
tmp_dir = "${dir}/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = [${options.pluginDirs.map((d) => `"${d}"`).join(", ")}]
network_config_dir = "${dir}/net.d"
default_subnet = "10.97.0.0/24"
`,
  );
  await Deno.writeTextFile(
    `${dir}/storage.conf`,
    `[storage]
driver = "overlay"
graphroot = "${dir}/storage"
runroot = "${options.runroot ?? `${dir}/run`}"

[storage.options]
additionalimagestores = ["${PODMAN_IMAGE_STORE}"]
`,
  );
  return {
    CONTAINERS_CONF: `${dir}/containers.conf`,
    CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
  };
}
