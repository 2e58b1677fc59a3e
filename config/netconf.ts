/**
 * The macvtap plugin's network configuration: parse, default and validate
 * the stdin object (plus `CNI_ARGS`) into a typed {@linkcode NetConf}.
 *
 * Decisions:
 * - Unknown top-level keys are accepted silently (runtimes pass them through).
 * - `runtimeConfig` is looked up exactly first, then case-insensitively
 *   (`RuntimeConfig`), as Go's `encoding/json` does; the reference macvlan
 *   tests send `RuntimeConfig`.
 * - MAC precedence, low to high: config `mac`, `CNI_ARGS` `MAC`,
 *   `runtimeConfig.mac`.
 * - Requested static IPs (consumed by IPAM, only validated here):
 *   `runtimeConfig.ips`, else `args.cni.ips`, else `CNI_ARGS` `IP`
 *   (CONVENTIONS.md: a key given via `args` overrides `CNI_ARGS`).
 * - `hostrouteMetric` defaults to {@linkcode DEFAULT_HOSTROUTE_METRIC}.
 * - DEL and GC parse leniently ({@linkcode parseNetConfForDel}): a DEL must
 *   never fail on `master`, `mtu`, `mac`, `CNI_ARGS` and the like.
 *
 * @module
 */

// The one dependency beyond internal/: prevResult and dns are CNI result
// types, parsed by the CNI layer's own parser (one parser for every version).
import {
  compareVersions,
  type Dns,
  MAX_NETWORK_NAME_BYTES,
  parseResult,
  type Result,
  selectVersion,
  SUPPORTED_VERSIONS,
} from "../cni/mod.ts";
import { canonicalIP } from "../internal/_ip.ts";
import { ifnameProblem } from "../internal/_ifname.ts";
import { isJsonObject, showJson } from "../internal/_json.ts";
import { isLogLevel, type LogLevel } from "../internal/_log.ts";
import {
  DEFAULT_STATE_ROOT,
  LOG_ROOT_ENV,
  logRoot,
  normalizePath,
  outsideRoot,
  STATE_ROOT_ENV,
  stateRoot,
} from "../internal/_owned_path.ts";
import { MACVTAP_MODES, type MacvtapMode, parseMacvtapMode } from "../internal/_macvtap_mode.ts";
import { type CniArgs, isIpOrCidr, parseCniArgs } from "./cni_args.ts";
import { ConfigError } from "./errors.ts";
import { normalizeMac } from "./_mac.ts";
import { errorText } from "../internal/_error_text.ts";

export { ConfigError };

export { MACVTAP_MODES, type MacvtapMode };

/**
 * Default metric of the host routes via `hostrouteif`: 50.
 *
 * Seed 002, footnote 2: a host address in the task range made "routing
 * table preferences give problems". The kernel picks the longest prefix
 * first, so our `/32` (`/128`) beats the host's subnet route (e.g.
 * `192.168.122.0/24 dev eth1`, metric 0; IPv6 prefix routes metric 256)
 * whatever its metric. The metric only orders routes to the *same* `/32`:
 * 50 wins over IPv6 RA/kernel routes (256, 1024) and NetworkManager's
 * (100+), while an administrator's hand-made route (`ip route add`, IPv4
 * metric 0) still wins and does not collide with ours (different metrics
 * coexist instead of EEXIST). Set `hostrouteMetric: 0` to win always.
 */
export const DEFAULT_HOSTROUTE_METRIC = 50;

/**
 * Default directory of the plugin's attachment records: the state root,
 * unless the runtime's environment names another (`MACVTAP_STATE_ROOT`).
 */
export const DEFAULT_STATE_DIR: string = DEFAULT_STATE_ROOT;

/** Default time limit for one IPAM delegate run, in milliseconds. */
export const DEFAULT_IPAM_TIMEOUT_MS = 30_000;

/**
 * Smallest `ipamTimeoutMs`. A timeout kills the IPAM plugin, and killing it
 * in the middle of its work can corrupt its store (host-local leaves an
 * empty lease file that no DEL can match, containernetworking/plugins#498);
 * a limit shorter than an IPAM call takes makes that likely.
 */
export const MIN_IPAM_TIMEOUT_MS = 500;

