import assert from "node:assert/strict";
import { ERRNO } from "./_errno.ts";
import { cstr, errno, libc } from "./_libc.ts";
import { LibraryLoadError, openLibrary } from "./_native.ts";

Deno.test("errno() is the errno of the libc call that just failed", () => {
  assert.equal(libc().close(-1), -1);
  assert.equal(errno(), ERRNO.EBADF);
  assert.equal(libc().open(cstr("/nonexistent/macvtap-libc-test"), 0), -1);
  assert.equal(errno(), ERRNO.ENOENT);
});

Deno.test("cstr() is the UTF-8 bytes and one NUL", () => {
  assert.deepEqual([...cstr("é0")], [0xc3, 0xa9, 0x30, 0]);
  assert.deepEqual([...cstr("")], [0]);
});

Deno.test("openLibrary() throws LibraryLoadError naming the path and the env override", () => {
  const env = "MACVTAP_TEST_LIBNOTHING";
  Deno.env.set(env, "/nonexistent/libnothing.so.9");
  try {
    assert.throws(
      () => openLibrary(env, "libc.so.6", { getpid: { parameters: [], result: "i32" } }),
      (e: unknown) =>
        e instanceof LibraryLoadError && /libnothing\.so\.9/.test(e.message) &&
        e.message.includes(env) && e.cause instanceof Error,
    );
  } finally {
    Deno.env.delete(env);
  }
});
