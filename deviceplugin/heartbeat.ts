/**
 * A heartbeat file for probes that cost a busybox `sh`, `date` and `stat`
 * instead of a Deno start (55-63 MB RSS each).
 *
 * Every {@linkcode HEARTBEAT_INTERVAL_MS} the plugin's event loop rewrites
 * the file (write a temporary, rename: a reader sees a whole line): `ok`
 * while every resource is served on its socket and registered with the
 * kubelet now there, else `not ready: <why>`. So
 *
 * - a stalled event loop (SIGSTOP, a busy loop, a deadlock) leaves the file
 *   old: the liveness probe checks its age (deploy/macvtap.yaml, at most
 *   {@linkcode HEARTBEAT_MAX_AGE_S} s);
 * - a lost registration (kubelet restarted, our socket removed) makes the
 *   line `not ready: …`: the readiness probe checks that line too.
 *
 * The file is removed at a clean stop.
 *
 * @module
 */

import type { Logger } from "../internal/_log.ts";
import { errorText } from "../internal/_error_text.ts";

/** How often the heartbeat is written. */
export const HEARTBEAT_INTERVAL_MS = 5000;

/** The probes' limit on the heartbeat's age (deploy/macvtap.yaml): four missed beats. */
export const HEARTBEAT_MAX_AGE_S = 20;

/** Options of {@linkcode startHeartbeat}. */
export interface HeartbeatOptions {
  /** Why the plugin is not ready, or `undefined` when it is. */
  problem: () => string | undefined;
  log: Logger;
  /** Period (default {@linkcode HEARTBEAT_INTERVAL_MS}). */
  intervalMs?: number;
}

/**
 * Write `path` now and every `intervalMs` from the event loop.
 *
 * @param path The heartbeat file (its directory must exist).
 * @param options The readiness check and the logger.
 * @returns A handle whose `close()` (idempotent) stops the beats and removes the file.
 */
export function startHeartbeat(
  path: string,
  options: HeartbeatOptions,
): { close(): void } & Disposable {
  let lastState = "";
  let lastError = "";
  const beat = () => {
    let state: string;
    try {
      const problem = options.problem();
      state = problem === undefined ? "ok" : `not ready: ${problem.replace(/\s+/g, " ")}`;
    } catch (err) {
      state = `not ready: ${errorText(err)}`;
    }
    if (state !== lastState) {
      if (state === "ok") options.log.info(`heartbeat ${path}: ok`);
      else options.log.warn(`heartbeat ${path}: ${state}`);
      lastState = state;
    }
    const tmp = `${path}.tmp`;
    try {
      Deno.writeTextFileSync(tmp, `${state}\n`, { mode: 0o644 });
      Deno.renameSync(tmp, path);
      lastError = "";
    } catch (err) {
      const msg = errorText(err);
      if (msg !== lastError) options.log.error(`heartbeat ${path}: ${msg}`);
      lastError = msg;
    }
  };
  beat();
  const timer = setInterval(beat, options.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    for (const p of [path, `${path}.tmp`]) {
      try {
        Deno.removeSync(p);
      } catch {
        // not there
      }
    }
  };
  return { close, [Symbol.dispose]: close };
}

/** What {@linkcode registrationProblem} needs of the manager. */
export interface RegistrationView {
  /** Resources not served or not registered with the kubelet now there. */
  readonly unregistered: readonly string[];
  readonly plugins: ReadonlyMap<string, { endpoint: string; socketIno: number | null }>;
}

/**
 * Why the plugin is not ready: a resource not registered, or its socket gone
 * or replaced in `socketDir` (kubelet wipes the directory when it restarts).
 *
 * @param manager The running manager.
 * @param socketDir The kubelet's device-plugin directory.
 * @returns The problem, or `undefined` when every resource is served and registered.
 */
export function registrationProblem(
  manager: RegistrationView,
  socketDir: string,
): string | undefined {
  const problems: string[] = [];
  if (manager.unregistered.length) {
    problems.push(`not registered with kubelet: ${manager.unregistered.join(", ")}`);
  }
  for (const [name, p] of manager.plugins) {
    let ino: number | null = null;
    try {
      ino = Deno.lstatSync(`${socketDir}/${p.endpoint}`).ino;
    } catch {
      // gone
    }
    if (ino === null || ino !== p.socketIno) problems.push(`${name}: socket ${p.endpoint} gone`);
  }
  return problems.length ? problems.join("; ") : undefined;
}
