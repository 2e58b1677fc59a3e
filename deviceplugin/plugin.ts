/**
 * One resource's gRPC `DevicePlugin` server on its own unix socket.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../internal/_log.ts";
import {
  type AllocateRequest,
  type AllocateResponse,
  type ContainerAllocateResponse,
  type Device,
  type DevicePluginOptions,
  grpcError,
  HEALTHY,
  type ListAndWatchResponse,
  loadApi,
  type PreferredAllocationRequest,
  type PreferredAllocationResponse,
  UNHEALTHY,
  unixTarget,
} from "./_api.ts";
import { allocateDevice, AllocateError, type TapNodeFs } from "./allocate.ts";
import type { ResourceConfig } from "./config.ts";
import type { LinkBackend } from "./links.ts";
import { errorText } from "../internal/_error_text.ts";

/** Domain of every resource: `macvtap.network.kubevirt.io/<name>`. */
export const RESOURCE_DOMAIN = "macvtap.network.kubevirt.io";

/**
 * `macvtap.network.kubevirt.io/<name>`.
 *
 * @example Usage
 * ```ts
 * import { resourceNameOf } from "./plugin.ts";
 * resourceNameOf("lan"); // "macvtap.network.kubevirt.io/lan"
 * ```
 */
export function resourceNameOf(name: string): string {
  return `${RESOURCE_DOMAIN}/${name}`;
}

/**
 * Socket file name (= Register endpoint): `macvtap.network.kubevirt.io_<name>`.
 *
 * @example Usage
 * ```ts
 * import { endpointOf } from "./plugin.ts";
 * endpointOf("lan"); // "macvtap.network.kubevirt.io_lan"
 * ```
 */
export function endpointOf(name: string): string {
  return `${RESOURCE_DOMAIN}_${name}`;
}

/**
 * Device ID `n` of resource `name`: `<name>-<n>` (unique per node as resource
 * names are; the trailing number cannot contain `-`, so no two resources share an ID).
 *
 * @example Usage
 * ```ts
 * import { deviceIdOf } from "./plugin.ts";
 * deviceIdOf("lan", 7); // "lan-7"
 * ```
 */
export function deviceIdOf(name: string, n: number): string {
  return `${name}-${n}`;
}

/**
 * Env var naming the allocated devices: `MACVTAP_<NAME>_DEVICES`, the name
 * upper-cased with `-` and `.` as `_`. Value: comma-separated
 * `<deviceID>=<host path of /dev/tapN>`, in request order.
 *
 * @example Usage
 * ```ts
 * import { envNameOf } from "./plugin.ts";
 * envNameOf("data-plane.1"); // "MACVTAP_DATA_PLANE_1_DEVICES"
 * ```
 */
export function envNameOf(name: string): string {
  return `MACVTAP_${name.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}_DEVICES`;
}

/** What a {@linkcode ResourcePlugin} needs. */
export interface ResourcePluginDeps {
  backend: LinkBackend;
  tapFs: TapNodeFs;
  log: Logger;
  /** Where `/dev/tapN` nodes are (default `/dev`). */
  devDir?: string;
}

type Stream = grpc.ServerWritableStream<unknown, ListAndWatchResponse>;

/** Counters, for tests and logs. */
export interface PluginStats {
  allocations: number;
  allocateErrors: number;
  /** ListAndWatch streams opened so far. */
  streamsOpened: number;
}

/**
 * The `DevicePlugin` service of one resource. `start()` (re)binds the socket
 * with a fresh `grpc.Server` (a server cannot be reused once shut down).
 */
export class ResourcePlugin {
  readonly resource: ResourceConfig;
  readonly resourceName: string;
  readonly endpoint: string;
  #deps: ResourcePluginDeps;
  #server: grpc.Server | undefined;
  #streams = new Set<Stream>();
  #healthy = false;
  #ids: string[];
  #idSet: Set<string>;
  #socketIno: number | null = null;
  #stats: PluginStats = { allocations: 0, allocateErrors: 0, streamsOpened: 0 };

  constructor(resource: ResourceConfig, deps: ResourcePluginDeps) {
    this.resource = resource;
    this.resourceName = resourceNameOf(resource.name);
    this.endpoint = endpointOf(resource.name);
    this.#deps = deps;
    this.#ids = Array.from({ length: resource.capacity }, (_, n) => deviceIdOf(resource.name, n));
    this.#idSet = new Set(this.#ids);
  }

  /** Whether the devices are reported Healthy. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Open ListAndWatch streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Counters. */
  get stats(): Readonly<PluginStats> {
    return this.#stats;
  }

  /** Inode of the socket this server bound (to notice it was replaced or removed). */
  get socketIno(): number | null {
    return this.#socketIno;
  }

  /** Whether a server is bound. */
  get serving(): boolean {
    return this.#server !== undefined;
  }

