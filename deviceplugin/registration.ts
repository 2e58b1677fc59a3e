/**
 * Register a resource with kubelet (`/v1beta1.Registration/Register` on
 * `kubelet.sock`).
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { API_VERSION, CLIENT_OPTIONS, KUBELET_SOCKET, loadApi, unixTarget } from "./_api.ts";

/**
 * Call Register once. Kubelet answers only after it dialled back our socket
 * and called GetDevicePluginOptions, so the server must already be serving.
 *
 * @param dir the device-plugin directory holding `kubelet.sock`
 * @param request endpoint (our socket's file name) and resource name
 * @param options `timeoutMs` (default 5000); `signal` cancels the call
 * @throws the gRPC `ServiceError` (e.g. `14 UNAVAILABLE` when kubelet is not listening).
 * @example Usage
 * ```ts ignore
 * await registerWithKubelet("/var/lib/kubelet/device-plugins", {
 *   endpoint: "macvtap.network.kubevirt.io_lan",
 *   resourceName: "macvtap.network.kubevirt.io/lan",
 * });
 * ```
 */
export async function registerWithKubelet(
  dir: string,
  request: { endpoint: string; resourceName: string },
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const { Registration } = loadApi();
  const client = new Registration(
    unixTarget(`${dir}/${KUBELET_SOCKET}`),
    grpc.credentials.createInsecure(),
    CLIENT_OPTIONS,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.Register!(
        {
          version: API_VERSION,
          endpoint: request.endpoint,
          resourceName: request.resourceName,
          options: { preStartRequired: false, getPreferredAllocationAvailable: false },
        },
        { deadline: Date.now() + (options.timeoutMs ?? 5000) },
        (err: grpc.ServiceError | null) => err ? reject(err) : resolve(),
      ) as grpc.ClientUnaryCall;
      // A call to a kubelet that has gone away can hang until its deadline.
      if (options.signal?.aborted) call.cancel();
      options.signal?.addEventListener("abort", () => call.cancel(), { once: true });
    });
  } finally {
    client.close();
  }
}
