/**
 * Shared pieces of the ownership tests (issue 10): a network ("tenant") in
 * the seed 002 lab with its own state dir under a per-test state root and a
 * per-test log root (`MACVTAP_STATE_ROOT`, `MACVTAP_LOG_DIR`), iproute2
 * oracles for host routes in every table, host-local leases and record files
 * of one network, and fake IPAM plugins in a private CNI_PATH.
 *
 * Nothing here depends on the record file format: records are "the files
 * under `<stateDir>/<network>/`", whatever their names.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  cni,
  CNI_BIN,
  type CniCall,
  describe,
  DEVICEID_FROM_CONFIG,
  type Lab,
  PLUGIN,
  type Seed002,
} from "../lab/mod.ts";
import { HOSTIF, type Json } from "./_hostroute_lab.ts";

export type { Json };

/** The environment variables that fix the plugin's roots. */
export const STATE_ROOT_ENV = "MACVTAP_STATE_ROOT";
export const LOG_ROOT_ENV = "MACVTAP_LOG_DIR";

/** A kill timeout for calls that must not block (FIFO netns): a hang fails, never hangs CI. */
export const HANG_MS = 20_000;

/** The per-test roots. */
export interface Roots {
  /** `MACVTAP_STATE_ROOT`. */
  stateRoot: string;
  /** `MACVTAP_LOG_DIR`. */
  logDir: string;
}

/** Fresh state and log roots (lab temp dirs, removed with the lab). */
export async function makeRoots(lab: Lab): Promise<Roots> {
  return { stateRoot: await lab.tempDir("sroot"), logDir: await lab.tempDir("lroot") };
}

/** The env a runtime on this node passes, with the roots. */
export function rootEnv(r: Roots): Record<string, string> {
  return { [STATE_ROOT_ENV]: r.stateRoot, [LOG_ROOT_ENV]: r.logDir };
}

/** One call's CNI variables. */
export interface Call {
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Kill timeout (default 60 s). */
  timeoutMs?: number;
  /** Wrap the plugin: `sh -c SCRIPT sh ARGS… PLUGIN` style prefix (e.g. a read-only bind mount). */
  wrap?: string[];
}

/** Run the plugin in `ns` with the roots in its env. */
export async function plugin(
  lab: Lab,
  ns: string,
  roots: Roots,
  command: string,
  c: Call,
  config: unknown,
): Promise<CniCall> {
  const { wrap = [], timeoutMs = 60_000, ...vars } = c;
  // GC and STATUS carry no attachment variables.
  const drop = command === "GC" || command === "STATUS"
    ? {
      CNI_CONTAINERID: undefined,
      CNI_NETNS: undefined,
      CNI_IFNAME: undefined,
      CNI_ARGS: undefined,
    }
    : {};
  // The tenants share a node without kubelet whose operator lets configs name devices.
  const e = { ...vars, command, extra: { ...rootEnv(roots), ...DEVICEID_FROM_CONFIG, ...drop } };
  return await cni(lab, ns, e, config, PLUGIN, { wrap, timeoutMs });
}

/** Assert a call failed with CNI error JSON carrying `code` (any code when undefined). */
export function assertCniError(c: CniCall, code: number | undefined, what: string): void {
  assert(c.code !== 0, `${what} must fail: ${describe(c)}`);
  assert(c.json !== undefined, `${what}: error JSON on stdout: ${describe(c)}`);
  assertEquals(typeof c.json.msg, "string", `${what}: msg: ${describe(c)}`);
  if (code !== undefined) assertEquals(c.json.code, code, `${what}: code: ${describe(c)}`);
}

