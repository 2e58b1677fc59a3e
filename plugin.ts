/**
 * The macvtap CNI plugin's commands as functions (ADD, DEL, CHECK, STATUS,
 * GC): a network config and the CNI context in, a result or a typed error
 * out, as the executable does for a runtime. A config's `logLevel` and
 * `logFile` apply to that call only; the process's logger stays as it was.
 *
 * Permissions: `--allow-ffi --allow-run --allow-env --allow-read
 * --allow-write`, nothing more, and root. `CommandOptions.hostNetns` makes
 * another namespace than the caller's the host. For writing a plugin of your
 * own this entry also exports the IPAM delegate ({@linkcode ipamDelegate})
 * and the interface configuration ({@linkcode configureInterface}); the skel
 * is in `@macvtap/cni/cni`.
 *
 * @example Attach, check and detach a task's namespace, with a lab namespace as the host
 * ```ts
 * import { cmdAdd, cmdCheck, cmdDel, toCniError } from "./plugin.ts";
 * import { formatResult } from "./cni.ts";
 *
 * // Needs root, /run/netns/lab with eth1, and /run/netns/task1: type-checked, not run.
 * export async function attach(): Promise<void> {
 *   const config = {
 *     cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1",
 *     ipam: { type: "host-local", subnet: "192.168.122.0/24" },
 *   };
 *   const ctx = { containerId: "task1", netns: "/run/netns/task1", ifname: "eth0", args: "", path: ["/usr/lib/cni"] };
 *   const options = { hostNetns: "/run/netns/lab" };
 *   try {
 *     const result = await cmdAdd(config, ctx, options);
 *     console.log(formatResult(result, "1.1.0"));
 *     await cmdCheck({ ...config, prevResult: formatResult(result, "1.1.0") }, ctx, options);
 *   } catch (err) {
 *     console.error(toCniError(err).toJSON("1.1.0"));
 *   } finally {
 *     await cmdDel(config, ctx, options);
 *   }
 * }
 * ```
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { type Logger, setLogScope } from "./internal/_log.ts";

// Commands called as functions keep a config's logger to their own call
// (async context); the executable (cmd/cni.ts) does not import this entry,
// so node:async_hooks stays off its start-up path.
setLogScope(new AsyncLocalStorage<Logger>());

export { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus } from "./plugin/commands.ts";
export type { CommandOptions } from "./plugin/commands.ts";
export { type DeviceTrust, deviceTrustFromEnv } from "./plugin/device_trust.ts";
export { execIpam, ipamDelegate } from "./ipam/mod.ts";
export type { DelegateOptions, ExecIpamOptions, Ipam, IpamCommand } from "./ipam/mod.ts";
export { checkInterface, configureInterface, resolveRoutes } from "./ipam/configure.ts";
export type { ConfigureOptions } from "./ipam/configure.ts";
export type { CniContext } from "./plugin/context.ts";
export { PluginError, toCniError } from "./plugin/errors.ts";
export { ConfigError } from "./config/mod.ts";
export { CniError, ErrorCode } from "./cni/errors.ts";
export type { CniErrorJson, ErrorCodeValue } from "./cni/errors.ts";
export type { Dns, Interface, IPConfig, Result, Route } from "./cni/result.ts";
