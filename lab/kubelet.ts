/**
 * A kubelet stand-in for device-plugin tests, speaking the real wire
 * protocol: it serves `Registration` on `<dir>/kubelet.sock` and, like
 * kubelet's `Register` handler, dials the plugin's socket back and calls
 * `GetDevicePluginOptions` before answering; then it keeps a `ListAndWatch`
 * stream open and can call `Allocate`. A restart wipes the sockets in the
 * directory and re-creates `kubelet.sock`, as kubelet does.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import {
  type AllocateResponse,
  API_VERSION,
  type DevicePluginOptions,
  KUBELET_SOCKET,
  type ListAndWatchResponse,
  type RegisterRequest,
  RESOURCE_DOMAIN,
} from "../deviceplugin/mod.ts";
import { loadApi, loadPodResourcesApi } from "./_grpc_api.ts";
import { DP_V8_FLAGS } from "../cmd/_dp_exec.ts";
import type { DevicePluginRun } from "./cni.ts";

export type { DevicePluginRun };

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;

/** The dial-back client's methods, typed. */
interface DpClient {
  GetDevicePluginOptions(
    req: Record<string, never>,
    opts: grpc.CallOptions,
    cb: Callback<DevicePluginOptions>,
  ): void;
  ListAndWatch(req: Record<string, never>): grpc.ClientReadableStream<ListAndWatchResponse>;
  Allocate(
    req: { containerRequests: { devicesIds: string[] }[] },
    opts: grpc.CallOptions,
    cb: Callback<AllocateResponse>,
  ): void;
  close(): void;
}

