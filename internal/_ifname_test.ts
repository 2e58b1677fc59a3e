import assert from "node:assert/strict";
import {
  deviceIfname,
  ifnameProblem,
  TAP_INDEX_BASE,
  TAP_INDEX_PROBES,
  TAP_INDEX_SPAN,
  tapIndexCandidates,
  tapIndexFor,
} from "./_ifname.ts";

Deno.test("tapIndexCandidates() starts at tapIndexFor() and stays in the device range", () => {
  for (const id of ["lan-0", "production-lan-12", "x".repeat(63) + "-99"]) {
    const c = tapIndexCandidates(id);
    assert.equal(c.length, TAP_INDEX_PROBES);
    assert.equal(c[0], tapIndexFor(id));
    assert.equal(new Set(c).size, c.length);
    for (const i of c) assert.ok(i >= TAP_INDEX_BASE && i < TAP_INDEX_BASE + TAP_INDEX_SPAN);
  }
});

Deno.test("tapIndexCandidates() wraps at the end of the range", () => {
  // An ID whose preferred index sits within the last probes of the range.
  const id = "w-79594";
  assert.ok(tapIndexFor(id) > TAP_INDEX_BASE + TAP_INDEX_SPAN - TAP_INDEX_PROBES);
  const c = tapIndexCandidates(id);
  assert.ok(c.includes(TAP_INDEX_BASE));
  assert.ok(c.every((i) => i < TAP_INDEX_BASE + TAP_INDEX_SPAN));
});

Deno.test("deviceIfname() is a legal interface name for IDs that are not", () => {
  const id = "production-lan-12";
  assert.match(ifnameProblem(id) ?? "", /longer than 15 bytes/);
  assert.equal(ifnameProblem(deviceIfname(id)), undefined);
});
