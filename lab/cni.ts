/**
 * Running a CNI plugin executable as a runtime does: a separate process in
 * the lab's "host" namespace, a clean environment with the CNI variables,
 * the config on stdin.
 *
 * @module
 */

import type { Lab } from "./lab.ts";
import { type ExecResult, run } from "./run.ts";
import { SUPPORTED_VERSIONS } from "../cni/version.ts";

/** The plugin under test: `dist/macvtap` of this checkout. */
export const PLUGIN = new URL("../dist/macvtap", import.meta.url).pathname;
/** The device plugin `deno task build` writes beside it (`macvtap-deviceplugin`). */
export const DP_PLUGIN: string = `${PLUGIN}-deviceplugin`;

/** How a device plugin runs ({@linkcode builtDevicePluginArgv}, lab/kubelet.ts `devicePluginArgv`). */
export interface DevicePluginRun {
  /** Its environment (`DP_MACVTAP_CONF`, `MACVTAP_DP_MAC_GUARD`, …). */
  env?: Record<string, string>;
  /** `--log-level` (default `warn`). */
  logLevel?: string;
  /** More arguments. */
  args?: readonly string[];
}

/**
 * The command that runs the built device plugin ({@linkcode DP_PLUGIN}, as a
 * node runs it), serving `socketDir`: for `Lab.spawn` in a node's namespace.
 */
export function builtDevicePluginArgv(socketDir: string, run: DevicePluginRun = {}): string[] {
  return [
    "env",
    ...Object.entries(run.env ?? {}).map(([k, v]) => `${k}=${v}`),
    DP_PLUGIN,
    "--socket-dir",
    socketDir,
    "--log-level",
    run.logLevel ?? "warn",
    ...run.args ?? [],
  ];
}

/** The spec versions the plugin supports, oldest first (the plugin's own list). */
export const VERSIONS: readonly string[] = SUPPORTED_VERSIONS;

/** Reference plugins directory (Debian containernetworking-plugins). */
export const CNI_BIN = "/usr/lib/cni";

/** The temporary directory: `$TMPDIR`, which `deno task test` makes a fresh one per run. */
const TMP = Deno.env.get("TMPDIR") || "/tmp";

/**
 * The plugin's state and log roots in tests: the temporary directory, where
 * every test makes its `stateDir` and `logFile` (a runtime would leave them
 * at /var/lib/cni/macvtap and /var/log/macvtap). Under `deno task test` that
 * is the run's own directory (tests/_run.ts), removed after the run with the
 * registry `.statedirs` in it.
 */
export const TEST_ROOTS: { readonly MACVTAP_STATE_ROOT: string; readonly MACVTAP_LOG_DIR: string } =
  { MACVTAP_STATE_ROOT: TMP, MACVTAP_LOG_DIR: TMP };

/**
 * The device-trust settings of the lab's runtime: kubelet's PodResources
 * socket where none is (a real kubelet on the test machine never answers
 * for the lab's pods), and no opt-in: a test that imports a device by
 * `deviceID` either proves it through the kubelet stand-in
 * (`FakeKubelet.podResources`) or opts in with {@linkcode DEVICEID_FROM_CONFIG}.
 */
export const TEST_DEVICE_TRUST = {
  MACVTAP_PODRESOURCES_SOCKET: "/run/macvtap-lab/no-kubelet/pod-resources.sock",
} as const;

/** The node operator's opt-in to config-named devices (nodes without kubelet). */
export const DEVICEID_FROM_CONFIG = { MACVTAP_DEVICEID_FROM_CONFIG: "1" } as const;

/**
 * An ifindex for a macvtap a test makes by hand (`ip link add … index N
 * type macvtap`): random and above the range the plugin and the device
 * plugin use, so no other namespace of the machine (a concurrent test's)
 * has a `/dev/tapN` of it, which would make the plugin refuse the device as
 * live elsewhere, as it must.
 */
export function freeTapIndex(): string {
  return String(20_000_000 + Math.floor(Math.random() * 100_000_000));
}

/** The checkout `dist/macvtap` is built from. */
const CHECKOUT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * What `deno task build` reads, relative to the checkout: every module below
 * these folders that is not a test (the module graphs of `cmd/main.ts` and
 * `cmd/deviceplugin.ts` lie inside them; tests/build_fresh_test.ts checks
 * that against `deno info`), and these files.
 */
export const BUILD_INPUTS = {
  dirs: [
    "cmd",
    "cni",
    "config",
    "deviceplugin",
    "hostroute",
    "internal",
    "ipam",
    "netlink",
    "plugin",
  ],
  files: ["tools/build.ts", "tools/_code_cache.ts", "deno.json", "deno.lock"],
} as const;

