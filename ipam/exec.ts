/**
 * The IPAM client's executor: find the plugin named by `ipam.type` in
 * CNI_PATH and run it with the whole config on stdin and the CNI
 * environment, as libcni does (`pkg/invoke/find.go`, `raw_exec.go`).
 *
 * No `node:` imports here: this is on the plugin's start-up path.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/mod.ts";
import { ERRNO } from "../internal/_errno.ts";
import { log } from "../internal/_log.ts";
import { span, TIMING } from "../internal/_timing.ts";
import { Child, type ChildResult, SpawnError } from "./_spawn.ts";
import { inNetns } from "../netlink/mod.ts";
import { errorText } from "../internal/_error_text.ts";

/** The CNI commands an IPAM plugin is run with. */
export type IpamCommand = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION";

/**
 * Default time limits per command, in ms. ADD and CHECK talk to the dhcp
 * daemon, which itself waits up to 10 s per DHCP attempt and retries a link
 * that is still down ("network is down") a few seconds later, so they get a
 * minute; the others only touch local state.
 *
 * @example Pick a limit
 * ```ts
 * import { IPAM_TIMEOUT_MS } from "./exec.ts";
 * const limit = IPAM_TIMEOUT_MS["DEL"]; // 30000
 * if (limit !== 30_000) throw new Error("unexpected default");
 * ```
 */
export const IPAM_TIMEOUT_MS: Readonly<Record<IpamCommand, number>> = Object.freeze({
  ADD: 60_000,
  CHECK: 60_000,
  DEL: 30_000,
  STATUS: 30_000,
  GC: 60_000,
  VERSION: 10_000,
});

/**
 * Pauses between spawn attempts that fail with ETXTBSY ("text file busy"),
 * as when a plugin binary is being replaced: 5 retries, 100 ms to 1 s apart.
 *
 * @example
 * ```ts
 * import { ETXTBSY_RETRY_DELAYS_MS } from "./exec.ts";
 * const total = ETXTBSY_RETRY_DELAYS_MS.reduce((a, b) => a + b, 0); // 2500 ms at most
 * if (total !== 2500) throw new Error("unexpected schedule");
 * ```
 */
export const ETXTBSY_RETRY_DELAYS_MS: readonly number[] = Object.freeze([100, 200, 400, 800, 1000]);

/** Most stdout accepted from a plugin; a result is a few KiB. */
const MAX_STDOUT = 4 << 20;
/** Most stderr kept for the log and error details. */
const MAX_STDERR = 64 << 10;
/** How long to keep reading after the child exited (a grandchild may hold the pipes). */
const EXITED_GRACE_MS = 1000;

/**
 * Failures after which the delegate holds nothing of this call: it never
 * ran, it ran VERSION (no side effect), or it answered with an error result
 * of its own (a plugin that reports an error has undone its work, as the
 * reference plugins do). Every other failure (killed at the time limit, by a
 * signal or by an abort; no output, garbled output or too much of it; exit 0
 * without a usable result) leaves the outcome unknown.
 */
const LEFT_NOTHING = new WeakSet<object>();

function leavingNothing<E>(err: E): E {
  if (typeof err === "object" && err !== null) LEFT_NOTHING.add(err);
  return err;
}

/**
 * Whether a failure of {@linkcode execIpam} proves the delegate holds nothing
 * for this call. When it does not (the child was killed, or printed no
 * usable answer), an ADD may have allocated, and the caller that owns the
 * attachment releases it.
 *
 * @param err What `execIpam` rejected with.
 * @returns `true` when the delegate never ran, ran VERSION, or reported the
 *   error itself.
 * @example
 * ```ts
 * import { leftNothing } from "./exec.ts";
 * if (leftNothing(new Error("killed"))) throw new Error("an unknown outcome");
 * ```
 */
export function leftNothing(err: unknown): boolean {
  return typeof err === "object" && err !== null && LEFT_NOTHING.has(err);
}

