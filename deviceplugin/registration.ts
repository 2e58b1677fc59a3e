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
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const { Registration } = loadApi();
  const client = new Registration(
    unixTarget(`${dir}/${KUBELET_SOCKET}`),
    grpc.credentials.createInsecure(),
    CLIENT_OPTIONS,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      client.Register!(
        {
          version: API_VERSION,
          endpoint: request.endpoint,
          resourceName: request.resourceName,
          options: { preStartRequired: false, getPreferredAllocationAvailable: false },
        },
        { deadline: Date.now() + (options.timeoutMs ?? 5000) },
        (err: grpc.ServiceError | null) => err ? reject(err) : resolve(),
      );
    });
  } finally {
    client.close();
  }
}
