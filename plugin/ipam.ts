/**
 * The IPAM delegate of one invocation: the plugin named by `ipam.type`, run
 * from CNI_PATH with the whole config on stdin and the CNI environment.
 *
 * @module
 */

import { parseResult, type Result } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import { execIpam } from "../ipam/mod.ts";
import type { CniContext } from "./context.ts";

/** IPAM operations bound to one invocation (injectable for tests). */
export interface Ipam {
  /** The IPAM plugin type (`host-local`, `static`, `dhcp` …). */
  readonly type: string;
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
  status(): Promise<void>;
  gc(): Promise<void>;
}

/** Overrides for the delegate's environment (GC releases other attachments). */
export interface IpamTarget {
  containerId?: string;
  ifname?: string;
  netns?: string;
  args?: string;
}

/**
 * The IPAM delegate for `conf`, or `undefined` for L2 only (`ipam` absent or `{}`).
 * `stdin` is what the delegate reads: the config exactly as received.
 */
export function ipamFor(
  conf: NetConf,
  ctx: CniContext,
  stdin: Uint8Array,
  target: IpamTarget = {},
): Ipam | undefined {
  const type = conf.ipam?.type;
  if (!type) return undefined;
  const env = {
    ...(ctx.env ?? Deno.env.toObject()),
    CNI_CONTAINERID: target.containerId ?? ctx.containerId,
    CNI_NETNS: target.netns ?? ctx.netns,
    CNI_IFNAME: target.ifname ?? ctx.ifname,
    CNI_ARGS: target.args ?? ctx.args,
    CNI_PATH: ctx.path.join(":"),
  };
  const run = (command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION", input = stdin) =>
    execIpam(command, {
      type,
      stdin: input,
      env,
      cniPath: ctx.path,
      timeoutMs: conf.ipamTimeoutMs,
    });
  // STATUS and GC exist from CNI 1.1.0; a delegate that does not speak 1.1.0
  // cannot be asked (Debian's host-local 1.1.1 answers them with an error).
  const speaks11 = async () => {
    const info = await run("VERSION", new TextEncoder().encode('{"cniVersion":"1.1.0"}'));
    const versions = (info as { supportedVersions?: unknown })?.supportedVersions;
    return Array.isArray(versions) && versions.includes("1.1.0");
  };
  return {
    type,
    async add() {
      return parseResult(await run("ADD"));
    },
    async del() {
      await run("DEL");
    },
    async check() {
      await run("CHECK");
    },
    async status() {
      if (await speaks11()) await run("STATUS");
    },
    async gc() {
      if (await speaks11()) await run("GC");
    },
  };
}
