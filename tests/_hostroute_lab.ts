/**
 * Shared pieces of the `hostrouteif` black-box tests (seed 002 lab):
 * configs, iproute2 oracles for the host routes and `hostrouteif`, the
 * host-local store and the plugin's attachment records, and ping.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type CniCall, describe, type ExecResult, Lab, PLUGIN, pluginBuilt } from "../lab/mod.ts";

/** Network name of every config here. */
export const NETWORK = "tasks";
/** The host route interface of seed 002. */
export const HOSTIF = "macvtap1";
/** The host's own addresses (seed 002). */
export const HOST_V4 = "192.168.10.22";
export const HOST_V6 = "fd10::22";
/** Task → host routes, as in seed 002 (`ipam.routes`). */
export const HOST_ROUTES = [
  { dst: `${HOST_V4}/32`, gw: "0.0.0.0" },
  { dst: `${HOST_V6}/128`, gw: "::" },
];

/** Default metric of the host routes. */
export const METRIC = 50;

export type Json = Record<string, unknown>;

/** Fail clearly when `dist/macvtap` is missing. */
export function assertBuilt(): void {
  assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
}

/**
 * A `Deno.test` of `dist/macvtap` (which must be built) on a fresh lab,
 * removed after `fn`, also when it fails.
 */
export function labTest(
  name: string,
  ignore: boolean,
  fn: (lab: Lab, t: Deno.TestContext) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore,
    async fn(t) {
      assertBuilt();
      await using lab = await Lab.create();
      await fn(lab, t);
    },
  });
}

/** Assert a CNI call succeeded, showing its output otherwise. */
export function assertOk(c: CniCall, what: string): void {
  assertEquals(c.code, 0, `${what}: ${describe(c)}`);
}

/** The macvtap plugin config of seed 002 with `hostrouteif`. */
export function hostrouteConf(
  version: string,
  stateDir: string,
  ipam: Json,
  extra: Json = {},
): Json {
  return {
    cniVersion: version,
    name: NETWORK,
    type: "macvtap",
    master: "eth1",
    mode: "bridge",
    hostrouteif: HOSTIF,
    stateDir,
    ipam,
    ...extra,
  };
}

/** host-local with a v4 and a v6 range on the task LAN and the seed 002 routes. */
export function hostLocalIpam(dataDir: string, v6 = true): Json {
  return {
    type: "host-local",
    ranges: [
      [{ subnet: "192.168.122.0/24", rangeStart: "192.168.122.171", rangeEnd: "192.168.122.179" }],
      ...(v6 ? [[{ subnet: "fd22::/64", rangeStart: "fd22::171", rangeEnd: "fd22::179" }]] : []),
    ],
    routes: v6 ? HOST_ROUTES : HOST_ROUTES.slice(0, 1),
    dataDir,
  };
}

/** The environment to drop for GC and STATUS (the spec requires only CNI_COMMAND, CNI_PATH). */
export const BARE_ENV: Record<string, string | undefined> = {
  CNI_CONTAINERID: undefined,
  CNI_NETNS: undefined,
  CNI_IFNAME: undefined,
  CNI_ARGS: undefined,
};

/** The address part of a CIDR. */
export function addrOf(cidr: string): string {
  return cidr.slice(0, cidr.indexOf("/"));
}

/** `ips[].address` of a CNI result. */
export function resultIps(result: Json | undefined): string[] {
  return ((result?.ips ?? []) as Json[]).map((ip) => ip.address as string);
}

/** The host route `/32` or `/128` of a task CIDR. */
export function hostDst(cidr: string): string {
  return `${addrOf(cidr)}/${cidr.includes(":") ? 128 : 32}`;
}

interface RouteJson {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  metric?: number;
  scope?: string;
  flags?: string[];
}

/** Main-table routes of `ns`, IPv4 and IPv6 (`ip -j -d route show` and `ip -6 …`). */
export async function mainRoutes(lab: Lab, ns: string): Promise<RouteJson[]> {
  const v4 = await lab.ipJson<RouteJson[]>(ns, "route", "show");
  const v6 = await lab.ipJson<RouteJson[]>(ns, "-6", "route", "show");
  return [...v4, ...v6];
}

/** Our routes on the host: protocol 249, IPv4 and IPv6, as `dst dev metric` strings, sorted. */
export async function ownHostRoutes(lab: Lab, host: string): Promise<string[]> {
  const v4 = await lab.ipJson<RouteJson[]>(host, "route", "show", "proto", "249");
  const v6 = await lab.ipJson<RouteJson[]>(host, "-6", "route", "show", "proto", "249");
  return [...v4, ...v6].map((r) => {
    const dst = r.dst.includes("/") ? r.dst : `${r.dst}/${r.dst.includes(":") ? 128 : 32}`;
    return `${dst} dev ${r.dev} metric ${r.metric ?? 0}`;
  }).sort();
}

/** The expected {@linkcode ownHostRoutes} lines for task CIDRs. */
export function expectedHostRoutes(cidrs: readonly string[], metric = METRIC): string[] {
  return cidrs.map((c) => `${hostDst(c)} dev ${HOSTIF} metric ${metric}`).sort();
}

/** Routes not through `hostrouteif` and not proto 249, as comparable strings. */
export async function otherRoutes(lab: Lab, host: string): Promise<string[]> {
  return (await mainRoutes(lab, host))
    .filter((r) => r.dev !== HOSTIF && r.protocol !== "249")
    .map((r) => JSON.stringify(r)).sort();
}

