/**
 * STATUS (CNI 1.1.0): can this network service an ADD now?
 *
 * @module
 */

import type { NetConf } from "../config/mod.ts";
import { hostRouteIfProblem } from "../hostroute/mod.ts";
import { NetlinkHandle } from "../netlink/mod.ts";
import { PluginError } from "./errors.ts";
import type { Ipam } from "./ipam.ts";
import { resolveMaster } from "./master.ts";

/** CNI code: the plugin cannot service ADD. */
const NOT_AVAILABLE = 50;

/**
 * Ready when the master exists (or, without `master`, a default route
 * interface does), a configured `hostrouteif` is absent (ADD creates it) or a
 * macvtap on that master, and the IPAM delegate reports ready.
 *
 * @throws {PluginError} code 50 naming what is missing; the IPAM error as is.
 */
export async function statusOf(conf: NetConf, ipam: Ipam | undefined): Promise<void> {
  const ipamStatus = ipam?.status();
  ipamStatus?.catch(() => {});
  using host = NetlinkHandle.open();
  if (!conf.deviceID || conf.master) {
    let master;
    try {
      master = resolveMaster(host, conf.master);
    } catch (err) {
      throw new PluginError(err instanceof Error ? err.message : String(err), {
        code: NOT_AVAILABLE,
        cause: err,
      });
    }
    const hostIf = conf.hostrouteif ? host.links.find(conf.hostrouteif) : undefined;
    const problem = hostIf && hostRouteIfProblem(hostIf, master);
    if (problem) throw new PluginError(problem, { code: NOT_AVAILABLE });
  }
  await ipamStatus;
}
