/**
 * The bad-input generator: from (run seed, case index) a CNI invocation —
 * env and stdin bytes — built from a valid ADD by 1–3 mutations, each with
 * the answers that are correct for it. Pure and deterministic, so the
 * in-process worker and the test regenerate the same case from its index.
 *
 * @module
 */

import { caseSeed, type Expectation, Rng, type StepExpect } from "./_oracle.ts";
import { CNI_BIN, TEST_ROOTS, VERSIONS } from "../../lab/mod.ts";

/** Where the generated cases point. */
export interface GenTarget {
  /** The master in the plugin's namespace. */
  master: string;
  /** `/run/netns/<ctr>`. */
  ctrPath: string;
  /** host-local `dataDir`. */
  dataDir: string;
  /** The plugin's `stateDir`. */
  stateDir: string;
  /** CNI_PATH. */
  cniPath: string;
  /** A second master for passthru cases. */
  passthruMaster: string;
  /** hostrouteif names a case may use (kept on the host by design). */
  hostrouteifs: readonly string[];
  /** Env values must be spawnable (no NUL): true for real processes. */
  execSafe: boolean;
  /** Prefix of container ids and ifnames (distinguishes concurrent workers). */
  tag: string;
  /**
   * Addresses the plugin's namespace owns or routes via (gateways): an IPAM
   * result with one is code 7 with hostrouteif.
   */
  hostAddrs?: readonly string[];
  /**
   * More paths that are not network namespaces (a FIFO, a regular file…).
   * A FIFO blocks a plugin that opens it without O_NONBLOCK: pass one only
   * where each run has a kill timeout.
   */
  notNamespaces?: readonly string[];
}

/** One generated invocation. */
export interface Case {
  index: number;
  env: Record<string, string | undefined>;
  stdin: Uint8Array;
  /** Names of the mutations applied (for failure messages). */
  mutations: string[];
  expect: Expectation;
}

type Json = Record<string, unknown>;

interface Draft {
  env: Record<string, string | undefined>;
  config: Json;
  /** Replaces the serialized config when set. */
  raw?: Uint8Array;
}

interface Mutation {
  name: string;
  /** Correct codes; `"any"` when several layers (plugin, IPAM, kernel) may answer. */
  codes: number[] | "any";
  ok: boolean;
}

type Mutator = (d: Draft, r: Rng, t: GenTarget) => Mutation;

const enc = new TextEncoder();
/**
 * Versions of the valid base config: 0.3.0 to 1.0.0. Not 1.1.0: Debian's
 * host-local 1.1.1 refuses it (code 1), which would mask the plugin's own
 * answers; not 0.1.0/0.2.0, where the base's L2 variant is refused (code 7).
 * Both come in through the `otherVersion` and `command` mutations.
 */
const BASE_VERSIONS = VERSIONS.filter((v) => v >= "0.3.0" && v < "1.1.0");

function wrongValue(r: Rng): unknown {
  return r.pick<unknown>([
    0,
    -1,
    1.5,
    true,
    false,
    null,
    [],
    {},
    [1, 2],
    { a: 1 },
    "",
    "x",
    1e300,
    "\u0000",
    r.str(r.range(1, 40), "abc\u00e9\u4e2d/\\\"' :;\n\t"),
  ]);
}

function withNul(s: string, r: Rng): string {
  const at = r.int(s.length + 1);
  return s.slice(0, at) + "\u0000" + s.slice(at);
}

function deep(depth: number, leaf: string): string {
  return "[".repeat(depth) + leaf + "]".repeat(depth);
}

function ipamOf(d: Draft): Json {
  if (typeof d.config.ipam !== "object" || d.config.ipam === null) d.config.ipam = {};
  return d.config.ipam as Json;
}

const ENV_KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"];

