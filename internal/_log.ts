/**
 * A tiny leveled logger. Writes to stderr or to a file (append, 0600), never to
 * stdout: stdout belongs to the CNI result.
 *
 * @module
 */

/** Log levels, most severe first. */
export type LogLevel = "error" | "warn" | "info" | "debug";

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Where log lines go. */
export interface LogSink {
  write(line: string): void;
}

/** A leveled logger with a fixed prefix. */
export class Logger {
  #level: number;
  #sink: LogSink;
  #prefix: string;

  constructor(options: { level?: LogLevel; sink?: LogSink; prefix?: string } = {}) {
    this.#level = RANK[options.level ?? "warn"];
    this.#sink = options.sink ?? stderrSink;
    this.#prefix = options.prefix ?? "macvtap";
  }

  /** Log at `error`. */
  error(msg: string): void {
    this.#log("error", msg);
  }
  /** Log at `warn`. */
  warn(msg: string): void {
    this.#log("warn", msg);
  }
  /** Log at `info`. */
  info(msg: string): void {
    this.#log("info", msg);
  }
  /** Log at `debug`. */
  debug(msg: string): void {
    this.#log("debug", msg);
  }

  #log(level: LogLevel, msg: string): void {
    if (RANK[level] > this.#level) return;
    this.#sink.write(`${new Date().toISOString()} ${this.#prefix} ${level}: ${msg}\n`);
  }
}

const encoder = new TextEncoder();

const stderrSink: LogSink = {
  write(line: string): void {
    try {
      Deno.stderr.writeSync(encoder.encode(line));
    } catch {
      // stderr closed: nothing sensible to do.
    }
  },
};

/**
 * Why `path` is not a safe place for a root process to append to, or
 * `undefined` when it is: the file must be absent or a regular file (not a
 * symlink), and its directory must not be writable by group or others (else
 * a user could plant a symlink there between our check and our write).
 */
export function unsafeLogPath(path: string): string | undefined {
  if (!path.startsWith("/")) return "is not an absolute path";
  try {
    const st = Deno.lstatSync(path);
    if (st.isSymlink) return "is a symlink";
    if (!st.isFile) return "is not a regular file";
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return `cannot be checked: ${err}`;
  }
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  try {
    const st = Deno.lstatSync(dir);
    if (!st.isDirectory) return `has a parent ${dir} that is not a directory`;
    if ((st.mode ?? 0) & 0o022) return `is in ${dir}, which group or others can write`;
  } catch (err) {
    return `has a parent ${dir} that cannot be checked: ${err}`;
  }
  return undefined;
}

/**
 * A sink appending to `path` (created 0600). An unsafe path (see
 * {@linkcode unsafeLogPath}) is not written: lines go to stderr with a note.
 */
export function fileSink(path: string): LogSink {
  const problem = unsafeLogPath(path);
  if (problem) {
    stderrSink.write(`macvtap warn: logFile "${path}" ${problem}; logging to stderr\n`);
    return stderrSink;
  }
  return {
    write(line: string): void {
      try {
        Deno.writeTextFileSync(path, line, { append: true, create: true, mode: 0o600 });
      } catch {
        stderrSink.write(line);
      }
    },
  };
}

/** Whether `value` names a log level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && value in RANK;
}

/** The process-wide logger; `cmd/` replaces it once the config is read. */
export let log: Logger = new Logger();

/** Replace the process-wide logger. */
export function setLogger(logger: Logger): void {
  log = logger;
}
