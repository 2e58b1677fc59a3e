/**
 * One resource's gRPC `DevicePlugin` server on its own unix socket.
 *
 * @module
 */

import type { Logger } from "../internal/_log.ts";
import {
  type ContainerAllocateResponse,
  type Device,
  type DevicePluginOptions,
  HEALTHY,
  METHODS,
  UNHEALTHY,
} from "./_api.ts";
import { GrpcError, GrpcServer, type Methods, type ServerStream, Status } from "./_grpc.ts";
import {
  decodeAllocateRequest,
  decodeIgnored,
  decodePreferredAllocationRequest,
  encodeAllocateResponse,
  encodeDevicePluginOptions,
  encodeListAndWatchResponse,
  encodePreferredAllocationResponse,
} from "./_protowire.ts";
import { type AllocatedDevice, allocateDevice, AllocateError, type TapNodeFs } from "./allocate.ts";
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
  /** Called with each device Allocate made, before kubelet gets the answer (the MAC guard). */
  onAllocated?: (resource: ResourceConfig, device: AllocatedDevice) => void;
}

/** Counters, for tests and logs. */
export interface PluginStats {
  allocations: number;
  allocateErrors: number;
  /** ListAndWatch streams opened so far. */
  streamsOpened: number;
}

/**
 * The `DevicePlugin` service of one resource. `start()` (re)binds the socket
 * with a fresh server (one is never reused once closed).
 */
export class ResourcePlugin {
  readonly resource: ResourceConfig;
  readonly resourceName: string;
  readonly endpoint: string;
  #deps: ResourcePluginDeps;
  #server: GrpcServer | undefined;
  #streams = new Set<ServerStream>();
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
    const msg = encodeListAndWatchResponse({ devices: this.devices() });
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
    const server = new GrpcServer(this.#methods());
    try {
      await server.listen(path);
    } catch (err) {
      server.close();
      throw err;
    }
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
    for (const s of [...this.#streams]) s.end();
    this.#streams.clear();
    this.#server?.close();
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
      this.#deps.onAllocated?.(this.resource, d);
      specs.push({ containerPath: d.tapPath, hostPath: d.tapPath, permissions: "rw" });
      entries.push(`${id}=${d.tapPath}`);
    }
    return { envs: { [envNameOf(this.resource.name)]: entries.join(",") }, devices: specs };
  }

  #methods(): Methods {
    const options: DevicePluginOptions = {
      preStartRequired: false,
      getPreferredAllocationAvailable: false,
    };
    return {
      [METHODS.getDevicePluginOptions]: {
        kind: "unary",
        handle: (req) => {
          wire(() => decodeIgnored(req));
          return encodeDevicePluginOptions(options);
        },
      },
      [METHODS.listAndWatch]: {
        kind: "stream",
        handle: (req, call) => {
          wire(() => decodeIgnored(req));
          this.#stats.streamsOpened++;
          this.#streams.add(call);
          call.onClose(() => this.#streams.delete(call));
          call.write(encodeListAndWatchResponse({ devices: this.devices() }));
        },
      },
      [METHODS.getPreferredAllocation]: {
        kind: "unary",
        handle: (req) => {
          // Devices are interchangeable: must-include first, then the first available.
          const { containerRequests } = wire(() => decodePreferredAllocationRequest(req));
          return encodePreferredAllocationResponse({
            containerResponses: containerRequests.map((r) => {
              // Linear, and bounded by our capacity whatever the request says.
              const size = Math.min(r.allocationSize, this.#ids.length);
              const ids = new Set(r.mustIncludeDeviceIDs.filter((id) => this.#idSet.has(id)));
              for (const id of r.availableDeviceIDs) {
                if (ids.size >= size) break;
                if (this.#idSet.has(id)) ids.add(id);
              }
              return { deviceIDs: [...ids] };
            }),
          });
        },
      },
      [METHODS.allocate]: {
        kind: "unary",
        handle: (req) => {
          const { containerRequests } = wire(() => decodeAllocateRequest(req));
          try {
            const containerResponses = containerRequests.map((r) =>
              this.allocateContainer(r.devicesIds)
            );
            this.#stats.allocations++;
            return encodeAllocateResponse({ containerResponses });
          } catch (err) {
            this.#stats.allocateErrors++;
            const msg = errorText(err);
            this.#deps.log.error(`${this.resourceName}: Allocate: ${msg}`);
            throw new GrpcError(
              err instanceof AllocateError ? Status[err.status] : Status.INTERNAL,
              msg,
            );
          }
        },
      },
      [METHODS.preStartContainer]: {
        kind: "unary",
        handle: (req) => {
          wire(() => decodeIgnored(req));
          return new Uint8Array();
        },
      },
    };
  }
}

/** Decode a request; malformed bytes are the caller's error (`INVALID_ARGUMENT`). */
function wire<T>(decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new GrpcError(Status.INVALID_ARGUMENT, `malformed request: ${errorText(err)}`);
  }
}
