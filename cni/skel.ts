/**
 * The CNI entry point: environment and stdin validation, dispatch to the
 * command handlers, and the only writer of stdout. I/O is injected so the
 * whole protocol is unit-testable; {@linkcode runSkelMain} wires the real
 * process.
 *
 * Mirrors containernetworking/cni `pkg/skel/skel.go` (messages and checks),
 * except that error JSON carries `cniVersion` (spec) once the config is read.
 *
 * @module
 */

import { concatBytes } from "../internal/_bytes.ts";
import { exitProcess } from "../internal/_exit.ts";
import { ifnameProblem } from "../internal/_ifname.ts";
import { clipText, isJsonObject, jsonShapeProblem, showJson } from "../internal/_json.ts";
import { causeChain, CniError, ErrorCode } from "./errors.ts";
import { formatResult, type Result } from "./result.ts";
import {
  type CniCommand,
  CURRENT_VERSION,
  isSupportedVersion,
  parseVersion,
  selectVersion,
  SUPPORTED_VERSIONS,
  versionAllows,
} from "./version.ts";
import { errorText } from "../internal/_error_text.ts";

/** Largest config accepted on stdin (4 MiB); more is an I/O error (code 5). */
export const MAX_STDIN_BYTES = 4 * 1024 * 1024;

/**
 * Longest `CNI_CONTAINERID` accepted, in bytes (code 4 beyond). Runtimes use
 * 64 hex digits (containerd, CRI-O, podman) or a 36-character UUID; the
 * attachment record's file name `<containerId>@<ifname>.tmp<pid>` must stay
 * within the 255 bytes of a file name: 192 + 1 + 45 (an escaped 15-byte
 * ifname) + 4 + 7 (a pid) = 249.
 */
export const MAX_CONTAINER_ID_BYTES = 192;

/**
 * Longest network `name` accepted, in bytes (code 7 beyond): it names a
 * directory of the plugin's state and of host-local's store, and a file
 * name has at most 255 bytes.
 */
export const MAX_NETWORK_NAME_BYTES = 255;

/** Longest `CNI_NETNS` accepted, in bytes (code 4 beyond): PATH_MAX less its NUL. */
export const MAX_NETNS_BYTES = 4095;

/**
 * Longest `CNI_ARGS` accepted, in bytes (code 4 beyond). Kubernetes sends
 * about 300 (`IgnoreUnknown`, the pod's namespace, name, UID and infra
 * container ID); the value is kept in the attachment record and handed to
 * the IPAM plugin.
 */
export const MAX_CNI_ARGS_BYTES = 4096;

/**
 * The CNI invocation environment of one command (`CNI_CONTAINERID`,
 * `CNI_NETNS`, …), validated by the skel: what every plugin command receives
 * besides the config.
 *
 * @example What a runtime passes for ADD
 * ```ts
 * import type { CniContext } from "./skel.ts";
 *
 * const ctx: CniContext = {
 *   containerId: "task1",
 *   netns: "/run/netns/task1",
 *   ifname: "eth0",
 *   args: "IgnoreUnknown=1",
 *   path: ["/opt/cni/bin", "/usr/lib/cni"],
 * };
 * ```
 */
export interface CniContext {
  /** CNI_CONTAINERID (may be empty for GC/STATUS). */
  containerId: string;
  /** CNI_NETNS (may be empty for DEL, GC, STATUS). */
  netns: string;
  /** CNI_IFNAME (may be empty for GC/STATUS). */
  ifname: string;
  /** CNI_ARGS, raw. */
  args: string;
  /** CNI_PATH split on `:`, empty entries dropped. */
  path: string[];
  /** Extra environment for delegated (IPAM) plugins; default: the process environment. */
  env?: Record<string, string>;
  /**
   * Not from the CNI environment (the skel never sets it): the network
   * namespace a plugin treats as the host (masters, host routes, IPAM
   * children), as a path; default the caller's. The plugin's commands take
   * it as `CommandOptions.hostNetns`.
   */
  hostNetns?: string;
}

/** What a command handler receives: the environment, the command and stdin. */
export interface SkelRequest extends CniContext {
  /** `CNI_COMMAND` (VERSION is answered by the skel itself). */
  command: Exclude<CniCommand, "VERSION">;
  /** The parsed stdin object. */
  config: Record<string, unknown>;
  /** The selected config version (see `selectVersion`). */
  cniVersion: string;
  /** The stdin bytes exactly as received (what delegates must read). */
  stdin: Uint8Array;
}