  /** The full device list as ListAndWatch sends it. */
  devices(): Device[] {
    const health = this.#healthy ? HEALTHY : UNHEALTHY;
    return this.#ids.map((ID) => ({ ID, health }));
  }

  /** Set the health of all devices; streams get the full list when it changed. */
  setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.#deps.log.info(`${this.resourceName}: devices ${healthy ? HEALTHY : UNHEALTHY}`);
    const msg = { devices: this.devices() };
    for (const s of this.#streams) s.write(msg);
  }

  /** (Re)start serving on `<dir>/<endpoint>`: drop the old server, remove a stale socket, bind. */
  async start(dir: string): Promise<void> {
    this.#shutdownServer();
    const path = `${dir}/${this.endpoint}`;
    try {
      await Deno.remove(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const server = new grpc.Server();
    server.addService(loadApi().DevicePlugin.service, this.#handlers());
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        unixTarget(path),
        grpc.ServerCredentials.createInsecure(),
        (err, port) => err ? reject(err) : resolve(port),
      )
    );
    this.#server = server;
    this.#socketIno = (await Deno.lstat(path)).ino;
  }

  /** Stop serving: end the streams, shut the server down, remove the socket (if still ours). */
  async stop(dir: string): Promise<void> {
    this.#shutdownServer();
    const path = `${dir}/${this.endpoint}`;
    try {
      if ((await Deno.lstat(path)).ino === this.#socketIno) await Deno.remove(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    this.#socketIno = null;
  }

  #shutdownServer(): void {
    for (const s of this.#streams) {
      try {
        s.end();
      } catch {
        // already gone
      }
    }
    this.#streams.clear();
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  /** Allocate for one container: one DeviceSpec per ID and the env var. */
  allocateContainer(ids: readonly string[]): ContainerAllocateResponse {
    const specs = [];
    const entries = [];
    for (const id of ids) {
      if (!this.#idSet.has(id)) {
        throw new AllocateError("NOT_FOUND", `Unknown device "${id}" for ${this.resourceName}`);
      }
      const d = allocateDevice(this.resource, id, {
        backend: this.#deps.backend,
        fs: this.#deps.tapFs,
        ...(this.#deps.devDir ? { devDir: this.#deps.devDir } : {}),
      });
      this.#deps.log.debug(
        `${this.resourceName}: ${id} → ${d.ifname} ${d.tapPath} (${d.devNumber})`,
      );
      specs.push({ containerPath: d.tapPath, hostPath: d.tapPath, permissions: "rw" });
      entries.push(`${id}=${d.tapPath}`);
    }
    return { envs: { [envNameOf(this.resource.name)]: entries.join(",") }, devices: specs };
  }

  #handlers(): grpc.UntypedServiceImplementation {
    const options: DevicePluginOptions = {
      preStartRequired: false,
      getPreferredAllocationAvailable: false,
    };
    return {
      GetDevicePluginOptions: (_call: unknown, cb: grpc.sendUnaryData<DevicePluginOptions>) =>
        cb(null, options),
      ListAndWatch: (call: Stream) => {
        this.#stats.streamsOpened++;
        this.#streams.add(call);
        const drop = () => this.#streams.delete(call);
        call.on("cancelled", drop);
        call.on("close", drop);
        call.on("finish", drop);
        call.on("error", drop);
        call.write({ devices: this.devices() });
      },
      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<PreferredAllocationRequest, PreferredAllocationResponse>,
        cb: grpc.sendUnaryData<PreferredAllocationResponse>,
      ) => {
        // Devices are interchangeable: must-include first, then the first available.
        cb(null, {
          containerResponses: call.request.containerRequests.map((r) => {
            const ids = [...r.mustIncludeDeviceIDs];
            for (const id of r.availableDeviceIDs) {
              if (ids.length >= r.allocationSize) break;
              if (!ids.includes(id)) ids.push(id);
            }
            return { deviceIDs: ids };
          }),
        });
      },
      Allocate: (
        call: grpc.ServerUnaryCall<AllocateRequest, AllocateResponse>,
        cb: grpc.sendUnaryData<AllocateResponse>,
      ) => {
        try {
          const containerResponses = call.request.containerRequests.map((r) =>
            this.allocateContainer(r.devicesIds)
          );
          this.#stats.allocations++;
          cb(null, { containerResponses });
        } catch (err) {
          this.#stats.allocateErrors++;
          const msg = errorText(err);
          this.#deps.log.error(`${this.resourceName}: Allocate: ${msg}`);
          const code = err instanceof AllocateError
            ? grpc.status[err.status]
            : grpc.status.INTERNAL;
          cb(grpcError(code, msg));
        }
      },
      PreStartContainer: (_call: unknown, cb: grpc.sendUnaryData<Record<string, never>>) =>
        cb(null, {}),
    };
  }
}
