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