const MUTATORS: Record<string, Mutator> = {
  malformedJson(d, r) {
    const text = JSON.stringify(d.config);
    const variant = r.int(6);
    let s: string;
    if (variant === 0) s = text.slice(0, r.int(text.length)); // truncated
    else if (variant === 1) s = text.replace(/"/, ""); // broken string
    else if (variant === 2) s = text + r.pick(["}", ",", "x", "]"]);
    else if (variant === 3) s = text.replace(/:/, r.pick(["", "=", "::"]));
    else if (variant === 4) s = r.pick(["", " ", "{", "nul", "{'a':1}", '{"a":}', "\uFFFD"]);
    else s = text.slice(0, r.int(text.length)) + "\u0000" + text.slice(r.int(text.length));
    d.raw = enc.encode(s);
    return { name: `malformed JSON (${variant})`, codes: [6], ok: false };
  },
  notObject(d, r) {
    d.raw = enc.encode(r.pick(["null", "[]", "1", '"str"', "true", "[{}]"]));
    return { name: "JSON not an object", codes: [6], ok: false };
  },
  invalidUtf8(d) {
    const text = enc.encode(JSON.stringify(d.config));
    const bytes = new Uint8Array(text.length + 2);
    bytes.set(text.subarray(0, 20));
    bytes.set([0xc3, 0x28], 20);
    bytes.set(text.subarray(20), 22);
    d.raw = bytes;
    return { name: "invalid UTF-8", codes: [6], ok: false };
  },
  wrongType(d, r) {
    const key = r.pick([
      "cniVersion",
      "name",
      "type",
      "master",
      "mode",
      "mtu",
      "mac",
      "promiscMode",
      "hostrouteif",
      "hostrouteMetric",
      "ipam",
      "dns",
      "args",
      "runtimeConfig",
      "prevResult",
      "ipamTimeoutMs",
      "logLevel",
      "logFile",
      "deviceID",
      "stateDir",
      "cniVersions",
    ]);
    let v = wrongValue(r);
    // Values that are of the right type after all.
    if (key === "promiscMode" && typeof v === "boolean") v = "yes";
    if (
      ["ipam", "dns", "args", "runtimeConfig", "prevResult"].includes(key) &&
      typeof v === "object" && v !== null && !Array.isArray(v)
    ) v = 7;
    if (
      typeof v === "string" &&
      [
        "cniVersion",
        "name",
        "type",
        "master",
        "mode",
        "mac",
        "hostrouteif",
        "logLevel",
        "logFile",
        "deviceID",
        "stateDir",
      ].includes(key)
    ) v = [v];
    if (
      typeof v === "number" && Number.isInteger(v) && v >= 0 &&
      ["mtu", "hostrouteMetric", "ipamTimeoutMs"].includes(key)
    ) v = String(v);
    d.config[key] = v;
    // null reads as "absent" (as Go's decoder does): success is fine then;
    // so is ignoring a malformed `args` (conventions) or an empty `cniVersions`.
    const lax = v === null || key === "args" || key === "cniVersions";
    return { name: `wrong type ${key}=${JSON.stringify(v)}`, codes: "any", ok: lax };
  },
  unknownMode(d, r) {
    d.config.mode = r.pick(["fast", "Bridge", "BRIDGE", "source", " bridge", "vepa2", r.str(8)]);
    // "source" is a kernel mode the plugin does not support: 2 is right too.
    return { name: `unknown mode ${JSON.stringify(d.config.mode)}`, codes: [7, 2], ok: false };
  },
  passthru(d, _r, t) {
    // Legal but exclusive (one child per master): on its own master, so it
    // does not fail the other cases running at the same time.
    d.config.mode = "passthru";
    d.config.master = t.passthruMaster;
    delete d.config.hostrouteif;
    return { name: "mode passthru", codes: "any", ok: true };
  },
  mtuRange(d, r) {
    const mtu = r.pick([-1, -1500, 65536, 70000, 9000, 1501, 2 ** 31, 1e12, 1.5, 1500.5]);
    d.config.mtu = mtu;
    return { name: `MTU ${mtu}`, codes: [7], ok: false };
  },
  mtuTiny(d, r) {
    d.config.mtu = r.range(1, 67);
    return { name: `MTU ${d.config.mtu} (below the kernel minimum)`, codes: [7, 100], ok: false };
  },
  masterMissingKey(d, r) {
    // "" means unset too, as in the reference macvlan.
    if (r.chance(0.5)) delete d.config.master;
    else d.config.master = "";
    return { name: "no master (default route's)", codes: "any", ok: true };
  },
  masterNonexistent(d, r) {
    d.config.master = r.pick(["nosuch0", "eth9", r.str(r.range(1, 15)), "lab1"]);
    return { name: `master ${d.config.master}`, codes: [7], ok: false };
  },
  masterIllegal(d, r) {
    d.config.master = r.pick(["a/b", "..", ".", "a b", "x:1", "a".repeat(16), "lab0\n"]);
    return { name: `illegal master ${JSON.stringify(d.config.master)}`, codes: [7], ok: false };
  },
  masterWrongKind(d, r) {
    d.config.master = r.pick(["lo"]);
    return { name: `master ${d.config.master}`, codes: "any", ok: false };
  },
  badMac(d, r) {
    const where = r.int(3);
    const mac = r.pick([
      "02:11:22:33:44",
      "02:11:22:33:44:55:66",
      "zz:11:22:33:44:55",
      "01:00:5e:00:00:01",
      "ff:ff:ff:ff:ff:ff",
      "00:00:00:00:00:00",
      "0211.2233.4455x",
      "02-11-22-33-44-5",
      "02:11:22:33:44:5g",
      r.str(17, "0123456789abcdef:"),
    ]);
    if (where === 0) d.config.mac = mac;
    else if (where === 1) d.config.runtimeConfig = { mac };
    else {
      d.env.CNI_ARGS = `IgnoreUnknown=1;MAC=${mac}`;
    }
    return {
      name: `bad MAC ${JSON.stringify(mac)} via ${["config", "runtimeConfig", "CNI_ARGS"][where]}`,
      codes: [7],
      ok: false,
    };
  },
  badCidr(d, r) {
    const bad = r.pick([
      "10.99.0.300",
      "10.99.0.0/33",
      "10.99.0.0/-1",
      "10.99.0/24",
      "fd00::/129",
      "::g",
      "10.99.0.5/24/1",
      " 10.99.0.5",
      "1e3.0.0.1",
    ]);
    const where = r.int(4);
    if (where === 0) d.config.args = { cni: { ips: [bad] } };
    else if (where === 1) d.config.runtimeConfig = { ips: [bad] };
    else if (where === 2) d.env.CNI_ARGS = `IP=${bad}`;
    else ipamOf(d).subnet = bad;
    // The IPAM plugin may be the one to refuse it (its own code). A bad
    // ipam-internal field (#3) is the IPAM plugin's to judge: STATUS and GC
    // consult only delegates that speak 1.1.0 (Debian's host-local does not),
    // so they may rightly succeed.
    return {
      name: `bad CIDR ${JSON.stringify(bad)} via #${where}`,
      codes: where >= 2 ? "any" : [7],
      ok: where === 3,
    };
  },
  ifnameIllegal(d, r, t) {
    const opts = [
      "a".repeat(16),
      "a".repeat(r.range(16, 300)),
      ".",
      "..",
      "a/b",
      "e:0",
      "a b",
      "eth0\t",
      "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
      "",
    ];
    if (!t.execSafe) opts.push("e\u0000th0");
    d.env.CNI_IFNAME = r.pick(opts);
    return { name: `CNI_IFNAME ${JSON.stringify(d.env.CNI_IFNAME)}`, codes: [4], ok: false };
  },
  containerIdIllegal(d, r, t) {
    const opts = [
      "",
      "-x",
      ".x",
      "a/b",
      "a b",
      "a;b",
      "\u00e9",
      "a".repeat(r.range(200, 5000)) + "/",
    ];
    if (!t.execSafe) opts.push("abc\u0000def");
    d.env.CNI_CONTAINERID = r.pick(opts);
    return {
      name: `CNI_CONTAINERID ${JSON.stringify(d.env.CNI_CONTAINERID).slice(0, 40)}`,
      codes: [4],
      ok: false,
    };
  },
  overLong(d, r) {
    // Values of legal characters past the plugin's bounds (README "Input bounds").
    const long = (min: number) => "a".repeat(r.range(min, r.chance(0.5) ? min + 64 : 200_000));
    switch (r.int(4)) {
      case 0:
        d.env.CNI_CONTAINERID = long(193);
        return { name: "CNI_CONTAINERID over 192 bytes", codes: [4], ok: false };
      case 1:
        d.env.CNI_NETNS = `/run/netns/${long(4096)}`;
        return { name: "CNI_NETNS over 4095 bytes", codes: [4], ok: false };
      case 2:
        d.env.CNI_ARGS = `IgnoreUnknown=1;X=${long(4096)}`;
        return { name: "CNI_ARGS over 4096 bytes", codes: [4], ok: false };
      default:
        d.config.name = long(256);
        return { name: "network name over 255 bytes", codes: [7], ok: false };
    }
  },
  netnsMissing(d, r) {
    const v = r.pick<string | undefined>([
      undefined,
      "",
      "/run/netns/does-not-exist",
      "/etc/hostname",
      "/",
      "relative/ns",
      "/proc/1/ns/mnt",
    ]);
    d.env.CNI_NETNS = v;
    return { name: `CNI_NETNS ${JSON.stringify(v)}`, codes: v ? [103, 7, 4] : [4], ok: false };
  },
  envMissing(d, r) {
    const key = r.pick(ENV_KEYS.slice(1));
    d.env[key] = r.chance(0.5) ? undefined : "";
    return { name: `${key} missing`, codes: [4], ok: false };
  },
  cniPathBad(d, r) {
    d.env.CNI_PATH = r.pick(["/nonexistent", "/tmp/no/such:/also/not", "::"]);
    // Only IPAM needs CNI_PATH: L2-only configs may succeed.
    return { name: `CNI_PATH ${d.env.CNI_PATH}`, codes: [101], ok: true };
  },
  ipamTypeTraversal(d, r) {
    ipamOf(d).type = r.pick([
      "../host-local",
      `${CNI_BIN}/host-local`,
      "..",
      ".",
      "a/b",
      "../../bin/sh",
      "host-local/",
      "./host-local",
      "..\u002fx",
    ]);
    return { name: `ipam.type ${JSON.stringify(ipamOf(d).type)}`, codes: [7], ok: false };
  },
  ipamTypeUnknown(d, r) {
    ipamOf(d).type = r.pick(["no-such-ipam", r.str(10), "HOST-LOCAL"]);
    return { name: `ipam.type ${ipamOf(d).type}`, codes: [101], ok: false };
  },
  ipamTimeoutTiny(d) {
    d.config.ipamTimeoutMs = 1;
    return { name: "ipamTimeoutMs 1", codes: "any", ok: true };
  },
  cniArgsUnknown(d, r) {
    const key = r.pick([
      "FOO",
      "ip",
      "mac",
      "K8S_POD_NAMES",
      "ignoreunknown",
      r.str(6).toUpperCase(),
    ]);
    d.env.CNI_ARGS = `${key}=bar`;
    return { name: `CNI_ARGS ${key}=bar`, codes: [7], ok: false };
  },
  cniArgsMalformed(d, r) {
    d.env.CNI_ARGS = r.pick([
      "abc",
      "=",
      "A=1;;",
      ";",
      "IgnoreUnknown",
      "IgnoreUnknown=maybe;X=1",
      "IP=1.2.3.4=5",
    ]);
    return { name: `CNI_ARGS ${JSON.stringify(d.env.CNI_ARGS)}`, codes: [7], ok: false };
  },
  cniArgsIgnored(d, r) {
    d.env.CNI_ARGS = `IgnoreUnknown=1;FOO=${r.str(5)};K8S_POD_NAME=p${r.int(99)}`;
    return { name: "unknown CNI_ARGS with IgnoreUnknown", codes: "any", ok: true };
  },
  wrongVersion(d, r) {
    const v = r.pick<unknown>([
      "9.9.9",
      "0.2.1",
      "0.0.1",
      "1.0",
      "1.1.0 ",
      "v1.0.0",
      "1.2.0",
      "0.3.2",
    ]);
    d.config.cniVersion = v;
    return { name: `cniVersion ${JSON.stringify(v)}`, codes: [1], ok: false };
  },
  otherVersion(d, r) {
    d.config.cniVersion = r.pick(VERSIONS);
    return { name: `cniVersion ${d.config.cniVersion}`, codes: "any", ok: true };
  },
  huge(d, r) {
    const big = r.chance(0.5);
    const size = big
      ? r.range(4 * 1024 * 1024 + 1, 6 * 1024 * 1024)
      : r.range(512 * 1024, 3 * 1024 * 1024);
    const where = big ? 0 : r.int(3);
    if (where === 0) d.config.padding = "x".repeat(size);
    else if (where === 1) {
      d.config.dns = { nameservers: Array(Math.floor(size / 11)).fill("10.0.0.1") };
    } else d.config.name = "n".repeat(size);
    return {
      name: `huge input ${size} bytes in ${["padding", "dns", "name"][where]}`,
      codes: big ? [5] : "any",
      ok: !big && where !== 2,
    };
  },
  deepNesting(d, r) {
    const depth = r.pick([100, 1000, 10000, 100000]);
    const where = r.int(3);
    if (where === 0) {
      d.raw = enc.encode(deep(depth, "1"));
      return { name: `deep nesting ${depth} (stdin)`, codes: [6], ok: false };
    }
    const text = JSON.stringify(d.config);
    const key = where === 1 ? "padding" : "dns";
    d.raw = enc.encode(text.slice(0, -1) + `,"${key}":${deep(depth, "{}")}}`);
    return { name: `deep nesting ${depth} in ${key}`, codes: "any", ok: where === 1 };
  },
  nulInValues(d, r) {
    const key = r.pick(["name", "master", "mode", "mac", "hostrouteif", "type"]);
    d.config[key] = withNul(String(d.config[key] ?? "x"), r);
    // `type` is not the plugin's to check (see typeWrong); every other value
    // is a name or word that cannot contain NUL.
    return {
      name: `NUL in ${key}`,
      codes: key === "mode" || key === "name" ? [7] : "any",
      ok: key === "type",
    };
  },
  nameIllegal(d, r) {
    d.config.name = r.pick(["", "../../etc", "a/b", "-x", ".", "..", "a b", "\u00e9"]);
    return { name: `network name ${JSON.stringify(d.config.name)}`, codes: [7], ok: false };
  },
  typeWrong(d, r) {
    // The runtime chose the plugin by `type`; like the reference plugins, ours need not check it.
    d.config.type = r.pick(["macvlan", "", "MACVTAP", "../macvtap"]);
    return { name: `type ${JSON.stringify(d.config.type)}`, codes: [7], ok: true };
  },
  hostrouteifIllegal(d, r) {
    d.config.hostrouteif = r.pick(["a b", "a/b", "..", "x".repeat(16), "lab0", "lo", "e:1"]);
    return { name: `hostrouteif ${JSON.stringify(d.config.hostrouteif)}`, codes: [7], ok: false };
  },
  hostrouteifOther(d, r, t) {
    d.config.hostrouteif = r.pick(t.hostrouteifs);
    return { name: `hostrouteif ${d.config.hostrouteif}`, codes: "any", ok: true };
  },
  metricBad(d, r) {
    d.config.hostrouteMetric = r.pick([-1, 2 ** 32, 1.5, "x"]);
    return { name: `hostrouteMetric ${d.config.hostrouteMetric}`, codes: [7], ok: false };
  },
  logLevelBad(d, r) {
    d.config.logLevel = r.pick(["loud", "DEBUG", "trace"]);
    return { name: `logLevel ${JSON.stringify(d.config.logLevel)}`, codes: [7], ok: false };
  },
  logFileRelative(d, r) {
    // Outside the log root (tests: /tmp), or not normalized.
    d.config.logFile = r.pick([
      "./x.log",
      "../x.log",
      "/etc/passwd",
      "/var/tmp/x.log",
      "/tmp/a/../x",
    ]);
    return { name: `logFile ${JSON.stringify(d.config.logFile)}`, codes: [7], ok: false };
  },
  dnsGarbage(d, r) {
    d.config.dns = r.pick<unknown>([
      { nameservers: "1.1.1.1" },
      { nameservers: [1, 2] },
      { search: {} },
      { domain: 5 },
      { options: [null] },
    ]);
    return { name: `dns ${JSON.stringify(d.config.dns)}`, codes: [7], ok: false };
  },
  prevResultGarbage(d, r) {
    d.config.prevResult = r.pick<unknown>([{ ips: "x" }, { interfaces: [{ name: 5 }] }, {
      ips: [{ address: "nope" }],
    }, { cniVersion: 1 }]);
    return { name: `prevResult ${JSON.stringify(d.config.prevResult)}`, codes: "any", ok: true };
  },
  duplicateKeys(d) {
    const mode = typeof d.config.mode === "string" ? d.config.mode : "bridge";
    d.config.mode = mode;
    const text = JSON.stringify(d.config);
    d.raw = enc.encode(text.slice(0, -1) + `,"mode":"nope","mode":${JSON.stringify(mode)}}`);
    return { name: "duplicate keys (last wins)", codes: "any", ok: true };
  },
  command(d, r) {
    const c = r.pick<string | undefined>([
      "add",
      "ADD ",
      "FOO",
      "",
      undefined,
      "VERSION",
      "DEL",
      "CHECK",
      "STATUS",
      "GC",
    ]);
    d.env.CNI_COMMAND = c;
    if (c === "GC") d.config.name = "gcnet"; // never collects a concurrent case's attachment
    const ok = c === undefined || c === "" || ["VERSION", "DEL", "STATUS", "GC"].includes(c);
    return {
      name: `CNI_COMMAND ${JSON.stringify(c)}`,
      codes: ok ? "any" : c === "CHECK" ? "any" : [4],
      ok,
    };
  },
  deviceIdMissing(d, r) {
    d.config.deviceID = r.pick(["macvtap9", "nosuchdev", "0000:00:00.0"]);
    delete d.config.hostrouteif;
    return { name: `deviceID ${d.config.deviceID}`, codes: "any", ok: true };
  },
  // Issue 10 classes: hostile IPAM results, non-namespace CNI_NETNS, kernel name templates.
  hostileIpam(d, r, t) {
    const address = r.pick([...SPECIAL_ADDRESSES, ...(t.hostAddrs ?? [])]);
    d.config.hostrouteif = t.hostrouteifs[0];
    const via = r.int(2);
    if (via === 0) d.config.ipam = { type: "static", addresses: [{ address }] };
    else {
      d.config.ipam = { type: "static" };
      d.config.runtimeConfig = { ips: [address] };
    }
    return {
      name: `hostile IPAM result ${address} via ${["static", "runtimeConfig.ips"][via]}`,
      codes: [7],
      ok: false,
    };
  },
  netnsNotNamespace(d, r, t) {
    d.env.CNI_NETNS = r.pick([
      "/dev/null",
      "/dev/zero",
      "/etc/hostname",
      "/",
      "/tmp",
      "/proc/self/ns/mnt",
      "/proc/self/ns/uts",
      ...(t.notNamespaces ?? []),
    ]);
    return { name: `CNI_NETNS ${d.env.CNI_NETNS} (not a netns)`, codes: [103], ok: false };
  },
  ifnameTemplate(d, r) {
    d.env.CNI_IFNAME = r.pick(["eth%d", "%d", "e%s", "x%%", "%", "net%d1", "%n"]);
    return { name: `CNI_IFNAME ${d.env.CNI_IFNAME} (kernel name template)`, codes: [4], ok: false };
  },
};

/**
 * Addresses that are never a task's unicast host address: unspecified,
 * multicast, limited broadcast, loopback, link-local, class E (IPv4 and
 * IPv6 alike). With `hostrouteif`, an IPAM result holding one is code 7.
 */
export const SPECIAL_ADDRESSES: readonly string[] = Object.freeze([
  "0.0.0.0/24",
  "0.0.0.0/0",
  "224.0.0.1/24",
  "239.255.255.250/8",
  "255.255.255.255/32",
  "255.255.255.255/24",
  "127.0.0.1/8",
  "127.0.0.53/8",
  "169.254.169.254/16",
  "240.0.0.1/8",
  "254.1.2.3/24",
  "::/64",
  "::/0",
  "ff02::1/64",
  "ff0e::101/64",
  "::1/128",
  "fe80::1/64",
  "febf::1/64",
]);

/** Mutators weighted by how much they explore (names repeated). */
const WEIGHTED: string[] = Object.keys(MUTATORS).flatMap((k) =>
  Array(["huge", "deepNesting"].includes(k) ? 1 : k === "wrongType" ? 6 : 2).fill(k)
);

/** The valid ADD every case starts from. */
export function baseDraft(index: number, r: Rng, t: GenTarget): Draft {
  const id = `${t.tag}${index.toString(36)}`;
  const config: Json = {
    cniVersion: r.pick(BASE_VERSIONS),
    name: "chaos",
    type: "macvtap",
    master: t.master,
    mode: r.pick(["bridge", "private", "vepa"]),
    stateDir: t.stateDir,
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: "10.99.0.0/24", rangeStart: "10.99.0.10", rangeEnd: "10.99.0.250" }]],
      dataDir: t.dataDir,
    },
  };
  if (r.chance(0.5)) config.hostrouteif = t.hostrouteifs[0];
  if (r.chance(0.2)) config.mtu = r.pick([0, 68, 1280, 1500]);
  if (r.chance(0.2)) {
    config.mac = `02:${r.str(2, "0123456789abcdef")}:00:00:${
      (index >> 8 & 255).toString(16).padStart(2, "0")
    }:${(index & 255).toString(16).padStart(2, "0")}`;
  }
  if (r.chance(0.1)) config.ipam = {};
  return {
    config,
    env: {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: `bad-${id}`,
      CNI_NETNS: t.ctrPath,
      CNI_IFNAME: `c${id}`.slice(0, 15),
      CNI_ARGS: "",
      CNI_PATH: t.cniPath,
      ...TEST_ROOTS,
    },
  };
}

