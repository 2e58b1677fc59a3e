/**
 * One way to put an unknown thrown value into a message.
 *
 * @module
 */

/**
 * The message of an `Error`, or the thrown value as text.
 *
 * @example Usage
 * ```ts
 * import { errorText } from "./_error_text.ts";
 * errorText(new Error("boom")); // "boom"
 * errorText("plain"); // "plain"
 * ```
 */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