/** Options for {@linkcode execIpam}. */
export interface ExecIpamOptions {
  /** `ipam.type`: a bare plugin name. */
  type: string;
  /** The whole network config, exactly as the plugin received it. */
  stdin: Uint8Array;
  /**
   * The child's entire environment: the plugin's own, with the CNI_* variables
   * as the plugin received them. `CNI_COMMAND` is overridden with `command`.
   */
  env: Readonly<Record<string, string | undefined>>;
  /** CNI_PATH, split on `:`. */
  cniPath: readonly string[];
  /** Kill the child after this many ms; default {@linkcode IPAM_TIMEOUT_MS}. */
  timeoutMs?: number | undefined;
  /**
   * `"log"` (default): collect the child's stderr, write it to our log and put
   * it in error details. `"inherit"`: pass it straight through, as libcni does.
   */
  stderr?: "log" | "inherit" | undefined;
  /** Aborting kills the child and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /**
   * The network namespace the child runs in (a path): it is spawned with the
   * main thread inside it for that one synchronous call. Default: the caller's.
   */
  netns?: string | undefined;
}

/** Spawn the plugin, inside `netns` when one is given (posix_spawn is synchronous: the child inherits it). */
function spawnIn(
  netns: string | undefined,
  path: string,
  env: Record<string, string>,
  stdin: Uint8Array,
): Child {
  return netns === undefined
    ? Child.spawn(path, env, stdin)
    : inNetns(netns, () => Child.spawn(path, env, stdin));
}

/**
 * The path of the executable plugin `type` in the first `cniPath` directory
 * that has it (symlinks followed). Synchronous, so a caller can spawn at once.
 *
 * @param type A bare plugin name: not empty, no `/`, no `..`.
 * @param cniPath The CNI_PATH directories, in order.
 * @returns The absolute or relative path to execute.
 * @throws {CniError} code 7 (`INVALID_CONFIG`) for a `type` that is not a bare
 *   name; code 101 (`IPAM`) when no directory holds an executable file of that name.
 *
 * @example Find host-local
 * ```ts
 * import { findPlugin } from "./exec.ts";
 *
 * // Needs the reference plugins installed: type-checked, not run by `deno test --doc`.
 * export function hostLocal(): string {
 *   return findPlugin("host-local", ["/opt/cni/bin", "/usr/lib/cni"]); // "/usr/lib/cni/host-local"
 * }
 * ```
 *
 * @example A path is not a plugin name
 * ```ts
 * import { findPlugin } from "./exec.ts";
 * import { CniError } from "../cni/mod.ts";
 * try {
 *   findPlugin("../../bin/sh", ["/usr/lib/cni"]);
 *   throw new Error("not refused");
 * } catch (err) {
 *   if (!(err instanceof CniError) || err.code !== 7) throw err;
 * }
 * ```
 */
