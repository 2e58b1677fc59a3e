/**
 * The plugin's commands as functions: config and CNI context in, result or
 * typed error out. `cmd/cni.ts` wires them to the CNI protocol; Deno
 * automation can call them directly.
 *
 * @module
 */

import type { Result } from "../cni/mod.ts";
import { type NetConf, parseNetConf, parseNetConfForDel } from "../config/mod.ts";
import { fileSink, Logger, setLogger, withLogger } from "../internal/_log.ts";
import { logRoot } from "../internal/_owned_path.ts";
import { addAttachment } from "./add.ts";
import { checkAttachment } from "./check.ts";
import type { CniContext } from "./context.ts";
import { delAttachment } from "./del.ts";
import { gcNetwork } from "./gc.ts";
import { type Ipam, ipamDelegate } from "../ipam/mod.ts";
import { StateStore } from "./state.ts";
import { statusOf } from "./status.ts";
import { type DeviceTrust, deviceTrustFromEnv } from "./device_trust.ts";

/**
 * Options shared by the commands.
 *
 * @example ADD with your own IPAM, logging only to this call's file
 * ```ts ignore
 * import { cmdAdd, type CommandOptions } from "./commands.ts";
 *
 * const options: CommandOptions = {
 *   ipam: {
 *     type: "mine",
 *     add: () => Promise.resolve({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] }),
 *     del: () => Promise.resolve(),
 *     check: () => Promise.resolve(),
 *     status: () => Promise.resolve(),
 *     gc: () => Promise.resolve(),
 *   },
 * };
 * const config = { cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1", logLevel: "debug" };
 * const ctx = { containerId: "task1", netns: "/run/netns/task1", ifname: "eth0", args: "", path: [] };
 * console.log(await cmdAdd(config, ctx, options));
 * ```
 */
export interface CommandOptions {
  /** The config bytes exactly as received (what IPAM reads); default: the config re-encoded. */
  stdin?: Uint8Array;
  /** Replace the IPAM delegate (tests, or automation with its own allocator). */
  ipam?: Ipam;
  /**
   * How a `deviceID` is proven this pod's (ADD). Default: from the
   * environment (`ctx.env`, else the process's): `MACVTAP_PODRESOURCES_SOCKET`
   * and `MACVTAP_DEVICEID_FROM_CONFIG`.
   */
  deviceTrust?: DeviceTrust;
  /**
   * Let the config's `logLevel`/`logFile` replace the process-wide logger,
   * as the executable does (its process is this one call). Default: they
   * apply to this call only, and the process's logger stays as it was.
   */
  processLogger?: boolean;
}

function bytesOf(config: Record<string, unknown>, options: CommandOptions): Uint8Array {
  return options.stdin ?? new TextEncoder().encode(JSON.stringify(config));
}

/** The logger the config asks for, or `undefined` when it names no level and no file. */
function loggerOf(conf: Pick<NetConf, "logFile" | "logLevel">): Logger | undefined {
  if (!conf.logFile && !conf.logLevel) return undefined;
  return new Logger({
    ...(conf.logLevel ? { level: conf.logLevel } : {}),
    ...(conf.logFile ? { sink: fileSink(conf.logFile, logRoot()) } : {}),
  });
}

/**
 * Run one command with the config's logger: for this call only (closed
 * after it), or, with `options.processLogger`, as the process's logger.
 */
async function logged<T>(
  conf: Pick<NetConf, "logFile" | "logLevel">,
  options: CommandOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const logger = loggerOf(conf);
  if (!logger) return await fn();
  if (options.processLogger) {
    setLogger(logger);
    return await fn();
  }
  using _ = logger;
  return await withLogger(logger, fn);
}

function storeOf(conf: NetConf): StateStore {
  return new StateStore(conf.stateDir, undefined, { readOnly: conf.stateDirReadOnly === true });
}

/** Overrides for the delegate's environment (GC releases other attachments). */
export type IpamTarget = Partial<Pick<CniContext, "containerId" | "ifname" | "netns" | "args">>;

/**
 * The IPAM delegate for `conf`, or `undefined` for L2 only (`ipam` absent or
 * `{}`), with the CNI variables of `ctx` (or of `target`, for GC).
 */
