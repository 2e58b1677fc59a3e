import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import { openLazily } from "./_native.ts";

const table = {
  /** pid_t getpid(void) */
  getpid: { parameters: [], result: "i32" },
  /** size_t strlen(const char *s) */
  strlen: { parameters: ["buffer"], result: "usize" },
  /** unsigned int sleep(unsigned int s), on a pool thread */
  sleep: { parameters: ["u32"], result: "u32", nonblocking: true },
  /** not in libc */
  no_such_symbol_here: { parameters: [], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

Deno.test("openLazily() binds each symbol on first use, with Deno.dlopen's call shapes", async () => {
  const libc = openLazily("libc.so.6", table);
  assertEquals(libc.getpid(), Deno.pid);
  assertEquals(libc.getpid(), Deno.pid, "the bound function is reused");
  assertEquals(libc.strlen(new TextEncoder().encode("macvtap\0")), 7n);
  const pending = libc.sleep(0);
  assert(pending instanceof Promise, "nonblocking returns a promise");
  assertEquals(await pending, 0);
  assertThrows(() => libc.no_such_symbol_here(), /no_such_symbol_here/);
});

Deno.test("openLazily() throws dlerror's text for a library that cannot be opened", () => {
  assertThrows(() => openLazily("/nonexistent/libnothing.so.9", table), /libnothing\.so\.9/);
});