/** Every file (not directory) under `dir`, as paths relative to `dir`, sorted; `[]` when absent. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}

/** Whether `path` exists (lstat). */
export function present(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A route as `ip -j route show` prints it. */
export interface RouteJson {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  metric?: number;
  table?: string;
  type?: string;
}

/** All routes of `ns` in every table, both families (`ip -j route show table all`). */
export async function allRoutes(lab: Lab, ns: string): Promise<RouteJson[]> {
  const v4 = await lab.ipJson<RouteJson[]>(ns, "-4", "route", "show", "table", "all");
  const v6 = await lab.ipJson<RouteJson[]>(ns, "-6", "route", "show", "table", "all");
  return [...v4, ...v6];
}

/** Normalize a route's dst to CIDR form. */
function dstOf(r: RouteJson): string {
  if (r.dst.includes("/") || r.dst === "default") return r.dst;
  return `${r.dst}/${r.dst.includes(":") ? 128 : 32}`;
}

/** The host routes (/32, /128) of `addr` (address or CIDR) in any table, as `dst dev metric proto`. */
export async function hostRoutesOf(lab: Lab, ns: string, addr: string): Promise<string[]> {
  const a = addr.includes("/") ? addr.slice(0, addr.indexOf("/")) : addr;
  const want = `${a}/${a.includes(":") ? 128 : 32}`;
  return (await allRoutes(lab, ns)).filter((r) =>
    dstOf(r) === want && r.type !== "local" &&
    r.type !== "broadcast" && r.type !== "multicast" && r.type !== "anycast"
  )
    .map((r) => `${want} dev ${r.dev} metric ${r.metric ?? 0} proto ${r.protocol ?? "?"}`)
    .sort();
}

/**
 * Every route of `ns` (all tables), as sorted strings: a snapshot to compare.
 * Leaves out the kernel's own IPv6 link-local routes, which appear on their
 * own once a link's link-local address finishes DAD.
 */
export async function routeSnapshot(lab: Lab, ns: string): Promise<string[]> {
  return (await allRoutes(lab, ns))
    .filter((r) => !(r.protocol === "kernel" && /^fe80:/i.test(r.dst)))
    .map((r) => JSON.stringify(r)).sort();
}

/** Names of the macvtap links in `ns`. */
export async function macvtaps(lab: Lab, ns: string): Promise<string[]> {
  return (await lab.ipJson<Json[]>(ns, "link", "show", "type", "macvtap"))
    .map((l) => String(l.ifname)).sort();
}

/** Names of all links in `ns`. */
export async function linkNames(lab: Lab, ns: string): Promise<string[]> {
  return (await lab.ipJson<Json[]>(ns, "link", "show")).map((l) => String(l.ifname)).sort();
}

/** The address part of a CIDR. */
export function addrOf(cidr: string): string {
  return cidr.includes("/") ? cidr.slice(0, cidr.indexOf("/")) : cidr;
}

/** `ips[].address` of a CNI result. */
export function ipsOf(result: Json | undefined): string[] {
  return ((result?.ips ?? []) as Json[]).map((ip) => String(ip.address));
}

/** host-local with a v4 and a v6 range on the seed 002 task LAN. */
export function hostLocal(dataDir: string, v4: [string, string], v6?: [string, string]): Json {
  return {
    type: "host-local",
    ranges: [
      [{ subnet: "192.168.122.0/24", rangeStart: v4[0], rangeEnd: v4[1] }],
      ...(v6 ? [[{ subnet: "fd22::/64", rangeStart: v6[0], rangeEnd: v6[1] }]] : []),
    ],
    routes: [
      { dst: "192.168.10.22/32", gw: "0.0.0.0" },
      ...(v6 ? [{ dst: "fd10::22/128", gw: "::" }] : []),
    ],
    dataDir,
  };
}

/** Options of a {@linkcode Tenant}. */
export interface TenantOptions {
  /** Network name. */
  name: string;
  /** The state dir (under `roots.stateRoot`). */
  stateDir: string;
  /** host-local `dataDir` (ipam built by the caller may ignore it). */
  dataDir: string;
  ipam: Json;
  version?: string;
  /** Extra config keys. */
  extra?: Json;
  /** CNI_PATH. */
  path?: string;
}

/** One attachment a tenant made. */
export interface Pod {
  id: string;
  ifname: string;
  ns: string;
  path: string;
  result: Json;
}

/** A macvtap network with `hostrouteif` on the seed 002 node. */
export class Tenant {
  readonly lab: Lab;
  readonly s: Seed002;
  readonly roots: Roots;
  readonly o: TenantOptions;

  constructor(lab: Lab, s: Seed002, roots: Roots, o: TenantOptions) {
    this.lab = lab;
    this.s = s;
    this.roots = roots;
    this.o = o;
  }

  get name(): string {
    return this.o.name;
  }

  /** The same network on the same node with `o` changed (another CNI_PATH, IPAM, extra keys). */
  with(o: Partial<TenantOptions>): Tenant {
    return new Tenant(this.lab, this.s, this.roots, { ...this.o, ...o });
  }

  /** The network's config, with `extra` merged in. */
  conf(extra: Json = {}): Json {
    return {
      cniVersion: this.o.version ?? "1.1.0",
      name: this.o.name,
      type: "macvtap",
      master: this.s.master,
      mode: "bridge",
      hostrouteif: HOSTIF,
      stateDir: this.o.stateDir,
      ipam: this.o.ipam,
      ...this.o.extra,
      ...extra,
    };
  }

  call(command: string, c: Call, config: Json = this.conf()): Promise<CniCall> {
    return plugin(this.lab, this.s.host, this.roots, command, {
      ...(this.o.path ? { path: this.o.path } : {}),
      ...c,
    }, config);
  }

  /** ADD; returns the call (check it yourself). */
  add(id: string, path: string, ifname = "eth0", config?: Json): Promise<CniCall> {
    return this.call("ADD", { containerId: id, netns: path, ifname }, config ?? this.conf());
  }

  /** ADD that must succeed; returns the pod. */
  async addOk(id: string, ns: string, ifname = "eth0", config?: Json): Promise<Pod> {
    const r = await this.add(id, this.lab.path(ns), ifname, config);
    assertEquals(r.code, 0, `${this.name}: ADD ${id}/${ifname}: ${describe(r)}`);
    return { id, ifname, ns, path: this.lab.path(ns), result: r.json! };
  }

  /** DEL of a pod (with its prevResult unless `prev` is false). */
  del(p: Pick<Pod, "id" | "ifname" | "path"> & { result?: Json }, prev = true): Promise<CniCall> {
    const config = prev && p.result ? this.conf({ prevResult: p.result }) : this.conf();
    return this.call("DEL", { containerId: p.id, netns: p.path, ifname: p.ifname }, config);
  }

  /** GC keeping only `valid`. */
  gc(valid: readonly Pick<Pod, "id" | "ifname">[]): Promise<CniCall> {
    return this.call(
      "GC",
      {},
      this.conf({
        "cni.dev/valid-attachments": valid.map((p) => ({ containerID: p.id, ifname: p.ifname })),
      }),
    );
  }

  /** `<stateDir>/<network>`. */
  get netDir(): string {
    return `${this.o.stateDir}/${this.o.name}`;
  }

  /** The record files of this network (any name). */
  records(): string[] {
    return filesUnder(this.netDir);
  }

  /** host-local's allocations of this network (IP file names), sorted. */
  leases(): string[] {
    return filesUnder(`${this.o.dataDir}/${this.o.name}`)
      .filter((f) => /^[0-9a-f.:]+$/i.test(f) && /[.:]/.test(f)).sort();
  }

  /** The host routes of a pod's addresses, in any table. */
  async podRoutes(p: Pick<Pod, "result">): Promise<string[]> {
    const out: string[] = [];
    for (const ip of ipsOf(p.result)) out.push(...await hostRoutesOf(this.lab, this.s.host, ip));
    return out.sort();
  }

  /**
   * Assert pod `p` is fully in place: its macvtap in its namespace, one host
   * route per address via hostrouteif, a host-local lease per address (when
   * `leases`), and at least one record file.
   */
  async assertIntact(p: Pod, what: string, leases = true): Promise<void> {
    const links = await macvtaps(this.lab, p.ns);
    assert(links.includes(p.ifname), `${what}: ${p.id}'s ${p.ifname} in ${p.ns}: ${links}`);
    for (const ip of ipsOf(p.result)) {
      const rs = await hostRoutesOf(this.lab, this.s.host, ip);
      assert(
        rs.some((r) => r.includes(` dev ${HOSTIF} `)),
        `${what}: host route of ${p.id}'s ${ip} via ${HOSTIF} is gone: ${JSON.stringify(rs)}`,
      );
      if (leases) {
        assert(
          this.leases().includes(addrOf(ip)),
          `${what}: ${p.id}'s lease ${addrOf(ip)} is gone: ${this.leases()}`,
        );
      }
    }
    assert(this.records().length > 0, `${what}: ${this.name} has no record left`);
  }
}

/** Files whose names look temporary (`.tmp`, `~`, `.swp`) anywhere under `dir`. */
export function tempFiles(dir: string): string[] {
  return filesUnder(dir).filter((f) => /\.tmp|~$|\.swp$|\.new$|\.part$/i.test(f));
}

/**
 * A private CNI_PATH: symlinks to the reference host-local and static, plus
 * fake IPAM plugins:
 *
 * - `flaky`: host-local, except DEL fails (code 11, "allocator down") while
 *   `<dir>/fail-del` exists.
 * - `canned`: ADD prints `<dir>/result.json` (a hand-made IPAM result), DEL,
 *   CHECK and GC succeed.
 * - `noisy`: host-local, after writing control characters and lines
 *   starting with `root:` to stderr (which the plugin may log).
 * - `evil`: never a correct IPAM; records that it ran in `<dir>/evil-ran`.
 * - `hangs`, `dies`, `garbled`, `invalid`: host-local, except that an ADD
 *   that allocated then hangs until killed, kills itself (SIGKILL), exits 0
 *   printing a cut JSON, or exits 0 printing a result with no valid `ips`.
 * - `declines`: ADD answers an error result (code 11) without allocating;
 *   other commands are host-local's.
 */
export async function fakeCniPath(lab: Lab): Promise<{ dir: string; bin: string }> {
  const dir = await lab.tempDir("cnipath");
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  await Deno.symlink(`${CNI_BIN}/host-local`, `${bin}/host-local`);
  await Deno.symlink(`${CNI_BIN}/static`, `${bin}/static`);
  const script = async (name: string, body: string) => {
    await Deno.writeTextFile(`${bin}/${name}`, `#!/bin/sh\n${body}\n`);
    await Deno.chmod(`${bin}/${name}`, 0o755);
  };
  await script(
    "flaky",
    `if [ "$CNI_COMMAND" = DEL ] && [ -e "${dir}/fail-del" ]; then
  cat >/dev/null
  printf '{"cniVersion":"1.0.0","code":11,"msg":"allocator down"}'
  exit 1
fi
exec /usr/lib/cni/host-local`,
  );
  await script(
    "canned",
    `cat >/dev/null
case "$CNI_COMMAND" in
ADD) cat "${dir}/result.json" ;;
VERSION) printf '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0`,
  );
  await script(
    "noisy",
    `printf 'ok\\rroot:x:0:0::/:/bin/sh\\033[2J\\nroot:x:0:0:injected\\n' >&2
exec /usr/lib/cni/host-local`,
  );
  // host-local's ADD first; its own failure passes through unchanged.
  const afterAllocating = (misbehave: string) =>
    `[ "$CNI_COMMAND" = ADD ] || exec /usr/lib/cni/host-local
out=$(/usr/lib/cni/host-local) || { printf '%s' "$out"; exit 1; }
${misbehave}`;
  await script("hangs", afterAllocating("exec sleep 30"));
  await script("dies", afterAllocating("kill -9 $$"));
  await script("garbled", afterAllocating(`printf '{"cniVersion":"1.0.0","ips":['`));
  await script("invalid", afterAllocating(`printf '{"cniVersion":"1.0.0","ips":"none"}'`));
  await script(
    "declines",
    `[ "$CNI_COMMAND" = ADD ] || exec /usr/lib/cni/host-local
cat >/dev/null
printf '{"cniVersion":"1.0.0","code":11,"msg":"pool closed"}'
exit 1`,
  );
  await script("evil", `date >> "${dir}/evil-ran"\nexit 1`);
  // The same marker for an ipamType that climbs out of CNI_PATH.
  await script("../evil", `date >> "${dir}/evil-ran"\nexit 1`);
  return { dir, bin };
}

/** Seed 002 plus `n` task namespaces `ctrN`… (the seed's `ctr` is the first). */
export async function taskNamespaces(
  lab: Lab,
  s: Seed002,
  n: number,
  role = "t",
): Promise<string[]> {
  const out = [s.ctr];
  for (let i = 2; i <= n; i++) out.push(await lab.netns(`${role}${i}`));
  return out;
}
