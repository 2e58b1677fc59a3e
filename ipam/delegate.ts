/**
 * The IPAM delegate of one invocation: the plugin named by `ipam.type`, run
 * from CNI_PATH with the whole config on stdin and the CNI environment;
 * version negotiation, time limits and the release's minimum time.
 *
 * @module
 */

import {
  CniError,
  compareVersions,
  ErrorCode,
  formatResult,
  isSupportedVersion,
  parseResult,
  type Result,
} from "../cni/mod.ts";
import { log } from "../internal/_log.ts";
import { DelegateVersionCache } from "./_version_cache.ts";
import { execIpam, findPlugin, type IpamCommand } from "./exec.ts";

/**
 * IPAM types that only allocate and release (no traffic on the link), so
 * their DEL may run while the link is deleted. dhcp talks through the link
 * and must not overlap.
 */
export const ALLOCATION_ONLY_IPAM: ReadonlySet<string> = new Set(["host-local", "static"]);

/**
 * The delegates' remembered VERSION answers: this file in the launcher's
 * cache dir (`DENO_DIR`, root's, set by the `dist/macvtap` launcher, next to
 * the code cache). Not in `stateDir`, which holds only attachment records.
 * Without `DENO_DIR` (run from source) nothing is remembered.
 */
export const IPAM_VERSIONS_FILE = "macvtap_ipam_versions.json";

function versionCache(): DelegateVersionCache | undefined {
  let dir: string | undefined;
  try {
    dir = Deno.env.get("DENO_DIR");
  } catch {
    return undefined;
  }
  return dir?.startsWith("/")
    ? new DelegateVersionCache(`${dir}/${IPAM_VERSIONS_FILE}`)
    : undefined;
}

/** Shortest time limit of an IPAM DEL, whatever `ipamTimeoutMs` says. */
const DEL_MIN_TIMEOUT_MS = 10_000;

/** IPAM operations bound to one invocation (injectable for tests). */
export interface Ipam {
  /** The IPAM plugin type (`host-local`, `static`, `dhcp` …). */
  readonly type: string;
  /** ADD: allocate; resolves to the delegate's result. */
  add(): Promise<Result>;
  /** DEL: release. */
  del(): Promise<void>;
  /** CHECK: verify the allocation. */
  check(): Promise<void>;
  /** STATUS (skipped for delegates older than 1.1.0). */
  status(): Promise<void>;
  /** GC (skipped for delegates older than 1.1.0). */
  gc(): Promise<void>;
}

/** What the delegate of one invocation needs. */
export interface DelegateOptions {
  /** The plugin's name (`ipam.type`), looked up in `cniPath`. */
  type: string;
  /** The config's `cniVersion` (what the delegate is asked to speak first). */
  cniVersion: string;
  /** Time limit of one run; a release gets at least 10 s. */
  timeoutMs: number;
  /** CNI_PATH, split. */
  cniPath: readonly string[];
  /** The delegate's environment: the caller's, with the CNI variables of the attachment. */
  env: Record<string, string>;
  /** The namespace the delegate runs in (the plugin's host), as a path; default the caller's. */
  netns?: string;
}

/**
 * The IPAM delegate `options.type`; `stdin` is what it reads: the config
 * exactly as received.
 *
 * @example Allocate, then release
 * ```ts
 * import { ipamDelegate } from "./delegate.ts";
 *
 * // Needs root, net.json and the reference plugins: type-checked, not run by `deno test --doc`.
 * export async function roundTrip(): Promise<void> {
 *   const ipam = ipamDelegate({
 *     type: "host-local",
 *     cniVersion: "1.0.0",
 *     timeoutMs: 30_000,
 *     cniPath: ["/usr/lib/cni"],
 *     env: { ...Deno.env.toObject(), CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0", CNI_NETNS: "" },
 *   }, new TextEncoder().encode(Deno.readTextFileSync("net.json")));
 *   const result = await ipam.add();
 *   console.log(result.ips);
 *   await ipam.del();
 * }
 * ```
 */
