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

export type { CniContext };
import { delAttachment } from "./del.ts";
import { gcNetwork } from "./gc.ts";
import { type Ipam, ipamDelegate } from "../ipam/mod.ts";
import { StateStore } from "./state.ts";
import { statusOf } from "./status.ts";
import { type DeviceTrust, deviceTrustFromEnv } from "./device_trust.ts";

/**
 * Options shared by the commands.
 *
 * @example ADD with your own IPAM, a lab namespace as the host, debug logging for this call
 * ```ts
 * import { cmdAdd, type CommandOptions } from "./commands.ts";
 *
 * // Needs root, /run/netns/lab (with eth1) and /run/netns/task1: type-checked, not run.
 * export async function attach(): Promise<void> {
 *   const options: CommandOptions = {
 *     hostNetns: "/run/netns/lab",
 *     ipam: {
 *       type: "mine",
 *       add: () => Promise.resolve({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] }),
 *       del: () => Promise.resolve(),
 *       check: () => Promise.resolve(),
 *       status: () => Promise.resolve(),
 *       gc: () => Promise.resolve(),
 *     },
 *   };
 *   const config = { cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1", logLevel: "debug" };
 *   const ctx = { containerId: "task1", netns: "/run/netns/task1", ifname: "eth0", args: "", path: [] };
 *   console.log(await cmdAdd(config, ctx, options));
 * }
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
  /**
   * The network namespace to treat as the host, as a path (`/run/netns/lab`,
   * `/proc/PID/ns/net`): where the master and `hostrouteif` are, where host
   * routes go and where the IPAM plugin runs. Default: the caller's, as for
   * the executable. Give the same one to every command of an attachment.
   */
  hostNetns?: string;
}

/** `ctx` with the call's host namespace from `options` (the skel never sets it). */
function withHost(ctx: CniContext, options: CommandOptions): CniContext {
  return options.hostNetns === undefined ? ctx : { ...ctx, hostNetns: options.hostNetns };
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
    ...(ctx.hostNetns !== undefined ? { netns: ctx.hostNetns } : {}),
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
 * @param config The network config (stdin's object).
 * @param callerCtx The CNI context (`CNI_*`).
 * @param options Host namespace, IPAM override, logging.
 * @example Attach a task
 * ```ts
 * import { cmdAdd } from "./commands.ts";
 *
 * // Needs root, eth1 and /run/netns/task1: type-checked, not run by `deno test --doc`.
 * export async function attach(): Promise<void> {
 *   const result = await cmdAdd(
 *     { cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1", ipam: { type: "host-local", subnet: "192.168.122.0/24" } },
 *     { containerId: "task1", netns: "/run/netns/task1", ifname: "eth0", args: "", path: ["/usr/lib/cni"] },
 *   );
 *   console.log(result.ips);
 * }
 * ```
 */
export async function cmdAdd(
  config: Record<string, unknown>,
  callerCtx: CniContext,
  options: CommandOptions = {},
): Promise<Result> {
  const ctx = withHost(callerCtx, options);
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
 * @param config The network config.
 * @param callerCtx The CNI context; `netns` may be empty.
 * @param options Host namespace, IPAM override, logging.
 * @example Detach a task
 * ```ts
 * import { cmdDel } from "./commands.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export async function detach(config: Record<string, unknown>): Promise<void> {
 *   await cmdDel(config, { containerId: "task1", netns: "", ifname: "eth0", args: "", path: ["/usr/lib/cni"] });
 * }
 * ```
 */
export async function cmdDel(
  config: Record<string, unknown>,
  callerCtx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const ctx = withHost(callerCtx, options);
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
 * @param config The network config with `prevResult`.
 * @param callerCtx The CNI context.
 * @param options Host namespace, IPAM override, logging.
 * @example Check a task
 * ```ts
 * import { type CniContext, cmdCheck } from "./commands.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export async function check(config: Record<string, unknown>, result: unknown, ctx: CniContext) {
 *   await cmdCheck({ ...config, prevResult: result }, ctx);
 * }
 * ```
 */
export async function cmdCheck(
  config: Record<string, unknown>,
  callerCtx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const ctx = withHost(callerCtx, options);
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
 * @param config The network config.
 * @param callerCtx The CNI context (only `path` matters).
 * @param options Host namespace, IPAM override, logging.
 * @example Readiness
 * ```ts
 * import { cmdStatus } from "./commands.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export async function ready(config: Record<string, unknown>): Promise<void> {
 *   await cmdStatus(config, { containerId: "", netns: "", ifname: "", args: "", path: ["/usr/lib/cni"] });
 * }
 * ```
 */
export async function cmdStatus(
  config: Record<string, unknown>,
  callerCtx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const ctx = withHost(callerCtx, options);
  const conf = parseNetConf(config, { command: "STATUS", args: "" });
  await logged(conf, options, () => statusOf(conf, delegate(conf, ctx, config, options), ctx));
}

/**
 * GC: clean up attachments not in `config["cni.dev/valid-attachments"]`.
 *
 * @param config The network config with `cni.dev/valid-attachments`.
 * @param callerCtx The CNI context.
 * @param options Host namespace, IPAM override, logging.
 * @example Collect garbage
 * ```ts
 * import { type CniContext, cmdGc } from "./commands.ts";
 *
 * // Needs root: type-checked, not run by `deno test --doc`.
 * export async function gc(config: Record<string, unknown>, ctx: CniContext): Promise<void> {
 *   await cmdGc({ ...config, "cni.dev/valid-attachments": [{ containerID: "task1", ifname: "eth0" }] }, ctx);
 * }
 * ```
 */
export async function cmdGc(
  config: Record<string, unknown>,
  callerCtx: CniContext,
  options: CommandOptions = {},
): Promise<void> {
  const ctx = withHost(callerCtx, options);
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
