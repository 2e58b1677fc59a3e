/**
 * The ADD result: our interface appended to a chained `prevResult`, IPAM's
 * addresses pointing at it, the routes as installed, DNS from the config
 * merged with IPAM's.
 *
 * @module
 */

import { compareVersions, type Dns, ErrorCode, type Result, type Route } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import type { Link } from "../netlink/mod.ts";
import type { CniContext } from "./context.ts";
import { PluginError } from "./errors.ts";

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

/**
 * Assemble the ADD result, and prove it can be printed at the config's
 * version before the ADD commits: a 0.1.0/0.2.0 result needs an address, and
 * an IPAM plugin that returned none fails the ADD here, while its undo steps
 * can still remove the link and release the allocation (the reference
 * macvlan fails only when printing, and leaves its link behind).
 *
 * @throws {PluginError} code 101 when the IPAM result has no address at
 *   0.1.0 or 0.2.0.
 */
export function buildResult(
  conf: NetConf,
  ctx: CniContext,
  link: Link,
  ipam: Result | undefined,
  routes: readonly Route[],
): Result {
  const result = assemble(conf, ctx, link, ipam, routes);
  if (compareVersions(conf.cniVersion, "0.3.0") < 0 && !result.ips?.length) {
    throw new PluginError(
      `IPAM plugin ${JSON.stringify(conf.ipam?.type ?? "")} returned no IP address; ` +
        `a cniVersion ${conf.cniVersion} result must carry one`,
      { code: ErrorCode.IPAM },
    );
  }
  return result;
}

function assemble(
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
