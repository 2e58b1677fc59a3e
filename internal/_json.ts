/**
 * Checks on parsed JSON shared by the parsers of configs, results, records
 * and caches.
 *
 * @module
 */

/**
 * Whether a parsed JSON value is an object (`{…}`): not `null`, not an array.
 *
 * @param v A value from `JSON.parse`.
 * @returns `true` for an object, whose keys the caller still has to check.
 */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A value as an error message quotes it: its JSON, or `String(v)` for what
 * JSON cannot print (`undefined`, a bigint, a cycle).
 *
 * @param v The offending value.
 * @returns `"eth0"`, `42`, `{"a":1}`, `undefined`, ….
 */
export function showJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
