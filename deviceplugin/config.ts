/**
 * `DP_MACVTAP_CONF`: which resources the device plugin offers.
 *
 * A JSON array of `{name, lowerDevice, mode, capacity}`; `master` is accepted
 * as an alias of `lowerDevice` (the original macvtap device plugin's key).
 * `[]` means "discover": every eligible host interface becomes a resource
 * named after it.
 *
 * @module
 */

import { ConfigError } from "../config/mod.ts";
import { MACVTAP_MODES, type MacvtapMode, parseMacvtapMode } from "../internal/_macvtap_mode.ts";
import { ifnameProblem } from "../internal/_ifname.ts";
import { isJsonObject } from "../internal/_json.ts";
import { errorText } from "../internal/_error_text.ts";

/** macvtap modes a device-plugin resource may use: the CNI config's ({@linkcode MacvtapMode}). */
export type DeviceMode = MacvtapMode;

/** The modes, in the spelling of iproute2 and the CNI config: {@linkcode MACVTAP_MODES}. */
export const DEVICE_MODES: readonly DeviceMode[] = MACVTAP_MODES;

/** Default number of devices per resource. */
export const DEFAULT_CAPACITY = 100;
/** Largest accepted capacity. */
export const MAX_CAPACITY = 10_000;
/**
 * Devices all resources together may have. Idle RSS of `dist/macvtap
 * deviceplugin` on its own copy of Deno (as in the image), 6 s after a
 * kubelet stand-in registered every resource and holds its ListAndWatch:
 * 37.7 MiB for 1 × 100 devices, 39.7 MiB for 2 × 10,000, 40.6 MiB for
 * 16 × 1,250, 47.4 MiB for 5 × 10,000, 51.5–64.1 MiB for 100,000, 82 MiB for
 * 30 × 10,000. 10,000 Allocates add ~22 MiB (deploy/README.md, Memory), so
 * 20,000 devices keep the plugin within the DaemonSet's 64 MiB request.
 */
export const MAX_TOTAL_DEVICES = 20_000;
/**
 * Resources one plugin may serve: each is a socket, a server, kubelet's
 * connection and its ListAndWatch. `[]` exposes the first this many
 * interfaces.
 */
export const MAX_RESOURCES = 16;
/** Longest resource `name`: keeps device IDs (`<name>-<n>`) within kubelet's 63 characters. */
export const MAX_NAME_LENGTH = 50;

/** One resource, `macvtap.network.kubevirt.io/<name>`. */
export interface ResourceConfig {
  /** Resource name suffix, also the prefix of its device IDs. */
  name: string;
  /** The host interface the macvtaps are created on. */
  lowerDevice: string;
  mode: DeviceMode;
  /** Number of devices (`<name>-0` … `<name>-<capacity-1>`). */
  capacity: number;
}

/** The parsed configuration. */
export type DevicePluginConfig =
  | { discover: true; resources: [] }
  | { discover: false; resources: ResourceConfig[] };

/**
 * Invalid `DP_MACVTAP_CONF` content: a `ConfigError` whose `field` names the
 * entry and key (e.g. `[1].mode`); `unsupported` for understood but
 * unsupported values (mode `source`).
 */
export class DevicePluginConfigError extends ConfigError {
  constructor(field: string, message: string, options: { unsupported?: boolean } = {}) {
    super(field, `DP_MACVTAP_CONF${field ? ` ${field}` : ""}: ${message}`, options);
    this.name = "DevicePluginConfigError";
  }
}

const KEYS = new Set(["name", "lowerDevice", "master", "mode", "capacity"]);
/** Kubernetes qualified-name part, as for extended resource names. */
const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** Whether `name` can be a resource name suffix (and so a discovered interface's resource). */
export function isValidResourceName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

/**
 * Remove commas directly before `]` or `}` (outside strings): seed 003's
 * example config has one, and people copy it.
 */
function dropTrailingCommas(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === "\\") out += text[++i] ?? "";
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    if (ch === ",") {
      const rest = text.slice(i + 1).trimStart();
      if (rest.startsWith("]") || rest.startsWith("}")) continue;
    }
    out += ch;
  }
  return out;
}

/**
 * Parse and validate `DP_MACVTAP_CONF`.
 *
 * @param text the variable's value (`undefined` when unset)
 * @returns the resources, or `{discover: true}` for `[]`
 * @throws {SyntaxError} when the value is not JSON.
 * @throws {DevicePluginConfigError} for anything else that is wrong.
 * @example Usage
 * ```ts
 * import { parseDevicePluginConfig } from "./config.ts";
 * const conf = parseDevicePluginConfig('[{"name": "lan", "master": "eth1"}]');
 * // conf.resources[0]: { name: "lan", lowerDevice: "eth1", mode: "bridge", capacity: 100 }
 * ```
 */