export function findPlugin(type: string, cniPath: readonly string[]): string {
  const problem = typeProblem(type);
  if (problem) {
    throw new CniError(
      ErrorCode.INVALID_CONFIG,
      `Invalid IPAM type ${JSON.stringify(type)}: ${problem}`,
      "ipam.type must be the bare name of a plugin in CNI_PATH",
    );
  }
  const dirs = cniPath.filter((d) => d !== "");
  if (dirs.length === 0) {
    throw new CniError(ErrorCode.IPAM, `Cannot find IPAM plugin "${type}": CNI_PATH is empty`);
  }
  const skipped: string[] = [];
  for (const dir of dirs) {
    const path = dir.endsWith("/") ? `${dir}${type}` : `${dir}/${type}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(path);
    } catch {
      continue;
    }
    if (!st.isFile) {
      skipped.push(`${path} is not a regular file`);
    } else if (st.mode !== null && (st.mode & 0o111) === 0) {
      skipped.push(`${path} is not executable`);
    } else {
      return path;
    }
  }
  throw new CniError(
    ErrorCode.IPAM,
    `Cannot find IPAM plugin "${type}" in CNI_PATH ${dirs.join(":")}`,
    skipped.length > 0 ? skipped.join("; ") : undefined,
  );
}

function typeProblem(type: string): string | undefined {
  if (type === "") return "is empty";
  if (type.includes("/")) return 'contains "/"';
  if (type.includes("..")) return 'contains ".."';
  if (type === ".") return 'is "."';
  if (type.includes("\0")) return "contains NUL";
  return undefined;
}

/**
 * Run IPAM plugin `options.type` for `command`. The child is spawned before
 * this returns (when the file is not busy), so the caller can overlap it with
 * netlink work and await the promise later.
 *
 * The child runs in `options.netns`, else it inherits the calling thread's
 * network namespace: call this outside `inNetns` sections (it is the
 * plugin's "host" namespace that IPAM expects).
 *
 * - "text file busy" at exec is retried {@linkcode ETXTBSY_RETRY_DELAYS_MS};
 * - after `timeoutMs` the child is killed (SIGKILL);
 * - exit 0: ADD and VERSION resolve to the parsed JSON, other commands to `undefined`;
 * - non-zero exit with error JSON on stdout: rejects with a `CniError` carrying
 *   the child's own `code`, `msg` and `details`.
 *
 * @param command The CNI command (sets `CNI_COMMAND`).
 * @param options Plugin type, stdin, environment, CNI_PATH, limits.
 * @returns The parsed JSON for ADD and VERSION; `undefined` otherwise.
 * @throws {CniError} the child's error; 7 for an invalid type; 101 (`IPAM`)
 *   when it cannot be found or run or exits non-zero without error JSON;
 *   6 (`DECODE`) for unparsable output; 102 (`TIMEOUT`) on timeout.
 *
 * @example Allocate with host-local
 * ```ts
 * import { execIpam } from "./exec.ts";
 *
 * // Needs root and the reference plugins: type-checked, not run by `deno test --doc`.
 * export async function allocate(): Promise<unknown> {
 *   const stdin = new TextEncoder().encode(JSON.stringify({
 *     cniVersion: "1.0.0", name: "net", type: "macvtap",
 *     ipam: { type: "host-local", subnet: "10.99.0.0/24" },
 *   }));
 *   const pending = execIpam("ADD", {
 *     type: "host-local", stdin, cniPath: ["/usr/lib/cni"],
 *     env: { ...Deno.env.toObject(), CNI_CONTAINERID: "c1", CNI_NETNS: "/run/netns/c1", CNI_IFNAME: "eth0" },
 *   });
 *   // … create the link meanwhile …
 *   return await pending; // {cniVersion, ips: [{address: "10.99.0.2/24", …}], …}
 * }
 * ```
 */
export function execIpam(command: "ADD" | "VERSION", options: ExecIpamOptions): Promise<unknown>;
/**
 * {@linkcode execIpam} for the commands that print nothing on success.
 *
 * @param command DEL, CHECK, STATUS or GC.
 * @param options As for ADD.
 * @returns `undefined` once the child exits 0.
 */
export function execIpam(
  command: "DEL" | "CHECK" | "STATUS" | "GC",
  options: ExecIpamOptions,
): Promise<undefined>;
/**
 * {@linkcode execIpam} for any command.
 *
 * @param command The CNI command.
 * @param options As for ADD.
 * @returns The parsed JSON for ADD and VERSION; `undefined` otherwise.
 */
export function execIpam(command: IpamCommand, options: ExecIpamOptions): Promise<unknown>;
export function execIpam(command: IpamCommand, options: ExecIpamOptions): Promise<unknown> {
  const t0 = performance.now();
  let path: string;
  try {
    path = findPlugin(options.type, options.cniPath);
  } catch (err) {
    return Promise.reject(leavingNothing(err));
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.env)) {
    if (v !== undefined) env[k] = v;
  }
  env.CNI_COMMAND = command;
  let first: Child | unknown;
  try {
    first = spawnIn(options.netns, path, env, options.stdin);
  } catch (err) {
    first = err;
  }
  const label = `ipam ${command} ${versionOf(options.stdin)}`;
  const run = finish(command, path, env, first, options).finally(() => span(label, t0));
  if (command !== "VERSION") return run;
  // Not an abort's reason: the caller's object, which an ADD may reject with too.
  return run.catch((err) =>
    Promise.reject(err === options.signal?.reason ? err : leavingNothing(err))
  );
}

/** The `cniVersion` a delegate is sent, for the timing label (only read when timing). */
function versionOf(stdin: Uint8Array): string {
  if (!TIMING) return "";
  return /"cniVersion"\s*:\s*"([^"]*)"/.exec(new TextDecoder().decode(stdin))?.[1] ?? "?";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function finish(
  command: IpamCommand,
  path: string,
  env: Record<string, string>,
  first: Child | unknown,
  options: ExecIpamOptions,
): Promise<unknown> {
  const what = `IPAM plugin "${options.type}" ${command}`;
  let child: Child | undefined = first instanceof Child ? first : undefined;
  let spawnErr: unknown = child ? undefined : first;
  for (const delay of ETXTBSY_RETRY_DELAYS_MS) {
    if (child || !(spawnErr instanceof SpawnError && spawnErr.errno === ERRNO.ETXTBSY)) break;
    log.debug(`${what}: ${path} is busy (ETXTBSY), retrying in ${delay} ms`);
    await sleep(delay);
    if (options.signal?.aborted) {
      // No child ran: a fresh error, so the caller's reason object stays unmarked.
      throw leavingNothing(
        new Error(`${what} aborted before it ran`, { cause: options.signal.reason }),
      );
    }
    try {
      child = spawnIn(options.netns, path, env, options.stdin);
    } catch (err) {
      spawnErr = err;
    }
  }
  if (!child) {
    const msg = errorText(spawnErr);
    throw leavingNothing(
      new CniError(ErrorCode.IPAM, `Cannot run ${what}: ${msg}`, undefined, { cause: spawnErr }),
    );
  }
  return await talk(child, what, command, options);
}

async function talk(
  child: Child,
  what: string,
  command: IpamCommand,
  options: ExecIpamOptions,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? IPAM_TIMEOUT_MS[command];
  const onAbort = () => child.kill();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) child.kill();
  try {
    const r = await child.wait({
      timeoutMs,
      maxStdout: MAX_STDOUT,
      maxStderr: MAX_STDERR,
      exitedGraceMs: EXITED_GRACE_MS,
    });
    const errText = new TextDecoder().decode(r.stderr).trim();
    if (options.stderr === "inherit") {
      if (errText !== "") Deno.stderr.writeSync(r.stderr);
    } else if (errText !== "") {
      for (const line of errText.split("\n")) log.info(`${what}: ${line}`);
    }
    if (options.signal?.aborted) throw options.signal.reason ?? new Error(`${what} aborted`);
    if (r.timedOut) {
      throw new CniError(
        ErrorCode.TIMEOUT,
        `${what} timed out after ${timeoutMs} ms`,
        errText || undefined,
      );
    }
    if (r.overflow) {
      throw new CniError(ErrorCode.IPAM, `${what} wrote more than ${MAX_STDOUT} bytes to stdout`);
    }
    const text = new TextDecoder().decode(r.stdout).trim();
    if (!r.success) throw childError(what, r, text, errText);
    if (command !== "ADD" && command !== "VERSION") return undefined;
    if (text === "") {
      throw new CniError(
        ErrorCode.DECODE,
        `${what} succeeded but printed no result`,
        errText || undefined,
      );
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new CniError(ErrorCode.DECODE, `Cannot decode the result of ${what}`, clip(text), {
        cause: e,
      });
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** The error of a child that exited non-zero: its own error JSON if it printed one. */
function childError(
  what: string,
  status: ChildResult,
  out: string,
  errText: string,
): CniError {
  const how = status.signal !== undefined
    ? `was killed by signal ${status.signal}`
    : `exited with code ${status.code}`;
  if (out === "") {
    return new CniError(
      ErrorCode.IPAM,
      `${what} ${how} without an error result`,
      errText || undefined,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    return new CniError(ErrorCode.IPAM, `${what} ${how}; its output is not JSON`, clip(out));
  }
  const e = parsed as { code?: unknown; msg?: unknown; details?: unknown };
  if (
    typeof e.code === "number" && Number.isInteger(e.code) && e.code > 0 &&
    typeof e.msg === "string"
  ) {
    // The delegate's own answer: it failed and says so.
    return leavingNothing(
      new CniError(e.code, e.msg, typeof e.details === "string" ? e.details : undefined),
    );
  }
  return new CniError(
    ErrorCode.IPAM,
    `${what} ${how}; its output is not an error result`,
    clip(out),
  );
}

function clip(text: string, max = 1024): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