/** The `ipam` section: `type` plus whatever the IPAM plugin reads. */
export interface IpamConf {
  /** A bare executable name looked up in CNI_PATH. */
  type: string;
  [key: string]: unknown;
}

/** An attachment the runtime still considers valid (GC). */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The validated network configuration. */
export interface NetConf {
  /** The version in use (selected from `cniVersion`/`cniVersions`). */
  cniVersion: string;
  /** Network name. */
  name: string;
  /** Plugin type as given. */
  type: string;
  /** Host interface to attach to; `undefined` ⇒ the default-route interface. */
  master?: string;
  /** Default `bridge`. */
  mode: MacvtapMode;
  /** 0 = kernel default (checked against the master's MTU by the plugin). */
  mtu: number;
  /** Effective MAC after precedence, lower-case. */
  mac?: string;
  promiscMode?: boolean;
  /** Device-plugin device to import instead of creating a macvtap. */
  deviceID?: string;
  /**
   * Owner and group of `/dev/tapN` after a `deviceID` import (a namespace move
   * re-creates the node as root:root 0600). Default 107:107, the qemu user of
   * KubeVirt's virt-launcher, as kubevirt/macvtap-cni does.
   */
  owner?: number;
  group?: number;
  /**
   * The pod's kernel sends nothing on the link (IPv6 off before it comes up;
   * without addresses IPv4 is silent too): a link whose traffic is a VM's,
   * whose MAC must leave the node only when the VM speaks. Default: on for
   * `deviceID` links without IPAM, off otherwise; refused with IPAM.
   */
  silent: boolean;
  /**
   * The master is an interface of the container's namespace (a VLAN or a
   * second NIC moved there), and the macvtap is made there (upstream
   * macvlan's `linkInContainer`).
   */
  linkInContainer: boolean;
  /** Host interface for the host ⇄ container routes. */
  hostrouteif?: string;
  hostrouteMetric: number;
  /** `undefined` ⇒ L2 only (`ipam` absent or `{}`). */
  ipam?: IpamConf;
  /** Config `dns`, when non-empty. */
  dns?: Dns;
  /** Static IPs requested for IPAM (IP or CIDR text). */
  requestedIps: string[];
  prevResult?: Result;
  logFile?: string;
  logLevel?: LogLevel;
  /** GC: `cni.dev/valid-attachments` ∪ `cni.dev/attachments`; empty when missing. */
  validAttachments: Attachment[];
  /** Attachment records directory (`stateDir`, absolute). */
  stateDir: string;
  /**
   * DEL/GC only: `stateDir` lies outside the state root (a config from
   * before the root): its records are read, never written or removed.
   */
  stateDirReadOnly?: true;
  /** IPAM delegate time limit (`ipamTimeoutMs`). */
  ipamTimeoutMs: number;
  /** Parsed `CNI_ARGS`. */
  cniArgs: CniArgs;
}

/** What {@linkcode parseNetConf} needs besides the config. */
export interface NetConfContext {
  command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
  /** CNI_ARGS, raw. */
  args: string;
}

type Raw = Record<string, unknown>;

function fail(field: string, problem: string, unsupported = false): never {
  throw new ConfigError(field, `${field}: ${problem}`, { unsupported });
}

function optString(raw: Raw, key: string, field = key): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") fail(field, `${showJson(v)} is not a string`);
  return v;
}

function optInteger(raw: Raw, key: string, min: number, max: number): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(key, `${showJson(v)} is not an integer in [${min}, ${max}]`);
  }
  return v;
}

function optStringList(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    fail(field, `${showJson(v)} is not a list of strings`);
  }
  return [...v];
}

function ipList(v: unknown, field: string): string[] | undefined {
  const list = optStringList(v, field);
  list?.forEach((s, i) => {
    if (!isIpOrCidr(s)) fail(`${field}[${i}]`, `${showJson(s)} is not an IP address or CIDR`);
  });
  return list?.length ? list : undefined;
}

function ifname(raw: Raw, key: string): string | undefined {
  const v = optString(raw, key);
  if (v === undefined || v === "") return undefined;
  const problem = ifnameProblem(v);
  if (problem) fail(key, `interface name ${showJson(v)} ${problem}`);
  return v;
}

