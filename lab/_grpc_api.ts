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

/** Parse the embedded proto once and return the services. */
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
