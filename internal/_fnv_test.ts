import assert from "node:assert/strict";
import { fnv1a32, fnv1a64 } from "./_fnv.ts";

// Names on disk and in the kernel derive from these: they must never change.
Deno.test("fnv1a32() and fnv1a64() give the reference FNV-1a values, over UTF-8", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  assert.equal(fnv1a64(""), 0xcbf29ce484222325n);
  assert.equal(fnv1a64("a"), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64("foobar"), 0x85944171f73967e8n);
  // "é" is the bytes c3 a9, not the UTF-16 unit e9.
  let h = 0x811c9dc5;
  for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  assert.equal(fnv1a32("é"), h);
});