function mac(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") fail(field, `${showJson(v)} is not a string`);
  const m = normalizeMac(v);
  if (typeof m !== "string") fail(field, `${showJson(v)} ${m.problem}`);
  return m;
}

/**
 * Why `path` (inside `root`) is reserved: a part below the root that starts
 * with `.` is the plugin's own (`.statedirs`, its registry of state
 * directories); a stateDir there could occupy another tenant's entry.
 */
function reservedProblem(path: string, root: string): string | undefined {
  const below = normalizePath(path).slice(normalizePath(root).length).split("/");
  return below.some((p) => p.startsWith("."))
    ? "has a part starting with '.' below the state root, which the plugin reserves"
    : undefined;
}

/**
 * `stateDir`: the state root or a directory inside it. A network config is
 * input; only the runtime's environment may move the root.
 */
function stateDirOf(raw: Raw, lenient: boolean): { stateDir: string; stateDirReadOnly?: true } {
  const root = stateRoot();
  const v = optString(raw, "stateDir");
  if (v === undefined || v === "") return { stateDir: root };
  const problem = outsideRoot(v, root) ?? reservedProblem(v, root);
  if (!problem) return { stateDir: normalizePath(v) };
  // DEL and GC of an attachment made before the state root existed (an
  // upgrade): its records are read where they are, but nothing is written.
  if (lenient && v.startsWith("/") && !v.includes("\0")) {
    return { stateDir: normalizePath(v), stateDirReadOnly: true };
  }
  fail("stateDir", `${showJson(v)} ${problem} (the state root, set by ${STATE_ROOT_ENV})`);
}

/**
 * `logFile`: a file name inside the log root, or an absolute path below it.
 * The plugin never writes a log anywhere else.
 */
function logFileOf(raw: Raw): string | undefined {
  const v = optString(raw, "logFile");
  if (v === undefined || v === "") return undefined;
  const root = logRoot();
  const path = v.includes("/") ? v : `${root}/${v}`;
  const problem = outsideRoot(path, root) ??
    (normalizePath(path) === root ? "is the log directory itself" : undefined);
  if (problem) fail("logFile", `${showJson(v)} ${problem} (the log root, set by ${LOG_ROOT_ENV})`);
  return normalizePath(path);
}

function parseName(raw: Raw): string {
  const name = raw.name;
  if (name === undefined || name === null || name === "") fail("name", "missing network name");
  if (typeof name === "string" && new TextEncoder().encode(name).length > MAX_NETWORK_NAME_BYTES) {
    fail("name", `network name ${showJson(name)} is longer than ${MAX_NETWORK_NAME_BYTES} bytes`);
  }
  if (typeof name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/.test(name)) {
    fail("name", `invalid characters found in network name ${showJson(name)}`);
  }
  return name;
}

function parseVersion(raw: Raw): string {
  if (raw.cniVersions !== undefined) optStringList(raw.cniVersions, "cniVersions");
  const v = selectVersion(raw.cniVersion, raw.cniVersions);
  if (v) return v;
  const shown = raw.cniVersions !== undefined
    ? `${showJson(raw.cniVersion)} / ${showJson(raw.cniVersions)}`
    : showJson(raw.cniVersion ?? "0.1.0");
  return fail(
    "cniVersion",
    `incompatible CNI version ${shown} (supported: ${SUPPORTED_VERSIONS.join(", ")})`,
  );
}

function parseType(raw: Raw): string {
  const t = raw.type;
  if (typeof t !== "string" || t === "") fail("type", `${showJson(t)} is not a non-empty string`);
  return t;
}

function parseMode(raw: Raw): MacvtapMode {
  const m = optString(raw, "mode");
  const parsed = parseMacvtapMode(m);
  if (parsed.mode) return parsed.mode;
  const expected = `expected ${MACVTAP_MODES.slice(0, -1).join(", ")} or ${MACVTAP_MODES.at(-1)}`;
  if (parsed.problem === "unsupported") {
    fail("mode", `macvtap mode ${showJson(m)} is not supported (${expected})`, true);
  }
  return fail("mode", `unknown macvtap mode ${showJson(m)} (${expected})`);
}

