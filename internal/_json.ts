/**
 * Checks on JSON shared by the parsers of configs, results, records and
 * caches: the shape of a parsed value, a bound on input before it is parsed,
 * and how an error message quotes a value.
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
 * Deepest nesting of arrays and objects accepted in input JSON. The deepest
 * real CNI config nests 5 levels (`prevResult.ips[0]`, `ipam.ranges[0][0]`,
 * a chained `prevResult` inside a conflist entry: 6); 64 is ten times that.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Most arrays and objects accepted in one input JSON document. A config with
 * a thousand routes and ranges holds about two thousand; 20,000 is ten times
 * that. Each one costs V8 ~140 bytes once parsed, so a 1 MB document of empty
 * arrays (333,000) peaked at 82–93 MB RSS against 36 MB for a small config.
 */
export const MAX_JSON_CONTAINERS = 20_000;

/**
 * Most object members (`"key": value` pairs) accepted in one input JSON
 * document: 20,000, against ~3,000 in a config with a thousand routes.
 * Distinct keys spread over many objects are V8's most expensive shape
 * (a hidden class each): 1 MB of them peaked at 72 MB RSS; 20,000 of them
 * with the rest of the megabyte in numbers, at 52 MB.
 */
export const MAX_JSON_MEMBERS = 20_000;

/** Limits for {@linkcode jsonShapeProblem}. */
export interface JsonShapeLimits {
  /** Default {@linkcode MAX_JSON_DEPTH}. */
  maxDepth?: number;
  /** Default {@linkcode MAX_JSON_CONTAINERS}. */
  maxContainers?: number;
  /** Default {@linkcode MAX_JSON_MEMBERS}. */
  maxMembers?: number;
}

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_ARRAY = 0x5b; // [
const OPEN_OBJECT = 0x7b; // {
const CLOSE_ARRAY = 0x5d; // ]
const CLOSE_OBJECT = 0x7d; // }
const COLON = 0x3a; // :

/**
 * Why a JSON text is too deep or too big in structure to be parsed, or
 * `undefined` when it is within the limits (nesting depth, count of arrays
 * and objects, count of object members): one pass over the bytes (or UTF-16
 * units) before `JSON.parse` builds anything. Brackets and colons inside
 * strings, and escaped quotes, do not count. It checks nothing else: malformed JSON
 * within the limits is left for `JSON.parse` to refuse. In UTF-8 every byte
 * of a multi-byte character is ≥ 0x80, so scanning bytes is exact.
 *
 * @param input The JSON text, or its UTF-8 bytes.
 * @param limits Depth and container limits (defaults above).
 * @returns A problem such as `nests arrays and objects deeper than 64 levels (at offset 70)`.
 * @example Refuse before parsing
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonShapeProblem } from "./_json.ts";
 *
 * assert.equal(jsonShapeProblem('{"a":"[[[["}'), undefined);
 * assert.match(jsonShapeProblem("[".repeat(100) + "]".repeat(100))!, /deeper than 64/);
 * ```
 */
export function jsonShapeProblem(
  input: Uint8Array | string,
  limits: JsonShapeLimits = {},
): string | undefined {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const maxContainers = limits.maxContainers ?? MAX_JSON_CONTAINERS;
  const maxMembers = limits.maxMembers ?? MAX_JSON_MEMBERS;
  const bytes = typeof input !== "string";
  const n = input.length;
  let depth = 0;
  let containers = 0;
  let members = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = bytes ? (input as Uint8Array)[i]! : (input as string).charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++; // the escaped unit cannot end the string
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) {
        return `nests arrays and objects deeper than ${maxDepth} levels (at offset ${i})`;
      }
      if (++containers > maxContainers) {
        return `holds more than ${maxContainers} arrays and objects (at offset ${i})`;
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COLON && ++members > maxMembers) {
      return `holds more than ${maxMembers} object members (at offset ${i})`;
    }
  }
  return undefined;
}

/** Longest quotation of a value in an error message, in UTF-16 units. */
export const MAX_SHOWN = 100;

/**
 * Text cut to a readable length: the first `max` UTF-16 units (never half a
 * surrogate pair), `…`, and the whole length. For error messages quoting
 * input, which may be a megabyte.
 *
 * @param text Any text.
 * @param max Longest text left whole; default {@linkcode MAX_SHOWN}.
 * @returns `text`, or e.g. `aaaa… (102400 characters)`.
 */
export function clipText(text: string, max: number = MAX_SHOWN): string {
  if (text.length <= max) return text;
  return `${prefix(text, max)}… (${text.length} characters)`;
}

/** The first `max` UTF-16 units of `text`, without half a surrogate pair. */
function prefix(text: string, max: number): string {
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/**
 * A value as an error message quotes it: its JSON, or `String(v)` for what
 * JSON cannot print (`undefined`, a bigint, a cycle), cut by
 * {@linkcode clipText} to {@linkcode MAX_SHOWN} characters (a long string is
 * quoted as its JSON prefix and its own length).
 *
 * @param v The offending value.
 * @returns `"eth0"`, `42`, `{"a":1}`, `undefined`, `"aaaa"… (102400 characters)`, ….
 */
export function showJson(v: unknown): string {
  if (typeof v === "string" && v.length > MAX_SHOWN) {
    return `${JSON.stringify(prefix(v, MAX_SHOWN))}… (${v.length} characters)`;
  }
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    try {
      text = String(v);
    } catch {
      text = Object.prototype.toString.call(v);
    }
  }
  return clipText(text);
}
