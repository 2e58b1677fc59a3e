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
import {
  GrpcError,
  GrpcServer,
  type GrpcServerOptions,
  MAX_RESPONSE_BYTES,
  type Methods,
  type ServerStream,
  Status,
} from "./_grpc.ts";
import {
  decodeAllocateRequest,
  decodeIgnored,
  decodePreferredAllocationRequest,
  encodeAllocateResponse,
  encodeDevicePluginOptions,
  encodeListAndWatchResponse,
  encodePreferredAllocationResponse,
  type IdLimits,
  WireLimitError,
} from "./_protowire.ts";
import {
  type AllocatedDevice,
  allocateDevice,
  AllocateError,
  TAP_INDEX_BASE,
  TAP_INDEX_SPAN,
  type TapNodeFs,
} from "./allocate.ts";
import { UndoStack } from "../internal/_undo.ts";
import type { ResourceConfig } from "./config.ts";
import type { LinkBackend } from "./links.ts";
import { errorText } from "../internal/_error_text.ts";
import { RESOURCE_DOMAIN } from "./_api.ts";

export { RESOURCE_DOMAIN } from "./_api.ts";

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
  /** Connection bounds of the gRPC server (tests shorten the timeouts). */
  server?: GrpcServerOptions;
  /** Called with each device Allocate made, before kubelet gets the answer (the MAC guard). */
  onAllocated?: (resource: ResourceConfig, device: AllocatedDevice) => void;
}

/** Request bytes of a method whose request carries nothing the plugin reads (`Empty`, PreStartContainer). */
const SMALL_REQUEST_BYTES = 4096;
/**
 * ListAndWatch streams one resource serves at once: kubelet holds one (two
 * for a moment across a restart). Each gets the whole list on every change,
 * buffered while its peer does not read; more are refused.
 */
export const MAX_WATCHERS = 8;
/**
 * Allocates one resource holds at once (one running, the rest waiting):
 * kubelet calls one at a time. More are refused before they wait.
 */
