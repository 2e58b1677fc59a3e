/**
 * CNI spec versions: what we support, comparison, which commands a version
 * allows, and version selection for configs carrying `cniVersions`.
 *
 * @module
 */

/**
 * The spec versions this plugin speaks, oldest first. At 0.1.0 and 0.2.0 the
 * result has the legacy shape (`ip4`/`ip6`, no interfaces) and only ADD and
 * DEL exist; an ADD there must return an IP address, so an L2-only config
 * (no `ipam`) needs 0.3.0 or later.
 *
 * @example Does the plugin speak the runtime's version?
 * ```ts
 * import assert from "node:assert/strict";
 * import { SUPPORTED_VERSIONS } from "./mod.ts";
 *
 * assert.ok(SUPPORTED_VERSIONS.includes("1.0.0"));
 * assert.ok(SUPPORTED_VERSIONS.includes("0.2.0"));
 * assert.ok(!SUPPORTED_VERSIONS.includes("0.5.0"));
 * ```
 */
export const SUPPORTED_VERSIONS: readonly string[] = Object.freeze([
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
]);

/**
 * The version a config without `cniVersion` (or with `""`) is read as: the Go
 * libraries' config decoder (`pkg/version` `ConfigDecoder`) says 0.1.0.
 */
export const IMPLICIT_VERSION = "0.1.0";

/**
 * The newest version we speak (VERSION's fallback answer).
 *
 * @example A new config's version
 * ```ts
 * import { CURRENT_VERSION } from "./mod.ts";
 *
 * const config = { cniVersion: CURRENT_VERSION, name: "lan", type: "macvtap", master: "eth1" };
 * ```
 */
export const CURRENT_VERSION = "1.1.0";

/** The CNI commands (`CNI_COMMAND` values). */
export type CniCommand = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

const SEMVER = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;

/** `[major, minor, patch]` of a `x.y.z` version, or `undefined` when it is not one. */
export function parseVersion(version: string): [number, number, number] | undefined {
  const m = SEMVER.exec(version);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * Compare two `x.y.z` versions: negative, zero or positive.
 *
 * @throws {TypeError} when either is not `x.y.z`.
 * @example Usage
 * ```ts
 * import { compareVersions } from "./version.ts";
 * compareVersions("0.4.0", "0.10.0"); // < 0
 * ```
 */
export function compareVersions(a: string, b: string): number {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (!va) throw new TypeError(`Cannot compare versions: "${a}" is not a semantic version`);
  if (!vb) throw new TypeError(`Cannot compare versions: "${b}" is not a semantic version`);
  return va[0] - vb[0] || va[1] - vb[1] || va[2] - vb[2];
}

/** Whether this plugin speaks `version`. */
export function isSupportedVersion(version: string): boolean {
  return SUPPORTED_VERSIONS.includes(version);
}

const MIN_VERSION: Readonly<Record<CniCommand, string>> = {
  ADD: "0.1.0",
  DEL: "0.1.0",
  VERSION: "0.1.0",
  CHECK: "0.4.0",
  GC: "1.1.0",
  STATUS: "1.1.0",
};

/**
 * Whether a config at `version` may be used with `command`: CHECK needs
 * 0.4.0, GC and STATUS need 1.1.0. An unparsable version allows nothing.
 */
export function versionAllows(command: CniCommand, version: string): boolean {
  if (!parseVersion(version)) return false;
  return compareVersions(version, MIN_VERSION[command]) >= 0;
}

/**
 * The version a config is used at, or `undefined` when we do not speak it.
 *
 * - `cniVersion` set: that version. The runtime has already chosen it from
 *   the list's `cniVersions` (spec 1.1.0 "Version selection"), and the
 *   result must be in the version supplied on input, so a `cniVersions`
 *   passed through does not override it.
 * - `cniVersion` missing or `""`: the highest of `cniVersions` we speak
 *   (libcni's rule for a list), or {@linkcode IMPLICIT_VERSION} without one.
 *
 * Non-string entries of `cniVersions` are ignored.
 *
 * @example Usage
 * ```ts
 * import { selectVersion } from "./version.ts";
 * selectVersion("1.0.0", ["1.0.0", "1.1.0", "2.0.0"]); // "1.0.0"
 * selectVersion(undefined, ["1.0.0", "1.1.0", "2.0.0"]); // "1.1.0"
 * selectVersion(undefined); // "0.1.0"
 * selectVersion("2.0.0", ["1.1.0"]); // undefined
 * ```
 */
export function selectVersion(
  cniVersion: unknown,
  cniVersions?: unknown,
): string | undefined {
  if (cniVersion !== undefined && cniVersion !== null && cniVersion !== "") {
    return typeof cniVersion === "string" && isSupportedVersion(cniVersion)
      ? cniVersion
      : undefined;
  }
  if (!Array.isArray(cniVersions)) return IMPLICIT_VERSION;
  let best: string | undefined;
  for (const v of cniVersions) {
    if (typeof v !== "string" || !isSupportedVersion(v)) continue;
    if (best === undefined || compareVersions(v, best) > 0) best = v;
  }
  return best;
}
