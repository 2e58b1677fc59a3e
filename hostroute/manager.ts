/**
 * The hostrouteif interface and the per-task host routes.
 *
 * @module
 */

import { formatIP, networkOf, parseCidr } from "../internal/_ip.ts";
import {
  type Family,
  isErrno,
  type Link,
  type NetlinkHandle,
  type Route,
  SCOPES,
  writeSysctl,
} from "../netlink/mod.ts";
import { log } from "../internal/_log.ts";
import { HOSTROUTEIF_MARKER, isDeviceIfname, isTempIfname } from "../internal/_ifname.ts";
import { errorText } from "../internal/_error_text.ts";

/**
 * Route protocol number marking the host routes this plugin adds
 * (`ip route show proto 249`), so GC can find them even without state.
 */
export const RTPROT_MACVTAP = 249;

/** A host route to one task address. */
export interface HostRoute {
  family: Family;
  /** `a.b.c.d/32` or `x::y/128`. */
  dst: string;
  metric: number;
}

/** A hostrouteif problem the user must fix (maps to CNI code 7). */
export class HostRouteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostRouteError";
  }
}

/**
 * Why the existing link `link` cannot serve as the hostrouteif on `master`
 * (it must be a macvtap or macvlan child of it), or `undefined` when it can.
 */
export function hostRouteIfProblem(link: Link, master: Link): string | undefined {
  if ((link.kind === "macvtap" || link.kind === "macvlan") && link.parentIndex === master.index) {
    return undefined;
  }
  return `hostrouteif "${link.name}" exists but is not a macvtap on master "${master.name}"` +
    ` (kind ${link.kind ?? "none"}, lower device #${link.parentIndex ?? "none"})`;
}

const ATTEMPTS = 20;

/** Block the (only) thread for `ms`: the caller is a short synchronous retry loop. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Make sure `name` is an up macvtap (or macvlan) child of `master` in the
 * handle's namespace, creating it in bridge mode when missing. It never gets
 * an address. Concurrent callers may race: `EEXIST` means someone else
 * created it, and the result is checked again.
 *
 * @throws {HostRouteError} when `name` exists but is not a macvtap/macvlan on `master`.
 */
export function ensureHostRouteIf(h: NetlinkHandle, name: string, master: Link): Link {
  // The names the plugin and the device plugin give pods' macvtaps: a VM's
  // device (or a pod's half-made link) is never anyone's hostrouteif.
  if (isDeviceIfname(name) || isTempIfname(name)) {
    throw new HostRouteError(
      `hostrouteif "${name}" is a name the plugin gives to pods' macvtaps; choose another`,
    );
  }
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const found = h.links.find(name);
    if (found) {
      const problem = hostRouteIfProblem(found, master);
      if (problem) throw new HostRouteError(problem);
      if (found.alias !== HOSTROUTEIF_MARKER) {
        // Not made by the plugin (an administrator's, or another tool's):
        // used as it is, never brought up or tuned.
        if (!found.up) {
          // A concurrent ADD may have just made it and not marked it yet.
          if (attempt < ATTEMPTS - 1) {
            sleepSync(5);
            continue;
          }
          throw new HostRouteError(
            `hostrouteif "${name}" exists, is down and was not made by this plugin; ` +
              `bring it up or choose another name`,
          );
        }
        return found;
      }
      if (!found.up) {
        // Whoever brings it up (the creator, or a concurrent ADD that found
        // it down) first turns DAD off: tasks route IPv6 host addresses via
        // its link-local address, which must answer at once, not ~2 s later.
        try {
          writeSysctl(`net/ipv6/conf/${name}/accept_dad`, "0", h.netns);
        } catch (err) {
          // Left on, tasks' IPv6 traffic via it stalls ~2 s after each start: say so.
          log.warn(
            `hostrouteif ${name}: cannot disable DAD (IPv6 via it waits ~2 s): ${errorText(err)}`,
          );
        }
        h.links.set(found.index, { up: true });
      }
      return h.links.get(found.index);
    }
    try {
      h.links.add({ kind: "macvtap", name, parent: master.index, mode: "bridge" });
      // Marked ours (the kernel ignores an alias at creation); brought up
      // on the next pass, DAD first.
      const made = h.links.find(name);
      if (made && !made.up && made.alias === undefined) {
        h.links.set(made.index, { alias: HOSTROUTEIF_MARKER });
      }
    } catch (err) {
      if (!isErrno(err, "EEXIST")) throw err;
      // Lost a race with a concurrent ADD: look again.
    }
  }
  throw new HostRouteError(`hostrouteif "${name}" keeps changing; giving up`);
}

