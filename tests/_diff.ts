/**
 * Differential suite: the same inputs to `dist/macvtap` and to the reference
 * `/usr/lib/cni/macvlan` (containernetworking-plugins 1.1.1), compared on
 * exit codes, error codes, result JSON per cniVersion and the kernel state
 * afterwards (links, addresses, routes, host-local leases).
 *
 * Every difference we intend is one row of {@linkcode INTENDED}, with its
 * reason. A row rewrites the reference's observations into what ours must
 * be; anything else that differs fails the suite, and so does a row no case
 * needs any more (the difference is gone: delete the row).
 *
 * 1.1.0 is ours alone (the reference stops at 1.0.0): it is compared with the
 * reference at 1.0.0, and the rows for 1.1.0 are exactly what the 1.1.0 spec
 * adds to a result.
 *
 * The cases run in shards, one test file each (`tests/diff_<shard>_test.ts`),
 * so that `deno test --parallel` runs them side by side; each shard has its
 * own lab. Every row names a witness case that needs it; the shard that runs
 * the witness fails when the row changes nothing there any more.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  cni,
  CNI_BIN,
  type CniCall,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
  VERSIONS,
} from "../lab/mod.ts";
import { DhcpLab } from "./_dhcp.ts";
import { compareVersions } from "../cni/mod.ts";

const REF = `${CNI_BIN}/macvlan`;
const ignore = labIgnore([
  REF,
  `${CNI_BIN}/host-local`,
  `${CNI_BIN}/static`,
  `${CNI_BIN}/dhcp`,
  "dnsmasq",
]);

type Json = Record<string, unknown>;
/** A CNI spec version the plugin supports (one of {@linkcode VERSIONS}). */
type Version = string;

/** What a case's config builder gets. */
interface Ctx {
  master: string;
  dataDir: string;
  version: Version;
  /** An extra master (veth `lab1`, peer in the host too) for cases that delete it. */
  spareMaster: string;
  dhcp?: DhcpLab;
}

/** The test files the cases are split into (`tests/diff_<shard>_test.ts`). */
export const SHARDS = ["hostlocal", "l2", "link", "ipam", "dualstack", "input"] as const;
/** One of {@linkcode SHARDS}. */
export type Shard = typeof SHARDS[number];

/** One input, fed to both plugins. */
export interface Case {
  id: string;
  version: Version;
  /** The test file that runs it. */
  shard: Shard;
  /** The plugin config without `type`; `cniVersion` and `name` are filled in when absent. */
  conf?: (c: Ctx) => Json;
  /** Raw stdin instead of `conf` (malformed input). */
  stdin?: string;
  /** CNI_ARGS. */
  args?: string;
  /** Env overrides (undefined drops a variable). */
  env?: Record<string, string | undefined>;
  /** The MAC is given by the input (not random): compare it. */
  fixedMac?: boolean;
  /**
   * `full`: ADD, CHECK (≥ 0.4.0), DEL with prevResult (≥ 0.4.0), DEL again.
   * `netns-gone`: ADD, delete the netns, DEL. `master-gone`: ADD on the
   * spare master, delete it, DEL. `two`: eth0 on network A and eth1 on
   * network B in one pod, DEL eth0, DEL eth1. `version`: VERSION only.
   */
  flow?: "full" | "netns-gone" | "master-gone" | "two" | "version";
  /** Needs a default route in the plugin's namespace (master defaulting). */
  defaultRoute?: boolean;
  dhcp?: boolean;
}

/** A snapshot of what the kernel and host-local hold. */
interface Kernel {
  links: Json[];
  addrs: string[];
  routes: Json[];
  leases: string[];
}

/** Everything observed for one plugin on one case. */
interface Obs {
  calls: Record<string, { exit: number; code?: number; result?: Json }>;
  /** Error messages, shown with a difference but never compared. */
  msgs?: Record<string, string>;
  kernel: Record<string, Kernel>;
}

/**
 * The intended differences. `apply` rewrites the reference's observations
 * (a copy) into what ours must be; it runs only where `when` holds.
 */
export interface Intended {
  id: string;
  reason: string;
  /** A case that needs the row (`id [version]`): it fails when the row changes nothing there. */
  witness: string;
  when?: (c: Case) => boolean;
  apply: (ref: Obs, c: Case) => void;
}

