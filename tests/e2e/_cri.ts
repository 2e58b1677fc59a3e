/**
 * A small CRI v1 client (the RuntimeService calls a kubelet makes around pod
 * networking) over grpc-js, for containerd's CRI plugin.
 *
 * The proto below is the subset of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`
 * these calls need, with the upstream field numbers; unknown fields in the
 * answers are skipped by protobuf, so a subset is enough.
 *
 * @module
 */

// Pinned inline on purpose: the e2e suite asks nothing of deno.json's imports.
// deno-lint-ignore no-import-prefix
import grpc from "npm:@grpc/grpc-js@1.14.7";
// deno-lint-ignore no-import-prefix
import * as protoLoader from "npm:@grpc/proto-loader@0.8.1";

/** Subset of the CRI v1 API (runtime.v1). */
export const CRI_PROTO = `
syntax = "proto3";
package runtime.v1;

service RuntimeService {
  rpc Version(VersionRequest) returns (VersionResponse) {}
  rpc RunPodSandbox(RunPodSandboxRequest) returns (RunPodSandboxResponse) {}
  rpc StopPodSandbox(StopPodSandboxRequest) returns (StopPodSandboxResponse) {}
  rpc RemovePodSandbox(RemovePodSandboxRequest) returns (RemovePodSandboxResponse) {}
  rpc PodSandboxStatus(PodSandboxStatusRequest) returns (PodSandboxStatusResponse) {}
  rpc ListPodSandbox(ListPodSandboxRequest) returns (ListPodSandboxResponse) {}
  rpc Status(StatusRequest) returns (StatusResponse) {}
}

message VersionRequest { string version = 1; }
message VersionResponse {
  string version = 1;
  string runtime_name = 2;
  string runtime_version = 3;
  string runtime_api_version = 4;
}

message PodSandboxMetadata {
  string name = 1;
  string uid = 2;
  string namespace = 3;
  uint32 attempt = 4;
}
message LinuxPodSandboxConfig {
  string cgroup_parent = 1;
  map<string, string> sysctls = 3;
}
message PodSandboxConfig {
  PodSandboxMetadata metadata = 1;
  string hostname = 2;
  string log_directory = 3;
  map<string, string> labels = 6;
  map<string, string> annotations = 7;
  LinuxPodSandboxConfig linux = 8;
}
message RunPodSandboxRequest {
  PodSandboxConfig config = 1;
  string runtime_handler = 2;
}
message RunPodSandboxResponse { string pod_sandbox_id = 1; }
message StopPodSandboxRequest { string pod_sandbox_id = 1; }
message StopPodSandboxResponse {}
message RemovePodSandboxRequest { string pod_sandbox_id = 1; }
message RemovePodSandboxResponse {}

message PodSandboxStatusRequest {
  string pod_sandbox_id = 1;
  bool verbose = 2;
}
message PodIP { string ip = 1; }
message PodSandboxNetworkStatus {
  string ip = 1;
  repeated PodIP additional_ips = 2;
}
enum PodSandboxState {
  SANDBOX_READY = 0;
  SANDBOX_NOTREADY = 1;
}
message PodSandboxStatus {
  string id = 1;
  PodSandboxMetadata metadata = 2;
  PodSandboxState state = 3;
  int64 created_at = 4;
  PodSandboxNetworkStatus network = 5;
}
message PodSandboxStatusResponse {
  PodSandboxStatus status = 1;
  map<string, string> info = 2;
}

message ListPodSandboxRequest {}
message PodSandbox {
  string id = 1;
  PodSandboxMetadata metadata = 2;
  PodSandboxState state = 3;
}
message ListPodSandboxResponse { repeated PodSandbox items = 1; }

message StatusRequest { bool verbose = 1; }
message RuntimeCondition {
  string type = 1;
  bool status = 2;
  string reason = 3;
  string message = 4;
}
message RuntimeStatus { repeated RuntimeCondition conditions = 1; }
message StatusResponse {
  RuntimeStatus status = 1;
  map<string, string> info = 2;
}
`;

/** Sandbox status as decoded (keepCase, enums as strings). */
export interface SandboxStatus {
  status: {
    id: string;
    state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
    network: { ip: string; additional_ips: { ip: string }[] } | null;
  };
  info: Record<string, string>;
}

/** Runtime condition from `Status`. */
export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type RawClient =
  & grpc.Client
  & Record<string, (req: unknown, opts: grpc.CallOptions, cb: Callback) => void>;

/** RuntimeService client on a unix socket. */
export class CriClient implements Disposable {
  readonly #client: RawClient;

  /**
   * @param sock containerd's socket path
   * @param protoDir a writable dir for the proto file proto-loader reads
   */
  constructor(sock: string, protoDir: string) {
    const path = `${protoDir}/cri-subset.proto`;
    Deno.writeTextFileSync(path, CRI_PROTO);
    const def = protoLoader.loadSync(path, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: {
        v1: { RuntimeService: new (addr: string, creds: grpc.ChannelCredentials) => RawClient };
      };
    };
    this.#client = new pkg.runtime.v1.RuntimeService(
      `unix://${sock}`,
      grpc.credentials.createInsecure(),
    );
  }

  /** One unary call with a deadline. */
  call<T>(method: string, req: unknown, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = this.#client[method];
      if (typeof fn !== "function") throw new Error(`no CRI method ${method}`);
      fn.call(this.#client, req, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`, { cause: err }));
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ runtime_name: string; runtime_version: string }> {
    return this.call("Version", {});
  }

  async conditions(): Promise<RuntimeCondition[]> {
    const r = await this.call<{ status: { conditions: RuntimeCondition[] } }>("Status", {
      verbose: false,
    });
    return r.status.conditions;
  }

  async runPodSandbox(cfg: {
    name: string;
    uid: string;
    namespace: string;
    logDirectory: string;
  }): Promise<string> {
    const r = await this.call<{ pod_sandbox_id: string }>("RunPodSandbox", {
      config: {
        metadata: { name: cfg.name, uid: cfg.uid, namespace: cfg.namespace, attempt: 0 },
        hostname: cfg.name,
        log_directory: cfg.logDirectory,
        linux: {},
      },
    });
    return r.pod_sandbox_id;
  }

  podSandboxStatus(id: string): Promise<SandboxStatus> {
    return this.call("PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call("StopPodSandbox", { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call("RemovePodSandbox", { pod_sandbox_id: id });
  }

  async listPodSandbox(): Promise<{ id: string; state: string }[]> {
    const r = await this.call<{ items: { id: string; state: string }[] }>("ListPodSandbox", {});
    return r.items;
  }

  close(): void {
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The sandbox's network namespace path from verbose status info (containerd 1.6). */
export function sandboxNetns(st: SandboxStatus): string | undefined {
  const info = st.info["info"];
  if (!info) return undefined;
  const parsed = JSON.parse(info) as {
    runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
  };
  return parsed.runtimeSpec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
}