function ipamFor(
  conf: NetConf,
  ctx: CniContext,
  stdin: Uint8Array,
  target: IpamTarget = {},
): Ipam | undefined {
  const type = conf.ipam?.type;
  if (!type) return undefined;
  return ipamDelegate({
    type,
    cniVersion: conf.cniVersion,
    timeoutMs: conf.ipamTimeoutMs,
    cniPath: ctx.path,
    env: {
      ...(ctx.env ?? Deno.env.toObject()),
      CNI_CONTAINERID: target.containerId ?? ctx.containerId,
      CNI_NETNS: target.netns ?? ctx.netns,
      CNI_IFNAME: target.ifname ?? ctx.ifname,
      CNI_ARGS: target.args ?? ctx.args,
      CNI_PATH: ctx.path.join(":"),
    },
  }, stdin);
}

function delegate(
  conf: NetConf,
  ctx: CniContext,
  config: Record<string, unknown>,
  options: CommandOptions,
) {
  return options.ipam ?? ipamFor(conf, ctx, bytesOf(config, options));
}

/**
 * ADD: attach `ctx.ifname` in `ctx.netns` to the network described by `config`.
 *
 * @returns the CNI result (format it with `formatResult(result, cniVersion)`).
 * @throws {ConfigError} for an invalid config, {@linkcode CniError} from IPAM,
 *   other typed errors otherwise — map them with `toCniError`. Nothing is left behind.
 *
 * @example Attach a task
 * ```ts ignore
 * const result = await cmdAdd(
 *   { cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1", ipam: { type: "host-local", subnet: "192.168.122.0/24" } },
 *   { containerId: "task1", netns: "/run/netns/task1", ifname: "eth0", args: "", path: ["/usr/lib/cni"] },
 * );
 * ```
 */
export async function cmdAdd(
  config: Record<string, unknown>,
  ctx: CniContext,
  options: CommandOptions = {},
): Promise<Result> {
  const conf = parseNetConf(config, { command: "ADD", args: ctx.args });
  return await logged(conf, options, () =>
    addAttachment(
      conf,
      ctx,
      delegate(conf, ctx, config, options),
      storeOf(conf),
      options.deviceTrust ??
        deviceTrustFromEnv((key) => ctx.env ? ctx.env[key] : Deno.env.get(key)),
    ));
}

/**
 * DEL: detach; idempotent, and successful when the namespace is gone.
 *
 * @example Detach a task
 * ```ts ignore
 * await cmdDel(config, { containerId: "task1", netns: "", ifname: "eth0", args: "", path: ["/usr/lib/cni"] });
 * ```
 */
export async function cmdDel(
  config: Record<string, unknown>,
  ctx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const conf = parseNetConfForDel(config, { args: ctx.args });
  await logged(conf, options, () =>
    delAttachment(
      conf,
      ctx,
      delegate(conf, ctx, config, options),
      storeOf(conf),
    ));
}

/**
 * CHECK: verify the attachment against `config.prevResult`.
 *
 * @example Check a task
 * ```ts ignore
 * await cmdCheck({ ...config, prevResult: result }, ctx);
 * ```
 */
export async function cmdCheck(
  config: Record<string, unknown>,
  ctx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const conf = parseNetConf(config, { command: "CHECK", args: ctx.args });
  await logged(
    conf,
    options,
    () => checkAttachment(conf, ctx, delegate(conf, ctx, config, options)),
  );
}

/**
 * STATUS: throws (code 50) when the network cannot service ADD.
 *
 * @example Readiness
 * ```ts ignore
 * await cmdStatus(config, { containerId: "", netns: "", ifname: "", args: "", path: ["/usr/lib/cni"] });
 * ```
 */
export async function cmdStatus(
  config: Record<string, unknown>,
  ctx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const conf = parseNetConf(config, { command: "STATUS", args: "" });
  await logged(conf, options, () => statusOf(conf, delegate(conf, ctx, config, options)));
}

/**
 * GC: clean up attachments not in `config["cni.dev/valid-attachments"]`.
 *
 * @example Collect garbage
 * ```ts ignore
 * await cmdGc({ ...config, "cni.dev/valid-attachments": [{ containerID: "task1", ifname: "eth0" }] }, ctx);
 * ```
 */
export async function cmdGc(
  config: Record<string, unknown>,
  ctx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const conf = parseNetConfForDel(config, { args: "" });
  const stdin = bytesOf(config, options);
  await logged(conf, options, () =>
    gcNetwork(
      conf,
      ctx,
      conf.validAttachments,
      storeOf(conf),
      (target) => options.ipam ?? ipamFor(conf, ctx, stdin, target),
    ));
}