/** Host routes for the task addresses `cidrs` (`10.0.0.5/24` ⇒ `10.0.0.5/32`). */
export function hostRoutesFor(cidrs: readonly string[], metric: number): HostRoute[] {
  const out: HostRoute[] = [];
  for (const cidr of cidrs) {
    const c = parseCidr(cidr);
    if (!c) throw new TypeError(`Invalid task address "${cidr}"`);
    out.push({
      family: c.family,
      dst: `${formatIP(c.bytes)}/${c.family === 4 ? 32 : 128}`,
      metric,
    });
  }
  return out;
}

function toRoute(r: HostRoute, oif: number): Route {
  return {
    family: r.family,
    dst: r.dst,
    oif,
    metric: r.metric,
    scope: SCOPES.link,
    protocol: RTPROT_MACVTAP,
  };
}

function sameRoute(live: Route, r: HostRoute, oif: number): boolean {
  return live.dst === r.dst && live.oif === oif && (live.metric ?? 0) === r.metric && !live.gw;
}

/**
 * Why `routes` (host routes to task addresses) must not be added on this
 * host, or `undefined`. One address and one route dump, whatever the count:
 *
 * - the address is one of the host's own (any interface);
 * - the host uses it as a gateway or next hop (any table);
 * - a route to exactly that address exists already (any table, any
 *   protocol): another attachment's, an administrator's, or the kernel's
 *   local/broadcast route. Routes to a covering subnet do not count:
 *   shadowing a connected subnet for one task address is what hostrouteif
 *   is for (seed 002).
 */
export function hostRouteConflict(
  h: NetlinkHandle,
  routes: readonly HostRoute[],
): string | undefined {
  if (routes.length === 0) return undefined;
  const wanted = new Map(routes.map((r) => [r.dst.slice(0, r.dst.indexOf("/")), r]));
  for (const a of h.addrs.list()) {
    const ip = a.cidr.slice(0, a.cidr.indexOf("/"));
    if (wanted.has(ip)) return `${ip} is an address of this host (interface #${a.index})`;
  }
  for (const r of h.routes.list({ table: 0 })) {
    const gws = [r.gw, ...(r.nexthops ?? []).map((n) => n.gw)];
    for (const gw of gws) {
      if (gw !== undefined && wanted.has(gw)) {
        return `${gw} is a gateway of the host route ${describe(r)}`;
      }
    }
    const edge = subnetEdges(r.dst);
    for (const ip of edge) {
      if (wanted.has(ip)) return `${ip} is the network or broadcast address of ${describe(r)}`;
    }
    const host = wanted.get(r.dst.slice(0, r.dst.indexOf("/")));
    if (host && r.dst === host.dst) {
      return `${host.dst.slice(0, host.dst.indexOf("/"))} already has a host route: ${describe(r)}`;
    }
  }
  return undefined;
}

/**
 * The network and broadcast addresses of a prefix (IPv4 up to /30; IPv6 the
 * subnet-router anycast address, up to /126), which no task may hold.
 */
function subnetEdges(dst: string): string[] {
  const c = parseCidr(dst);
  if (!c || c.prefix === 0 || c.prefix > (c.family === 4 ? 30 : 126)) return [];
  const net = networkOf(c);
  const out = [formatIP(net.bytes)];
  if (c.family === 4) {
    const b = net.bytes.slice();
    for (let i = c.prefix; i < 32; i++) b[i >> 3]! |= 0x80 >> (i & 7);
    out.push(formatIP(b));
  }
  return out;
}