/** Each top-level config key and env variable, serialized (long values hashed by length). */
function snapshot(d: Draft): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(d.config)) {
    const text = JSON.stringify(v) ?? "undefined";
    m.set(`config.${k}`, text.length > 4096 ? `#${text.length}:${text.slice(0, 64)}` : text);
  }
  for (const [k, v] of Object.entries(d.env)) m.set(`env.${k}`, String(v));
  // Replaced stdin bytes are an effect too (they override the config).
  if (d.raw) m.set("raw", `${d.raw.length}:${d.raw.subarray(0, 64).join(",")}`);
  return m;
}

/** Case `index` of run `seed`. */
export function generate(seed: number, index: number, t: GenTarget): Case {
  const r = new Rng(caseSeed(seed, index));
  const d = baseDraft(index, r, t);
  const n = r.chance(0.5) ? 1 : r.range(2, 3);
  let applied: { m: Mutation; touched: Set<string> }[] = [];
  for (let k = 0; k < n; k++) {
    const name = r.pick(WEIGHTED);
    // Once the bytes are replaced, config mutations no longer apply: stop.
    if (d.raw) break;
    const before = snapshot(d);
    const m = MUTATORS[name]!(d, r, t);
    const after = snapshot(d);
    const touched = new Set(
      [...after.keys(), ...before.keys()].filter((key) => before.get(key) !== after.get(key)),
    );
    // A mutation that changed nothing (the same value again) has no effect
    // of its own; a later mutation of the same key overwrites an earlier one's.
    if (touched.size === 0) continue;
    applied = applied.filter((a) => ![...a.touched].some((key) => touched.has(key)));
    applied.push({ m, touched });
  }
  const codes = new Set<number>();
  let any = false;
  for (const { m } of applied) {
    if (m.codes === "any") any = true;
    else for (const c of m.codes) codes.add(c);
  }
  // Several mutations on the env, stdin or config: which is reported first is
  // the plugin's choice, but it must be one of theirs. VERSION and a missing
  // command answer regardless of the rest; DEL is best effort.
  const command = d.env.CNI_COMMAND;
  const lenient = !command || command === "VERSION" || command === "DEL";
  // GC and STATUS take no container, interface, netns or CNI_ARGS (spec: their
  // env is CNI_COMMAND and CNI_PATH): mutations of those alone have no effect.
  if (command === "GC" || command === "STATUS") {
    const unused = new Set([
      "env.CNI_ARGS",
      "env.CNI_CONTAINERID",
      "env.CNI_IFNAME",
      "env.CNI_NETNS",
    ]);
    applied = applied.filter((a) => ![...a.touched].every((key) => unused.has(key)));
  }
  // STATUS reports whatever keeps ADD from being serviced (a missing master,
  // an IPAM plugin that cannot run, …) as 50 with the reason in msg/details;
  // only a request it cannot read keeps its own code.
  if (command === "STATUS" && codes.size) codes.add(50);
  return {
    index,
    env: d.env,
    stdin: d.raw ?? enc.encode(JSON.stringify(d.config)),
    mutations: applied.map((a) => a.m.name),
    expect: lenient
      ? { ok: true, codes: "any" }
      : { ok: applied.every((a) => a.m.ok), codes: any ? "any" : codes },
  };
}

