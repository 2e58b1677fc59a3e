/**
 * `macvtap-deviceplugin`: the Kubernetes device plugin, built as its own
 * executable (`dist/macvtap-deviceplugin`, tools/build.ts) with its own V8
 * flags; from source, `cmd/main.ts deviceplugin` imports it dynamically, so
 * the CNI path never loads gRPC.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { isLogLevel, Logger, setLogger } from "../internal/_log.ts";
import {
  type AllocatedDevice,
  defaultEligible,
  deviceIdOf,
  DevicePluginConfigError,
  DevicePluginManager,
  type LinkBackend,
  netlinkBackend,
  parseDevicePluginConfig,
  probeSockets,
  realTapFs,
  type ResourceConfig,
} from "../deviceplugin/mod.ts";
import { errorText } from "../internal/_error_text.ts";
import { trimExecutablePages } from "../deviceplugin/_trim.ts";
import { readConfigText, watchConfigFile } from "../deviceplugin/config_watch.ts";
import { registrationProblem, startHeartbeat } from "../deviceplugin/heartbeat.ts";
import { MacGuard } from "../deviceplugin/mac_guard.ts";
import { tapIndexCandidates } from "../internal/_ifname.ts";

/** Registrations come in bursts (start, kubelet restarts): page out this long after one. */
const TRIM_DELAY_MS = 2000;

const HELP = `Usage: macvtap-deviceplugin [flags]

Kubernetes device plugin for macvtap (kubelet Device Plugin API v1beta1).
Resources macvtap.network.kubevirt.io/<name>, devices <name>-0 … <name>-<capacity-1>.

Flags:
  --socket-dir DIR   kubelet's device-plugin directory (default /var/lib/kubelet/device-plugins)
  --dev-dir DIR      where /dev/tapN nodes are checked and created (default /dev)
  --log-level LEVEL  error, warn, info (default), debug
  --config-file FILE the config (DP_MACVTAP_CONF's JSON) in a file, e.g. a mounted ConfigMap
                     key; re-read every 2 s and applied live (resources added, removed or
                     changed; devices in use are kept). Without it: DP_MACVTAP_CONF, read once
  --heartbeat-file FILE  rewritten every 5 s from the event loop: "ok" while every resource
                     is served and registered, else "not ready: <why>" (for cheap probes)
  --probe            check the running plugin: connect to each resource socket and call
                     GetDevicePluginOptions; exit 0 when all answer
  --help             this help

Environment:
  DP_MACVTAP_CONF            JSON array of {name, lowerDevice (alias master), mode, capacity};
                             mode bridge (default), private, vepa, passthru; capacity default 100
                             (passthru: 1). '[]' exposes every physical NIC and bond (not
                             enslaved, not lo, not virtual) as a resource named after it.
  DP_MACVTAP_DISCOVER_KINDS  extra link kinds '[]' exposes, comma-separated (e.g. veth on KinD)
  MACVTAP_DP_MAC_GUARD=0     no MAC guard: bridge-mode devices keep delivering their MAC locally
                             after their VM migrated away (kubevirt/kubevirt#5912; see README)
  MACVTAP_DP_PAGEOUT=0       keep the executable's start-up pages resident (by default they are
                             paged out after each registration burst: RSS -15 MiB)

Allocate creates macvtap mvt<12 hex> (down) on the lower device with a fixed high ifindex N
and returns /dev/tapN (rw) plus MACVTAP_<NAME>_DEVICES=<id>=/dev/tapN,...
`;

