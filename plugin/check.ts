/**
 * CHECK: compare the live state with the final `prevResult` of the chain:
 * what no later plugin may change (the link exists, is a macvtap on the
 * master, in the mode, addresses and routes of the result are present, host
 * routes through `hostrouteif`), and MAC/MTU where prevResult carries them.
 *
 * @module
 */

import { ErrorCode } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import { checkHostRoutes, hostRoutesFor } from "../hostroute/mod.ts";
import { checkInterface, type Ipam } from "../ipam/mod.ts";
import { NetlinkHandle, NetnsNotFoundError, openNetns } from "../netlink/mod.ts";
import { type CniContext, hostHandleOptions } from "./context.ts";
import { PluginError } from "./errors.ts";

/**
 * Verify the attachment.
 *
 * @throws {PluginError} naming the first mismatches found.
 */
export async function checkAttachment(
  conf: NetConf,
  ctx: CniContext,
  ipam: Ipam | undefined,
): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw new PluginError("Required prevResult missing", { code: 7 });
  const ipamCheck = ipam?.check();
  ipamCheck?.catch(() => {});

  const interfaces = prev.interfaces ?? [];
  const index = interfaces.findIndex((i) => i.name === ctx.ifname);
  const iface = interfaces[index];
  if (!iface) {
    throw new PluginError(`prevResult has no interface "${ctx.ifname}"`);
  }
  if (iface.sandbox !== ctx.netns) {
    throw new PluginError(
      `sandbox in prevResult ${
        iface.sandbox ?? "(none)"
      } doesn't match configured netns: ${ctx.netns}`,
    );
  }

  const problems: string[] = [];
  let ns;
  try {
    ns = openNetns(ctx.netns);
  } catch (err) {
    if (err instanceof NetnsNotFoundError) throw new PluginError(err.message, { cause: err });
    throw new PluginError(`Cannot open network namespace "${ctx.netns}"`, {
      code: ErrorCode.NETNS,
      cause: err,
    });
  }
  using _ns = ns;
  using ctr = NetlinkHandle.open({ netns: ns });
  const link = ctr.links.find(ctx.ifname);
  if (!link) throw new PluginError(`Interface "${ctx.ifname}" not found in ${ctx.netns}`);
  if (link.kind !== "macvtap") {
    problems.push(`"${link.name}" is a ${link.kind ?? "physical"} link, not a macvtap`);
  }
  if (!conf.deviceID && link.mode !== conf.mode) {
    problems.push(`mode is ${link.mode ?? "unknown"}, expected ${conf.mode}`);
  }
  if (conf.master && link.kind === "macvtap") {
    using host = conf.linkInContainer ? undefined : NetlinkHandle.open(hostHandleOptions(ctx));
    const master = (host ?? ctr).links.find(conf.master);
    if (!master) problems.push(`master "${conf.master}" is missing`);
    else if (link.parentIndex !== master.index) {
      problems.push(`"${link.name}" is not on master "${conf.master}"`);
    }
  }
  // MAC and MTU as the final prevResult has them: a later plugin of the
  // chain (tuning) may have changed what the config asked for. Where the
  // result does not carry them (MTU before 1.1.0; promiscuous mode never),
  // there is nothing to compare with.
  if (iface.mac && link.mac !== iface.mac.toLowerCase()) {
    problems.push(`MAC is ${link.mac}, prevResult says ${iface.mac}`);
  }
  if (iface.mtu && link.mtu !== iface.mtu) {
    problems.push(`MTU is ${link.mtu}, prevResult says ${iface.mtu}`);
  }
  if (!link.up) problems.push(`"${link.name}" is down`);

  const ips = (prev.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === index);
  problems.push(...checkInterface(ctr, link, ips, prev.routes ?? []));

  if (conf.hostrouteif && ips.length) {
    using host = NetlinkHandle.open(hostHandleOptions(ctx));
    const hostIf = host.links.find(conf.hostrouteif);
    if (!hostIf) {
      problems.push(`hostrouteif "${conf.hostrouteif}" is missing`);
    } else {
      if (!hostIf.up) problems.push(`hostrouteif "${conf.hostrouteif}" is down`);
      for (
        const r of checkHostRoutes(
          host,
          hostRoutesFor(ips.map((ip) => ip.address), conf.hostrouteMetric),
          hostIf.index,
        )
      ) {
        problems.push(`host route ${r.dst} dev ${conf.hostrouteif} metric ${r.metric} is missing`);
      }
    }
  }

  await ipamCheck;
  if (problems.length) {
    throw new PluginError(`CHECK failed for ${ctx.ifname}: ${problems.join("; ")}`);
  }
}