/** A route as `ip route` shows it, briefly. */
function describe(r: Route): string {
  const type = r.type === 2 ? "local " : r.type === 3 ? "broadcast " : "";
  return `${type}${r.dst}${r.gw ? ` via ${r.gw}` : ""}${r.oif ? ` dev #${r.oif}` : ""}` +
    `${r.table && r.table !== 254 ? ` table ${r.table}` : ""}${
      r.protocol !== undefined ? ` proto ${r.protocol}` : ""
    }${r.metric ? ` metric ${r.metric}` : ""}`;
}

/**
 * Add one host route via `oif`, exclusively: a route to the same
 * destination and metric that exists already (another attachment's, found
 * by a concurrent ADD) is an error, never adopted.
 *
 * @throws {HostRouteError} when the route exists; {NetlinkError} otherwise.
 */
export function addHostRoute(h: NetlinkHandle, r: HostRoute, oif: number): void {
  try {
    h.routes.add(toRoute(r, oif));
  } catch (err) {
    if (isErrno(err, "EEXIST")) {
      throw new HostRouteError(`Cannot add the host route ${r.dst}: a route to it already exists`);
    }
    throw err;
  }
}

/**
 * Delete host routes; routes already gone are fine. Only a live route that
 * is exactly what we add — our protocol, the metric and out of `oif` — is
 * deleted, and without `oif` nothing is. One route dump, whatever the count;
 * callers deleting for many attachments pass `live` (from
 * {@linkcode listOwnHostRoutes}) to share one.
 */
export function delHostRoutes(
  h: NetlinkHandle,
  routes: readonly HostRoute[],
  options: { oif: number | undefined; live?: readonly Route[] },
): void {
  const { oif } = options;
  if (oif === undefined || routes.length === 0) return;
  const index = new Map<string, Route[]>();
  for (const x of options.live ?? h.routes.list({ oif })) {
    if (x.oif !== oif || x.protocol !== RTPROT_MACVTAP || x.gw) continue;
    const list = index.get(x.dst);
    if (list) list.push(x);
    else index.set(x.dst, [x]);
  }
  for (const r of routes) {
    for (const x of index.get(r.dst) ?? []) {
      if ((x.metric ?? 0) !== r.metric) continue;
      try {
        h.routes.del({ family: x.family, dst: x.dst, metric: r.metric, oif });
      } catch (err) {
        if (!isErrno(err, "ESRCH", "ENOENT")) throw err;
      }
    }
  }
}

/** The routes of `routes` that are missing or different on the host (one dump). */
export function checkHostRoutes(
  h: NetlinkHandle,
  routes: readonly HostRoute[],
  oif: number,
): HostRoute[] {
  const live = new Map<string, Route[]>();
  for (const x of h.routes.list({ oif })) live.set(x.dst, [...(live.get(x.dst) ?? []), x]);
  return routes.filter((r) => !(live.get(r.dst) ?? []).some((x) => sameRoute(x, r, oif)));
}

/**
 * Every host route with our protocol mark, IPv4 and IPv6, main table. The
 * mark says a macvtap plugin added it, not for which network or attachment:
 * never delete by the mark alone.
 */
export function listOwnHostRoutes(h: NetlinkHandle): Route[] {
  return h.routes.list().filter((r) => r.protocol === RTPROT_MACVTAP);
}

/**
 * The IPv6 link-local address of a link: the kernel's if it has one,
 * otherwise the EUI-64 address derived from its MAC (what addrconf assigns
 * with the default `addr_gen_mode` 0).
 */
export function linkLocalOf(h: NetlinkHandle, link: Link): string | undefined {
  const ll = h.addrs.list({ link: link.index, family: 6 }).find((a) => a.cidr.startsWith("fe80:"));
  if (ll) return ll.cidr.slice(0, ll.cidr.indexOf("/"));
  if (!link.mac) return undefined;
  const m = link.mac.split(":").map((x) => parseInt(x, 16));
  const b = new Uint8Array(16);
  b[0] = 0xfe;
  b[1] = 0x80;
  b.set([m[0]! ^ 0x02, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!], 8);
  return formatIP(b);
}
