/**
 * The namespace lab shared by tests/, tools/ and bench/: throwaway network
 * namespaces, temp dirs and child processes ({@linkcode Lab}), the one
 * command runner ({@linkcode run}, {@linkcode runOk}) and the CNI plugin
 * runner ({@linkcode cni}). Not part of the published module.
 *
 * Heavier pieces are imported from their own files: `lab/e2e.ts` (the
 * engines' world), `lab/vm.ts` (a qemu guest on a tap), `lab/kubelet.ts` (a
 * kubelet stand-in over gRPC).
 *
 * @example A namespace pair joined by a veth
 * ```ts ignore
 * import { Lab } from "./mod.ts";
 * await using lab = await Lab.create();
 * const a = await lab.netns("a");
 * const b = await lab.netns("b");
 * await lab.veth(a, "v0", b, "v0p");
 * ```
 *
 * @module
 */

export { type ExecOptions, type ExecResult, run, runOk, waitFor, within } from "./run.ts";
export {
  DEFAULT_PREFIX,
  exists,
  hasExecutable,
  HOST_LOCAL,
  ipamDataDir,
  Lab,
  labIdOf,
  labIgnore,
  labLog,
  type LabMarker,
  type LabOptions,
  listNetns,
  MARKER_DIR,
  markerPath,
  missingTools,
  moduleToken,
  NETNS_DIR,
  pidAlive,
  privileged,
  type Seed002,
  type Seed002Net,
  type SimpleLab,
} from "./lab.ts";
export {
  assertPluginFresh,
  BUILD_INPUTS,
  buildInputs,
  buildProblem,
  builtDevicePluginArgv,
  cni,
  CNI_BIN,
  type CniCall,
  type CniEnv,
  cniEnv,
  cniHere,
  type CniRunOptions,
  describe,
  DEVICEID_FROM_CONFIG,
  type DevicePluginRun,
  DP_PLUGIN,
  freeTapIndex,
  PLUGIN,
  pluginBuilt,
  TEST_DEVICE_TRUST,
  TEST_ROOTS,
  VERSIONS,
} from "./cni.ts";
