import assert from "node:assert/strict";
import { ERRNO, type ErrnoName, errnoName, errnoText } from "./_errno.ts";
import { openLazily } from "./_native.ts";

Deno.test("ERRNO numbers are unique and errnoName() maps each back to its name", () => {
  for (const [name, n] of Object.entries(ERRNO) as [ErrnoName, number][]) {
    assert.equal(errnoName(n), name);
  }
  assert.equal(errnoName(999), "E999");
  assert.equal(errnoText(999), "E999");
});

Deno.test("errnoText() agrees with this libc's strerror(3) for every ERRNO", () => {
  const c = openLazily("libc.so.6", {
    /** char *strerror(int errnum) */
    strerror: { parameters: ["i32"], result: "pointer" },
  });
  for (const n of Object.values(ERRNO)) {
    const p = c.strerror(n);
    assert.ok(p, `strerror(${n})`);
    assert.equal(errnoText(n), Deno.UnsafePointerView.getCString(p), errnoName(n));
  }
});