function parseMtu(raw: Raw): number {
  const v = raw.mtu;
  if (v === undefined || v === null || v === 0) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 68 || v > 65535) {
    fail("mtu", `invalid MTU ${showJson(v)} (expected 0 for the default, or 68 to 65535)`);
  }
  return v;
}

function parseIpam(raw: Raw): IpamConf | undefined {
  const v = raw.ipam;
  if (v === undefined || v === null) return undefined;
  if (!isJsonObject(v)) fail("ipam", `${showJson(v)} is not an object`);
  if (Object.keys(v).length === 0) return undefined;
  const t = v.type;
  if (t === undefined || t === "") fail("ipam.type", "missing IPAM plugin type");
  if (typeof t !== "string") fail("ipam.type", `${showJson(t)} is not a string`);
  if (new TextEncoder().encode(t).length > 255) {
    fail("ipam.type", `${showJson(t)} is longer than a file name (255 bytes)`);
  }
  if (t.includes("/") || t === "." || t === ".." || t.includes("\0")) {
    fail("ipam.type", `${showJson(t)} is not a plugin name (no "/", "." or "..")`);
  }
  return { ...v, type: t };
}

function parseConfDns(raw: Raw): Dns | undefined {
  const v = raw.dns;
  if (v === undefined || v === null) return undefined;
  if (!isJsonObject(v)) fail("dns", `${showJson(v)} is not an object`);
  const dns: Dns = {};
  const ns = optStringList(v.nameservers, "dns.nameservers");
  ns?.forEach((s, i) => {
    if (canonicalIP(s) === undefined) {
      fail(`dns.nameservers[${i}]`, `${showJson(s)} is not an IP address`);
    }
  });
  if (ns?.length) dns.nameservers = ns;
  const domain = optString(v, "domain", "dns.domain");
  if (domain) dns.domain = domain;
  const search = optStringList(v.search, "dns.search");
  if (search?.length) dns.search = search;
  const options = optStringList(v.options, "dns.options");
  if (options?.length) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

function runtimeConfigOf(raw: Raw): [string, Raw] | undefined {
  let key: string | undefined = "runtimeConfig" in raw ? "runtimeConfig" : undefined;
  key ??= Object.keys(raw).find((k) => k.toLowerCase() === "runtimeconfig");
  if (key === undefined || raw[key] === undefined || raw[key] === null) return undefined;
  const v = raw[key];
  if (!isJsonObject(v)) fail(key, `${showJson(v)} is not an object`);
  return [key, v];
}

function argsCniIps(raw: Raw): string[] | undefined {
  const args = raw.args;
  if (!isJsonObject(args) || !isJsonObject(args.cni)) return undefined;
  return ipList(args.cni.ips, "args.cni.ips");
}

function parsePrevResult(raw: Raw, cniVersion: string): Result | undefined {
  const v = raw.prevResult;
  if (v === undefined || v === null) return undefined;
  try {
    return parseResult(v, { cniVersion });
  } catch (err) {
    const msg = errorText(err).replace(/^invalid result: /, "");
    throw new ConfigError("prevResult", `prevResult: ${msg}`, { cause: err });
  }
}

function parseAttachments(raw: Raw): Attachment[] {
  const out: Attachment[] = [];
  const seen = new Set<string>();
  for (const key of ["cni.dev/valid-attachments", "cni.dev/attachments"]) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v)) fail(key, `${showJson(v)} is not a list`);
    v.forEach((a, i) => {
      if (!isJsonObject(a) || typeof a.containerID !== "string" || typeof a.ifname !== "string") {
        fail(`${key}[${i}]`, `${showJson(a)} is not {"containerID": string, "ifname": string}`);
      }
      const id = `${a.containerID}\0${a.ifname}`;
      if (seen.has(id)) return;
      seen.add(id);
      out.push({ containerID: a.containerID, ifname: a.ifname });
    });
  }
  return out;
}

function rejectUnsupported(raw: Raw): void {
  if (raw.hostrouteip !== undefined) {
    fail("hostrouteip", `${showJson(raw.hostrouteip)} is not supported (use ipam routes)`, true);
  }
}

