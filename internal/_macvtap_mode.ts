/**
 * The macvlan/macvtap mode names and the one parser for the modes a config
 * may name, shared by the CNI config (`config/`) and the device plugin
 * (`deviceplugin/`).
 *
 * The kernel values live in one table, netlink's `MACVLAN_MODES` (keyed by
 * {@linkcode MacvlanMode}, built from the C-named constants of
 * `netlink/wire/constants.ts`). The names live here because `config/` is a
 * leaf that may import only `internal/`, and netlink's table must cover
 * exactly these names (`satisfies Record<MacvlanMode, number>`).
 *
 * @module
 */

/** macvlan/macvtap modes, spelled as in iproute2 and in the CNI config. */
export type MacvlanMode = "private" | "vepa" | "bridge" | "passthru" | "source";

/** The modes a config may name: `source` needs a MAC list, so it is not offered. */
export type MacvtapMode = Exclude<MacvlanMode, "source">;

/** {@linkcode MacvtapMode} values, in documentation order (`bridge`, the default, first). */
export const MACVTAP_MODES: readonly MacvtapMode[] = Object.freeze(
  [
    "bridge",
    "private",
    "vepa",
    "passthru",
  ] as const satisfies readonly MacvtapMode[],
);

/** The outcome of {@linkcode parseMacvtapMode}: a mode, or why there is none. */
export type MacvtapModeParse =
  | { mode: MacvtapMode; problem?: undefined }
  | {
    mode?: undefined;
    /** `unsupported`: a kernel mode configs may not use (`source`); `unknown`: anything else. */
    problem: "unknown" | "unsupported";
  };

/**
 * The mode a config value names. Absent (`undefined`, `null`) or `""` means
 * `bridge`.
 *
 * @param value The config's `mode` value, of any JSON type.
 * @returns `{ mode }`, or `{ problem }` for the caller to word in its config's terms.
 */
export function parseMacvtapMode(value: unknown): MacvtapModeParse {
  if (value === undefined || value === null || value === "") return { mode: "bridge" };
  if ((MACVTAP_MODES as readonly unknown[]).includes(value)) return { mode: value as MacvtapMode };
  if (value === ("source" satisfies MacvlanMode)) return { problem: "unsupported" };
  return { problem: "unknown" };
}