const allCalls = (o: Obs) => Object.values(o.calls);
const allResults = (o: Obs) => allCalls(o).flatMap((c) => c.result ? [c.result] : []);
const allLinks = (o: Obs) => Object.values(o.kernel).flatMap((k) => k.links);

export const INTENDED: readonly Intended[] = [
  {
    id: "kind",
    witness: "l2-only [1.0.0]",
    reason: "the plugins differ in kind by design: macvtap links where the reference makes macvlan",
    apply: (o) => allLinks(o).forEach((l) => l.kind === "macvlan" && (l.kind = "macvtap")),
  },
  {
    id: "version-1.1.0",
    witness: "l2-only [1.1.0]",
    reason: "1.1.0 is ours alone; the reference ran at 1.0.0. A 1.1.0 result says 1.1.0 and " +
      "carries interfaces[].mtu (spec 1.1.0 §Result)",
    when: (c) => c.version === "1.1.0",
    apply: (o) =>
      allResults(o).forEach((r) => {
        if (r.cniVersion) r.cniVersion = "1.1.0";
        for (const i of (r.interfaces as Json[] | undefined) ?? []) {
          if (i.sandbox) i.mtu = "<mtu>";
        }
      }),
  },
  {
    id: "version-echo",
    witness: "version [1.0.0]",
    reason: "VERSION: ours echoes the requested cniVersion (spec) and lists 0.3.0…1.1.0; the " +
      "reference prints its library's 1.0.0 and lists 0.1.0…1.0.0",
    when: (c) => c.flow === "version",
    apply: (o, c) => {
      const r = o.calls["VERSION"]?.result;
      if (r) Object.assign(r, { cniVersion: c.version, supportedVersions: [...VERSIONS] });
    },
  },
  {
    id: "dns-empty",
    witness: "host-local [1.0.0]",
    reason: "from 1.0.0 ours leaves out an empty dns (optional in the 1.0.0 schema; HEAD libcni " +
      "omits it too); the reference prints dns: {}. Below 1.0.0 both print {}",
    when: (c) => c.version >= "1.0.0",
    apply: (o) =>
      allResults(o).forEach((r) => {
        if (r.dns && Object.keys(r.dns).length === 0) delete r.dns;
      }),
  },
  {
    id: "error-codes",
    witness: "bad-mode [1.0.0]",
    reason: "ours maps each failure to the spec's code (7 invalid config) or its own (101 IPAM " +
      "delegate cannot run); the reference says 999 for all of them",
    apply: (o, c) => {
      for (const [name, call] of Object.entries(o.calls)) {
        const want = EXPECTED_CODES[`${c.id}/${name}`];
        if (want !== undefined && call.code !== undefined) call.code = want;
      }
    },
  },
  {
    id: "del-lenient",
    witness: "no-master [1.0.0]",
    reason: "DEL is best effort (spec): ours succeeds for a config ADD refused (MTU over the " +
      "master's, missing master) and after the master is gone, releasing the lease; the " +
      "reference re-validates the config on DEL, fails with 999 and keeps the lease",
    when: (c) => ["mtu-over-master", "no-master", "master-gone"].includes(c.id),
    apply: (o) => {
      for (const [name, call] of Object.entries(o.calls)) {
        if (name.startsWith("DEL") && call.exit !== 0) {
          call.exit = 0;
          delete call.code;
        }
      }
      const k = o.kernel["after DEL"];
      if (k) k.leases = k.leases.filter((l) => l.includes("last_reserved"));
    },
  },
  {
    id: "rollback",
    witness: "ipam-not-found [1.0.0]",
    reason: "ADD failing in IPAM: ours deletes the link it made; the reference leaves eth0 " +
      "(down) in the pod, and its DEL fails on the same IPAM error before deleting it",
    when: (c) => c.id === "ipam-not-found",
    apply: (o) => Object.values(o.kernel).forEach((k) => (k.links = [])),
  },
  {
    id: "ipam-dns",
    witness: "static [1.0.0]",
    reason: "ours merges IPAM's DNS after the config's; the reference replaces the result's " +
      "dns with the config's, dropping what static returned",
    when: (c) => c.id === "static",
    apply: (o) => {
      const r = o.calls["ADD"]?.result;
      if (r) r.dns = { nameservers: ["10.99.0.53"] };
    },
  },
  {
    id: "onlink-scope",
    witness: "static [1.0.0]",
    reason: "an on-link route (gw 0.0.0.0): ours installs it scope link, as `ip route add … " +
      "dev eth0` does; the reference installs it scope global with a 0.0.0.0 gateway",
    when: (c) => c.id === "static",
    apply: (o) =>
      Object.values(o.kernel).forEach((k) =>
        k.routes.forEach((r) => {
          if (r.dst === "192.168.10.22" && r.scope === "global") r.scope = "link";
        })
      ),
  },
  {
    id: "check-onlink",
    witness: "static [1.0.0]",
    reason: "the reference's CHECK rejects its own result with an on-link route (\"Expected " +
      'Route {… GW:0.0.0.0} not found in routing table"); ours finds it',
    when: (c) => c.id === "static",
    apply: (o) => {
      const check = o.calls["CHECK"];
      if (check && check.exit !== 0) o.calls["CHECK"] = { exit: 0 };
    },
  },
  {
    id: "gw-chosen",
    witness: "host-local [1.0.0]",
    reason: "a route without gw: ours names the gateway it installed the route through (the " +
      "range gateway) instead of leaving the reader to guess (issue 11 item 2)",
    apply: (o) =>
      allResults(o).forEach((r) => {
        const ips = (r.ips as Json[] | undefined) ?? [];
        for (const route of (r.routes as Json[] | undefined) ?? []) {
          if (route.gw !== undefined) continue;
          const fam6 = String(route.dst).includes(":");
          const gw = ips.find((ip) => ip.gateway && String(ip.gateway).includes(":") === fam6)
            ?.gateway;
          route.gw = gw ?? (fam6 ? "::" : "0.0.0.0");
        }
      }),
  },
  {
    id: "gw-chosen-0.2.0",
    witness: "host-local [0.2.0]",
    reason: "the gw-chosen row in the 0.1.0/0.2.0 result shape: a route under ip4/ip6 without gw " +
      "names the family's gateway the route went through (or on-link)",
    when: (c) => compareVersions(c.version, "0.3.0") < 0,
    apply: (o) =>
      allResults(o).forEach((r) => {
        for (const [family, onLink] of [["ip4", "0.0.0.0"], ["ip6", "::"]] as const) {
          const ip = r[family] as Json | undefined;
          for (const route of (ip?.routes as Json[] | undefined) ?? []) {
            if (route.gw === undefined) route.gw = ip?.gateway ?? onLink;
          }
        }
      }),
  },
  {
    id: "l2-legacy",
    witness: "l2-only [0.2.0]",
    reason: "an L2-only ADD at 0.1.0/0.2.0, whose result must carry an address: ours refuses it " +
      "(code 7) before making anything; the reference makes the link, fails printing the result " +
      "(999 'cannot convert: no valid IP addresses') and leaves the link until DEL",
    when: (c) => c.id === "l2-only" && compareVersions(c.version, "0.3.0") < 0,
    apply: (o) => {
      const add = o.calls["ADD"];
      if (add) add.code = 7;
      const after = o.kernel["after ADD"];
      if (after) after.links = [];
    },
  },
  {
    id: "prevResult-add",
    witness: "prevResult [1.0.0]",
    reason: "ADD with prevResult: ours appends its interface, addresses and routes to the " +
      "chained result (spec: pass it through or modify it); the reference drops prevResult",
    when: (c) => c.id.startsWith("prevResult"),
    apply: (o, c) => {
      const r = o.calls["ADD"]?.result;
      if (!r) return;
      const prevIfaces = PREV.interfaces as Json[];
      r.interfaces = [...prevIfaces, ...(r.interfaces as Json[])];
      r.ips = [
        ...(PREV.ips as Json[]).map((ip) =>
          c.version < "1.0.0"
            ? { version: String(ip.address).includes(":") ? "6" : "4", ...ip }
            : ip
        ),
        ...((r.ips as Json[] | undefined) ?? []).map((ip) => ({
          ...ip,
          interface: prevIfaces.length,
        })),
      ];
      r.routes = [...(PREV.routes as Json[]), ...((r.routes as Json[] | undefined) ?? [])];
      r.dns = { ...(PREV.dns as Json), ...(r.dns as Json) };
    },
  },
];

