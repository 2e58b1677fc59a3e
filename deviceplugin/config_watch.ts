/**
 * The device plugin's config as a file (a ConfigMap key mounted as a
 * volume), read at start and re-read while running, so that an edit of the
 * ConfigMap applies without a restart.
 *
 * kubelet swaps a ConfigMap volume's files atomically (a `..data` symlink
 * flip) about a minute after the edit; the file is small, so it is simply
 * read again every {@linkcode CONFIG_POLL_MS} (no inotify on the swapped
 * symlink) and compared with the last text. A text that parses is handed to
 * `onChange` (the manager then adds, removes or restarts resources; devices
 * in use are never deleted, see DevicePluginManager.reconfigure); one that
 * does not is logged and the running config stays.
 *
 * The environment variable `DP_MACVTAP_CONF` stays for configs that come
 * from the environment (read once, at start).
 *
 * @module
 */

import { type DevicePluginConfig, parseDevicePluginConfig } from "./config.ts";
import type { Logger } from "../internal/_log.ts";
import { errorText } from "../internal/_error_text.ts";

/** How often the config file is read again. */
export const CONFIG_POLL_MS = 2000;

/** Largest config file read (a config of the largest valid size is far below). */
export const MAX_CONFIG_FILE_BYTES = 1 << 20;

/**
 * Read the config file's text, at most {@linkcode MAX_CONFIG_FILE_BYTES}.
 *
 * @param path The file (symlinks followed: a ConfigMap volume's keys are links).
 * @returns Its text.
 * @throws {Error} naming the file when it cannot be read or is too large.
 */
export function readConfigText(path: string): string {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (err) {
    throw new Error(`cannot read the config file ${path}: ${errorText(err)}`, { cause: err });
  }
  try {
    const st = file.statSync();
    if (!st.isFile) throw new Error(`the config file ${path} is not a regular file`);
    const buf = new Uint8Array(MAX_CONFIG_FILE_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const r = file.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    if (n > MAX_CONFIG_FILE_BYTES) {
      throw new Error(`the config file ${path} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    file.close();
  }
}

/**
 * Read and validate the config file.
 *
 * @param path The file.
 * @returns The parsed config.
 * @throws {Error} when unreadable; `SyntaxError` or `DevicePluginConfigError` when invalid.
 */
export function readConfigFile(path: string): DevicePluginConfig {
  return parseDevicePluginConfig(readConfigText(path));
}

/** Options of {@linkcode watchConfigFile}. */
export interface ConfigWatchOptions {
  /** The config as started (its text, to tell a change). */
  initialText: string;
  /** Called with each new valid config. */
  onChange: (config: DevicePluginConfig) => void;
  log: Logger;
  /** Poll period (default {@linkcode CONFIG_POLL_MS}). */
  intervalMs?: number;
}

/**
 * Re-read `path` every `intervalMs` and hand each changed, valid config to
 * `onChange`.
 *
 * @param path The config file.
 * @param options The initial text, the callback, the logger.
 * @returns A handle whose `close()` (idempotent) stops the polling.
 */
export function watchConfigFile(
  path: string,
  options: ConfigWatchOptions,
): { close(): void } & Disposable {
  let last = options.initialText;
  let lastError = "";
  const timer = setInterval(() => {
    let text;
    try {
      text = readConfigText(path);
    } catch (err) {
      const msg = errorText(err);
      if (msg !== lastError) options.log.error(`${msg}; keeping the running config`);
      lastError = msg;
      return;
    }
    if (text === last) return;
    try {
      const config = parseDevicePluginConfig(text);
      last = text;
      lastError = "";
      options.log.info(
        `config file ${path} changed: ${
          config.discover
            ? "discovering interfaces"
            : config.resources.map((r) => `${r.name} (${r.lowerDevice}, ${r.mode}, ${r.capacity})`)
              .join(", ")
        }`,
      );
      options.onChange(config);
    } catch (err) {
      const msg = `config file ${path}: ${errorText(err)}`;
      if (msg !== lastError) options.log.error(`${msg}; keeping the running config`);
      lastError = msg;
    }
  }, options.intervalMs ?? CONFIG_POLL_MS);
  const close = () => clearInterval(timer);
  return { close, [Symbol.dispose]: close };
}
