import assert from "node:assert/strict";
import { isJsonObject, showJson } from "./_json.ts";

Deno.test("isJsonObject() accepts objects only", () => {
  assert.ok(isJsonObject({}));
  assert.ok(isJsonObject(JSON.parse('{"a":1}')));
  for (const v of [null, undefined, [], "x", 1, true]) assert.ok(!isJsonObject(v), String(v));
});

Deno.test("showJson() prints JSON, and String() for what JSON cannot print", () => {
  assert.equal(showJson("eth0"), '"eth0"');
  assert.equal(showJson({ a: [1] }), '{"a":[1]}');
  assert.equal(showJson(undefined), "undefined");
  assert.equal(showJson(5n), "5");
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.equal(showJson(cycle), "[object Object]");
});

Deno.test("jsonShapeProblem() bounds depth, containers and members, outside strings only", async (t) => {
  const { jsonShapeProblem, MAX_JSON_DEPTH } = await import("./_json.ts");
  const enc = (s: string) => new TextEncoder().encode(s);
  await t.step("depth 64 passes, 65 is refused, as text and as bytes", () => {
    const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
    const deep = "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1);
    assert.equal(jsonShapeProblem(ok), undefined);
    assert.equal(jsonShapeProblem(enc(ok)), undefined);
    assert.match(jsonShapeProblem(deep)!, /deeper than 64 levels \(at offset 64\)/);
    assert.match(jsonShapeProblem(enc(deep))!, /deeper than 64 levels/);
    assert.match(jsonShapeProblem('{"a":'.repeat(65) + "1" + "}".repeat(65))!, /deeper/);
  });
  await t.step("sibling containers count towards the container limit", () => {
    const list = (n: number) => `[${Array(n).fill("{}").join(",")}]`;
    assert.equal(jsonShapeProblem(list(9), { maxContainers: 10 }), undefined);
    assert.match(jsonShapeProblem(list(10), { maxContainers: 10 })!, /more than 10 arrays/);
  });
  await t.step("members count towards the member limit", () => {
    const obj = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(",")}}`;
    assert.equal(jsonShapeProblem(obj(3), { maxMembers: 3 }), undefined);
    assert.match(jsonShapeProblem(obj(4), { maxMembers: 3 })!, /more than 3 object members/);
  });
  await t.step("brackets, colons and escaped quotes inside strings do not count", () => {
    const s = JSON.stringify({ a: '[[[[:::{{{\\"]]]]', b: '"[[["', c: "\\" });
    assert.equal(jsonShapeProblem(s, { maxDepth: 1, maxContainers: 1, maxMembers: 3 }), undefined);
    assert.equal(
      jsonShapeProblem(enc(s), { maxDepth: 1, maxContainers: 1, maxMembers: 3 }),
      undefined,
    );
    // Multi-byte UTF-8 never looks like a bracket.
    assert.equal(
      jsonShapeProblem(enc(JSON.stringify(["é[", "\u{1F600}{"])), { maxDepth: 1 }),
      undefined,
    );
  });
});

Deno.test("showJson() and clipText() cut long values to a prefix and the length", async () => {
  const { clipText, MAX_SHOWN } = await import("./_json.ts");
  const long = "a".repeat(102_400);
  assert.equal(showJson(long), `"${"a".repeat(MAX_SHOWN)}"… (102400 characters)`);
  assert.equal(clipText(long, 4), "aaaa… (102400 characters)");
  assert.equal(clipText("abc", 4), "abc");
  // A surrogate pair is never cut in half.
  assert.equal(clipText("a\u{1F600}bc", 2), "a… (5 characters)");
  const big = showJson({ list: Array(10_000).fill(1) });
  assert.ok(
    big.length < 200 &&
      big.endsWith(` (${JSON.stringify({ list: Array(10_000).fill(1) }).length} characters)`),
    big,
  );
});