/** Error codes ours gives where the reference says 999 (row "error-codes"), by `case/call`. */
const EXPECTED_CODES: Record<string, number> = {
  "mtu-over-master/ADD": 7,
  "bad-mode/ADD": 7,
  "no-master/ADD": 7,
  "unknown-cni-arg/ADD": 7,
  "ipam-not-found/ADD": 101,
  "ipam-not-found/DEL": 101,
  "ipam-not-found/DEL again": 101,
};

const PREV: Json = {
  interfaces: [{ name: "lo0" }],
  ips: [{ interface: 0, address: "192.0.2.1/32" }],
  routes: [{ dst: "192.0.2.0/24", gw: "192.0.2.254" }],
  dns: { nameservers: ["192.0.2.53"] },
};

function byJson(a: unknown, b: unknown): number {
  const x = JSON.stringify(a), y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function hostLocal(c: Ctx, extra: Json = {}): Json {
  return {
    type: "host-local",
    ranges: [[{
      subnet: "10.99.0.0/24",
      rangeStart: "10.99.0.10",
      rangeEnd: "10.99.0.200",
      gateway: "10.99.0.1",
    }]],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "198.51.100.0/24", gw: "10.99.0.254" }],
    dataDir: c.dataDir,
    ...extra,
  };
}

/** The shard of each case id. */
const SHARD_OF: Record<string, Shard> = {
  "host-local": "hostlocal",
  "l2-only": "l2",
  "version": "l2",
  "mode-bridge": "link",
  "mode-private": "link",
  "mode-vepa": "link",
  "mode-passthru": "link",
  "mtu-1400": "link",
  "mtu-over-master": "link",
  "mac-config": "link",
  "mac-cni-args": "link",
  "mac-runtimeConfig": "link",
  "master-default": "link",
  "static": "ipam",
  "static-runtimeConfig-ips": "ipam",
  "prevResult": "ipam",
  "prevResult-l2": "ipam",
  "two-attachments": "ipam",
  // ~12 s alone (IPv6 on two attachments, both plugins): a file of its own.
  "two-attachments-dual-stack": "dualstack",
  "netns-gone": "ipam",
  "master-gone": "ipam",
  "dhcp": "ipam",
  "bad-json": "input",
  "no-name": "input",
  "bad-version": "input",
  "bad-mode": "input",
  "no-master": "input",
  "ipam-not-found": "input",
  "no-netns": "input",
  "bad-ifname": "input",
  "unknown-cni-arg": "input",
};

