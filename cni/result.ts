/**
 * The CNI result: one normalized internal shape (the 1.1.0 superset), a
 * lenient parser for any result a runtime or delegate may hand us, and a
 * formatter printing exactly the shape of a given spec version.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { canonicalIP, cidrProblem, formatCidr, parseCidr, parseIP } from "../internal/_ip.ts";
import { isJsonObject, jsonShapeProblem, showJson } from "../internal/_json.ts";
import { compareVersions, isSupportedVersion, parseVersion } from "./version.ts";

/**
 * An interface in a result. `mtu`, `socketPath` and `pciID` are printed at 1.1.0 only.
 *
 * @example The container interface of a macvtap ADD
 * ```ts
 * import type { Interface } from "./mod.ts";
 *
 * const eth0: Interface = { name: "eth0", mac: "02:00:0a:01:00:02", sandbox: "/run/netns/task1" };
 * ```
 */
export interface Interface {
  /** Interface name (CNI_IFNAME for container interfaces). */
  name: string;
  /** MAC address, lower-case. */
  mac?: string;
  /** MTU (1.1.0). */
  mtu?: number;
  /** CNI_NETNS verbatim for container interfaces; absent for host interfaces. */
  sandbox?: string;
  /** vhost-user socket path (1.1.0). */
  socketPath?: string;
  /** PCI address of a passed-through device (1.1.0). */
  pciID?: string;
}

/**
 * An address in a result.
 *
 * @example An address on the first interface
 * ```ts
 * import type { IPConfig } from "./mod.ts";
 *
 * const ip: IPConfig = { interface: 0, address: "10.1.0.2/24", gateway: "10.1.0.1" };
 * ```
 */
export interface IPConfig {
  /** Index into the result's `interfaces`. */
  interface?: number;
  /** CIDR with host bits, e.g. `10.0.0.2/24`. */
  address: string;
  /** The default gateway of this address's subnet, if any. */
  gateway?: string;
}

/**
 * A route in a result. Everything but `dst` and `gw` is printed at 1.1.0 only.
 *
 * @example The default route, and one with a metric (printed at 1.1.0 only)
 * ```ts
 * import type { Route } from "./mod.ts";
 *
 * const routes: Route[] = [{ dst: "0.0.0.0/0" }, { dst: "10.9.0.0/16", gw: "10.1.0.254", priority: 10 }];
 * ```
 */
export interface Route {
  /** Destination CIDR. */
  dst: string;
  /** Next hop; absent means the address's gateway may be used. */
  gw?: string;
  /** Route MTU (1.1.0). */
  mtu?: number;
  /** Advertised MSS (1.1.0). */
  advmss?: number;
  /** Metric (1.1.0). */
  priority?: number;
  /** Routing table (1.1.0). */
  table?: number;
  /** 0 universe, 253 link, 254 host. */
  scope?: number;
}

/**
 * DNS settings.
 *
 * @example What resolv.conf should say
 * ```ts
 * import type { Dns } from "./mod.ts";
 *
 * const dns: Dns = { nameservers: ["10.1.0.1"], search: ["lan"], options: ["ndots:2"] };
 * ```
 */
export interface Dns {
  /** Name server addresses, in order of preference. */
  nameservers?: string[];
  /** Local domain. */
  domain?: string;
  /** Search domains. */
  search?: string[];
  /** resolv.conf options. */
  options?: string[];
}

/**
 * A result, normalized (the 1.1.0 superset; no `ips[].version`).
 *
 * @example A result with one interface and address, printed for a 0.4.0 runtime
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatResult, type Result } from "./mod.ts";
 *
 * const result: Result = {
 *   cniVersion: "1.1.0",
 *   interfaces: [{ name: "eth0", sandbox: "/run/netns/task1" }],
 *   ips: [{ interface: 0, address: "10.1.0.2/24", gateway: "10.1.0.1" }],
 * };
 * assert.equal(formatResult(result, "0.4.0").cniVersion, "0.4.0");
 * ```
 */
export interface Result {
  /** The version the result is (or will be printed) in. */
  cniVersion: string;
  /** Interfaces created or configured. */
  interfaces?: Interface[];
  /** Addresses assigned. */
  ips?: IPConfig[];
  /** Routes installed. */
  routes?: Route[];
  /** DNS settings for the container. */
  dns?: Dns;
}

/**
 * Options for {@linkcode parseResult}.
 *
 * @example A result without `cniVersion`, read as the config's version
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResult } from "./mod.ts";
 *
 * const r = parseResult({ ips: [{ address: "10.1.0.2/24" }] }, { cniVersion: "0.4.0" });
 * assert.equal(r.cniVersion, "0.4.0");
 * ```
 */
