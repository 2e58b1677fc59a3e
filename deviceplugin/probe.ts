/**
 * `macvtap deviceplugin --probe`: connect to the plugin sockets and call
 * GetDevicePluginOptions, as kubelet does right after Register.
 *
 * @module
 */

import { METHODS } from "./_api.ts";
import { unaryCall } from "./_grpc.ts";
import { decodeDevicePluginOptions } from "./_protowire.ts";
import type { DevicePluginConfig } from "./config.ts";
import { endpointOf, RESOURCE_DOMAIN } from "./plugin.ts";
import { errorText } from "../internal/_error_text.ts";

/** Result of probing one socket. */
export interface ProbeResult {
  endpoint: string;
  ok: boolean;
  error?: string;
}

/**
 * Probe every configured resource's socket (with `[]`: every
 * `macvtap.network.kubevirt.io_*` socket present in `dir`).
 *
 * @example Usage
 * ```ts ignore
 * const results = await probeSockets("/var/lib/kubelet/device-plugins", parseDevicePluginConfig("[]"));
 * const healthy = results.every((r) => r.ok);
 * ```
 */
export async function probeSockets(
  dir: string,
  config: DevicePluginConfig,
  options: { timeoutMs?: number } = {},
): Promise<ProbeResult[]> {
  let endpoints: string[];
  if (config.discover) {
    endpoints = [];
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(`${RESOURCE_DOMAIN}_`)) endpoints.push(e.name);
    }
  } else {
    endpoints = config.resources.map((r) => endpointOf(r.name));
  }
  return await Promise.all(endpoints.map(async (endpoint): Promise<ProbeResult> => {
    const path = `${dir}/${endpoint}`;
    try {
      if (!(await Deno.lstat(path)).isSocket) throw new Error(`${path} is not a socket`);
    } catch (err) {
      return { endpoint, ok: false, error: errorText(err) };
    }
    try {
      const answer = await unaryCall(path, METHODS.getDevicePluginOptions, new Uint8Array(), {
        timeoutMs: options.timeoutMs ?? 3000,
      });
      decodeDevicePluginOptions(answer);
      return { endpoint, ok: true };
    } catch (err) {
      return { endpoint, ok: false, error: errorText(err) };
    }
  }));
}
