/**
 * Configure the container interface from an IPAM result: addresses, routes,
 * neighbour-notification sysctls and IPv6 readiness.
 *
 * @module
 */

import type { IPConfig, Route as ResultRoute } from "../cni/mod.ts";
import {
  type Cidr,
  cidrContains,
  formatCidr,
  networkOf,
  parseCidr,
  parseIP,
} from "../internal/_ip.ts";
import { log } from "../internal/_log.ts";
import {
  ADDR_FLAGS,
  type Family,
  isErrno,
  type Link,
  type NetlinkHandle,
  type Netns,
  readSysctl,
  type Route,
  SCOPES,
  writeSysctl,
} from "../netlink/mod.ts";
import { errorText } from "../internal/_error_text.ts";

/** Options for {@linkcode configureInterface}. */
export interface ConfigureOptions {
  /**
   * Gateway for on-link IPv6 routes (`gw` "::"): the link-local address of
   * the hostrouteif. Linux answers neighbour solicitations only for
   * addresses on the receiving interface, so a task reaches a host address
   * on another LAN through the hostrouteif's link-local address.
   */
  onLinkGw6?: string;
}

function familyOf(ip: string): Family {
  return ip.includes(":") ? 6 : 4;
}

function isUnspecified(ip: string | undefined): boolean {
  if (!ip) return false;
  const b = parseIP(ip);
  return !!b && b.every((x) => x === 0);
}

/**
 * The routes of the result for IPAM's `routes`, each saying how
 * {@linkcode configureInterface} installs it. A `gw` IPAM gave is kept as
 * given, `0.0.0.0`/`::` (on-link) included, so a chained plugin or a runtime
 * reading the result routes the way the kernel does. Where the plugin
 * chooses, the result says what it chose: a route without `gw` gets the first
 * gateway of its family among `ips`, or `0.0.0.0`/`::` (on-link) when there
 * is none; an on-link IPv6 route goes via `options.onLinkGw6` when given.
 */
export function resolveRoutes(
  ips: readonly Pick<IPConfig, "address" | "gateway">[],
  routes: readonly ResultRoute[],
  options: ConfigureOptions = {},
): ResultRoute[] {
  return routes.map((r) => {
    const family = familyOf(r.dst);
    let gw = r.gw ?? ips.find((ip) => ip.gateway && familyOf(ip.gateway) === family)?.gateway;
    if (gw === undefined || isUnspecified(gw)) {
      gw = family === 6 ? (options.onLinkGw6 ?? "::") : "0.0.0.0";
    }
    return { ...r, gw };
  });
}

/** The kernel route for result route `r` on `link`: an unspecified `gw` is on-link. */
function kernelRoute(r: ResultRoute, link: Link): Route {
  const gw = isUnspecified(r.gw) ? undefined : r.gw;
  return {
    family: familyOf(r.dst),
    dst: r.dst,
    oif: link.index,
    ...(gw ? { gw } : { scope: r.scope ?? SCOPES.link }),
    ...(r.priority !== undefined ? { metric: r.priority } : {}),
    ...(r.table !== undefined ? { table: r.table } : {}),
    ...(gw && r.scope !== undefined ? { scope: r.scope } : {}),
    ...(r.mtu !== undefined ? { mtu: r.mtu } : {}),
    ...(r.advmss !== undefined ? { advmss: r.advmss } : {}),
  };
}

/**
 * Put `ips` and `routes` on `link` inside the namespace of handle `ctr`, and
 * bring the link up. IPv6 addresses are added without duplicate address
 * detection (IPAM hands out unique addresses), so they are usable as soon as
 * this returns; IPv6 is enabled on the link if the namespace disabled it.
 *
 * @returns the routes for the result, as {@linkcode resolveRoutes} gives them.
 * @throws {NetlinkError} when an address or route cannot be added.
 */
