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
 * A sink appending to `path`. The file is created 0600 and opened without
 * following a symlink at the last component is not possible from Deno, so the
 * caller should point `logFile` at a directory only root can write.
 */
export function fileSink(path: string): LogSink {
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
