/**
 * The Device Plugin API v1beta1 loaded for grpc-js: service definitions and
 * the message shapes as proto-loader presents them (camelCase fields).
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { fromJSON } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { API_PROTO } from "./_api_proto.ts";

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

/** The two services as grpc-js client constructors (`.service` is the definition). */
export interface DevicePluginApi {
  Registration: grpc.ServiceClientConstructor;
  DevicePlugin: grpc.ServiceClientConstructor;
}

let api: DevicePluginApi | undefined;

/** Parse the embedded proto once (~15 ms) and return the services. */
export function loadApi(): DevicePluginApi {
  if (api) return api;
  const { root } = protobuf.parse(API_PROTO, { keepCase: false });
  const definition = fromJSON(root.toJSON() as Parameters<typeof fromJSON>[0], {
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition).v1beta1 as grpc.GrpcObject;
  api = {
    Registration: pkg.Registration as grpc.ServiceClientConstructor,
    DevicePlugin: pkg.DevicePlugin as grpc.ServiceClientConstructor,
  };
  return api;
}

/** A gRPC error with a status code, as a handler's callback takes it. */
export function grpcError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), {
    code,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

/**
 * Client options for short-lived clients: a private subchannel (grpc-js
 * shares subchannels per target process-wide, and one left in reconnect
 * backoff after kubelet restarted would fail new calls for ~1 s), a short
 * reconnect backoff, and no grpc-js retries.
 *
 * Retries off: a call whose HTTP/2 stream cannot start (`session.request`
 * throws because kubelet.sock's connection died while kubelet restarted, and
 * Deno has not yet delivered the session's close) is retried by grpc-js at
 * once ("transparent retry", unbounded for `NOT_STARTED`), on the same
 * subchannel, still READY: a promise-job loop that starves the event loop.
 * The whole process spins at 100 % CPU: no timer, no deadline, no directory
 * watch, no re-registration. Our callers retry with backoff on a new client.
 */
export const CLIENT_OPTIONS: grpc.ChannelOptions = {
  "grpc.use_local_subchannel_pool": 1,
  "grpc.initial_reconnect_backoff_ms": 50,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.enable_retries": 0,
};

/** `unix://` target for an absolute socket path. */
export function unixTarget(path: string): string {
  return `unix://${path}`;
}
