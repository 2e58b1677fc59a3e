/**
 * STATUS (CNI 1.1.0): can this network service an ADD now?
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import { hostRouteIfProblem } from "../hostroute/mod.ts";
import { deviceIfname, kubevirtDeviceIfname } from "../internal/_ifname.ts";
import { NetlinkHandle } from "../netlink/mod.ts";
import { type CniContext, hostHandleOptions } from "./context.ts";
import { PluginError, toCniError } from "./errors.ts";
import type { Ipam } from "../ipam/mod.ts";
import { resolveMaster } from "./master.ts";

const { NOT_AVAILABLE, LIMITED_CONNECTIVITY } = ErrorCode;

/**
 * Ready when the master exists (or, without `master`, a default route
 * interface does; with only `deviceID`, that device does), a configured
 * `hostrouteif` is absent (ADD creates it) or a macvtap on that master, and
 * the IPAM delegate can be run and reports ready.
 *
 * Every way of not being ready is code 50 ("cannot service ADD requests"),
 * with what is wrong in `msg` and the underlying error (its code, message
 * and details) in `details`: a missing master, a netlink failure, an IPAM
 * type not found in CNI_PATH or one that cannot be run, a delegate's STATUS
 * error. Only a delegate's own 50 or 51 is passed on as it is.
 *
 * @throws {PluginError} code 50; a delegate's {@linkcode CniError} 50/51 as is.
 */
export async function statusOf(
  conf: NetConf,
  ipam: Ipam | undefined,
  ctx: Pick<CniContext, "hostNetns"> = {},
): Promise<void> {
  const ipamStatus = ipam?.status();
  ipamStatus?.catch(() => {});
  try {
    checkHost(conf, ctx);
  } catch (err) {
    throw notAvailable(err);
  }
  try {
    await ipamStatus;
  } catch (err) {
    if (
      err instanceof CniError && (err.code === NOT_AVAILABLE || err.code === LIMITED_CONNECTIVITY)
    ) {
      throw err;
    }
    throw notAvailable(err, `IPAM plugin "${ipam!.type}": `);
  }
}

/** The host side: master (or the device of `deviceID`) and `hostrouteif`. */
function checkHost(conf: NetConf, ctx: Pick<CniContext, "hostNetns">): void {
  // linkInContainer: the master is in a container, which STATUS has none of.
  if (conf.linkInContainer) return;
  using host = NetlinkHandle.open(hostHandleOptions(ctx));
  if (conf.deviceID && !conf.master) {
    // ADD imports the device; without a master it cannot recreate a missing one.
    const id = conf.deviceID;
    const names = [id, deviceIfname(id), kubevirtDeviceIfname(id)];
    if (!names.some((n) => host.links.find(n))) {
      throw new PluginError(
        `deviceID "${id}": no interface ${names.map((n) => `"${n}"`).join(", ")} on the host, ` +
          `and no master to recreate it on`,
        { code: NOT_AVAILABLE },
      );
    }
    return;
  }
  const master = resolveMaster(host, conf.master);
  const hostIf = conf.hostrouteif ? host.links.find(conf.hostrouteif) : undefined;
  const problem = hostIf && hostRouteIfProblem(hostIf, master);
  if (problem) throw new PluginError(problem, { code: NOT_AVAILABLE });
}

/** `err` as code 50: its message (after `prefix`) as `msg`, its code and details in `details`. */
function notAvailable(err: unknown, prefix = ""): PluginError {
  if (err instanceof PluginError && err.code === NOT_AVAILABLE && !prefix) return err;
  const cni = toCniError(err);
  return new PluginError(`${prefix}${cni.msg}`, {
    code: NOT_AVAILABLE,
    details: `code ${cni.code}${cni.details ? `: ${cni.details}` : ""}`,
    cause: err,
  });
}