export function parseDevicePluginConfig(text: string | undefined): DevicePluginConfig {
  if (text === undefined) {
    throw new DevicePluginConfigError(
      "",
      "is not set; use '[]' to expose every eligible host interface, or list resources " +
        `like '[{"name":"lan","lowerDevice":"eth1"}]'`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(dropTrailingCommas(text));
  } catch (err) {
    throw new SyntaxError(
      `DP_MACVTAP_CONF is not valid JSON: ${errorText(err)}`,
    );
  }
  if (!Array.isArray(value)) {
    throw new DevicePluginConfigError("", "must be a JSON array of resources (or [] to discover)");
  }
  if (value.length === 0) return { discover: true, resources: [] };
  if (value.length > MAX_RESOURCES) {
    throw new DevicePluginConfigError(
      "",
      `lists ${value.length} resources; at most ${MAX_RESOURCES} (MAX_RESOURCES) are served, ` +
        "which keeps the plugin within its 64 MiB memory request",
    );
  }
  const resources = value.map((entry, i) => parseEntry(entry, `[${i}]`));
  let total = 0;
  resources.forEach((r, i) => {
    total += r.capacity;
    if (total > MAX_TOTAL_DEVICES) {
      const all = resources.reduce((sum, x) => sum + x.capacity, 0);
      throw new DevicePluginConfigError(
        `[${i}].capacity`,
        `brings the device count to ${total} (${all} in all), over the limit of ` +
          `${MAX_TOTAL_DEVICES} devices for all resources together (MAX_TOTAL_DEVICES), ` +
          "which keeps the plugin within its 64 MiB memory request; lower the capacities",
      );
    }
  });
  const names = new Map<string, number>();
  const passthru = new Map<string, number>();
  resources.forEach((r, i) => {
    const dup = names.get(r.name);
    if (dup !== undefined) {
      throw new DevicePluginConfigError(`[${i}].name`, `"${r.name}" is used by [${dup}] already`);
    }
    names.set(r.name, i);
  });
  resources.forEach((r, i) => {
    if (r.mode === "passthru") passthru.set(r.lowerDevice, i);
  });
  resources.forEach((r, i) => {
    const p = passthru.get(r.lowerDevice);
    if (p !== undefined && p !== i) {
      throw new DevicePluginConfigError(
        `[${i}].lowerDevice`,
        `"${r.lowerDevice}" is taken by the passthru resource [${p}]; passthru needs the device alone`,
      );
    }
  });
  return { discover: false, resources };
}

function parseEntry(entry: unknown, at: string): ResourceConfig {
  if (!isJsonObject(entry)) {
    throw new DevicePluginConfigError(at, "must be an object {name, lowerDevice, mode, capacity}");
  }
  const e = entry;
  for (const key of Object.keys(e)) {
    if (!KEYS.has(key)) {
      const hint = [...KEYS].find((k) => k.toLowerCase() === key.toLowerCase());
      throw new DevicePluginConfigError(
        `${at}.${key}`,
        `unknown key${hint ? ` (did you mean "${hint}"?)` : ""}; known: ${[...KEYS].join(", ")}`,
      );
    }
  }

  if (typeof e.name !== "string" || e.name === "") {
    throw new DevicePluginConfigError(`${at}.name`, "is required (a non-empty string)");
  }
  if (!isValidResourceName(e.name)) {
    throw new DevicePluginConfigError(
      `${at}.name`,
      `"${e.name}" must be at most ${MAX_NAME_LENGTH} characters of [A-Za-z0-9-_.], ` +
        "starting and ending with a letter or digit",
    );
  }

  if (e.lowerDevice !== undefined && e.master !== undefined && e.lowerDevice !== e.master) {
    throw new DevicePluginConfigError(
      `${at}.master`,
      `is an alias of lowerDevice, and they differ ("${e.master}" vs "${e.lowerDevice}")`,
    );
  }
  const lowerKey = e.lowerDevice !== undefined ? "lowerDevice" : "master";
  const lower = e.lowerDevice ?? e.master;
  if (typeof lower !== "string" || lower === "") {
    throw new DevicePluginConfigError(
      `${at}.lowerDevice`,
      "is required: the host interface to create macvtaps on (alias: master)",
    );
  }
  const problem = ifnameProblem(lower);
  if (problem) {
    throw new DevicePluginConfigError(`${at}.${lowerKey}`, `"${lower}" ${problem}`);
  }

  const parsed = parseMacvtapMode(e.mode);
  if (parsed.mode === undefined) {
    const modes = DEVICE_MODES.join(", ");
    throw new DevicePluginConfigError(
      `${at}.mode`,
      parsed.problem === "unsupported"
        ? `${
          JSON.stringify(e.mode)
        } is not supported by the device plugin (it needs a MAC list); use one of ${modes}`
        : `${JSON.stringify(e.mode)} is not one of ${modes}`,
      { unsupported: parsed.problem === "unsupported" },
    );
  }
  const mode = parsed.mode;

  const fallback = mode === "passthru" ? 1 : DEFAULT_CAPACITY;
  let capacity = fallback;
  if (e.capacity !== undefined && e.capacity !== null) {
    if (typeof e.capacity !== "number" || !Number.isInteger(e.capacity) || e.capacity < 0) {
      throw new DevicePluginConfigError(
        `${at}.capacity`,
        `${JSON.stringify(e.capacity)} must be a whole number from 1 to ${MAX_CAPACITY} ` +
          `(0 or absent: ${fallback})`,
      );
    }
    if (e.capacity > MAX_CAPACITY) {
      throw new DevicePluginConfigError(`${at}.capacity`, `${e.capacity} exceeds ${MAX_CAPACITY}`);
    }
    // 0 keeps the original plugin's meaning: the default.
    if (e.capacity > 0) capacity = e.capacity;
  }
  if (mode === "passthru" && capacity !== 1) {
    throw new DevicePluginConfigError(
      `${at}.capacity`,
      `passthru allows one macvtap per lower device, so capacity must be 1 (got ${capacity})`,
    );
  }
  return { name: e.name, lowerDevice: lower, mode, capacity };
}