/** A case's label in step names and witnesses: `id [version]`. */
export function label(c: Case): string {
  return `${c.id} [${c.version}]`;
}

/**
 * Every case, each in its shard.
 *
 * @throws {Error} for a case id without a shard in {@linkcode SHARD_OF}.
 */
export function cases(): Case[] {
  return caseList().map((c) => {
    const shard = SHARD_OF[c.id];
    if (!shard) throw new Error(`diff case "${c.id}" has no shard in SHARD_OF`);
    return { ...c, shard };
  });
}

function caseList(): Omit<Case, "shard">[] {
  const out: Omit<Case, "shard">[] = [];
  for (const version of VERSIONS) {
    out.push({
      id: `host-local`,
      version,
      conf: (c) => ({ master: c.master, ipam: hostLocal(c) }),
    });
    out.push({ id: `l2-only`, version, conf: (c) => ({ master: c.master }) });
    out.push({ id: `version`, version, flow: "version" });
  }
  for (const mode of ["bridge", "private", "vepa", "passthru"]) {
    out.push({
      id: `mode-${mode}`,
      version: "1.0.0",
      conf: (c) => ({ master: c.master, mode, ipam: hostLocal(c) }),
    });
  }
  out.push(
    { id: "mtu-1400", version: "1.0.0", conf: (c) => ({ master: c.master, mtu: 1400 }) },
    { id: "mtu-over-master", version: "1.0.0", conf: (c) => ({ master: c.master, mtu: 9000 }) },
    {
      id: "mac-config",
      version: "1.0.0",
      fixedMac: true,
      conf: (c) => ({ master: c.master, mac: "02:00:00:00:0a:01" }),
    },
    {
      id: "mac-cni-args",
      version: "1.0.0",
      fixedMac: true,
      args: "IgnoreUnknown=1;MAC=02:00:00:00:0a:02",
      conf: (c) => ({ master: c.master, mac: "02:00:00:00:0a:01", ipam: hostLocal(c) }),
    },
    {
      id: "mac-runtimeConfig",
      version: "1.0.0",
      fixedMac: true,
      args: "IgnoreUnknown=1;MAC=02:00:00:00:0a:02",
      conf: (c) => ({
        master: c.master,
        mac: "02:00:00:00:0a:01",
        capabilities: { mac: true },
        runtimeConfig: { mac: "02:00:00:00:0a:03" },
      }),
    },
    {
      id: "master-default",
      version: "1.0.0",
      defaultRoute: true,
      conf: (c) => ({ ipam: hostLocal(c) }),
    },
    {
      id: "static",
      version: "1.0.0",
      conf: (c) => ({
        master: c.master,
        ipam: {
          type: "static",
          addresses: [{ address: "10.99.0.77/24", gateway: "10.99.0.1" }, {
            address: "fd99::77/64",
          }],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.10.22/32", gw: "0.0.0.0" }],
          dns: { nameservers: ["10.99.0.53"] },
        },
      }),
    },
    {
      id: "static-runtimeConfig-ips",
      version: "1.0.0",
      conf: (c) => ({
        master: c.master,
        capabilities: { ips: true },
        runtimeConfig: { ips: ["10.99.0.78/24"] },
        ipam: { type: "static" },
      }),
    },
    ...(["0.4.0", "1.0.0"] as const).map((version): Omit<Case, "shard"> => ({
      id: `prevResult`,
      version,
      conf: (c) => ({
        master: c.master,
        ipam: hostLocal(c),
        prevResult: { cniVersion: version, ...PREV },
      }),
    })),
    {
      id: "prevResult-l2",
      version: "1.0.0",
      conf: (c) => ({
        master: c.master,
        prevResult: { cniVersion: "1.0.0", ...PREV },
      }),
    },
    {
      id: "two-attachments",
      version: "1.0.0",
      flow: "two",
      conf: (c) => ({ master: c.master, ipam: hostLocal(c) }),
    },
    {
      id: "two-attachments-dual-stack",
      version: "0.4.0",
      flow: "two",
      conf: (c) => ({
        master: c.master,
        ipam: hostLocal(c, {
          ranges: [
            [{ subnet: "10.99.0.0/24", rangeStart: "10.99.0.10", gateway: "10.99.0.1" }],
            [{ subnet: "fd99::/64", rangeStart: "fd99::10", gateway: "fd99::1" }],
          ],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
        }),
      }),
    },
    {
      id: "netns-gone",
      version: "1.0.0",
      flow: "netns-gone",
      conf: (c) => ({ master: c.master, ipam: hostLocal(c) }),
    },
    {
      id: "master-gone",
      version: "1.0.0",
      flow: "master-gone",
      conf: (c) => ({ master: c.spareMaster, ipam: hostLocal(c) }),
    },
    {
      id: "dhcp",
      version: "1.0.0",
      dhcp: true,
      fixedMac: true,
      conf: (c) => ({
        master: c.master,
        mac: "02:00:00:00:0d:01",
        ipam: c.dhcp!.ipamConfig(),
      }),
    },
    // Malformed input.
    { id: "bad-json", version: "1.0.0", stdin: "{not json" },
    { id: "no-name", version: "1.0.0", conf: (c) => ({ master: c.master, name: undefined }) },
    {
      id: "bad-version",
      version: "1.0.0",
      conf: (c) => ({ master: c.master, cniVersion: "9.9.9" }),
    },
    { id: "bad-mode", version: "1.0.0", conf: (c) => ({ master: c.master, mode: "nope" }) },
    { id: "no-master", version: "1.0.0", conf: () => ({ master: "nosuchif" }) },
    {
      id: "ipam-not-found",
      version: "1.0.0",
      conf: (c) => ({ master: c.master, ipam: { type: "nosuchipam" } }),
    },
    {
      id: "no-netns",
      version: "1.0.0",
      env: { CNI_NETNS: undefined },
      conf: (c) => ({ master: c.master }),
    },
    {
      id: "bad-ifname",
      version: "1.0.0",
      env: { CNI_IFNAME: "a/b" },
      conf: (c) => ({ master: c.master }),
    },
    {
      id: "unknown-cni-arg",
      version: "1.0.0",
      args: "FOO=bar",
      conf: (c) => ({ master: c.master, ipam: hostLocal(c) }),
    },
  );
  return out;
}