export interface ParseResultOptions {
  /**
   * The version to assume when the result has no `cniVersion` (libcni
   * assumes the config's). Default: `0.2.0` for the legacy `ip4`/`ip6`
   * shape, else `1.0.0`.
   */
  cniVersion?: string;
}

function fail(where: string, problem: string): never {
  throw new CniError(ErrorCode.DECODE, `invalid result: ${where}: ${problem}`);
}

/** An optional string; `""` counts as absent (Go omits empty strings). */
function optString(obj: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") fail(`${where}.${key}`, `${showJson(v)} is not a string`);
  return v;
}

function optUint(obj: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    fail(`${where}.${key}`, `${showJson(v)} is not a non-negative integer`);
  }
  return v;
}

function optArray(obj: Record<string, unknown>, key: string, where: string): unknown[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) fail(`${where}.${key}`, `${showJson(v)} is not an array`);
  return v;
}

function cidr(text: string | undefined, where: string): string {
  if (text === undefined) fail(where, "is missing");
  const problem = cidrProblem(text);
  if (problem) fail(where, `${showJson(text)} ${problem}`);
  return formatCidr(parseCidr(text)!);
}

function ip(text: string, where: string): string {
  const canon = canonicalIP(text);
  if (!canon) fail(where, `${showJson(text)} is not an IP address`);
  return canon;
}

function parseInterface(v: unknown, where: string): Interface {
  if (!isJsonObject(v)) fail(where, `${showJson(v)} is not an object`);
  const name = optString(v, "name", where);
  if (name === undefined) fail(`${where}.name`, "is missing");
  const out: Interface = { name };
  const mac = optString(v, "mac", where);
  if (mac !== undefined) out.mac = mac.toLowerCase();
  const mtu = optUint(v, "mtu", where);
  if (mtu) out.mtu = mtu;
  const sandbox = optString(v, "sandbox", where);
  if (sandbox !== undefined) out.sandbox = sandbox;
  const socketPath = optString(v, "socketPath", where);
  if (socketPath !== undefined) out.socketPath = socketPath;
  const pciID = optString(v, "pciID", where);
  if (pciID !== undefined) out.pciID = pciID;
  return out;
}

function parseIPConfig(v: unknown, where: string, interfaceCount: number): IPConfig {
  if (!isJsonObject(v)) fail(where, `${showJson(v)} is not an object`);
  const address = cidr(optString(v, "address", where), `${where}.address`);
  const family = parseCidr(address)!.family;
  const out: IPConfig = { address };
  const index = v.interface;
  if (index !== undefined && index !== null) {
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0) {
      fail(`${where}.interface`, `${showJson(index)} is not a non-negative integer`);
    }
    if (index >= interfaceCount) {
      fail(`${where}.interface`, `${index} is out of range (${interfaceCount} interfaces)`);
    }
    out.interface = index;
  }
  const gateway = optString(v, "gateway", where);
  if (gateway !== undefined) {
    const gw = ip(gateway, `${where}.gateway`);
    if (parseIP(gw)!.length !== parseIP(address.slice(0, address.indexOf("/")))!.length) {
      fail(`${where}.gateway`, `${showJson(gateway)} is not in the family of ${showJson(address)}`);
    }
    out.gateway = gw;
  }
  // 0.3.x/0.4.0 `version`: checked against the address, then dropped.
  const version = v.version;
  if (version !== undefined && version !== null && version !== "") {
    if (version !== "4" && version !== "6") {
      fail(`${where}.version`, `${showJson(version)} is not "4" or "6"`);
    }
    if (Number(version) !== family) {
      fail(`${where}.version`, `${showJson(version)} does not match address ${showJson(address)}`);
    }
  }
  return out;
}

function parseRoute(v: unknown, where: string): Route {
  if (!isJsonObject(v)) fail(where, `${showJson(v)} is not an object`);
  const out: Route = { dst: cidr(optString(v, "dst", where), `${where}.dst`) };
  const gw = optString(v, "gw", where);
  if (gw !== undefined) out.gw = ip(gw, `${where}.gw`);
  for (const key of ["mtu", "advmss", "priority", "table", "scope"] as const) {
    const n = optUint(v, key, where);
    if (n !== undefined) out[key] = n;
  }
  return out;
}

function stringList(v: unknown, where: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    fail(where, `${showJson(v)} is not a list of strings`);
  }
  return v.length ? [...v] : undefined;
}

/**
 * Parse a `dns` object leniently (no address checks: resolv.conf content is
 * passed through as delegates report it).
 *
 * @throws {CniError} code 6 when a member has the wrong type.
 */
