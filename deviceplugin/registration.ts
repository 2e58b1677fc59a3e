/**
 * Register a resource with kubelet (`/v1beta1.Registration/Register` on
 * `kubelet.sock`).
 *
 * @module
 */

import { API_VERSION, KUBELET_SOCKET, METHODS } from "./_api.ts";
import { unaryCall } from "./_grpc.ts";
import { encodeRegisterRequest } from "./_protowire.ts";

/**
 * Call Register once. Kubelet answers only after it dialled back our socket
 * and called GetDevicePluginOptions, so the server must already be serving.
 *
 * @param dir the device-plugin directory holding `kubelet.sock`
 * @param request endpoint (our socket's file name) and resource name
 * @param options `timeoutMs` (default 5000); `signal` cancels the call
 * @throws {GrpcError} the call's status (`14 UNAVAILABLE` when kubelet is not listening).
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
  await unaryCall(
    `${dir}/${KUBELET_SOCKET}`,
    METHODS.register,
    encodeRegisterRequest({
      version: API_VERSION,
      endpoint: request.endpoint,
      resourceName: request.resourceName,
      options: { preStartRequired: false, getPreferredAllocationAvailable: false },
    }),
    { timeoutMs: options.timeoutMs ?? 5000, ...(options.signal ? { signal: options.signal } : {}) },
  );
}
