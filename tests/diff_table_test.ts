/**
 * The differential suite's tables (tests/_diff.ts) hold together: every
 * case is in one shard, every shard has a test file, and every row of
 * INTENDED names a witness case that exists. No root needed.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { cases, INTENDED, label, SHARDS } from "./_diff.ts";

Deno.test("diff tables: cases are unique and sharded, every shard has a file, every row a witness", () => {
  const all = cases();
  const labels = all.map(label);
  assertEquals(labels.length, new Set(labels).size, "two cases with one label");
  for (const shard of SHARDS) {
    assert(all.some((c) => c.shard === shard), `shard ${shard} has no case`);
    const file = new URL(`./diff_${shard}_test.ts`, import.meta.url);
    assert(Deno.statSync(file).isFile, `no tests/diff_${shard}_test.ts`);
  }
  assertEquals(
    INTENDED.filter((r) => !labels.includes(r.witness)).map((r) => `${r.id}: ${r.witness}`),
    [],
    "rows whose witness is no case",
  );
  assertEquals(INTENDED.length, new Set(INTENDED.map((r) => r.id)).size, "two rows with one id");
});
