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
  /** Release what the sink holds (a file); writes after it go to stderr. */
  close?(): void;
}

/** What code logs to: {@linkcode log}, a {@linkcode Logger}. */
export interface Log {
  /** Log at `error`. */
  error(msg: string): void;
  /** Log at `warn`. */
  warn(msg: string): void;
  /** Log at `info`. */
  info(msg: string): void;
  /** Log at `debug`. */
  debug(msg: string): void;
}

/** A leveled logger with a fixed prefix. */
export class Logger implements Log, Disposable {
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

  /** Close the sink (a log file); later records go to stderr. Idempotent. */
  close(): void {
    this.#sink.close?.();
  }

  /** Same as {@linkcode Logger.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
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
  let open = true;
  return {
    write(line: string): void {
      try {
        if (!open) throw new Deno.errors.BadResource("log file closed");
        file.writeSync(encoder.encode(line));
      } catch {
        stderrSink.write(line);
      }
    },
    close(): void {
      if (!open) return;
      open = false;
      file.close();
    },
  };
}

/** Whether `value` names a log level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && Object.hasOwn(RANK, value);
}

/** The process-wide logger; `cmd/` replaces it once the config is read. */
let processLogger: Logger = new Logger();

/** The async context {@linkcode withLogger} keeps a call's logger in (`AsyncLocalStorage`). */
export interface LogScope {
  /** The logger of the running call, if any. */
  getStore(): Logger | undefined;
  /** Run `fn` with `logger` as the call's logger. */
  run<R>(logger: Logger, fn: () => R): R;
}

let scoped: LogScope | undefined;

/**
 * Install the async context for {@linkcode withLogger}: the public plugin
 * entry (plugin.ts) passes `node:async_hooks`' `AsyncLocalStorage`, so the
 * executable's start-up path never loads it. The first one installed stays.
 */
export function setLogScope(scope: LogScope): void {
  scoped ??= scope;
}

function current(): Logger {
  return scoped?.getStore() ?? processLogger;
}

/**
 * The logger of the code running now: the one {@linkcode withLogger} gave
 * the current call, else the process-wide one.
 */
export const log: Log = {
  error(msg: string): void {
    current().error(msg);
  },
  warn(msg: string): void {
    current().warn(msg);
  },
  info(msg: string): void {
    current().info(msg);
  },
  debug(msg: string): void {
    current().debug(msg);
  },
};

/** Replace the process-wide logger (for an executable, whose process is its one call). */
export function setLogger(logger: Logger): void {
  processLogger = logger;
}

/**
 * Run `fn` with `logger` as {@linkcode log} for it and everything it starts
 * (across awaits, timers and child tasks), leaving the process-wide logger
 * and concurrent calls alone.
 *
 * @example Two concurrent calls, each with its own logger
 * ```ts
 * import assert from "node:assert/strict";
 * import { AsyncLocalStorage } from "node:async_hooks";
 * import { log, Logger, setLogScope, withLogger } from "./_log.ts";
 *
 * setLogScope(new AsyncLocalStorage<Logger>());
 * const a: string[] = [], b: string[] = [];
 * await Promise.all([
 *   withLogger(new Logger({ level: "info", sink: { write: (l) => a.push(l) } }), async () => {
 *     await new Promise((r) => setTimeout(r, 5));
 *     log.info("from a");
 *   }),
 *   withLogger(new Logger({ level: "info", sink: { write: (l) => b.push(l) } }), async () => {
 *     log.info("from b");
 *   }),
 * ]);
 * assert.match(a.join(""), /from a/);
 * assert.doesNotMatch(a.join(""), /from b/);
 * assert.match(b.join(""), /from b/);
 * ```
 */
export async function withLogger<T>(logger: Logger, fn: () => Promise<T>): Promise<T> {
  if (!scoped) {
    // Only code that imports internals gets here; replacing the process
    // logger instead would be the very bug this prevents.
    throw new Error(
      "withLogger(): no log scope installed (import plugin.ts, or call setLogScope())",
    );
  }
  return await scoped.run(logger, fn);
}