/** The plugin's commands; `gc` and `status` default to success (as in the Go skel). */
export interface SkelHandlers {
  /** ADD: attach, and return the result (the skel formats it for the config's version). */
  add(req: SkelRequest): Result | Promise<Result>;
  /** DEL: detach; must succeed when there is nothing to delete. */
  del(req: SkelRequest): void | Promise<void>;
  /** CHECK: throw when the attachment is not as `prevResult` says. */
  check(req: SkelRequest): void | Promise<void>;
  /** GC: clean up what `cni.dev/valid-attachments` does not list (default: nothing). */
  gc?(req: SkelRequest): void | Promise<void>;
  /** STATUS: throw (code 50) when ADD cannot be served (default: ready). */
  status?(req: SkelRequest): void | Promise<void>;
  /** Map anything a handler throws to a CNI error; default {@linkcode defaultToCniError}. */
  toCniError?(err: unknown): CniError;
  /** The "about" line printed when CNI_COMMAND is unset. */
  about?: string;
}

/** The process I/O the skel uses. */
export interface SkelIo {
  /** The environment (`CNI_COMMAND`, `CNI_CONTAINERID`, …). */
  env: Record<string, string | undefined>;
  /** The whole of stdin; may stop after {@linkcode MAX_STDIN_BYTES} + 1 bytes. */
  stdin(): Uint8Array | Promise<Uint8Array>;
  /** Write the result or error JSON (the skel calls it once). */
  stdout(text: string): void;
  /** Diagnostics; default: discarded. */
  stderr?(text: string): void;
}

const COMMANDS: readonly CniCommand[] = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];

/** The env each command needs (the Go skel's rules, see notes §2.1). */
const REQUIRED_ENV: Readonly<Record<Exclude<CniCommand, "VERSION">, readonly string[]>> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

/**
 * What container IDs and network names must match (libcni
 * `pkg/utils/utils.go`); the plugin's state applies it to the names it keys
 * records by.
 */
export const CNI_ID_RE: RegExp = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/**
 * The default error mapping: a {@linkcode CniError} passes through, anything
 * else becomes code 999 with its cause chain in `details`.
 */
export function defaultToCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) {
    return new CniError(ErrorCode.GENERIC, err.message, causeChain(err), { cause: err });
  }
  return new CniError(ErrorCode.GENERIC, String(err), undefined, { cause: err });
}

/** Failure of the skel's own checks, with the config version if known. */
class SkelFailure {
  constructor(readonly error: CniError, readonly cniVersion?: string) {}
}

function about(handlers: SkelHandlers): string {
  return `${handlers.about ?? "CNI macvtap plugin"}\n` +
    `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`;
}

