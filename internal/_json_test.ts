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
