/**
 * kubelet's PodResources API v1, as the CNI plugin asks it: which devices
 * did kubelet allocate to this pod? It is the source Multus itself reads
 * device IDs from, and the proof the plugin wants before it imports a
 * device named by `deviceID` (a NetworkAttachmentDefinition can name any ID;
 * `CNI_ARGS` names the pod, and a NAD cannot set it).
 *
 * One unary call on the kubelet's root-only unix socket: `Get` for the pod
 * (beta, on by default from Kubernetes 1.34), or `List` where `Get` is not
 * served. The call is `_h2c.ts`: HTTP/2 written on `Deno.connect`, no
 * `node:` module (importing `node:http2` would cost every such ADD 44–104 ms).
 *
 * @module
 */

import { type PodResources, PODRESOURCES_METHODS } from "./_api.ts";

export { RESOURCE_DOMAIN } from "./_api.ts";
import { h2cUnary } from "./_h2c.ts";
import { GrpcError, Status } from "./_grpc_wire.ts";
import { decodePodResourcesResponse, encodeGetPodResourcesRequest } from "./_protowire.ts";

/** Where kubelet serves the PodResources API. */
export const PODRESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock";

/** A pod, as `CNI_ARGS` names it (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`). */
export interface PodRef {
  namespace: string;
  name: string;
}

/** Options of {@linkcode podDevices}. */
export interface PodDevicesOptions {
  /** Deadline of each call (default 3000 ms). */
  timeoutMs?: number;
  /** Largest `List` answer read (default 16 MiB: a full node's pods with their CPU IDs fit). */
  maxResponseBytes?: number;
}

/**
 * The device IDs kubelet allocated to `pod`, by resource name (every
 * container's), or `undefined` when kubelet does not know the pod.
 *
 * `Get` first; any answer but OK or a transport failure (kubelet's
 * `UNIMPLEMENTED` where the gate is off, an error for a pod it does not
 * list) falls back to `List`, which every kubelet since 1.20 serves.
 *
 * @throws {GrpcError} `UNAVAILABLE` when nothing answers on `socket`,
 *   `DEADLINE_EXCEEDED`, or `List`'s own error; `INTERNAL` for an answer
 *   that is not the message it should be.
 */
export async function podDevices(
  socket: string,
  pod: PodRef,
  options: PodDevicesOptions = {},
): Promise<Map<string, Set<string>> | undefined> {
  const timeoutMs = options.timeoutMs ?? 3000;
  let pods: PodResources[];
  try {
    pods = decode(
      await h2cUnary(socket, PODRESOURCES_METHODS.get, encodeGetPodResourcesRequest(pod), {
        timeoutMs,
      }),
    );
  } catch (err) {
    if (err instanceof GrpcError && transportFailure(err.code)) throw err;
    pods = decode(
      await h2cUnary(socket, PODRESOURCES_METHODS.list, new Uint8Array(), {
        timeoutMs,
        maxResponseBytes: options.maxResponseBytes ?? 16 * 1024 * 1024,
      }),
    );
  }
  const found = pods.find((p) => p.namespace === pod.namespace && p.name === pod.name);
  if (!found) return undefined;
  const byResource = new Map<string, Set<string>>();
  for (const c of found.containers) {
    for (const d of c.devices) {
      const ids = byResource.get(d.resourceName) ?? new Set<string>();
      for (const id of d.deviceIds) ids.add(id);
      byResource.set(d.resourceName, ids);
    }
  }
  return byResource;
}

/** Statuses that say kubelet was not reached or did not answer in time (no fallback helps). */
function transportFailure(code: number): boolean {
  return code === Status.UNAVAILABLE || code === Status.DEADLINE_EXCEEDED ||
    code === Status.CANCELLED;
}

function decode(bytes: Uint8Array): PodResources[] {
  try {
    return decodePodResourcesResponse(bytes);
  } catch (err) {
    throw new GrpcError(Status.INTERNAL, `kubelet's answer is not a PodResources message: ${err}`);
  }
}
