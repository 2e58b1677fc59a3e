import assert from "node:assert/strict";
import { isLogLevel } from "./_log.ts";

Deno.test("isLogLevel() accepts the four levels only, not inherited names", () => {
  for (const level of ["error", "warn", "info", "debug"]) assert.ok(isLogLevel(level), level);
  for (const v of ["", "trace", "DEBUG", "toString", "constructor", "__proto__", 1, undefined]) {
    assert.ok(!isLogLevel(v), String(v));
  }
});
