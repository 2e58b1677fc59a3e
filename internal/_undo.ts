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
 * The steps and the arming both stacks share; they differ only in whether a
 * step may be awaited.
 */
abstract class UndoSteps<Fn extends () => unknown> {
  #steps: { what: string; fn: Fn }[] = [];
  #armed = true;

  /** Add an undo step. */
  push(what: string, fn: Fn): void {
    this.#steps.push({ what, fn });
  }

  /** Keep everything: the operation succeeded. */
  disarm(): void {
    this.#armed = false;
  }

  /** Whether leaving the scope undoes the steps. */
  protected get armed(): boolean {
    return this.#armed;
  }

  /** The steps in the order to undo them (last first), each handed out once. */
  protected take(): { what: string; fn: Fn }[] {
    const steps = this.#steps.reverse();
    this.#steps = [];
    return steps;
  }
}

function logFailure(what: string, err: unknown): void {
  log.error(`rollback: cannot ${what}: ${errorText(err)}`);
}

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
export class UndoStack extends UndoSteps<() => void> implements Disposable {
  /** Run the undo steps now (reverse order), once. */
  run(): void {
    for (const step of this.take()) {
      try {
        step.fn();
      } catch (err) {
        logFailure(step.what, err);
      }
    }
  }

  [Symbol.dispose](): void {
    if (this.armed) this.run();
  }
}

/** Async variant of {@linkcode UndoStack}, for steps that spawn (IPAM DEL). */
export class AsyncUndoStack extends UndoSteps<() => void | Promise<void>>
  implements AsyncDisposable {
  /** Run the undo steps now (reverse order), once. */
  async run(): Promise<void> {
    for (const step of this.take()) {
      try {
        await step.fn();
      } catch (err) {
        logFailure(step.what, err);
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.armed) await this.run();
  }
}