export function parseDns(v: unknown, where = "dns"): Dns {
  if (v === undefined || v === null) return {};
  if (!isJsonObject(v)) fail(where, `${showJson(v)} is not an object`);
  const out: Dns = {};
  const nameservers = stringList(v.nameservers, `${where}.nameservers`);
  if (nameservers) out.nameservers = nameservers;
  const domain = optString(v, "domain", where);
  if (domain !== undefined) out.domain = domain;
  const search = stringList(v.search, `${where}.search`);
  if (search) out.search = search;
  const options = stringList(v.options, `${where}.options`);
  if (options) out.options = options;
  return out;
}

/** Whether a DNS object carries nothing. */
export function isEmptyDns(dns: Dns | undefined): boolean {
  return !dns || (!dns.nameservers?.length && !dns.domain && !dns.search?.length &&
    !dns.options?.length);
}

function parseLegacy(obj: Record<string, unknown>, cniVersion: string): Result {
  const ips: IPConfig[] = [];
  const routes: Route[] = [];
  for (const key of ["ip4", "ip6"] as const) {
    const v = obj[key];
    if (v === undefined || v === null) continue;
    if (!isJsonObject(v)) fail(key, `${showJson(v)} is not an object`);
    const address = cidr(optString(v, "ip", key), `${key}.ip`);
    const family = parseCidr(address)!.family;
    if (family !== (key === "ip4" ? 4 : 6)) {
      fail(`${key}.ip`, `${showJson(address)} is of the wrong family`);
    }
    const entry: IPConfig = { address };
    const gateway = optString(v, "gateway", key);
    if (gateway !== undefined) entry.gateway = ip(gateway, `${key}.gateway`);
    ips.push(entry);
    (optArray(v, "routes", key) ?? []).forEach((r, i) =>
      routes.push(parseRoute(r, `${key}.routes[${i}]`))
    );
  }
  const out: Result = { cniVersion };
  if (ips.length) out.ips = ips;
  if (routes.length) out.routes = routes;
  const dns = parseDns(obj.dns);
  if (!isEmptyDns(dns)) out.dns = dns;
  return out;
}

/**
 * Parse a result of any version, 0.1.0 to 1.1.0, into the normalized
 * {@linkcode Result}: accepts `ips[].version`, `dns: {}` or no `dns`, and the
 * 0.1.0/0.2.0 `ip4`/`ip6` shape (converted up). Addresses, gateways and routes
 * are validated and put in canonical text; empty lists and an empty `dns` are
 * dropped. Unknown keys are ignored.
 *
 * @param json the parsed JSON, or its text or bytes.
 * @throws {CniError} code 6 (DECODE) naming the bad member and value.
 * @example Usage
 * ```ts
 * import { parseResult } from "./result.ts";
 * const r = parseResult({
 *   cniVersion: "0.4.0",
 *   ips: [{ version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1" }],
 *   dns: {},
 * });
 * r.ips; // [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }]
 * ```
 */
