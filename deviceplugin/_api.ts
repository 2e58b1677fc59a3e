/**
 * The Device Plugin API v1beta1: constants, method paths and the message
 * shapes (camelCase fields, as protobuf's JSON mapping names them; the wire
 * format is `_protowire.ts`, the schema `_api_proto.ts`).
 *
 * @module
 */

/** The only API version kubelet accepts (`SupportedVersions`). */
export const API_VERSION = "v1beta1";
/** Device health values. */
export const HEALTHY = "Healthy";
/** Device health values. */
export const UNHEALTHY = "Unhealthy";
/** Domain of every resource: `macvtap.network.kubevirt.io/<name>`. */
export const RESOURCE_DOMAIN = "macvtap.network.kubevirt.io";
/** Kubelet's registration socket, relative to the device-plugin dir. */
export const KUBELET_SOCKET = "kubelet.sock";

/** `DevicePluginOptions`. */
export interface DevicePluginOptions {
  preStartRequired: boolean;
  getPreferredAllocationAvailable: boolean;
}

/** `RegisterRequest`. */
export interface RegisterRequest {
  version: string;
  endpoint: string;
  resourceName: string;
  options?: DevicePluginOptions | null;
}

/** `Device` (topology unused). */
export interface Device {
  ID: string;
  health: string;
}

/** `ListAndWatchResponse`. */
export interface ListAndWatchResponse {
  devices: Device[];
}

/** `AllocateRequest`. */
export interface AllocateRequest {
  containerRequests: { devicesIds: string[] }[];
}

/** `DeviceSpec`. */
export interface DeviceSpec {
  containerPath: string;
  hostPath: string;
  permissions: string;
}

/** `ContainerAllocateResponse` (mounts, annotations and CDI devices unused). */
export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  devices: DeviceSpec[];
  mounts?: { containerPath: string; hostPath: string; readOnly: boolean }[];
  annotations?: Record<string, string>;
  cdiDevices?: { name: string }[];
}

/** `AllocateResponse`. */
export interface AllocateResponse {
  containerResponses: ContainerAllocateResponse[];
}

/** `PreferredAllocationRequest`. */
export interface PreferredAllocationRequest {
  containerRequests: {
    availableDeviceIDs: string[];
    mustIncludeDeviceIDs: string[];
    allocationSize: number;
  }[];
}

/** `PreferredAllocationResponse`. */
export interface PreferredAllocationResponse {
  containerResponses: { deviceIDs: string[] }[];
}

/** Full method paths of the two services. */
export const METHODS = {
  register: "/v1beta1.Registration/Register",
  getDevicePluginOptions: "/v1beta1.DevicePlugin/GetDevicePluginOptions",
  listAndWatch: "/v1beta1.DevicePlugin/ListAndWatch",
  getPreferredAllocation: "/v1beta1.DevicePlugin/GetPreferredAllocation",
  allocate: "/v1beta1.DevicePlugin/Allocate",
  preStartContainer: "/v1beta1.DevicePlugin/PreStartContainer",
} as const;

// --- kubelet's PodResources API v1 (k8s.io/kubelet/pkg/apis/podresources/v1) --------------

/** `ContainerDevices`: the devices of one resource a container was given. */
export interface ContainerDevices {
  resourceName: string;
  deviceIds: string[];
}

/** `PodResources`, as far as the plugin reads it (CPU, memory and DRA fields are skipped). */
export interface PodResources {
  name: string;
  namespace: string;
  containers: { name: string; devices: ContainerDevices[] }[];
}

/** Method paths of `v1.PodResourcesLister` (`Get` is beta from Kubernetes 1.34, alpha before). */
export const PODRESOURCES_METHODS = {
  list: "/v1.PodResourcesLister/List",
  get: "/v1.PodResourcesLister/Get",
} as const;
