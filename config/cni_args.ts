/**
 * `CNI_ARGS` (`K1=V1;K2=V2`), parsed as the Go reference `types.LoadArgs`
 * does: exactly one `=` per pair, case-sensitive keys, unknown keys an error
 * unless `IgnoreUnknown` is true.
 *
 * @module
 */

import { canonicalIP, parseCidr, parseIP } from "../internal/_ip.ts";
import { clipText, showJson } from "../internal/_json.ts";
import { ConfigError } from "./errors.ts";
import { normalizeMac } from "./_mac.ts";

/** The keys this plugin knows (the IPAM plugin consumes `IP` and `GATEWAY`). */
export const KNOWN_CNI_ARGS: readonly string[] = Object.freeze([
  "IgnoreUnknown",
  "IP",
  "MAC",
  "GATEWAY",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
]);

/** Parsed `CNI_ARGS`. */
export interface CniArgs {
  /** `IgnoreUnknown` (`1`/`true` in any case). */
  ignoreUnknown: boolean;
  /** `IP`: comma-separated IPs or CIDRs, as written. */
  ips: string[];
  /** `MAC`, normalized to lower-case `aa:bb:cc:dd:ee:ff`. */
  mac?: string;
  /** `GATEWAY`, canonical text. */
  gateway?: string;
  K8S_POD_NAMESPACE?: string;
  K8S_POD_NAME?: string;
  K8S_POD_INFRA_CONTAINER_ID?: string;
  K8S_POD_UID?: string;
  /** Pairs with unknown keys, as written. */
  unknown: string[];
}

/** Options for {@linkcode parseCniArgs}. */
export interface ParseCniArgsOptions {
  /**
   * `false` (for DEL, which must never fail on CNI_ARGS): skip bad pairs and
   * values instead of throwing. Default `true`.
   */
  strict?: boolean;
}

/** Go's `%q` of a string list: `["a" "b"]`, cut to a readable length. */
function quoteList(items: readonly string[]): string {
  return clipText(`[${items.map((s) => showJson(s)).join(" ")}]`, 200);
}

function parseBool(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  return undefined;
}

/** Whether `text` is an IP, or an IP with a prefix length. */
export function isIpOrCidr(text: string): boolean {
  return text.includes("/") ? parseCidr(text) !== undefined : parseIP(text) !== undefined;
}

/**
 * Parse `CNI_ARGS`.
 *
 * @throws {ConfigError} (field `CNI_ARGS`) with the Go messages
 *   `ARGS: invalid pair "x"`, `ARGS: unknown args ["K=V"]`, or
 *   `ARGS: error parsing value of pair "MAC=x": …` — never when `strict` is false.
 * @example Usage
 * ```ts
 * import { parseCniArgs } from "./cni_args.ts";
 * parseCniArgs("IgnoreUnknown=1;MAC=02:AA:00:00:00:01;foo=bar").mac; // "02:aa:00:00:00:01"
 * ```
 */
export function parseCniArgs(text: string, options: ParseCniArgsOptions = {}): CniArgs {
  const strict = options.strict ?? true;
  const out: CniArgs = { ignoreUnknown: false, ips: [], unknown: [] };
  if (text === "") return out;
  const bad = (message: string): void => {
    if (strict) throw new ConfigError("CNI_ARGS", message);
  };
  for (const pair of text.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) {
      bad(`ARGS: invalid pair ${showJson(pair)}`);
      continue;
    }
    const [key, value] = kv as [string, string];
    const badValue = (problem: string) =>
      bad(`ARGS: error parsing value of pair ${showJson(pair)}: ${problem}`);
    switch (key) {
      case "IgnoreUnknown": {
        const b = parseBool(value);
        if (b === undefined) badValue(`boolean unmarshal error: invalid input ${value}`);
        else out.ignoreUnknown = b;
        break;
      }
      case "IP": {
        const ips = value.split(",").filter((s) => s !== ""); // no trimming: Go parses the text as is
        const wrong = ips.find((s) => !isIpOrCidr(s));
        if (wrong !== undefined) badValue(`${showJson(wrong)} is not an IP address or CIDR`);
        else out.ips = ips;
        break;
      }
      case "MAC": {
        const mac = normalizeMac(value);
        if (typeof mac !== "string") badValue(`${showJson(value)} ${mac.problem}`);
        else out.mac = mac;
        break;
      }
      case "GATEWAY": {
        const gw = canonicalIP(value);
        if (gw === undefined) badValue(`${showJson(value)} is not an IP address`);
        else out.gateway = gw;
        break;
      }
      case "K8S_POD_NAMESPACE":
      case "K8S_POD_NAME":
      case "K8S_POD_INFRA_CONTAINER_ID":
      case "K8S_POD_UID":
        out[key] = value;
        break;
      default:
        out.unknown.push(pair);
    }
  }
  if (out.unknown.length && !out.ignoreUnknown) bad(`ARGS: unknown args ${quoteList(out.unknown)}`);
  return out;
}