async function readVersionInput(io: SkelIo): Promise<string> {
  // VERSION ignores stdin problems: answer with our newest version.
  try {
    const bytes = await io.stdin();
    if (bytes.length === 0 || bytes.length > MAX_STDIN_BYTES) return CURRENT_VERSION;
    if (jsonShapeProblem(bytes)) return CURRENT_VERSION;
    const v = JSON.parse(new TextDecoder().decode(bytes))?.cniVersion;
    return typeof v === "string" && isSupportedVersion(v) ? v : CURRENT_VERSION;
  } catch {
    return CURRENT_VERSION;
  }
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

function invalidEnv(msg: string, details?: string): SkelFailure {
  return new SkelFailure(new CniError(ErrorCode.INVALID_ENV, msg, details));
}

/** A `CNI_*` value over its limit: the message names the limit, the details quote a prefix. */
function tooLong(name: string, value: string, max: number): SkelFailure | undefined {
  const bytes = byteLength(value);
  if (bytes <= max) return undefined;
  return invalidEnv(
    `${name} is longer than ${max} bytes (${bytes} bytes)`,
    `${name} ${showJson(value)}`,
  );
}

function checkEnv(command: Exclude<CniCommand, "VERSION">, env: SkelIo["env"]): void {
  const missing = REQUIRED_ENV[command].filter((k) => !env[k]);
  if (missing.length) {
    throw invalidEnv(`required env variables [${missing.join(",")}] missing`);
  }
  const overLong = tooLong("CNI_NETNS", env.CNI_NETNS ?? "", MAX_NETNS_BYTES) ??
    tooLong("CNI_ARGS", env.CNI_ARGS ?? "", MAX_CNI_ARGS_BYTES);
  if (overLong) throw overLong;
  if (command === "ADD" || command === "DEL" || command === "CHECK") {
    const id = env.CNI_CONTAINERID!;
    const idTooLong = tooLong("CNI_CONTAINERID", id, MAX_CONTAINER_ID_BYTES);
    if (idTooLong) throw idTooLong;
    if (!CNI_ID_RE.test(id)) {
      throw invalidEnv(
        "invalid characters in containerID",
        `CNI_CONTAINERID ${showJson(id)} must match ${CNI_ID_RE.source}`,
      );
    }
    const ifname = env.CNI_IFNAME!;
    const problem = ifnameProblem(ifname);
    if (problem) throw invalidEnv(`invalid CNI_IFNAME ${showJson(ifname)}: ${problem}`);
  }
}

async function readConfig(
  io: SkelIo,
): Promise<{ bytes: Uint8Array; config: Record<string, unknown> }> {
  let bytes: Uint8Array;
  try {
    bytes = await io.stdin();
  } catch (err) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.IO,
        `Cannot read network config from stdin: ${errorText(err)}`,
        undefined,
        { cause: err },
      ),
    );
  }
  if (bytes.length > MAX_STDIN_BYTES) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.IO,
        `Cannot read network config from stdin: more than ${MAX_STDIN_BYTES} bytes`,
      ),
    );
  }
  // Refuse what would cost more to build than any config needs (a megabyte
  // of nested brackets is 90 MB of V8 objects) before JSON.parse builds it.
  const shape = jsonShapeProblem(bytes);
  if (shape) {
    throw new SkelFailure(
      new CniError(ErrorCode.DECODE, `Cannot decode network config: the JSON ${shape}`),
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.DECODE,
        `Cannot decode network config: ${errorText(err)}`,
        undefined,
        { cause: err },
      ),
    );
  }
  if (!isJsonObject(parsed)) {
    throw new SkelFailure(
      new CniError(ErrorCode.DECODE, "Cannot decode network config: not a JSON object"),
    );
  }
  return { bytes, config: parsed };
}

/**
 * The config's `cniVersion` as the error JSON echoes it: only text of the
 * form `x.y.z` (at most 32 characters), never a megabyte of anything else.
 */
function declaredVersion(config: Record<string, unknown>): string | undefined {
  const v = config.cniVersion;
  return typeof v === "string" && v.length <= 32 && parseVersion(v) ? v : undefined;
}

