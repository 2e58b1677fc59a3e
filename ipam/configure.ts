/**
 * Configure the container interface from an IPAM result: addresses, routes,
 * neighbour-notification sysctls and IPv6 readiness.
 *
 * @module
 */

import { formatCidr, networkOf, parseCidr, parseIP } from "../internal/_ip.ts";
import { log } from "../internal/_log.ts";
import {
  isErrno,
  type Link,
  type NetlinkHandle,
  type Netns,
  readSysctl,
  type Route,
  writeSysctl,
} from "../netlink/mod.ts";

/** An address to configure (result `ips[]` entry). */
export interface IpConfig {
  address: string;
  gateway?: string;
}

/** A route to configure (result `routes[]` entry). */
export interface RouteConfig {
  dst: string;
  gw?: string;
  priority?: number;
  table?: number;
  scope?: number;
  mtu?: number;
  advmss?: number;
}

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

const IFA_F_NODAD = 0x02;
const RT_SCOPE_LINK = 253;

function familyOf(ip: string): 4 | 6 {
  return ip.includes(":") ? 6 : 4;
}

function isUnspecified(ip: string | undefined): boolean {
  if (!ip) return false;
  const b = parseIP(ip);
  return !!b && b.every((x) => x === 0);
}

/**
 * The routes that {@linkcode configureInterface} installs for `routes`, with
 * gateways resolved: a route without `gw` uses the first gateway of its
 * family among `ips`; `gw` "0.0.0.0"/"::" means on-link.
 */
export function resolveRoutes(
  ips: readonly IpConfig[],
  routes: readonly RouteConfig[],
  options: ConfigureOptions = {},
): RouteConfig[] {
  return routes.map((r) => {
    const family = familyOf(r.dst);
    let gw = r.gw;
    if (gw === undefined) {
      gw = ips.find((ip) => ip.gateway && familyOf(ip.gateway) === family)?.gateway;
    } else if (isUnspecified(gw)) {
      gw = family === 6 && options.onLinkGw6 ? options.onLinkGw6 : undefined;
    }
    const out: RouteConfig = { ...r };
    if (gw) out.gw = gw;
    else delete out.gw;
    return out;
  });
}

/**
 * Put `ips` and `routes` on `link` inside the namespace of handle `ctr`, and
 * bring the link up. IPv6 addresses are added without duplicate address
 * detection (IPAM hands out unique addresses), so they are usable as soon as
 * this returns; IPv6 is enabled on the link if the namespace disabled it.
 *
 * @returns the routes as installed (gateways resolved).
 * @throws {NetlinkError} when an address or route cannot be added.
 */
export function configureInterface(
  ctr: NetlinkHandle,
  ns: Netns,
  link: Link,
  ips: readonly IpConfig[],
  routes: readonly RouteConfig[],
  options: ConfigureOptions = {},
): RouteConfig[] {
  const has6 = ips.some((ip) => familyOf(ip.address) === 6);
  const has4 = ips.some((ip) => familyOf(ip.address) === 4);
  if (has6) {
    for (
      const key of [`net/ipv6/conf/${link.name}/disable_ipv6`, "net/ipv6/conf/lo/disable_ipv6"]
    ) {
      try {
        if (readSysctl(key, ns) !== "0") writeSysctl(key, "0", ns);
      } catch (err) {
        log.warn(`cannot enable IPv6 (${key}): ${err instanceof Error ? err.message : err}`);
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
      log.warn(`cannot set ${key}: ${err instanceof Error ? err.message : err}`);
    }
  }

  for (const ip of ips) {
    const c = parseCidr(ip.address);
    if (!c) throw new TypeError(`Invalid address "${ip.address}" from IPAM`);
    ctr.addrs.add(link.index, ip.address, c.family === 6 ? { flags: IFA_F_NODAD } : {});
  }
  if (!link.up) ctr.links.set(link.index, { up: true });

  const installed = resolveRoutes(ips, routes, options);
  for (const r of installed) {
    const route: Route = {
      family: familyOf(r.dst),
      dst: r.dst,
      oif: link.index,
      ...(r.gw ? { gw: r.gw } : { scope: r.scope ?? RT_SCOPE_LINK }),
      ...(r.priority !== undefined ? { metric: r.priority } : {}),
      ...(r.table !== undefined ? { table: r.table } : {}),
      ...(r.gw && r.scope !== undefined ? { scope: r.scope } : {}),
      ...(r.mtu !== undefined ? { mtu: r.mtu } : {}),
      ...(r.advmss !== undefined ? { advmss: r.advmss } : {}),
    };
    try {
      ctr.routes.add(route);
    } catch (err) {
      if (isErrno(err, "EEXIST")) {
        throw new Error(
          `Cannot add route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} dev ${link.name}: it exists`,
          { cause: err },
        );
      }
      throw err;
    }
  }
  return installed;
}

/** Problems found by {@linkcode checkInterface}; empty when all is in place. */
export function checkInterface(
  ctr: NetlinkHandle,
  link: Link,
  ips: readonly IpConfig[],
  routes: readonly RouteConfig[],
): string[] {
  const problems: string[] = [];
  const addrs = ctr.addrs.list({ index: link.index }).map((a) => a.cidr);
  for (const ip of ips) {
    if (!addrs.includes(ip.address)) {
      problems.push(`address ${ip.address} is missing on ${link.name}`);
    }
  }
  const live = ctr.routes.list({ table: 0 });
  for (const r of routes) {
    const fam = familyOf(r.dst);
    const found = live.some((x) =>
      x.family === fam && x.dst === normalizeDst(r.dst) &&
      (r.gw ? x.gw === r.gw : true) && (r.table === undefined || x.table === r.table)
    );
    if (!found) problems.push(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} is missing`);
  }
  return problems;
}

/** The network address form the kernel reports for a route destination. */
function normalizeDst(dst: string): string {
  const c = parseCidr(dst);
  return c ? formatCidr(networkOf(c)) : dst;
}