/** The lab all cases share: master `lab0` (peer 10.99.0.1/24, fd99::1/64). */
class DiffLab {
  #n = 0;
  constructor(readonly lab: Lab, readonly host: string, readonly peer: string) {}

  async netns(): Promise<{ name: string; path: string }> {
    const name = await this.lab.netns(`d${++this.#n}`);
    return { name, path: this.lab.path(name) };
  }

  async snapshot(ctr: string | undefined, dataDir: string): Promise<Kernel> {
    const k: Kernel = { links: [], addrs: [], routes: [], leases: await leases(dataDir) };
    if (!ctr) return k;
    const links = await this.lab.ipJson<Json[]>(ctr, "-d", "link", "show").catch(() => []);
    for (const l of links) {
      if (l.ifname === "lo") continue;
      const info = l.linkinfo as { info_kind?: string; info_data?: { mode?: string } } | undefined;
      k.links.push({
        ifname: l.ifname,
        kind: info?.info_kind,
        mode: info?.info_data?.mode,
        mtu: l.mtu,
        mac: l.address,
        up: (l.flags as string[]).includes("UP"),
        promisc: (l.promiscuity as number) > 0,
      });
    }
    // By name: `ip link` lists by ifindex, and ours are node-unique (hashed), not in creation order.
    k.links.sort((a, b) => String(a.ifname).localeCompare(String(b.ifname)));
    const addrs = await this.lab.ipJson<Json[]>(ctr, "addr", "show").catch(() => []);
    for (const l of addrs) {
      for (const a of (l.addr_info as Json[])) {
        if (a.scope === "link" || l.ifname === "lo") continue;
        k.addrs.push(`${l.ifname} ${a.local}/${a.prefixlen}`);
      }
    }
    k.addrs.sort();
    for (const fam of ["-4", "-6"]) {
      const routes = await this.lab.ipJson<Json[]>(ctr, fam, "route", "show").catch(() => []);
      for (const r of routes) {
        if (String(r.dst).startsWith("fe80:")) continue;
        k.routes.push(
          Object.fromEntries(
            ["dst", "gateway", "dev", "scope", "protocol", "metric", "nexthops"]
              .filter((f) => r[f] !== undefined).map((f) => [f, r[f]]),
          ),
        );
      }
    }
    k.routes.sort(byJson);
    return k;
  }
}

