/**
 * Running a command to completion and collecting its output. No side effects
 * at import, so the lab, the e2e lab and the bench can all share it.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Output of a finished command. */
export interface ExecResult {
  code: number;
  success: boolean;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode Lab.exec} and {@linkcode run}. */
export interface ExecOptions {
  /** Bytes or text written to the child's stdin (closed afterwards). */
  stdin?: Uint8Array | string;
  /** Environment; with `clearEnv` only these variables. */
  env?: Record<string, string>;
  clearEnv?: boolean;
  /** Kill the child (SIGKILL) after this many ms; default 60 s. */
  timeoutMs?: number;
  /** Working directory. */
  cwd?: string;
}

/** Run `cmd` to completion and collect its output (never throws on a non-zero exit). */
export async function run(cmd: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [program, ...args] = cmd;
  if (program === undefined) throw new TypeError("run(): empty command");
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
    ...(options.clearEnv ? { clearEnv: true } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 60_000);
  try {
    if (options.stdin !== undefined) {
      const w = child.stdin.getWriter();
      try {
        await w.write(
          typeof options.stdin === "string" ? encoder.encode(options.stdin) : options.stdin,
        );
        await w.close();
      } catch {
        // the child may exit without reading
      }
    }
    const out = await child.output();
    return {
      code: out.code,
      success: out.success,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Run `cmd` and return its stdout; throw with its stderr on failure. */
export async function runOk(cmd: readonly string[], options: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, options);
  if (!r.success) {
    throw new Error(
      `${cmd.join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/** Poll `fn` until it returns true; throw `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * `promise`, or a rejection naming `what` once `timeoutMs` has passed: an
 * event that never comes (a connection the peer never accepts, a stream
 * reset without a status) fails the test instead of hanging the run.
 */
export function within<T>(what: string, promise: Promise<T>, timeoutMs = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
