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