async function leases(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`, `${rel}${e.name}/`);
      else if (e.name !== "lock") {
        const body = (await Deno.readTextFile(`${dir}/${e.name}`)).trim();
        out.push(`${rel}${e.name}${e.name.startsWith("last_reserved") ? ` ${body}` : ""}`);
      }
    }
  };
  await walk(dataDir, "").catch(() => {});
  return out.sort();
}

/** Run case `c` with one plugin; the observations, normalized. */
async function observe(d: DiffLab, c: Case, bin: string, type: string): Promise<Obs> {
  const { lab, host } = d;
  const version = bin === REF && c.version === "1.1.0" ? "1.0.0" : c.version;
  const dataDir = await lab.tempDir("ipam");
  const ctr = await d.netns();
  const o: Obs = { calls: {}, kernel: {} };
  const stateDir = await lab.tempDir("state");
  const ctx: Ctx = { master: "lab0", dataDir, version, spareMaster: "lab1" };
  let dhcp: DhcpLab | undefined;
  if (c.dhcp) {
    dhcp = await DhcpLab.start(lab, {
      serverNs: d.peer,
      serverIf: "lab0p",
      pluginNs: host,
      range: ["10.99.0.100", "10.99.0.150"],
    });
    ctx.dhcp = dhcp;
  }
  try {
    if (c.flow === "master-gone") {
      await lab.ip(host, "link", "add", "lab1", "type", "veth", "peer", "name", "lab1p");
      await lab.ip(host, "link", "set", "lab1", "up");
      await lab.ip(host, "link", "set", "lab1p", "up");
    }
    if (c.defaultRoute) {
      await lab.ip(host, "addr", "add", "10.99.0.250/24", "dev", "lab0");
      await lab.ip(host, "route", "add", "default", "via", "10.99.0.1");
    }
    const conf = (net = "diffnet"): Json | string => {
      if (c.stdin !== undefined) return c.stdin;
      if (c.flow === "version") return JSON.stringify({ cniVersion: version });
      // stateDir: ours keeps its records in the lab; the reference ignores the key.
      const j: Json = { cniVersion: version, name: net, type, stateDir, ...c.conf!(ctx) };
      for (const [k, v] of Object.entries(j)) if (v === undefined) delete j[k];
      if (j.prevResult) (j.prevResult as Json).cniVersion = version;
      return j;
    };
    const call = async (
      name: string,
      command: string,
      opts: { ifname?: string; netns?: string; prev?: Json; net?: string } = {},
    ): Promise<CniCall> => {
      let config = conf(opts.net);
      if (opts.prev && typeof config !== "string") config = { ...config, prevResult: opts.prev };
      const r = await cni(
        lab,
        host,
        {
          command,
          containerId: "pod1",
          netns: opts.netns ?? ctr.path,
          ifname: opts.ifname ?? "eth0",
          ...(c.args !== undefined ? { args: c.args } : {}),
          path: CNI_BIN,
          ...(c.env ? { extra: c.env } : {}),
        },
        config,
        bin,
      );
      if (r.code !== 0) (o.msgs ??= {})[name] = `${r.json?.msg ?? ""} ${r.json?.details ?? ""}`;
      o.calls[name] = {
        exit: r.code,
        ...(r.code !== 0 && typeof r.json?.code === "number" ? { code: r.json.code } : {}),
        ...(r.code === 0 && r.json ? { result: normalizeResult(r.json, ctr.path, c) } : {}),
      };
      return r;
    };
    const snap = async (name: string, ns: string | undefined = ctr.name) => {
      o.kernel[name] = await d.snapshot(ns, dataDir);
    };
    const withPrev = (r: CniCall) =>
      version >= "0.4.0" && r.code === 0 && r.json ? r.json : undefined;

    if (c.flow === "version") {
      await call("VERSION", "VERSION");
      return o;
    }
    if (c.flow === "two") {
      const a = await call("ADD eth0", "ADD", { net: "neta" });
      const b = await call("ADD eth1", "ADD", { ifname: "eth1", net: "netb" });
      await snap("after ADD eth1");
      const pa = withPrev(a), pb = withPrev(b);
      await call("DEL eth0", "DEL", { net: "neta", ...(pa ? { prev: pa } : {}) });
      await snap("after DEL eth0");
      await call("DEL eth1", "DEL", { ifname: "eth1", net: "netb", ...(pb ? { prev: pb } : {}) });
      await snap("after DEL eth1");
      return o;
    }
    const add = await call("ADD", "ADD");
    await snap("after ADD");
    const prev = withPrev(add);
    if (c.flow === "netns-gone") {
      await runIp(["netns", "del", ctr.name]);
      await call("DEL", "DEL", prev ? { prev } : {});
      await snap("after DEL", undefined);
      return o;
    }
    if (c.flow === "master-gone") {
      await lab.ip(host, "link", "del", "lab1");
      await call("DEL", "DEL", prev ? { prev } : {});
      await snap("after DEL");
      return o;
    }
    if (prev) await call("CHECK", "CHECK", { prev });
    await call("DEL", "DEL", prev ? { prev } : {});
    await snap("after DEL");
    await call("DEL again", "DEL", prev ? { prev } : {});
    return o;
  } finally {
    if (c.defaultRoute) {
      await lab.ip(host, "route", "del", "default").catch(() => {});
      await lab.ip(host, "addr", "del", "10.99.0.250/24", "dev", "lab0").catch(() => {});
    }
    if (c.flow === "master-gone") await lab.ip(host, "link", "del", "lab1").catch(() => {});
    await dhcp?.[Symbol.asyncDispose]();
  }
}

async function runIp(args: string[]): Promise<void> {
  await new Deno.Command("ip", { args, stdout: "null", stderr: "null" }).output();
}

/** Paths where `a` and `b` differ, with both values. */
function jsonDiff(a: unknown, b: unknown, path = ""): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) =>
      jsonDiff((a as Json)[k], (b as Json)[k], `${path}${Array.isArray(a) ? `[${k}]` : `.${k}`}`)
    );
  }
  return [`${path || "."}: ours ${JSON.stringify(a)}, reference ${JSON.stringify(b)}`];
}

/** Random MACs, the netns path and MTUs where ours alone prints them, made comparable. */
function normalizeResult(r: Json, netns: string, c: Case): Json {
  const j = JSON.parse(JSON.stringify(r)) as Json;
  for (const i of (j.interfaces as Json[] | undefined) ?? []) {
    if (i.sandbox === netns) i.sandbox = "<netns>";
    if (i.mac && !c.fixedMac && i.sandbox) i.mac = "<random>";
    if (i.mtu !== undefined) i.mtu = "<mtu>";
  }
  return j;
}

function normalizeKernel(o: Obs, c: Case): void {
  if (c.fixedMac) return;
  for (const l of allLinks(o)) l.mac = "<random>";
}

/**
 * The shard's test: its cases as steps in one lab, each compared after the
 * rows of {@linkcode INTENDED} are applied; then every row whose witness is
 * in the shard must have changed something for it.
 */
export function diffTest(shard: Shard): void {
  Deno.test({
    name: `differential [${shard}]: dist/macvtap against the reference macvlan, every ` +
      "intended difference in one table",
    ignore,
    async fn(t) {
      assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
      await using lab = await Lab.create();
      const l = await lab.simple();
      await lab.ip(l.peer, "addr", "add", "fd99::1/64", "dev", l.peerIf, "nodad");
      const d = new DiffLab(lab, l.host, l.peer);
      /** Row id ⇒ the labels of the cases it changed something for. */
      const used = new Map<string, Set<string>>();
      const failures: string[] = [];
      // DIFF_ONLY=id,id runs only those cases (the stale-row check is then skipped).
      const only = Deno.env.get("DIFF_ONLY")?.split(",");
      const mine = cases().filter((c) => c.shard === shard);
      for (const c of mine.filter((c) => !only || only.includes(c.id))) {
        await t.step(label(c), async () => {
          const ours = await observe(d, c, PLUGIN, "macvtap");
          const ref = await observe(d, c, REF, "macvlan");
          normalizeKernel(ours, c);
          normalizeKernel(ref, c);
          for (const row of INTENDED) {
            if (row.when && !row.when(c)) continue;
            const before = JSON.stringify(ref);
            row.apply(ref, c);
            if (JSON.stringify(ref) !== before) {
              used.set(row.id, (used.get(row.id) ?? new Set()).add(label(c)));
            }
          }
          const msgs = { ours: ours.msgs, ref: ref.msgs };
          delete ours.msgs;
          delete ref.msgs;
          const diffs = jsonDiff(ours, ref);
          if (diffs.length) {
            failures.push(label(c));
            throw new Error(
              `differences not in INTENDED (ours ≠ reference):\n  ${diffs.join("\n  ")}\n` +
                `messages: ${JSON.stringify(msgs)}`,
            );
          }
        });
      }
      const witnessed = new Set(mine.map(label));
      const stale = INTENDED
        .filter((r) => witnessed.has(r.witness) && !used.get(r.id)?.has(r.witness))
        .map((r) => `${r.id} (witness ${r.witness})`);
      if (!only) {
        assertEquals(
          stale,
          [],
          "rows of INTENDED their witness case no longer needs: delete them, or name a case " +
            "that needs them",
        );
      }
      assertEquals(failures, [], "cases with differences not in INTENDED");
    },
  });
}