// ------------------------------------------------------------------------
// Ownership scenarios (issue 10): a victim network with live attachments and
// an attacker that shares the node (another network) or the network itself
// (colliding ids, duplicate ADDs, planted records). Pure, like `generate`.

/** What the ownership scenarios aim at. */
export interface OwnershipTarget {
  /** The victim network's live attachments. */
  victims: readonly { id: string; ifname: string; path: string; ips: readonly string[] }[];
  /** Empty namespaces (paths) the attacker may use; each scenario starts with them empty. */
  attackerNs: readonly string[];
  /** Paths that are not network namespaces: a FIFO, a regular file, a directory, a device. */
  notNamespaces: readonly string[];
  /** Addresses the host owns or routes via. */
  hostAddrs: readonly string[];
  /** Absolute paths of files outside the state dirs that must never change. */
  sentinels: readonly string[];
  /** The state dir of the victim network (records of its network under `<it>/<network>`). */
  stateDir: string;
}

/** Which network a step talks to. */
export type StepNet = "victim" | "attacker";

/** One step of a scenario: one call, or several at once (`fanout`). */
export interface Step {
  what: string;
  net: StepNet;
  command: "ADD" | "CHECK" | "DEL" | "GC";
  containerId?: string;
  ifname?: string;
  netns?: string;
  /** ADD the same attachment into each of these namespaces at once. */
  fanout?: readonly string[];
  /** Merged into the network's config. */
  config?: Json;
  /** GC: the valid attachments. */
  valid?: readonly { id: string; ifname: string }[];
  /** Written into the network's record directory before the call (and removed after the scenario). */
  plant?: { name: string; content: string };
  /** DEL the attachment again after a successful ADD (each successful fanout call). */
  delAfter?: boolean;
  expect: StepExpect;
}

