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

/** The spec versions the plugin supports, oldest first (the plugin's own list). */
export const VERSIONS: readonly string[] = SUPPORTED_VERSIONS;

/** Reference plugins directory (Debian containernetworking-plugins). */
export const CNI_BIN = "/usr/lib/cni";

/**
 * The plugin's state and log roots in tests: the temporary directory, where
 * every test makes its `stateDir` and `logFile` (a runtime would leave them
 * at /var/lib/cni/macvtap and /var/log/macvtap).
 */
export const TEST_ROOTS = { MACVTAP_STATE_ROOT: "/tmp", MACVTAP_LOG_DIR: "/tmp" } as const;

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

/** Whether `dist/macvtap` exists; tests that need it fail with a clear message otherwise. */
export function pluginBuilt(): boolean {
  try {
    return Deno.statSync(PLUGIN).isFile;
  } catch {
    return false;
  }
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
  const stdin = typeof config === "string" ? config : JSON.stringify(config);
  return parse(await run([bin], { stdin, env: cniEnv(e), clearEnv: true }));
}

/** Assert-friendly description of a call, for failure messages. */
export function describe(c: CniCall): string {
  return `exit ${c.code}\nstdout: ${c.stdout}\nstderr: ${c.stderr}`;
}
