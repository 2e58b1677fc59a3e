/**
 * The error for invalid network configuration content.
 *
 * @module
 */

/**
 * Invalid (or unsupported) configuration. `message` starts with the field:
 * `mode: unknown macvtap mode "foo" (expected bridge, private, vepa or passthru)`.
 * `plugin/errors.ts` maps it to CNI code 7, or 2 when `unsupported`.
 *
 * @example Usage
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const err = new ConfigError("mtu", "mtu: invalid MTU 10 (expected 0 or 68 to 65535)");
 * err.field; // "mtu"
 * ```
 */
export class ConfigError extends Error {
  /** The config key (dotted path, e.g. `runtimeConfig.mac`), or `CNI_ARGS`. */
  readonly field: string;
  /** True for a known field with a value this plugin does not support (CNI code 2). */
  readonly unsupported: boolean;

  /**
   * A config error.
   *
   * @param field The config key, e.g. `mtu`.
   * @param message Starts with the field name.
   * @param options `unsupported` for code 2; `cause`.
   */
  constructor(
    field: string,
    message: string,
    options: { unsupported?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "ConfigError";
    this.field = field;
    this.unsupported = options.unsupported ?? false;
  }
}