const DP_MAIN = new URL("../cmd/deviceplugin.ts", import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;

/**
 * The command that runs `macvtap deviceplugin` from source, serving
 * `socketDir`, under its own V8 flags as the shipped launcher runs it: for
 * `Lab.spawn` in a node's namespace.
 */
export function devicePluginArgv(socketDir: string, run: DevicePluginRun = {}): string[] {
  return [
    "env",
    ...Object.entries(run.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Deno.execPath(),
    "run",
    "-A",
    "--config",
    DENO_JSON,
    `--v8-flags=${DP_V8_FLAGS}`,
    DP_MAIN,
    "--socket-dir",
    socketDir,
    "--log-level",
    run.logLevel ?? "warn",
    ...run.args ?? [],
  ];
}

/** One Register call as the stand-in saw it. */
export interface Registration {
  request: RegisterRequest;
  /** `performance.now()` when Register arrived. */
  at: number;
  /** The dial-back connection. */
  conn: PluginConn;
}

/** kubelet's client side of one registered plugin. */
export class PluginConn {
  readonly endpoint: string;
  readonly options: DevicePluginOptions;
  readonly updates: { at: number; msg: ListAndWatchResponse }[] = [];
  #client: DpClient;
  #streams: grpc.ClientReadableStream<ListAndWatchResponse>[] = [];
  #waiters: (() => void)[] = [];
  streamError: grpc.ServiceError | undefined;

  private constructor(endpoint: string, client: DpClient, options: DevicePluginOptions) {
    this.endpoint = endpoint;
    this.#client = client;
    this.options = options;
  }

  /** Dial `<dir>/<endpoint>` and call GetDevicePluginOptions, as kubelet's `connectClient`. */
  static async dial(dir: string, endpoint: string): Promise<PluginConn> {
    const { DevicePlugin } = loadApi();
    const client = new DevicePlugin(
      `unix://${dir}/${endpoint}`,
      grpc.credentials.createInsecure(),
      {
        "grpc.use_local_subchannel_pool": 1,
        // grpc-js's transparent retry can spin forever on a session Deno
        // has not yet reported closed (a kubelet restart): off.
        "grpc.enable_retries": 0,
      },
    ) as unknown as DpClient;
    const options = await new Promise<DevicePluginOptions>((resolve, reject) =>
      client.GetDevicePluginOptions(
        {},
        { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, res: DevicePluginOptions) =>
          err ? reject(err) : resolve(res),
      )
    );
    return new PluginConn(endpoint, client, options);
  }

  /** Open ListAndWatch and collect its messages. */
  watch(): void {
    const stream = this.#client.ListAndWatch({});
    this.#streams.push(stream);
    stream.on("data", (msg: ListAndWatchResponse) => {
      this.updates.push({ at: performance.now(), msg });
      for (const w of this.#waiters.splice(0)) w();
    });
    // A cancelled stream reports `1 CANCELLED` as an error; without a listener it would throw.
    stream.on("error", (e: grpc.ServiceError) => {
      this.streamError = e;
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Cancel the ListAndWatch streams (kubelet going away). */
  cancelWatch(): void {
    for (const s of this.#streams.splice(0)) s.cancel();
  }

  /** The newest ListAndWatch message. */
  get latest(): ListAndWatchResponse | undefined {
    return this.updates.at(-1)?.msg;
  }

  /** Wait until the newest message satisfies `pred`. */
  async waitFor(
    pred: (msg: ListAndWatchResponse) => boolean,
    timeoutMs = 5000,
  ): Promise<ListAndWatchResponse> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const msg = this.latest;
      if (msg && pred(msg)) return msg;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `${this.endpoint}: ListAndWatch condition not met within ${timeoutMs} ms; latest: ${
            JSON.stringify(msg?.devices.slice(0, 2))
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Allocate: one inner array per container. */
  allocate(containers: string[][]): Promise<AllocateResponse> {
    return new Promise((resolve, reject) =>
      this.#client.Allocate(
        { containerRequests: containers.map((devicesIds) => ({ devicesIds })) },
        { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, res: AllocateResponse) => err ? reject(err) : resolve(res),
      )
    );
  }

  close(): void {
    this.cancelWatch();
    this.#client.close();
  }
}

/** A pod, as kubelet and `CNI_ARGS` name it. */
export interface PodRef {
  namespace: string;
  name: string;
}

/** One container's devices of one resource, as kubelet admitted them. */
interface Admitted {
  pod: PodRef;
  container: string;
  resourceName: string;
  deviceIds: string[];
}

/** Options of {@linkcode FakeKubelet.servePodResources}. */
export interface PodResourcesOptions {
  /**
   * Serve `Get` (default true). Off, it answers `UNIMPLEMENTED`, as a kubelet
   * before 1.34 with the `KubeletPodResourcesGet` gate off does.
   */
  get?: boolean;
}

/** The kubelet stand-in. */
export class FakeKubelet implements AsyncDisposable {
  readonly dir: string;
  readonly registrations: Registration[] = [];
  /** Devices admitted to pods (`admit`), what the PodResources API lists. */
  readonly #admitted: Admitted[] = [];
  #podResources: grpc.Server | undefined;
  #podResourcesPath: string | undefined;
  /** `performance.now()` when the current kubelet.sock started listening. */
  listeningSince = 0;
  #server: grpc.Server | undefined;
  #waiters: (() => void)[] = [];
  #abandoned: PluginConn[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Wipe sockets in `dir` (as kubelet's CleanupPluginDirectory) and serve Registration. */
  static async start(dir: string): Promise<FakeKubelet> {
    const k = new FakeKubelet(dir);
    await k.#serve();
    return k;
  }

  async #serve(options: { onlyKubeletSock?: boolean } = {}): Promise<void> {
    for await (const e of Deno.readDir(this.dir)) {
      if (options.onlyKubeletSock && e.name !== KUBELET_SOCKET) continue;
      if (e.name !== "kubelet_internal_checkpoint" && !e.isDirectory) {
        await Deno.remove(`${this.dir}/${e.name}`).catch(() => {});
      }
    }
    const server = new grpc.Server();
    server.addService(loadApi().Registration.service, {
      Register: (
        call: grpc.ServerUnaryCall<RegisterRequest, Record<string, never>>,
        cb: grpc.sendUnaryData<Record<string, never>>,
      ) => {
        const req = call.request;
        const at = performance.now();
        if (req.version !== API_VERSION) {
          cb({
            code: grpc.status.INVALID_ARGUMENT,
            details: `unsupported version "${req.version}"`,
          });
          return;
        }
        if (!req.resourceName.startsWith(`${RESOURCE_DOMAIN}/`)) {
          cb({
            code: grpc.status.INVALID_ARGUMENT,
            details: `invalid resource "${req.resourceName}"`,
          });
          return;
        }
        PluginConn.dial(this.dir, req.endpoint).then((conn) => {
          conn.watch();
          // Older connections of the same endpoint are replaced, as in kubelet.
          for (const r of this.registrations) {
            if (r.request.endpoint === req.endpoint && r.conn !== conn) r.conn.close();
          }
          this.registrations.push({ request: req, at, conn });
          for (const w of this.#waiters.splice(0)) w();
          cb(null, {});
        }, (err) => cb({ code: grpc.status.UNKNOWN, details: `dial back: ${err}` }));
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(
        `unix://${this.dir}/${KUBELET_SOCKET}`,
        grpc.ServerCredentials.createInsecure(),
        (err) => err ? reject(err) : resolve(),
      )
    );
    this.#server = server;
    this.listeningSince = performance.now();
  }

  /** Wait for a Register of `resourceName` arriving after `since` (performance.now()). */
  async waitForRegistration(
    resourceName: string,
    options: { since?: number; timeoutMs?: number } = {},
  ): Promise<Registration> {
    const since = options.since ?? 0;
    const deadline = performance.now() + (options.timeoutMs ?? 10_000);
    while (true) {
      const r = this.registrations.find((r) =>
        r.request.resourceName === resourceName && r.at >= since
      );
      if (r) return r;
      const left = deadline - performance.now();
      if (left <= 0) {
        const seen = this.registrations.filter((r) => r.request.resourceName === resourceName)
          .map((r) => (r.at - since).toFixed(1));
        throw new Error(
          `no Register of ${resourceName} within ${options.timeoutMs ?? 10_000} ms; ` +
            `Registers seen at (ms after since): [${seen.join(" ")}]`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * Admit `pod` with the device IDs `ids` of `resourceName` (one inner array
   * per container): kubelet's pod admission, which calls the registered
   * plugin's Allocate and, once it succeeded, lists the devices for the pod
   * in the PodResources API.
   */
  async admit(pod: PodRef, resourceName: string, ids: string[][]): Promise<AllocateResponse> {
    const reg = this.registrations.findLast((r) => r.request.resourceName === resourceName);
    if (!reg) throw new Error(`no plugin registered ${resourceName}`);
    const res = await reg.conn.allocate(ids);
    this.assign(pod, resourceName, ids);
    return res;
  }

  /**
   * List `ids` (one inner array per container) for `pod` in the PodResources
   * API without an Allocate: what kubelet shows after a restart, from its
   * checkpoint, for devices a plugin allocated before.
   */
  assign(pod: PodRef, resourceName: string, ids: string[][]): void {
    ids.forEach((deviceIds, i) =>
      this.#admitted.push({ pod, container: `c${i}`, resourceName, deviceIds })
    );
  }

  /** The pod is gone: its devices are no longer listed. */
  evict(pod: PodRef): void {
    for (let i = this.#admitted.length - 1; i >= 0; i--) {
      const a = this.#admitted[i]!;
      if (a.pod.namespace === pod.namespace && a.pod.name === pod.name) {
        this.#admitted.splice(i, 1);
      }
    }
  }

  /** `PodResources` of every admitted pod, in the API's JSON shape. */
  #listed(): unknown[] {
    const pods = new Map<string, { name: string; namespace: string; containers: unknown[] }>();
    for (const a of this.#admitted) {
      const key = `${a.pod.namespace}/${a.pod.name}`;
      const pod = pods.get(key) ??
        { name: a.pod.name, namespace: a.pod.namespace, containers: [] };
      pods.set(key, pod);
      pod.containers.push({
        name: a.container,
        devices: [{
          resourceName: a.resourceName,
          deviceIds: a.deviceIds,
          topology: { nodes: [{ ID: "0" }] },
        }],
        cpuIds: ["0", "1"],
      });
    }
    return [...pods.values()];
  }

  /**
   * Serve kubelet's PodResources API v1 (`List`, and `Get` unless
   * `options.get` is false) on the unix socket `path`, from what `admit` admitted.
   */
  async servePodResources(path: string, options: PodResourcesOptions = {}): Promise<void> {
    const server = new grpc.Server();
    const handlers: grpc.UntypedServiceImplementation = {
      List: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { podResources: this.#listed() }),
    };
    if (options.get !== false) {
      handlers.Get = (
        call: grpc.ServerUnaryCall<{ podName: string; podNamespace: string }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const { podName, podNamespace } = call.request;
        const pod = this.#listed().find((p) =>
          (p as PodRef).name === podName && (p as PodRef).namespace === podNamespace
        );
        // kubelet answers an unknown pod with a plain error (code UNKNOWN).
        if (!pod) {
          cb({
            code: grpc.status.UNKNOWN,
            details: `pod ${podName} in namespace ${podNamespace} not found`,
          });
        } else cb(null, { podResources: pod });
      };
    }
    server.addService(loadPodResourcesApi().service, handlers);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(
        `unix://${path}`,
        grpc.ServerCredentials.createInsecure(),
        (err) => err ? reject(err) : resolve(),
      )
    );
    this.#podResources = server;
    this.#podResourcesPath = path;
  }

  /**
   * The CNI environment of an ADD for `pod` on this kubelet's node: the pod
   * in `CNI_ARGS` (as the runtime sets it) and the PodResources socket that
   * proves its devices (`servePodResources` first).
   */
  cniEnvFor(pod: PodRef): { args: string; extra: { MACVTAP_PODRESOURCES_SOCKET: string } } {
    if (!this.#podResourcesPath) throw new Error("servePodResources() first");
    return {
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
      extra: { MACVTAP_PODRESOURCES_SOCKET: this.#podResourcesPath },
    };
  }

  /**
   * Stop (as a kubelet crash): kubelet.sock left behind, connections to the
   * plugins abandoned, not closed: a crashed kubelet sends no RST_STREAM and
   * GOAWAY, and a graceful close here would make the plugin receive exactly
   * the GOAWAY that crashes Deno 2.9's nghttp2 binding (denoland/deno#36788).
   * They are closed on dispose, once the plugin side is gone.
   */
  stop(): void {
    this.#abandoned.push(...this.registrations.map((r) => r.conn));
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  /**
   * Restart: stop, wipe the sockets, serve on a new kubelet.sock. With
   * `onlyKubeletSock`, only kubelet.sock is replaced and the plugins'
   * sockets stay (a kubelet that does not clean the directory).
   */
  async restart(options: { onlyKubeletSock?: boolean } = {}): Promise<void> {
    this.stop();
    await this.#serve(options);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    this.#podResources?.forceShutdown();
    for (const conn of new Set(this.#abandoned.splice(0))) conn.close();
    return Promise.resolve();
  }
}
