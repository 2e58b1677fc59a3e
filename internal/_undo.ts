/**
 * Rollback for multi-step operations.
 *
 * Each undo step catches and logs its own failure, so a failing rollback never
 * hides the error that caused it (a throwing disposer in a `DisposableStack`
 * would wrap the original in a `SuppressedError`).
 *
 * @module
 */

import { log } from "./_log.ts";
import { errorText } from "./_error_text.ts";

/**
 * A stack of undo steps. Push a step right after the side effect it undoes;
 * on success call {@linkcode UndoStack.disarm}; leaving the scope while armed
 * runs the steps in reverse order.
 *
 * @example Usage
 * ```ts
 * import { UndoStack } from "./_undo.ts";
 * {
 *   using undo = new UndoStack();
 *   undo.push("delete link", () => {});
 *   undo.disarm(); // success: nothing is undone
 * }
 * ```
 */
export class UndoStack implements Disposable {
  #steps: { what: string; fn: () => void }[] = [];
  #armed = true;

  /** Add an undo step. */
  push(what: string, fn: () => void): void {
    this.#steps.push({ what, fn });
  }

  /** Keep everything: the operation succeeded. */
  disarm(): void {
    this.#armed = false;
  }

  /** Run the undo steps now (reverse order), once. */
  run(): void {
    const steps = this.#steps.reverse();
    this.#steps = [];
    for (const step of steps) {
      try {
        step.fn();
      } catch (err) {
        log.error(`rollback: cannot ${step.what}: ${errorText(err)}`);
      }
    }
  }

  [Symbol.dispose](): void {
    if (this.#armed) this.run();
  }
}

/** Async variant of {@linkcode UndoStack}, for steps that spawn (IPAM DEL). */
export class AsyncUndoStack implements AsyncDisposable {
  #steps: { what: string; fn: () => void | Promise<void> }[] = [];
  #armed = true;

  /** Add an undo step. */
  push(what: string, fn: () => void | Promise<void>): void {
    this.#steps.push({ what, fn });
  }

  /** Keep everything: the operation succeeded. */
  disarm(): void {
    this.#armed = false;
  }

  /** Run the undo steps now (reverse order), once. */
  async run(): Promise<void> {
    const steps = this.#steps.reverse();
    this.#steps = [];
    for (const step of steps) {
      try {
        await step.fn();
      } catch (err) {
        log.error(`rollback: cannot ${step.what}: ${errorText(err)}`);
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#armed) await this.run();
  }
}