function parse(raw: Record<string, unknown>, args: string, lenient: boolean): NetConf {
  if (!isJsonObject(raw)) fail("config", `${showJson(raw)} is not an object`);
  /** In lenient mode a broken optional field falls back instead of throwing. */
  const soft = <T>(fn: () => T, fallback: T): T => {
    if (!lenient) return fn();
    try {
      return fn();
    } catch (err) {
      if (err instanceof ConfigError) return fallback;
      throw err;
    }
  };
  const cniVersion = parseVersion(raw);
  const name = parseName(raw);
  const type = soft(() => parseType(raw), String(raw.type ?? ""));
  if (!lenient) rejectUnsupported(raw);
  const cniArgs = parseCniArgs(args, { strict: !lenient });
  const runtime = soft(() => runtimeConfigOf(raw), undefined);

  const conf: NetConf = {
    cniVersion,
    name,
    type,
    mode: soft(() => parseMode(raw), "bridge"),
    silent: false,
    linkInContainer: false,
    mtu: soft(() => parseMtu(raw), 0),
    hostrouteMetric: soft(
      () => optInteger(raw, "hostrouteMetric", 0, 0xffffffff) ?? DEFAULT_HOSTROUTE_METRIC,
      DEFAULT_HOSTROUTE_METRIC,
    ),
    requestedIps: soft(() => {
      const fromRuntime = runtime ? ipList(runtime[1].ips, `${runtime[0]}.ips`) : undefined;
      const fromArgs = argsCniIps(raw);
      return fromRuntime ?? fromArgs ?? cniArgs.ips;
    }, []),
    validAttachments: parseAttachments(raw),
    ...stateDirOf(raw, lenient),
    ipamTimeoutMs: soft(
      () =>
        optInteger(raw, "ipamTimeoutMs", MIN_IPAM_TIMEOUT_MS, 3_600_000) ??
          DEFAULT_IPAM_TIMEOUT_MS,
      DEFAULT_IPAM_TIMEOUT_MS,
    ),
    cniArgs,
  };
  const master = soft(() => ifname(raw, "master"), undefined);
  if (master) conf.master = master;
  const hostrouteif = soft(() => ifname(raw, "hostrouteif"), undefined);
  if (hostrouteif) conf.hostrouteif = hostrouteif;

  const effectiveMac = soft(() => {
    const fromConfig = mac(raw.mac, "mac");
    const fromRuntime = runtime ? mac(runtime[1].mac, `${runtime[0]}.mac`) : undefined;
    return fromRuntime ?? cniArgs.mac ?? fromConfig;
  }, undefined);
  if (effectiveMac) conf.mac = effectiveMac;

  const promisc = soft(() => {
    const v = raw.promiscMode;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") fail("promiscMode", `${showJson(v)} is not a boolean`);
    return v;
  }, undefined);
  if (promisc !== undefined) conf.promiscMode = promisc;

  const deviceID = soft(() => {
    const v = optString(raw, "deviceID");
    if (v === undefined) return undefined;
    if (v === "" || v.length > 255) fail("deviceID", `${showJson(v)} must be 1 to 255 characters`);
    return v;
  }, undefined);
  if (deviceID !== undefined) conf.deviceID = deviceID;
  const owner = soft(() => optInteger(raw, "owner", 0, 0xfffffffe), undefined);
  if (owner !== undefined) conf.owner = owner;
  const group = soft(() => optInteger(raw, "group", 0, 0xfffffffe), undefined);
  if (group !== undefined) conf.group = group;

  const ipam = parseIpam(raw);
  if (ipam) conf.ipam = ipam;
  else if (!lenient && compareVersions(cniVersion, "0.3.0") < 0) {
    // Refused before anything is made: the reference macvlan creates the
    // link, fails to print (`cannot convert: no valid IP addresses`) and
    // leaves the link behind.
    fail(
      "ipam",
      `a cniVersion ${cniVersion} result must carry an IP address, so an L2-only config ` +
        `(no ipam) needs cniVersion 0.3.0 or later`,
    );
  }
  conf.linkInContainer = soft(() => {
    const v = raw.linkInContainer;
    if (v === undefined || v === null || v === false) return false;
    if (v !== true) fail("linkInContainer", `${showJson(v)} is not a boolean`);
    if (conf.deviceID !== undefined) {
      fail("linkInContainer", "true does not apply to deviceID (the device is the host's)");
    }
    if (conf.hostrouteif !== undefined) {
      fail(
        "linkInContainer",
        "true cannot be combined with hostrouteif (host routes go through a host interface on the master)",
      );
    }
    return true;
  }, false);
  conf.silent = soft(() => {
    const v = raw.silent;
    if (v === undefined || v === null) return conf.deviceID !== undefined && !ipam;
    if (typeof v !== "boolean") fail("silent", `${showJson(v)} is not a boolean`);
    if (v && ipam) {
      fail(
        "silent",
        "true needs a link without IPAM: the pod's kernel would speak with its addresses",
      );
    }
    return v;
  }, false);
  const dns = soft(() => parseConfDns(raw), undefined);
  if (dns) conf.dns = dns;
  // Chaining (prevResult) exists from 0.3.0; below, a 0.2.0 result shows one
  // address per family, and another plugin's would hide ours: ignored.
  // Its JSON type is still checked, as the Go types decode `prevResult` into a map.
  if (
    compareVersions(cniVersion, "0.3.0") < 0 && raw.prevResult !== undefined &&
    raw.prevResult !== null
  ) {
    soft(() => {
      if (!isJsonObject(raw.prevResult)) {
        fail("prevResult", `${showJson(raw.prevResult)} is not an object`);
      }
    }, undefined);
  }
  const prev = compareVersions(cniVersion, "0.3.0") < 0
    ? undefined
    : soft(() => parsePrevResult(raw, cniVersion), undefined);
  if (prev) conf.prevResult = prev;

  const logFile = soft(() => logFileOf(raw), undefined);
  if (logFile) conf.logFile = logFile;
  const logLevel = soft(() => {
    const v = optString(raw, "logLevel");
    if (v === undefined || v === "") return undefined;
    if (!isLogLevel(v)) {
      fail("logLevel", `unknown log level ${showJson(v)} (expected error, warn, info or debug)`);
    }
    return v;
  }, undefined);
  if (logLevel) conf.logLevel = logLevel;
  return conf;
}