export function ipamDelegate(options: DelegateOptions, stdin: Uint8Array): Ipam {
  const { type, env, cniPath, netns } = options;
  const exec = (command: IpamCommand, input: Uint8Array) =>
    execIpam(command, {
      type,
      stdin: input,
      env,
      cniPath,
      netns,
      // A release gets at least DEL_MIN_TIMEOUT_MS even when ADD is bounded
      // tighter: cutting a release short leaks the lease.
      timeoutMs: command === "DEL"
        ? Math.max(options.timeoutMs, DEL_MIN_TIMEOUT_MS)
        : options.timeoutMs,
    });
  // A delegate older than the config (Debian 12's host-local stops at 1.0.0)
  // refuses it with code 1. Then ask it for its versions and speak the highest
  // one both sides know; the fields host-local, static and dhcp read are the
  // same across these versions. The answer is remembered per binary (path and
  // identity), so later calls (DEL above all) downgrade at once.
  const cache = versionCache();
  let path: string | null | undefined;
  const delegatePath = (): string | undefined => {
    if (path === undefined) {
      try {
        path = findPlugin(type, cniPath);
      } catch {
        path = null; // execIpam reports it
      }
    }
    return path ?? undefined;
  };
  const versions = async (): Promise<string[]> => {
    const info = await exec("VERSION", new TextEncoder().encode('{"cniVersion":"1.1.0"}'));
    const list = (info as { supportedVersions?: unknown } | undefined)?.supportedVersions;
    const out = Array.isArray(list) ? list.filter((v): v is string => typeof v === "string") : [];
    const at = delegatePath();
    if (at) cache?.set(at, out);
    return out;
  };
  const known = (): string[] | undefined => {
    const at = delegatePath();
    return at ? cache?.get(at) : undefined;
  };
  const highestCommon = (list: readonly string[]): string | undefined =>
    list.filter((v) => isSupportedVersion(v) && compareVersions(v, options.cniVersion) <= 0)
      .sort(compareVersions).at(-1);
  let downgraded: Uint8Array | undefined;
  let fromCache = false;
  const run = async (command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC") => {
    if (!downgraded) {
      const list = known();
      const common = list && !list.includes(options.cniVersion) ? highestCommon(list) : undefined;
      if (common) {
        downgraded = withVersion(stdin, common);
        fromCache = true;
      }
    }
    try {
      return await exec(command, downgraded ?? stdin);
    } catch (err) {
      if (
        (downgraded && !fromCache) || !(err instanceof CniError) ||
        err.code !== ErrorCode.INCOMPATIBLE_VERSION
      ) {
        throw err;
      }
      // Not negotiated yet, or the remembered answer was wrong: ask.
      fromCache = false;
      const common = highestCommon(await versions());
      if (!common) throw err;
      log.info(`IPAM plugin "${type}" does not speak ${options.cniVersion}; using ${common}`);
      downgraded = withVersion(stdin, common);
      return await exec(command, downgraded);
    }
  };
  // STATUS and GC exist from CNI 1.1.0; a delegate that does not speak 1.1.0
  // cannot be asked (Debian's host-local 1.1.1 answers them with an error).
  const speaks11 = async () => (known() ?? await versions()).includes("1.1.0");
  return {
    type,
    async add() {
      return parseResult(await run("ADD"));
    },
    async del() {
      await run("DEL");
    },
    async check() {
      await run("CHECK");
    },
    async status() {
      if (await speaks11()) await run("STATUS");
    },
    async gc() {
      if (await speaks11()) await run("GC");
    },
  };
}

/** The config bytes with `cniVersion` (and a `prevResult`) at `version`. */
function withVersion(stdin: Uint8Array, version: string): Uint8Array {
  const config = JSON.parse(new TextDecoder().decode(stdin)) as Record<string, unknown>;
  config.cniVersion = version;
  delete config.cniVersions;
  if (config.prevResult) config.prevResult = formatResult(parseResult(config.prevResult), version);
  return new TextEncoder().encode(JSON.stringify(config));
}