export const MAX_PENDING_ALLOCATES = 8;
/** Device IDs kubelet accepts are at most this long. */
const MAX_DEVICE_ID_BYTES = 63;
/** The largest `/dev/tapN` index, for the longest path an answer can hold. */
const MAX_TAP_INDEX = TAP_INDEX_BASE + TAP_INDEX_SPAN - 1;

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
  /** `<name>-`: every device ID starts with it. */
  #idPrefix: string;
  #socketIno: number | null = null;
  /** Allocates run one at a time: each checks and creates its devices alone. */
  #allocating: Promise<unknown> = Promise.resolve();
  /** Allocates running or waiting. */
  #pending = 0;
  #limits: IdLimits;
  #stats: PluginStats = { allocations: 0, allocateErrors: 0, streamsOpened: 0 };

  constructor(resource: ResourceConfig, deps: ResourcePluginDeps) {
    this.resource = resource;
    this.resourceName = resourceNameOf(resource.name);
    this.endpoint = endpointOf(resource.name);
    this.#deps = deps;
    this.#idPrefix = `${resource.name}-`;
    this.#limits = {
      maxContainers: resource.capacity,
      maxIds: resource.capacity,
      // An ID no device of ours has is NOT_FOUND; only one longer than any
      // device ID kubelet takes (63) or than ours is over the bound.
      maxIdBytes: Math.max(
        MAX_DEVICE_ID_BYTES,
        new TextEncoder().encode(deviceIdOf(resource.name, resource.capacity - 1)).length,
      ),
    };
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
    return [...this.#devices()];
  }

  /**
   * The devices one by one: the list is never kept (300,000 device IDs
   * held as strings cost ~20 MiB of the plugin's 64 MiB).
   */
  *#devices(): Generator<Device> {
    const health = this.#healthy ? HEALTHY : UNHEALTHY;
    for (let n = 0; n < this.resource.capacity; n++) {
      yield { ID: deviceIdOf(this.resource.name, n), health };
    }
  }

  /** Whether `id` is one of this resource's devices: `<name>-<n>`, n in decimal without leading zeros, below the capacity. */
  hasDevice(id: string): boolean {
    if (!id.startsWith(this.#idPrefix)) return false;
    const n = id.slice(this.#idPrefix.length);
    return /^(0|[1-9][0-9]{0,8})$/.test(n) && Number(n) < this.resource.capacity;
  }

  /** Set the health of all devices; streams get the full list when it changed. */
  setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.#deps.log.info(`${this.resourceName}: devices ${healthy ? HEALTHY : UNHEALTHY}`);
    const msg = encodeListAndWatchResponse({ devices: this.#devices() });
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
    const server = new GrpcServer(this.#methods(), this.#deps.server);
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

  /**
   * Check one Allocate before anything is created: every ID of every
   * container request known to this resource, none twice (a device goes to
   * one container), and the answer small enough to be sent at once.
   *
   * @throws {AllocateError} `NOT_FOUND` for an unknown ID, `INVALID_ARGUMENT`
   *   for a repeated one, `RESOURCE_EXHAUSTED` when the answer would not fit.
   */
  checkAllocate(containers: readonly (readonly string[])[], maxResponseBytes: number): void {
    const seen = new Set<string>();
    for (const ids of containers) {
      for (const id of ids) {
        if (!this.hasDevice(id)) {
          throw new AllocateError(
            "NOT_FOUND",
            `Unknown device "${shorten(id)}" for ${this.resourceName}; nothing was allocated`,
          );
        }
        if (seen.has(id)) {
          throw new AllocateError(
            "INVALID_ARGUMENT",
            `Device "${id}" is requested twice; nothing was allocated`,
          );
        }
        seen.add(id);
      }
    }
    // The longest answer these IDs can get: every /dev/tapN at the largest index.
    const devDir = this.#deps.devDir ?? "/dev";
    const worst = encodeAllocateResponse({
      containerResponses: containers.map((ids) =>
        this.#containerResponse(
          ids.map((id) => ({ id, tapPath: `${devDir}/tap${MAX_TAP_INDEX}` })),
        )
      ),
    }).length;
    if (worst > maxResponseBytes) {
      throw new AllocateError(
        "RESOURCE_EXHAUSTED",
        `The answer for ${seen.size} devices could take ${worst} bytes, more than the ` +
          `${maxResponseBytes} one call can carry; ask for fewer devices per call`,
      );
    }
  }

  /**
   * Allocate: check the whole request ({@linkcode checkAllocate}), then create
   * every device; if one fails, or `signal` aborts (the peer went away before
   * its answer), the ones this call created are deleted and their
   * `/dev/tapN` put back. Calls run one at a time, and the event loop runs
   * between two devices.
   */
  allocate(
    containers: readonly (readonly string[])[],
    maxResponseBytes = Infinity,
    signal?: AbortSignal,
  ): Promise<ContainerAllocateResponse[]> {
    try {
      // Checked before waiting too: a request that cannot succeed never queues.
      this.checkAllocate(containers, maxResponseBytes);
      if (this.#pending >= MAX_PENDING_ALLOCATES) {
        throw new AllocateError(
          "RESOURCE_EXHAUSTED",
          `${MAX_PENDING_ALLOCATES} Allocates of ${this.resourceName} are in progress already; ` +
            "nothing was allocated",
        );
      }
    } catch (err) {
      return Promise.reject(err);
    }
    this.#pending++;
    const cancelled = () => {
      if (signal?.aborted) {
        throw new AllocateError(
          "CANCELLED",
          "The caller went away before the answer; nothing was allocated",
        );
      }
    };
    const run = this.#allocating.then(async () => {
      cancelled();
      this.checkAllocate(containers, maxResponseBytes);
      using undo = new UndoStack();
      const out: ContainerAllocateResponse[] = [];
      const made: AllocatedDevice[] = [];
      let created = 0;
      for (const ids of containers) {
        const devices: AllocatedDevice[] = [];
        for (const id of ids) {
          // Other calls are answered between two devices (not before the first).
          if (created++ > 0) await new Promise((r) => setTimeout(r, 0));
          cancelled();
          const d = allocateDevice(this.resource, id, {
            backend: this.#deps.backend,
            fs: this.#deps.tapFs,
            undo,
            ...(this.#deps.devDir ? { devDir: this.#deps.devDir } : {}),
          });
          this.#deps.log.debug(
            `${this.resourceName}: ${id} → ${d.ifname} ${d.tapPath} (${d.devNumber})`,
          );
          devices.push(d);
        }
        made.push(...devices);
        out.push(this.#containerResponse(devices));
      }
      cancelled();
      undo.disarm();
      // Only devices kubelet will be told about (the MAC guard's).
      for (const d of made) this.#deps.onAllocated?.(this.resource, d);
      return out;
    });
    this.#allocating = run.catch(() => {}).finally(() => this.#pending--);
    return run;
  }

  /** One container's answer: one DeviceSpec per device and the env var. */
  #containerResponse(
    devices: readonly { id: string; tapPath: string }[],
  ): ContainerAllocateResponse {
    return {
      envs: {
        [envNameOf(this.resource.name)]: devices.map((d) => `${d.id}=${d.tapPath}`).join(","),
      },
      devices: devices.map((d) => ({
        containerPath: d.tapPath,
        hostPath: d.tapPath,
        permissions: "rw",
      })),
    };
  }

  #methods(): Methods {
    const options: DevicePluginOptions = {
      preStartRequired: false,
      getPreferredAllocationAvailable: false,
    };
    // Requests are bounded by what this resource has. An Allocate holds at
    // most every device once (each ID in its own container request: tag,
    // length, ID, and the container's tag and length); a
    // GetPreferredAllocation every device as available and as must-include.
    // Twice that, and room for fields of a newer API, is the byte bound. An
    // Allocate's answer is larger than its request (each ID comes back with
    // two /dev/tapN paths), and no answer exceeds MAX_RESPONSE_BYTES: no
    // larger Allocate request could succeed.
    const { capacity } = this.resource;
    const perId = this.#limits.maxIdBytes + 8;
    const allocateLimit = Math.min(2 * capacity * perId, MAX_RESPONSE_BYTES) +
      SMALL_REQUEST_BYTES;
    const preferredIds: IdLimits = { ...this.#limits, maxIds: 2 * capacity };
    const preferredLimit = 2 * (2 * capacity * perId + capacity * 16) + SMALL_REQUEST_BYTES;
    return {
      [METHODS.getDevicePluginOptions]: {
        kind: "unary",
        maxRequestBytes: SMALL_REQUEST_BYTES,
        handle: (req) => {
          wire(() => decodeIgnored(req));
          return encodeDevicePluginOptions(options);
        },
      },
      [METHODS.listAndWatch]: {
        kind: "stream",
        maxRequestBytes: SMALL_REQUEST_BYTES,
        handle: (req, call) => {
          wire(() => decodeIgnored(req));
          if (this.#streams.size >= MAX_WATCHERS) {
            throw new GrpcError(
              Status.RESOURCE_EXHAUSTED,
              `${MAX_WATCHERS} ListAndWatch streams of ${this.resourceName} are open already`,
            );
          }
          this.#stats.streamsOpened++;
          this.#streams.add(call);
          call.onClose(() => this.#streams.delete(call));
          call.write(encodeListAndWatchResponse({ devices: this.#devices() }));
        },
      },
      [METHODS.getPreferredAllocation]: {
        kind: "unary",
        maxRequestBytes: preferredLimit,
        handle: (req) => {
          // Devices are interchangeable: must-include first, then the first available.
          const { containerRequests } = wire(() =>
            decodePreferredAllocationRequest(req, preferredIds)
          );
          return encodePreferredAllocationResponse({
            containerResponses: containerRequests.map((r) => {
              // Linear, and bounded by our capacity whatever the request says.
              const size = Math.min(r.allocationSize, this.resource.capacity);
              const ids = new Set(r.mustIncludeDeviceIDs.filter((id) => this.hasDevice(id)));
              for (const id of r.availableDeviceIDs) {
                if (ids.size >= size) break;
                if (this.hasDevice(id)) ids.add(id);
              }
              return { deviceIDs: [...ids] };
            }),
          });
        },
      },
      [METHODS.allocate]: {
        kind: "unary",
        maxRequestBytes: allocateLimit,
        handle: async (req, call) => {
          try {
            const { containerRequests } = wire(() => decodeAllocateRequest(req, this.#limits));
            const containerResponses = await this.allocate(
              containerRequests.map((r) => r.devicesIds),
              call.maxResponseBytes,
              call.signal,
            );
            this.#stats.allocations++;
            return encodeAllocateResponse({ containerResponses });
          } catch (err) {
            this.#stats.allocateErrors++;
            const msg = errorText(err);
            this.#deps.log.error(`${this.resourceName}: Allocate: ${msg}`);
            throw err instanceof GrpcError ? err : new GrpcError(
              err instanceof AllocateError ? Status[err.status] : Status.INTERNAL,
              msg,
            );
          }
        },
      },
      [METHODS.preStartContainer]: {
        kind: "unary",
        maxRequestBytes: SMALL_REQUEST_BYTES,
        handle: (req) => {
          wire(() => decodeIgnored(req));
          return new Uint8Array();
        },
      },
    };
  }
}

/**
 * Decode a request; malformed bytes are the caller's error
 * (`INVALID_ARGUMENT`), and so is a request over this resource's bounds.
 */
function wire<T>(decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof WireLimitError) {
      throw new GrpcError(
        Status.INVALID_ARGUMENT,
        `request over this resource's bounds: ${err.message}; nothing was allocated`,
      );
    }
    throw new GrpcError(Status.INVALID_ARGUMENT, `malformed request: ${errorText(err)}`);
  }
}

/** An ID as quoted in a message: at most 80 characters. */
function shorten(id: string): string {
  return id.length > 80 ? `${id.slice(0, 77)}...` : id;
}