/** Routes through `hostrouteif` except the kernel's link-local prefix route. */
export async function hostIfRoutes(lab: Lab, host: string): Promise<string[]> {
  return (await mainRoutes(lab, host))
    .filter((r) => r.dev === HOSTIF && r.dst !== "fe80::/64")
    .map((r) => JSON.stringify(r)).sort();
}

interface LinkJson {
  ifname: string;
  link?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
}

interface AddrJson {
  ifname: string;
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    scope: string;
    tentative?: boolean;
  }[];
}

/**
 * Assert `hostrouteif` is an up, bridge-mode macvtap on `master` with no
 * address but (IPv6) its link-local one; returns that link-local address.
 */
export async function assertHostIf(lab: Lab, host: string, master = "eth1"): Promise<string> {
  const [link] = await lab.ipJson<LinkJson[]>(host, "link", "show", HOSTIF);
  if (!link) throw new Error(`${HOSTIF} does not exist in the host namespace`);
  assertEquals(link.linkinfo?.info_kind, "macvtap", `${HOSTIF} kind`);
  assertEquals(link.linkinfo?.info_data?.mode, "bridge", `${HOSTIF} mode`);
  assertEquals(link.link, master, `${HOSTIF} lower device`);
  assert(link.flags.includes("UP"), `${HOSTIF} is up: ${link.flags}`);
  const [addrs] = await lab.ipJson<AddrJson[]>(host, "addr", "show", "dev", HOSTIF);
  const infos = addrs?.addr_info ?? [];
  const notLl = infos.filter((a) => !(a.family === "inet6" && a.local.startsWith("fe80:")));
  assertEquals(notLl, [], `${HOSTIF} has no address other than link-local`);
  const ll = infos.find((a) => a.family === "inet6" && a.scope === "link");
  if (!ll) throw new Error(`${HOSTIF} has no IPv6 link-local address: ${JSON.stringify(infos)}`);
  // Tasks route the host's IPv6 address via it: usable (no DAD pending) once ADD returns.
  assert(!ll.tentative, `${HOSTIF} link-local ${ll.local} is still tentative (DAD)`);
  return ll.local;
}

/** Global addresses of `ifname` in `ns` as CIDRs, sorted. */
export async function taskAddrs(lab: Lab, ns: string, ifname = "eth0"): Promise<string[]> {
  const [a] = await lab.ipJson<AddrJson[]>(ns, "addr", "show", "dev", ifname);
  return (a?.addr_info ?? []).filter((x) => x.scope === "global")
    .map((x) => `${x.local}/${x.prefixlen}`).sort();
}

/**
 * Assert the task's routes back to the host: `192.168.10.22 dev eth0` on-link
 * and (with `hostLl`) `fd10::22 via <hostrouteif link-local> dev eth0`.
 */
export async function assertTaskRoutes(
  lab: Lab,
  ns: string,
  hostLl: string | undefined,
): Promise<void> {
  const routes = await mainRoutes(lab, ns);
  const v4 = routes.filter((r) => r.dst === HOST_V4 || r.dst === `${HOST_V4}/32`);
  assertEquals(v4.length, 1, `one task route to ${HOST_V4}: ${JSON.stringify(routes)}`);
  assertEquals(v4[0]!.dev, "eth0");
  assertEquals(v4[0]!.gateway, undefined, `on-link: ${JSON.stringify(v4[0])}`);
  if (hostLl === undefined) return;
  const v6 = routes.filter((r) => r.dst === HOST_V6 || r.dst === `${HOST_V6}/128`);
  assertEquals(v6.length, 1, `one task route to ${HOST_V6}: ${JSON.stringify(routes)}`);
  assertEquals(v6[0]!.dev, "eth0");
  assertEquals(v6[0]!.gateway, hostLl, `via the link-local of ${HOSTIF}`);
}

/** host-local's allocations for {@linkcode NETWORK} under `dataDir` (IP file names), sorted. */
export async function leaseFiles(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dataDir}/${NETWORK}`)) {
      if (e.isFile && /^[0-9a-f.:]+$/i.test(e.name) && /[.:]/.test(e.name)) out.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** The plugin's attachment records for {@linkcode NETWORK} (file names), sorted. */
export async function recordFiles(stateDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${stateDir}/${NETWORK}`)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** The record file of an attachment. */
export function recordPath(stateDir: string, containerId: string, ifname = "eth0"): string {
  return `${stateDir}/${NETWORK}/${containerId}@${ifname}`;
}

/** `busybox ping -c1 -W1` from `ns`, up to `tries` times. */
export async function ping(lab: Lab, ns: string, ip: string, tries = 3): Promise<ExecResult> {
  for (let i = 1;; i++) {
    const r = await lab.exec(ns, ["busybox", "ping", "-c1", "-W1", ip]);
    if (r.success || i >= tries) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Assert `ns` reaches `ip`. */
export async function assertPing(lab: Lab, ns: string, ip: string, what: string): Promise<void> {
  const r = await ping(lab, ns, ip);
  assert(r.success, `${what}: ping ${ip} from ${ns} failed: ${r.stdout}${r.stderr}`);
}

/** Assert `ns` does not reach `ip` (one try). */
export async function assertNoPing(lab: Lab, ns: string, ip: string, what: string): Promise<void> {
  const r = await ping(lab, ns, ip, 1);
  assert(!r.success, `${what}: ping ${ip} from ${ns} still works: ${r.stdout}`);
}

/** Poll `cond` for up to `ms`. */
export async function eventually(cond: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