function checkConfig(
  command: Exclude<CniCommand, "VERSION">,
  config: Record<string, unknown>,
): string {
  const declared = declaredVersion(config);
  const name = config.name;
  if (name === undefined || name === null || name === "") {
    throw new SkelFailure(new CniError(ErrorCode.INVALID_CONFIG, "missing network name"), declared);
  }
  if (typeof name === "string" && byteLength(name) > MAX_NETWORK_NAME_BYTES) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.INVALID_CONFIG,
        `network name is longer than ${MAX_NETWORK_NAME_BYTES} bytes (${byteLength(name)} bytes)`,
        `name ${showJson(name)}`,
      ),
      declared,
    );
  }
  if (typeof name !== "string" || !CNI_ID_RE.test(name)) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.INVALID_CONFIG,
        "invalid characters found in network name",
        `name ${showJson(name)} must match ${CNI_ID_RE.source}`,
      ),
      declared,
    );
  }
  const version = selectVersion(config.cniVersion, config.cniVersions);
  if (!version) {
    // A config without cniVersion is 0.1.0 to the Go decoder.
    const shown = config.cniVersion === undefined ? "0.1.0" : clipText(String(config.cniVersion));
    throw new SkelFailure(
      new CniError(
        ErrorCode.INCOMPATIBLE_VERSION,
        "incompatible CNI versions",
        `config is ${JSON.stringify(shown)}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
      ),
      declared,
    );
  }
  if (!versionAllows(command, version)) {
    throw new SkelFailure(
      new CniError(
        ErrorCode.INCOMPATIBLE_VERSION,
        `config version does not allow ${command}`,
        `${command} needs cniVersion ${
          command === "CHECK" ? "0.4.0" : "1.1.0"
        } or later, config is "${version}"`,
      ),
      declared ?? version,
    );
  }
  return version;
}

/**
 * Run one CNI invocation: validate env and stdin, call the handler, print the
 * result or the error JSON.
 *
 * @returns the exit code: 0 on success, 1 on a CNI error.
 * @example Answer VERSION
 * ```ts
 * import { runSkel } from "./skel.ts";
 * let out = "";
 * const code = await runSkel(
 *   { add: () => ({ cniVersion: "1.1.0" }), del: () => {}, check: () => {} },
 *   {
 *     env: { CNI_COMMAND: "VERSION" },
 *     stdin: () => new TextEncoder().encode('{"cniVersion":"0.4.0"}'),
 *     stdout: (text) => (out += text),
 *   },
 * );
 * // code === 0, out is {"cniVersion":"0.4.0","supportedVersions":[...]}
 * ```
 */
export async function runSkel(handlers: SkelHandlers, io: SkelIo): Promise<number> {
  const command = io.env.CNI_COMMAND;
  if (!command) {
    io.stderr?.(about(handlers));
    return 0;
  }
  if (command === "VERSION") {
    const cniVersion = await readVersionInput(io);
    io.stdout(JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS }));
    return 0;
  }
  let cniVersion: string | undefined;
  try {
    if (!(COMMANDS as readonly string[]).includes(command)) {
      throw new SkelFailure(
        new CniError(ErrorCode.INVALID_ENV, `unknown CNI_COMMAND: ${clipText(command)}`),
      );
    }
    const cmd = command as Exclude<CniCommand, "VERSION">;
    checkEnv(cmd, io.env);
    const { bytes, config } = await readConfig(io);
    const selected = checkConfig(cmd, config);
    cniVersion = declaredVersion(config) ?? selected;
    const request: SkelRequest = {
      command: cmd,
      containerId: io.env.CNI_CONTAINERID ?? "",
      netns: io.env.CNI_NETNS ?? "",
      ifname: io.env.CNI_IFNAME ?? "",
      args: io.env.CNI_ARGS ?? "",
      path: (io.env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
      config,
      cniVersion: selected,
      stdin: bytes,
    };
    switch (cmd) {
      case "ADD": {
        const result = await handlers.add(request);
        // The spec: print the result at the config's version.
        io.stdout(JSON.stringify(formatResult(result, selected)));
        return 0;
      }
      case "DEL":
        await handlers.del(request);
        return 0;
      case "CHECK":
        await handlers.check(request);
        return 0;
      case "GC":
        await handlers.gc?.(request);
        return 0;
      case "STATUS":
        await handlers.status?.(request);
        return 0;
    }
  } catch (err) {
    let error: CniError;
    if (err instanceof SkelFailure) {
      error = err.error;
      cniVersion = err.cniVersion;
    } else {
      try {
        error = (handlers.toCniError ?? defaultToCniError)(err);
      } catch (mapErr) {
        error = defaultToCniError(mapErr);
      }
    }
    io.stdout(JSON.stringify(error.toJSON(cniVersion)));
    return 1;
  }
}

/** Read all of stdin synchronously, stopping after `limit` bytes. */
function readStdinSync(limit: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  while (total <= limit) {
    const n = Deno.stdin.readSync(buf);
    if (n === null) break;
    if (n === 0) continue;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  return concatBytes(chunks);
}

function writeAllSync(w: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(w.writeSync(bytes));
}

/**
 * Run the skel on the real process (env, stdin, stdout, stderr) and end the
 * process with its code (see `internal/_exit.ts`: it may return, and the
 * process then ends when the event loop is empty). Needs `--allow-env`.
 *
 * @example Entry point
 * ```ts
 * import { runSkelMain, type SkelHandlers } from "./skel.ts";
 *
 * // The whole main module of a plugin (it ends the process): type-checked, not run.
 * export async function main(handlers: SkelHandlers): Promise<void> {
 *   await runSkelMain(handlers);
 * }
 * ```
 */
export async function runSkelMain(handlers: SkelHandlers): Promise<void> {
  const env = Deno.env.toObject();
  const code = await runSkel(handlers, {
    env,
    stdin: () => readStdinSync(MAX_STDIN_BYTES),
    stdout: (text) => writeAllSync(Deno.stdout, text),
    stderr: (text) => writeAllSync(Deno.stderr, text),
  });
  exitProcess(code, { checkCache: env.CNI_COMMAND !== "VERSION" });
}
