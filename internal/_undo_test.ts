import assert from "node:assert/strict";
import { AsyncUndoStack, UndoStack } from "./_undo.ts";

Deno.test("UndoStack runs its steps last first, once, past a failing step", () => {
  const done: string[] = [];
  {
    using undo = new UndoStack();
    undo.push("a", () => void done.push("a"));
    undo.push("b", () => {
      throw new Error("b fails");
    });
    undo.push("c", () => void done.push("c"));
  }
  assert.deepEqual(done, ["c", "a"]);
});

Deno.test("UndoStack.disarm() keeps everything", () => {
  const done: string[] = [];
  {
    using undo = new UndoStack();
    undo.push("a", () => void done.push("a"));
    undo.disarm();
  }
  assert.deepEqual(done, []);
});

Deno.test("AsyncUndoStack awaits each step, last first, once", async () => {
  const done: string[] = [];
  const undo = new AsyncUndoStack();
  undo.push("a", async () => {
    await Promise.resolve();
    done.push("a");
  });
  undo.push("b", () => Promise.reject(new Error("b fails")));
  undo.push("c", () => void done.push("c"));
  await undo.run();
  await undo[Symbol.asyncDispose]();
  assert.deepEqual(done, ["c", "a"]);
});

Deno.test("AsyncUndoStack.disarm() keeps everything", async () => {
  const done: string[] = [];
  {
    await using undo = new AsyncUndoStack();
    undo.push("a", () => void done.push("a"));
    undo.disarm();
  }
  assert.deepEqual(done, []);
});
