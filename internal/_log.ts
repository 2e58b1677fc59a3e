/**
 * A tiny leveled logger. Writes to stderr or to a file the plugin owns, never
 * to stdout: stdout belongs to the CNI result.
 *
 * Every record is one line of JSON (`{"ts":…,"level":…,"src":…,"msg":…}`):
 * values are escaped by `JSON.stringify`, so a newline or a control
 * character in a device ID, a container ID or an error message can never
 * start a second record or a line of another format.
 *
 * @module
 */

import { ensureOwnedDir, openOwnedFileForAppend } from "./_owned_path.ts";
import { errorText } from "./_error_text.ts";

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
    this.#sink.write(formatRecord(level, this.#prefix, msg));
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
 * One log record: a single line of JSON. Control characters (and U+2028,
 * U+2029, which some readers take for line breaks) come out escaped.
 *
 * @example A newline in a value stays inside the record
 * ```ts
 * import { formatRecord } from "./_log.ts";
 * const line = formatRecord("warn", "macvtap", "deviceID \"a\nroot::0:0::/:/bin/sh\"");
 * if (line.indexOf("\n") !== line.length - 1) throw new Error("two lines");
 * ```
 */
export function formatRecord(level: LogLevel, src: string, msg: string): string {
  const json = JSON.stringify({ ts: new Date().toISOString(), level, src, msg });
  return json.replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`) + "\n";
}

/**
 * A sink appending to `path`, which must be inside the log root `root`
 * (checked by the config): directories below the root are created 0700 and
 * must be ours, the file is created 0600 or must be a regular file of ours
 * with one link. When it is not, records go to stderr, after one record
 * saying why.
 */
export function fileSink(path: string, root: string): LogSink {
  let file: Deno.FsFile;
  try {
    ensureOwnedDir(root, path.slice(0, path.lastIndexOf("/")) || "/");
    file = openOwnedFileForAppend(path);
  } catch (err) {
    stderrSink.write(
      formatRecord(
        "warn",
        "macvtap",
        `logFile ${JSON.stringify(path)}: ${errorText(err)}; logging to stderr`,
      ),
    );
    return stderrSink;
  }
  return {
    write(line: string): void {
      try {
        file.writeSync(encoder.encode(line));
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
