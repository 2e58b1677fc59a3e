/**
 * The Kubernetes device plugin for macvtap (kubelet Device Plugin API
 * v1beta1 over gRPC). Each resource `macvtap.network.kubevirt.io/<name>`
 * offers `capacity` devices `<name>-0 … <name>-<capacity-1>`; Allocate
 * creates the macvtap `deviceIfname(id)` on the lower device and returns its
 * `/dev/tapN`. Only this folder speaks gRPC (`_grpc.ts` over `node:http2`,
 * messages by hand in `_protowire.ts`).
 *
 * @example Run the device plugin with the real netlink backend
 * ```ts ignore
 * import { DevicePluginManager, netlinkBackend, parseDevicePluginConfig, realTapFs } from "./mod.ts";
 * const backend = netlinkBackend();
 * await using dp = await DevicePluginManager.start({
 *   socketDir: "/var/lib/kubelet/device-plugins",
 *   config: parseDevicePluginConfig(Deno.env.get("DP_MACVTAP_CONF")),
 *   backend,
 *   tapFs: realTapFs(),
 * });
 * ```
 *
 * @module
 */

export { DevicePluginManager } from "./manager.ts";
export type { DevicePluginManagerOptions } from "./manager.ts";
export {
  deviceIdOf,
  endpointOf,
  envNameOf,
  RESOURCE_DOMAIN,
  resourceNameOf,
  ResourcePlugin,
} from "./plugin.ts";
export type { PluginStats, ResourcePluginDeps } from "./plugin.ts";
export {
  DEFAULT_CAPACITY,
  DEVICE_MODES,
  DevicePluginConfigError,
  isValidResourceName,
  MAX_CAPACITY,
  MAX_NAME_LENGTH,
  MAX_RESOURCES,
  MAX_TOTAL_DEVICES,
  parseDevicePluginConfig,
} from "./config.ts";
export type { DeviceMode, DevicePluginConfig, ResourceConfig } from "./config.ts";
export { defaultEligible, lowerHealthy, netlinkBackend } from "./links.ts";
export type { EligibleFn, LinkBackend } from "./links.ts";
export {
  allocateDevice,
  AllocateError,
  ensureTapNode,
  makedev,
  TAP_INDEX_BASE,
  TAP_INDEX_SPAN,
  tapIndexFor,
} from "./allocate.ts";
export type { AllocatedDevice, AllocateOptions, TapNodeFs } from "./allocate.ts";
export { realTapFs } from "./_tapfs.ts";
export { registerWithKubelet } from "./registration.ts";
export { probeSockets } from "./probe.ts";
export type { ProbeResult } from "./probe.ts";
export { API_VERSION, HEALTHY, KUBELET_SOCKET, METHODS, UNHEALTHY } from "./_api.ts";
export { GrpcError, Status } from "./_grpc.ts";
export type {
  AllocateRequest,
  AllocateResponse,
  ContainerAllocateResponse,
  Device,
  DevicePluginOptions,
  DeviceSpec,
  ListAndWatchResponse,
  RegisterRequest,
} from "./_api.ts";