/**
 * Parse and validate the plugin config for `ctx.command`. DEL and GC are
 * parsed leniently, as by {@linkcode parseNetConfForDel}.
 *
 * @param raw the stdin object.
 * @param ctx the command and raw `CNI_ARGS`.
 * @returns the validated config with defaults applied.
 * @throws {ConfigError} naming the field and the bad value (`unsupported` for
 *   known but unsupported settings such as `mode: "source"`).
 * @example Parse an ADD config
 * ```ts
 * import { parseNetConf } from "./netconf.ts";
 * const conf = parseNetConf(
 *   { cniVersion: "1.0.0", name: "lan", type: "macvtap", master: "eth1", mac: "02:AA:00:00:00:01" },
 *   { command: "ADD", args: "IgnoreUnknown=1;MAC=02:bb:00:00:00:02" },
 * );
 * conf.mode; // "bridge"
 * conf.mac; // "02:bb:00:00:00:02" (CNI_ARGS beats the config)
 * ```
 */
export function parseNetConf(raw: Record<string, unknown>, ctx: NetConfContext): NetConf {
  return parse(raw, ctx.args, ctx.command === "DEL" || ctx.command === "GC");
}

/**
 * Parse a config for DEL (and GC): never fails on `master`, `mode`, `mtu`,
 * `mac`, `promiscMode`, `deviceID`, `dns`, `runtimeConfig`, `args`,
 * `CNI_ARGS`, `hostrouteif`, `hostrouteMetric`, `prevResult`, `logFile` or
 * `logLevel` — a broken value becomes its default (or absent). Still
 * throws for what DEL cannot work without: `name`, `cniVersion`, `ipam`
 * (the delegate must be safe to run), `stateDir`, and the GC attachment lists.
 *
 * @throws {ConfigError} for those fields only.
 * @example Parse a DEL config
 * ```ts
 * import { parseNetConfForDel } from "./netconf.ts";
 * const conf = parseNetConfForDel(
 *   { cniVersion: "1.0.0", name: "lan", type: "macvtap", mtu: "huge" },
 *   { args: "FOO=bar" },
 * );
 * conf.mtu; // 0
 * ```
 */
export function parseNetConfForDel(
  raw: Record<string, unknown>,
  ctx: { args: string },
): NetConf {
  return parse(raw, ctx.args, true);
}