/** The files of {@linkcode BUILD_INPUTS} below `root` (absolute paths, sorted). */
export function buildInputs(root: string = CHECKOUT): string[] {
  const out = BUILD_INPUTS.files.map((f) => `${root}/${f}`);
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory && e.name !== "testdata") walk(path);
      else if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
    }
  };
  for (const d of BUILD_INPUTS.dirs) walk(`${root}/${d}`);
  return out.sort();
}

/**
 * Why the executable `bin` cannot be the build of the sources under `root`:
 * it is missing, or a file it is built from was modified after it (the
 * newest such file is named). `undefined` when it is newer than every one.
 */
export function buildProblem(bin: string = PLUGIN, root: string = CHECKOUT): string | undefined {
  let built: number;
  try {
    const st = Deno.statSync(bin);
    if (!st.isFile) return `${bin} is not a file: run "deno task build"`;
    built = st.mtime?.getTime() ?? 0;
  } catch {
    return `${bin} is missing: run "deno task build" first`;
  }
  let newest: { path: string; mtime: number } | undefined;
  for (const path of buildInputs(root)) {
    const mtime = Deno.statSync(path).mtime?.getTime() ?? Infinity;
    if (mtime > built && (!newest || mtime > newest.mtime)) newest = { path, mtime };
  }
  if (!newest) return undefined;
  return `${bin} is older than ${newest.path.replace(`${root}/`, "")} (built ${
    new Date(built).toISOString()
  }, source modified ${
    new Date(newest.mtime).toISOString()
  }): it is not the build of these sources; run "deno task build"`;
}

/** A stale build, once per process: the build does not change under a test run. */
let staleChecked = false;

/**
 * Whether `dist/macvtap` exists; tests that need it fail with a clear
 * message otherwise.
 *
 * @throws {Error} when it exists but is older than a file it is built from
 * (see {@linkcode buildProblem}): a test would run another program than the
 * sources.
 */
export function pluginBuilt(): boolean {
  try {
    if (!Deno.statSync(PLUGIN).isFile) return false;
  } catch {
    return false;
  }
  assertPluginFresh();
  return true;
}

/**
 * Throw when `dist/macvtap` is missing or older than a file it is built
 * from (checked once per process).
 */
export function assertPluginFresh(): void {
  if (staleChecked) return;
  const problem = buildProblem();
  if (problem) throw new Error(problem);
  staleChecked = true;
}

/** The CNI environment of one call. */
export interface CniEnv {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Extra variables (or overrides, `undefined` to drop one). */
  extra?: Record<string, string | undefined>;
}

/** A finished plugin call. */
export interface CniCall extends ExecResult {
  /** stdout parsed as JSON, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

/** Build the environment a runtime would pass. */
export function cniEnv(e: CniEnv): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: e.command,
    CNI_CONTAINERID: e.containerId ?? "ctr1",
    CNI_NETNS: e.netns ?? "",
    CNI_IFNAME: e.ifname ?? "eth0",
    CNI_ARGS: e.args ?? "",
    CNI_PATH: e.path ?? CNI_BIN,
    ...TEST_ROOTS,
    ...TEST_DEVICE_TRUST,
    ...e.extra,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

function parse(r: ExecResult): CniCall {
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** How {@linkcode cni} runs the plugin. */
export interface CniRunOptions {
  /** A prefix the plugin path is appended to, e.g. `["sh", "-c", SCRIPT, "sh"]`. */
  wrap?: readonly string[];
  /** Kill the call after this many ms (default 60 s). */
  timeoutMs?: number;
}

/** Run `bin` inside lab namespace `ns` with the CNI env `e` and `config` on stdin. */
export async function cni(
  lab: Lab,
  ns: string,
  e: CniEnv,
  config: unknown,
  bin: string = PLUGIN,
  options: CniRunOptions = {},
): Promise<CniCall> {
  if (bin === PLUGIN) assertPluginFresh();
  const stdin = typeof config === "string" ? config : JSON.stringify(config);
  return parse(
    await lab.exec(ns, [...(options.wrap ?? []), bin], {
      stdin,
      env: cniEnv(e),
      clearEnv: true,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    }),
  );
}

/** Run `bin` in the test's own namespace (no lab), e.g. for VERSION. */
export async function cniHere(e: CniEnv, config: unknown, bin: string = PLUGIN): Promise<CniCall> {
  if (bin === PLUGIN) assertPluginFresh();
  const stdin = typeof config === "string" ? config : JSON.stringify(config);
  return parse(await run([bin], { stdin, env: cniEnv(e), clearEnv: true }));
}

/** Assert-friendly description of a call, for failure messages. */
export function describe(c: CniCall): string {
  return `exit ${c.code}\nstdout: ${c.stdout}\nstderr: ${c.stderr}`;
}
