/**
 * The ADD result: our interface appended to a chained `prevResult`, IPAM's
 * addresses pointing at it, the routes as installed, DNS from the config
 * merged with IPAM's.
 *
 * @module
 */

import type { Dns, Result, Route } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import type { Link } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";

function union(
  a: readonly string[] | undefined,
  b: readonly string[] | undefined,
): string[] | undefined {
  const out = [...new Set([...(a ?? []), ...(b ?? [])])];
  return out.length ? out : undefined;
}

/** DNS settings: the config's first, then IPAM's, without duplicates. */
export function mergeDns(...sources: (Dns | undefined)[]): Dns {
  const dns: Dns = {};
  for (const s of sources) {
    if (!s) continue;
    const ns = union(dns.nameservers, s.nameservers);
    if (ns) dns.nameservers = ns;
    if (!dns.domain && s.domain) dns.domain = s.domain;
    const search = union(dns.search, s.search);
    if (search) dns.search = search;
    const options = union(dns.options, s.options);
    if (options) dns.options = options;
  }
  return dns;
}

/** Assemble the ADD result. */
export function buildResult(
  conf: NetConf,
  ctx: CniContext,
  link: Link,
  ipam: Result | undefined,
  routes: readonly Route[],
): Result {
  const prev = conf.prevResult;
  const interfaces = [...(prev?.interfaces ?? [])];
  interfaces.push({
    name: link.name,
    ...(link.mac ? { mac: link.mac } : {}),
    mtu: link.mtu,
    sandbox: ctx.netns,
  });
  const index = interfaces.length - 1;
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ips: [
      ...(prev?.ips ?? []),
      ...(ipam?.ips ?? []).map((ip) => ({ ...ip, interface: index })),
    ],
    routes: [...(prev?.routes ?? []), ...routes],
    dns: mergeDns(conf.dns, ipam?.dns, prev?.dns),
  };
}
