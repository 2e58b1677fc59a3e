/**
 * The Device Plugin API loaded for grpc-js from the schema (`protobufjs` +
 * `@grpc/proto-loader`), for the kubelet stand-in and for tests that check
 * the plugin's hand-written wire format against a general protobuf runtime.
 * The plugin itself never loads these libraries.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { fromJSON } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { API_PROTO } from "../deviceplugin/_api_proto.ts";

/** The two services as grpc-js client constructors (`.service` is the definition). */
export interface DevicePluginApi {
  Registration: grpc.ServiceClientConstructor;
  DevicePlugin: grpc.ServiceClientConstructor;
}

let api: DevicePluginApi | undefined;

/** The package `name` of the proto text `proto`, loaded for grpc-js. */
function loadPackage(proto: string, name: string): grpc.GrpcObject {
  const { root } = protobuf.parse(proto, { keepCase: false });
  const definition = fromJSON(root.toJSON() as Parameters<typeof fromJSON>[0], {
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition)[name] as grpc.GrpcObject;
}

/** Parse the embedded proto once and return the services. */
export function loadApi(): DevicePluginApi {
  if (api) return api;
  const pkg = loadPackage(API_PROTO, "v1beta1");
  api = {
    Registration: pkg.Registration as grpc.ServiceClientConstructor,
    DevicePlugin: pkg.DevicePlugin as grpc.ServiceClientConstructor,
  };
  return api;
}

/**
 * kubelet's PodResources API v1, as far as the stand-in serves it (field
 * numbers of k8s.io/kubelet/pkg/apis/podresources/v1/api.proto). CPU IDs and
 * topology are served too, so the plugin's reader meets fields it skips.
 */
const PODRESOURCES_PROTO = `
syntax = "proto3";
package v1;
service PodResourcesLister {
  rpc List(ListPodResourcesRequest) returns (ListPodResourcesResponse) {}
  rpc Get(GetPodResourcesRequest) returns (GetPodResourcesResponse) {}
}
message ListPodResourcesRequest {}
message ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
message GetPodResourcesRequest { string pod_name = 1; string pod_namespace = 2; }
message GetPodResourcesResponse { PodResources pod_resources = 1; }
message PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
message ContainerResources {
  string name = 1;
  repeated ContainerDevices devices = 2;
  repeated int64 cpu_ids = 3;
}
message ContainerDevices {
  string resource_name = 1;
  repeated string device_ids = 2;
  TopologyInfo topology = 3;
}
message TopologyInfo { repeated NUMANode nodes = 1; }
message NUMANode { int64 ID = 1; }
`;

let podResources: grpc.ServiceClientConstructor | undefined;

/** `v1.PodResourcesLister` as a grpc-js client constructor (`.service` is the definition). */
export function loadPodResourcesApi(): grpc.ServiceClientConstructor {
  if (podResources) return podResources;
  const pkg = loadPackage(PODRESOURCES_PROTO, "v1");
  podResources = pkg.PodResourcesLister as grpc.ServiceClientConstructor;
  return podResources;
}