/** One generated scenario. */
export interface Scenario {
  index: number;
  steps: Step[];
}

const OK_ANY: StepExpect = { ok: true, codes: "any" };
const SEPARATORS = ["-", "_", ".", "@", ":"];

/** Other (id, ifname) pairs whose `id<sep>ifname` equals the victim's, for some separator. */
export function collidingKeys(id: string, ifname: string): { id: string; ifname: string }[] {
  const out: { id: string; ifname: string }[] = [];
  for (const sep of SEPARATORS) {
    const joined = `${id}${sep}${ifname}`;
    for (let i = 1; i < joined.length - 1; i++) {
      if (joined[i] !== sep) continue;
      const a = joined.slice(0, i);
      const b = joined.slice(i + 1);
      if (a === id && b === ifname) continue;
      // Keep only names the plugin must accept: an id starting with an
      // alphanumeric, a kernel-valid ifname of 1–15 bytes.
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(a)) continue;
      if (b.length === 0 || b.length > 15 || /[/:\s%]/.test(b) || b === "." || b === "..") continue;
      out.push({ id: a, ifname: b });
    }
  }
  return out;
}

function hostileRecord(r: Rng, t: OwnershipTarget, key: { id: string; ifname: string }): Json {
  const traversal = r.pick(["../../x", "../x", "..", "a/../../x", "/etc/x", "x/../../../y"]);
  const rec: Json = {
    containerId: r.pick([traversal, key.id, "", "a".repeat(300)]),
    ifname: r.pick([key.ifname, "../eth0", "eth%d", "a".repeat(20), ""]),
    netns: r.pick(["/etc/passwd", "/dev/null", "", "relative/ns", ...t.notNamespaces]),
    ipamType: r.pick(["../evil", "../../evil", "/bin/sh", "evil", "host-local", "..", ""]),
    cniArgs: r.pick(["", "IgnoreUnknown=1;X=$(touch /tmp/pwned)", "\n\u0000"]),
    ips: r.pick([["10.9.9.9/32"], ["0.0.0.0/0"], ["garbage"], [], ...t.hostAddrs.map((a) => [a])]),
    hostrouteif: r.pick(["macvtap1", "eth0", "../x", "lo", ""]),
    hostRoutes: r.pick([
      [{ family: 4, dst: "10.9.9.9/32", metric: 50 }],
      [{ family: 4, dst: "0.0.0.0/0", metric: 0 }],
      [{ family: 4, dst: "192.168.10.0/24", metric: 0 }],
      [{ family: 6, dst: "fd10::/64", metric: 256 }],
      ...t.hostAddrs.map((a) => [{
        family: a.includes(":") ? 6 : 4,
        dst: `${a.slice(0, a.indexOf("/"))}/${a.includes(":") ? 128 : 32}`,
        metric: 50,
      }]),
      "not a list",
    ]),
  };
  // Sometimes a field of the wrong type or a missing one.
  if (r.chance(0.3)) {
    const k = r.pick(Object.keys(rec));
    if (r.chance(0.5)) delete rec[k];
    else rec[k] = wrongValue(r);
  }
  return rec;
}