export function configureInterface(
  ctr: NetlinkHandle,
  ns: Netns,
  link: Link,
  ips: readonly Pick<IPConfig, "address" | "gateway">[],
  routes: readonly ResultRoute[],
  options: ConfigureOptions = {},
): ResultRoute[] {
  const has6 = ips.some((ip) => familyOf(ip.address) === 6);
  const has4 = ips.some((ip) => familyOf(ip.address) === 4);
  if (has6) {
    for (
      const key of [`net/ipv6/conf/${link.name}/disable_ipv6`, "net/ipv6/conf/lo/disable_ipv6"]
    ) {
      try {
        if (readSysctl(key, ns) !== "0") writeSysctl(key, "0", ns);
      } catch (err) {
        log.warn(`cannot enable IPv6 (${key}): ${errorText(err)}`);
      }
    }
  }
  const notify: string[] = [];
  if (has4) notify.push(`net/ipv4/conf/${link.name}/arp_notify`);
  if (has6) notify.push(`net/ipv6/conf/${link.name}/ndisc_notify`);
  for (const key of notify) {
    try {
      writeSysctl(key, "1", ns);
    } catch (err) {
      log.warn(`cannot set ${key}: ${errorText(err)}`);
    }
  }

  for (const ip of ips) {
    const c = parseCidr(ip.address);
    if (!c) throw new TypeError(`Invalid address "${ip.address}" from IPAM`);
    ctr.addrs.add(link.index, ip.address, c.family === 6 ? { flags: ADDR_FLAGS.nodad } : {});
  }
  if (!link.up) ctr.links.set(link.index, { up: true });

  const resolved = resolveRoutes(ips, routes, options);
  for (const r of resolved) {
    // Beside routes to the same prefix through other devices (another
    // attachment of the pod from the same IPAM template): no NLM_F_EXCL.
    // Only an identical route is EEXIST; it is not ours, and since it is on
    // this link nothing of ours deletes it on its own (the link's removal
    // does, as it does every route on the link).
    try {
      ctr.routes.prepend(kernelRoute(r, link));
    } catch (err) {
      if (!isErrno(err, "EEXIST")) throw err;
      log.info(`route ${r.dst} via ${r.gw} dev ${link.name} exists already; not added`);
    }
  }
  return resolved;
}

/** Problems found by {@linkcode checkInterface}; empty when all is in place. */
export function checkInterface(
  ctr: NetlinkHandle,
  link: Link,
  ips: readonly Pick<IPConfig, "address" | "gateway">[],
  routes: readonly ResultRoute[],
): string[] {
  const problems: string[] = [];
  const addrs = ctr.addrs.list({ link: link.index }).map((a) => a.cidr);
  for (const ip of ips) {
    if (!addrs.includes(ip.address)) {
      problems.push(`address ${ip.address} is missing on ${link.name}`);
    }
  }
  const live = ctr.routes.list({ table: 0 });
  // Where a gateway of ours can be: our addresses' networks and on-link routes.
  const nets = [
    ...ips.map((ip) => ip.address),
    ...routes.filter((r) => r.gw === undefined || isUnspecified(r.gw)).map((r) => r.dst),
  ].flatMap((cidr) => parseCidr(cidr) ?? []);
  for (const r of routes) {
    if (!mayBeOurs(r, nets)) continue;
    const want = kernelRoute(r, link);
    const dst = normalizeDst(r.dst);
    const found = live.some((x) =>
      x.family === want.family && x.dst === dst &&
      (r.table === undefined || x.table === r.table) &&
      // A gateway route to a prefix other devices route too may be one hop of
      // an IPv6 multipath route.
      [x, ...(x.nexthops ?? [])].some((hop) =>
        hop.oif === link.index && (r.gw === undefined || hop.gw === want.gw)
      )
    );
    if (!found) {
      problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} dev ${link.name} is missing`);
    }
  }
  return problems;
}

/**
 * Whether `r` can be a route {@linkcode configureInterface} installed on an
 * interface whose addresses and on-link routes cover `nets`: a gateway must
 * lie in one of them (or be link-local), else the kernel refuses the route
 * (ENETUNREACH). The rest of a chained result's routes (an earlier plugin's)
 * are not ours to check.
 */
function mayBeOurs(r: ResultRoute, nets: readonly Cidr[]): boolean {
  if (r.gw === undefined || isUnspecified(r.gw)) return true;
  const gw = parseIP(r.gw);
  if (!gw) return true;
  if (gw.length === 16 && gw[0] === 0xfe && (gw[1]! & 0xc0) === 0x80) return true;
  return nets.some((n) => n.family === (gw.length === 4 ? 4 : 6) && cidrContains(n, gw));
}

/** The network address form the kernel reports for a route destination. */
function normalizeDst(dst: string): string {
  const c = parseCidr(dst);
  return c ? formatCidr(networkOf(c)) : dst;
}