export function parseResult(json: unknown, options: ParseResultOptions = {}): Result {
  let obj = json;
  if (typeof obj === "string" || obj instanceof Uint8Array) {
    const shape = jsonShapeProblem(obj);
    if (shape) throw new CniError(ErrorCode.DECODE, `invalid result: the JSON ${shape}`);
    const text = typeof obj === "string" ? obj : new TextDecoder().decode(obj);
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new CniError(
        ErrorCode.DECODE,
        `invalid result: not JSON: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  }
  if (!isJsonObject(obj)) fail("result", `${showJson(obj)} is not an object`);
  const legacy = obj.ip4 !== undefined || obj.ip6 !== undefined;
  let cniVersion = optString(obj, "cniVersion", "result");
  if (cniVersion === undefined) cniVersion = options.cniVersion ?? (legacy ? "0.2.0" : "1.0.0");
  if (!parseVersion(cniVersion)) fail("cniVersion", `${showJson(cniVersion)} is not a version`);
  if (legacy && compareVersions(cniVersion, "0.3.0") < 0) return parseLegacy(obj, cniVersion);

  const out: Result = { cniVersion };
  const interfaces = (optArray(obj, "interfaces", "result") ?? []).map((v, i) =>
    parseInterface(v, `interfaces[${i}]`)
  );
  if (interfaces.length) out.interfaces = interfaces;
  const ips = (optArray(obj, "ips", "result") ?? []).map((v, i) =>
    parseIPConfig(v, `ips[${i}]`, interfaces.length)
  );
  if (ips.length) out.ips = ips;
  const routes = (optArray(obj, "routes", "result") ?? []).map((v, i) =>
    parseRoute(v, `routes[${i}]`)
  );
  if (routes.length) out.routes = routes;
  const dns = parseDns(obj.dns);
  if (!isEmptyDns(dns)) out.dns = dns;
  return out;
}

function formatDns(dns: Dns | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!dns) return out;
  if (dns.nameservers?.length) out.nameservers = dns.nameservers;
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = dns.search;
  if (dns.options?.length) out.options = dns.options;
  return out;
}

/**
 * The result as printed for `cniVersion` (which becomes its `cniVersion`):
 * - `0.1.0`, `0.2.0`: the legacy shape `{cniVersion, ip4, ip6, dns}`, as
 *   containernetworking/cni `pkg/types/040` `convertTo02x` converts: the
 *   first IPv4 address becomes `ip4` and the first IPv6 one `ip6` (`ip`,
 *   `gateway`), each route goes to the `routes` of its destination's family
 *   (dropped when that family has no address), interfaces are not printed,
 *   `dns` is always present; without any address the result cannot be
 *   printed (code 999, as the reference's `cannot convert: no valid IP
 *   addresses`);
 * - `0.3.0` to `0.4.0`: every `ips[]` entry gets `version` `"4"`/`"6"`, and
 *   `dns` is always present (possibly `{}`);
 * - `≥ 1.0.0`: no `version`; `dns` omitted when empty;
 * - interface `mtu`/`socketPath`/`pciID` and route
 *   `mtu`/`advmss`/`priority`/`table`/`scope` only at `1.1.0`.
 *
 * Keys come in the spec's order (`cniVersion, interfaces, ips, routes, dns`);
 * empty lists are omitted, as the Go types do.
 *
 * @throws {CniError} code 1 when `cniVersion` is not one we support; code
 *   999 for a result without addresses at 0.1.0 or 0.2.0.
 * @example Usage
 * ```ts
 * import { formatResult } from "./result.ts";
 * JSON.stringify(formatResult({ cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }] }, "0.3.1"));
 * // {"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24"}],"dns":{}}
 * ```
 */
export function formatResult(result: Result, cniVersion: string): Record<string, unknown> {
  if (!isSupportedVersion(cniVersion)) {
    throw new CniError(
      ErrorCode.INCOMPATIBLE_VERSION,
      `Cannot format result as version ${showJson(cniVersion)}: unsupported version`,
    );
  }
  if (compareVersions(cniVersion, "0.3.0") < 0) return formatLegacy(result, cniVersion);
  const v1 = compareVersions(cniVersion, "1.0.0") >= 0;
  const v11 = compareVersions(cniVersion, "1.1.0") >= 0;
  const out: Record<string, unknown> = { cniVersion };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (v11 && i.mtu) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (v11 && i.socketPath) o.socketPath = i.socketPath;
      if (v11 && i.pciID) o.pciID = i.pciID;
      return o;
    });
  }
  if (result.ips?.length) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (!v1) o.version = ip.address.includes(":") ? "6" : "4";
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (result.routes?.length) {
    out.routes = result.routes.map((r) => {
      const o: Record<string, unknown> = { dst: r.dst };
      if (r.gw) o.gw = r.gw;
      if (v11) {
        if (r.mtu) o.mtu = r.mtu;
        if (r.advmss) o.advmss = r.advmss;
        if (r.priority) o.priority = r.priority;
        if (r.table !== undefined) o.table = r.table;
        if (r.scope !== undefined) o.scope = r.scope;
      }
      return o;
    });
  }
  const dns = formatDns(result.dns);
  if (!v1 || Object.keys(dns).length) out.dns = dns;
  return out;
}

/** The 0.1.0/0.2.0 shape of a result (see {@linkcode formatResult}). */
function formatLegacy(result: Result, cniVersion: string): Record<string, unknown> {
  const families: Record<"ip4" | "ip6", Record<string, unknown> | undefined> = {
    ip4: undefined,
    ip6: undefined,
  };
  for (const ip of result.ips ?? []) {
    const key = ip.address.includes(":") ? "ip6" : "ip4";
    if (families[key]) continue;
    families[key] = { ip: ip.address, ...(ip.gateway ? { gateway: ip.gateway } : {}) };
  }
  if (!families.ip4 && !families.ip6) {
    throw new CniError(
      ErrorCode.GENERIC,
      `Cannot format result as version "${cniVersion}": no IP address`,
      "a 0.1.0 or 0.2.0 result carries at least one address (ip4 or ip6)",
    );
  }
  for (const r of result.routes ?? []) {
    const target = families[r.dst.includes(":") ? "ip6" : "ip4"];
    if (!target) continue;
    const routes = (target.routes ??= []) as Record<string, unknown>[];
    routes.push({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) });
  }
  const out: Record<string, unknown> = { cniVersion };
  if (families.ip4) out.ip4 = families.ip4;
  if (families.ip6) out.ip6 = families.ip6;
  out.dns = formatDns(result.dns);
  return out;
}