type StepMaker = (r: Rng, t: OwnershipTarget, index: number) => Step[];

const STEP_MAKERS: Record<string, StepMaker> = {
  duplicateAdd(r, t) {
    const v = r.pick(t.victims);
    const ns = r.pick([...t.attackerNs, v.path]);
    return [{
      what: `duplicate ADD of victim ${v.id}/${v.ifname} into ${ns}`,
      net: "victim",
      command: "ADD",
      containerId: v.id,
      ifname: v.ifname,
      netns: ns,
      expect: { ok: false, codes: "any", msg: "already" },
    }];
  },
  collidingKey(r, t) {
    const v = r.pick(t.victims);
    const keys = collidingKeys(v.id, v.ifname);
    if (keys.length === 0) return [];
    const k = r.pick(keys);
    return [{
      what: `ADD ${k.id}/${k.ifname} (colliding with victim ${v.id}/${v.ifname}), then DEL`,
      net: "victim",
      command: "ADD",
      containerId: k.id,
      ifname: k.ifname,
      netns: r.pick(t.attackerNs),
      delAfter: true,
      expect: { ok: true, codes: new Set<number>() },
    }];
  },
  hostileIpam(r, t, index) {
    const address = r.pick([
      ...SPECIAL_ADDRESSES,
      ...t.hostAddrs,
      ...t.victims.flatMap((v) => v.ips),
    ]);
    const net: StepNet = r.chance(0.7) ? "attacker" : "victim";
    const config: Json = r.chance(0.5)
      ? { ipam: { type: "static", addresses: [{ address }] } }
      : { ipam: { type: "static" }, runtimeConfig: { ips: [address] } };
    return [{
      what: `ADD in the ${net} network with IPAM result ${address}`,
      net,
      command: "ADD",
      containerId: `h${index}`,
      ifname: "eth0",
      netns: r.pick(t.attackerNs),
      config,
      delAfter: true,
      expect: { ok: false, codes: new Set([7]) },
    }];
  },
  notNamespace(r, t, index) {
    const netns = r.pick(t.notNamespaces);
    const command = r.pick(["ADD", "CHECK", "DEL"] as const);
    const config: Json = command === "CHECK"
      ? {
        prevResult: {
          cniVersion: "1.1.0",
          interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: netns }],
          ips: [],
        },
      }
      : {};
    return [{
      what: `${command} with CNI_NETNS ${netns}`,
      net: r.pick(["victim", "attacker"] as const),
      command,
      containerId: `n${index}`,
      ifname: "eth0",
      netns,
      config,
      expect: { ok: false, codes: new Set([103]) },
    }];
  },
  nameTemplate(r, t, index) {
    const ifname = r.pick(["eth%d", "%d", "e%s", "x%%", "%", "net%d1"]);
    const command = r.pick(["ADD", "CHECK", "DEL"] as const);
    return [{
      what: `${command} with CNI_IFNAME ${ifname}`,
      net: r.pick(["victim", "attacker"] as const),
      command,
      containerId: `t${index}`,
      ifname,
      netns: r.pick(t.attackerNs),
      config: command === "CHECK"
        ? { prevResult: { cniVersion: "1.1.0", interfaces: [{ name: ifname }], ips: [] } }
        : {},
      expect: { ok: false, codes: new Set([4]) },
    }];
  },
  plantedRecord(r, t, index) {
    const net: StepNet = r.pick(["victim", "attacker"] as const);
    const key = r.chance(0.5) ? r.pick(t.victims) : { id: `ghost${index}`, ifname: "eth0" };
    const name = r.pick([
      `planted${index}`,
      `${key.id}@${key.ifname}`,
      `${key.id}-${key.ifname}`,
      `..${index}`,
      `x${index}.tmp1`,
      `.hidden${index}`,
    ]);
    const content = r.chance(0.15)
      ? r.pick(["{not json", "", "null", "[]", "\u0000\u0001"])
      : JSON.stringify(hostileRecord(r, t, key));
    return [{
      what: `GC of the ${net} network over a planted record ${JSON.stringify(name)}`,
      net,
      command: "GC",
      plant: { name, content },
      valid: net === "victim" ? t.victims : [],
      // Refusing the record is fine; harm is judged by the census.
      expect: OK_ANY,
    }];
  },
  concurrentDuplicates(r, t, index) {
    const n = r.range(2, t.attackerNs.length);
    return [{
      what: `${n} concurrent ADDs of d${index}/eth0, then DEL`,
      net: r.pick(["victim", "attacker"] as const),
      command: "ADD",
      containerId: `d${index}`,
      ifname: "eth0",
      fanout: t.attackerNs.slice(0, n),
      delAfter: true,
      expect: { ok: true, codes: "any", exactlyOne: true },
    }];
  },
  attackerGc(r, t) {
    return [{
      what: "GC of the attacker network, empty valid list",
      net: "attacker",
      command: "GC",
      valid: r.chance(0.5) ? [] : t.victims,
      expect: { ok: true, codes: new Set<number>() },
    }];
  },
  delStorm(r, t, index) {
    // DELs in the attacker network of the victim's keys and of ids it never had.
    return t.victims.map((v, i) => ({
      what: `attacker DEL ${v.id}/${v.ifname}`,
      net: "attacker" as const,
      command: "DEL" as const,
      containerId: r.chance(0.5) ? v.id : `ghost${index}-${i}`,
      ifname: v.ifname,
      netns: r.pick(t.attackerNs),
      expect: { ok: true, codes: new Set<number>() },
    }));
  },
};

/** Step kinds, for figures. */
export const STEP_KINDS: readonly string[] = Object.keys(STEP_MAKERS);

/** Scenario `index` of run `seed`: 1–4 steps. */
export function generateScenario(seed: number, index: number, t: OwnershipTarget): Scenario {
  const r = new Rng(caseSeed(seed, index));
  const steps: Step[] = [];
  const n = r.range(1, 4);
  for (let k = 0; k < n; k++) {
    const kind = r.pick(STEP_KINDS);
    steps.push(
      ...STEP_MAKERS[kind]!(r, t, index * 10 + k).map((s) => ({
        ...s,
        what: `${kind}: ${s.what}`,
      })),
    );
  }
  return { index, steps };
}