const encoder = new TextEncoder();
function err(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/**
 * Entry of `macvtap deviceplugin`.
 *
 * @param args the arguments after `deviceplugin`
 * @returns the exit status: 0 after SIGTERM/SIGINT, 1 on a runtime failure,
 *   2 on bad flags or config, 3 when `--probe` fails
 */
export async function main(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args,
      strict: true,
      options: {
        "socket-dir": { type: "string", default: "/var/lib/kubelet/device-plugins" },
        "dev-dir": { type: "string", default: "/dev" },
        "log-level": { type: "string", default: "info" },
        "config-file": { type: "string" },
        "heartbeat-file": { type: "string" },
        probe: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (e) {
    err(`macvtap deviceplugin: ${errorText(e)}\n\n${HELP}`);
    return 2;
  }
  if (flags.help) {
    Deno.stdout.writeSync(encoder.encode(HELP));
    return 0;
  }
  const level = flags["log-level"];
  if (!isLogLevel(level)) {
    err(`macvtap deviceplugin: --log-level "${level}" is not error, warn, info or debug`);
    return 2;
  }
  const log = new Logger({ level, prefix: "macvtap-dp" });
  setLogger(log);
  const dir = flags["socket-dir"].replace(/\/+$/, "") || "/";

  const configFile = flags["config-file"];
  let config, configText;
  try {
    configText = configFile ? readConfigText(configFile) : Deno.env.get("DP_MACVTAP_CONF");
    config = parseDevicePluginConfig(configText);
  } catch (e) {
    if (e instanceof DevicePluginConfigError || e instanceof SyntaxError || configFile) {
      err(`macvtap deviceplugin: ${configFile ? `${configFile}: ` : ""}${errorText(e)}`);
      return 2;
    }
    throw e;
  }

  if (flags.probe) {
    const results = await probeSockets(dir, config);
    for (const r of results) {
      err(`${r.ok ? "ok" : "FAIL"} ${dir}/${r.endpoint}${r.error ? `: ${r.error}` : ""}`);
    }
    return results.every((r) => r.ok) ? 0 : 3;
  }

  // Listened for before anything starts: a SIGTERM during start-up (a pod
  // deleted as it starts, a test that stops it once its socket is there)
  // cuts start-up short and stops the daemon cleanly (exit 0, its sockets
  // removed), even while a kubelet accepts Register and never answers;
  // without a listener, it killed it half-way (exit 143, sockets left).
  const stopping = new AbortController();
  const stopSignal = new Promise<string>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => {
        resolve(sig);
        stopping.abort();
      });
    }
  });
  const extraKinds = (Deno.env.get("DP_MACVTAP_DISCOVER_KINDS") ?? "").split(",").map((s) =>
    s.trim()
  ).filter((s) => s !== "");
  const backend = netlinkBackend();
  // The MAC guard (deviceplugin/mac_guard.ts): a bridge-mode device delivers
  // its VM's MAC locally only while the VM transmits from this node.
  let guard: MacGuard | undefined;
  if (Deno.env.get("MACVTAP_DP_MAC_GUARD") !== "0") {
    try {
      guard = MacGuard.start({ log });
    } catch (e) {
      log.warn(`no MAC guard: ${errorText(e)}`);
    }
  }
  let manager: DevicePluginManager | undefined;
  let trimTimer: ReturnType<typeof setTimeout> | undefined;
  const stops: { close(): void }[] = [];
  // At most one page-out every TRIM_DELAY_MS, the first that long after a
  // registration: a burst (start, a kubelet restart) ends with one, and a
  // storm of kubelet restarts still gets one every few seconds.
  const trimSoon = Deno.env.get("MACVTAP_DP_PAGEOUT") === "0" ? undefined : () => {
    trimTimer ??= setTimeout(() => {
      trimTimer = undefined;
      try {
        const bytes = trimExecutablePages();
        log.debug(`paged out ${(bytes / 2 ** 20).toFixed(0)} MiB of executable mappings`);
      } catch (e) {
        log.debug(`page-out skipped: ${errorText(e)}`);
      }
    }, TRIM_DELAY_MS);
  };
  try {
    manager = await DevicePluginManager.start({
      socketDir: dir,
      config,
      backend,
      tapFs: realTapFs(),
      eligible: defaultEligible(extraKinds),
      devDir: flags["dev-dir"].replace(/\/+$/, ""),
      log,
      ...(trimSoon ? { onRegistered: trimSoon } : {}),
      ...(guard ? { onAllocated: guardHook(guard, backend) } : {}),
      // A kubelet that never answers Register must not hold a SIGTERM off.
      signal: stopping.signal,
    });
    if (stopping.signal.aborted) {
      log.info(`${await stopSignal} during start-up: stopping`);
      return 0;
    }
    const running = manager;
    const heartbeatFile = flags["heartbeat-file"];
    if (heartbeatFile) {
      stops.push(startHeartbeat(heartbeatFile, {
        problem: () => registrationProblem(running, dir),
        log,
      }));
    }
    if (configFile) {
      if (Deno.env.get("DP_MACVTAP_CONF") !== undefined) {
        log.warn(`DP_MACVTAP_CONF is ignored: the config comes from ${configFile}`);
      }
      stops.push(watchConfigFile(configFile, {
        initialText: configText!,
        onChange: (c) => running.reconfigure(c),
        log,
      }));
    }
    if (guard) adoptDevices(guard, backend, config.resources);
    log.info(
      `serving in ${dir}: ${
        config.discover ? "discovering interfaces" : config.resources.map((r) => r.name).join(", ")
      }`,
    );
    const signal = await stopSignal;
    log.info(`${signal}: stopping`);
    return 0;
  } catch (e) {
    log.error(errorText(e));
    return 1;
  } finally {
    for (const s of stops) s.close();
    clearTimeout(trimTimer);
    await manager?.stop();
    await guard?.close();
    backend.close();
  }
}

/** Hand each device Allocate made to the MAC guard, with its lower device's ifindex. */
function guardHook(
  guard: MacGuard,
  backend: LinkBackend,
): (r: ResourceConfig, d: AllocatedDevice) => void {
  return (r, d) => {
    const lower = backend.find(r.lowerDevice);
    if (lower) guard.track({ id: d.id, index: d.index, lowerIndex: lower.index, mode: r.mode });
  };
}

/**
 * Give the MAC guard the devices a device plugin before this one allocated
 * (a restart, an upgrade of the DaemonSet), so their VMs stay guarded.
 */
function adoptDevices(
  guard: MacGuard,
  backend: LinkBackend,
  resources: readonly ResourceConfig[],
): void {
  const adopt = [];
  for (const r of resources) {
    const lower = backend.find(r.lowerDevice);
    if (!lower) continue;
    const ids = Array.from({ length: r.capacity }, (_, n) => deviceIdOf(r.name, n));
    adopt.push({ ids, indexes: tapIndexCandidates, lowerIndex: lower.index, mode: r.mode });
  }
  guard.adopt(adopt);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
