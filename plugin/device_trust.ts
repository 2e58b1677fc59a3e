/**
 * Who may import which device: a `deviceID` is imported only when the one
 * who allocates devices says it is this pod's.
 *
 * Multus writes the ID kubelet allocated into the delegate config, but it
 * passes a NetworkAttachmentDefinition's own `deviceID` through unchanged,
 * so the config cannot tell an allocated ID from one a tenant typed (IDs are
 * guessable: `<resource>-<n>`). The proof is kubelet's PodResources API, for
 * the pod that `CNI_ARGS` names (the runtime sets it; a NAD cannot). Where
 * there is no kubelet (podman, containerd, Mesos), only the node's operator
 * can let configs name devices, through the runtime's environment.
 *
 * @module
 */

import { ErrorCode } from "../cni/mod.ts";
import type { NetConf } from "../config/mod.ts";
import { log } from "../internal/_log.ts";
import { errorText } from "../internal/_error_text.ts";
import { PluginError } from "./errors.ts";
// An HTTP/2 client on Deno.connect: no node: module on the CNI path (deviceplugin/_h2c.ts).
import { podDevices, PODRESOURCES_SOCKET, RESOURCE_DOMAIN } from "../deviceplugin/podresources.ts";

/** Prefix of the device plugin's resources (`macvtap.network.kubevirt.io/<name>`). */
const RESOURCE_PREFIX = `${RESOURCE_DOMAIN}/`;

/** How a `deviceID` is proven to be this pod's. */
export interface DeviceTrust {
  /** kubelet's PodResources socket (`MACVTAP_PODRESOURCES_SOCKET`). */
  podResourcesSocket: string;
  /**
   * Where that socket does not exist: import a config-named `deviceID`
   * without proof (`MACVTAP_DEVICEID_FROM_CONFIG=1`). Never applies where
   * the socket exists.
   */
  fromConfig: boolean;
}

/**
 * What proved a device the pod's: kubelet's PodResources API, or the
 * operator's opt-in to config-named devices. Only the latter may name a host
 * link by its own name (seed 001's `ip link add … type macvtap`).
 */
export type DeviceProof = "kubelet" | "config";

/** The trust settings in the runtime's environment `env`. */
export function deviceTrustFromEnv(env: (key: string) => string | undefined): DeviceTrust {
  return {
    podResourcesSocket: env("MACVTAP_PODRESOURCES_SOCKET") || PODRESOURCES_SOCKET,
    fromConfig: env("MACVTAP_DEVICEID_FROM_CONFIG") === "1",
  };
}

/** Longest list of a pod's devices quoted in an error. */
const QUOTED_IDS = 8;

/**
 * Resolve when `conf.deviceID` may be imported into the pod `CNI_ARGS`
 * names, before anything is moved, created, chowned or recorded.
 *
 * @throws {PluginError} code 7 when the device is not proven this pod's (the
 *   message says why, and how to allow it where there is no kubelet); code
 *   11 when kubelet does not answer.
 */
export async function proveDevice(conf: NetConf, trust: DeviceTrust): Promise<DeviceProof> {
  const id = conf.deviceID!;
  const socket = trust.podResourcesSocket;
  const refuse = (why: string, code: number = ErrorCode.INVALID_CONFIG): never => {
    throw new PluginError(`deviceID ${JSON.stringify(id)} is not imported: ${why}`, { code });
  };
  let isSocket: boolean;
  try {
    isSocket = Deno.lstatSync(socket).isSocket === true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      return refuse(`cannot look at kubelet's PodResources socket ${socket}: ${errorText(err)}`);
    }
    if (trust.fromConfig) {
      log.info(
        `deviceID ${JSON.stringify(id)}: no kubelet PodResources socket at ${socket}; ` +
          `imported as the config names it (MACVTAP_DEVICEID_FROM_CONFIG=1)`,
      );
      return "config";
    }
    return refuse(
      `nothing proves it is this pod's: there is no kubelet PodResources socket at ${socket}. ` +
        `On a node without kubelet (podman, containerd, Mesos) where only the node's operator ` +
        `writes network configs, set MACVTAP_DEVICEID_FROM_CONFIG=1 in the runtime's environment ` +
        `to import the device a config names`,
    );
  }
  if (!isSocket) return refuse(`${socket} is not a unix socket`);
  const namespace = conf.cniArgs.K8S_POD_NAMESPACE;
  const name = conf.cniArgs.K8S_POD_NAME;
  if (!namespace || !name) {
    return refuse(
      "CNI_ARGS names no pod (K8S_POD_NAMESPACE and K8S_POD_NAME), so kubelet cannot say " +
        "which devices it allocated to it",
    );
  }
  const pod = `${namespace}/${name}`;
  let devices: Map<string, Set<string>> | undefined;
  try {
    devices = await podDevices(socket, { namespace, name });
  } catch (err) {
    return refuse(
      `kubelet's PodResources API (${socket}) did not answer for pod ${pod}: ${errorText(err)}`,
      ErrorCode.TRY_AGAIN,
    );
  }
  if (!devices) return refuse(`kubelet lists no pod ${pod}`);
  const ours = [...devices].filter(([resource]) => resource.startsWith(RESOURCE_PREFIX));
  if (ours.some(([, ids]) => ids.has(id))) {
    log.debug(`deviceID ${JSON.stringify(id)}: allocated to pod ${pod} (kubelet PodResources)`);
    return "kubelet";
  }
  const listed = ours.flatMap(([, ids]) => [...ids]);
  const shown = listed.slice(0, QUOTED_IDS).map((i) => JSON.stringify(i)).join(", ");
  const more = listed.length > QUOTED_IDS ? `, and ${listed.length - QUOTED_IDS} more` : "";
  return refuse(
    `kubelet did not allocate it to pod ${pod} (` +
      (listed.length
        ? `its ${RESOURCE_PREFIX}* devices: ${shown}${more}`
        : `it has no ${RESOURCE_PREFIX}* devices`) +
      ")",
  );
}
