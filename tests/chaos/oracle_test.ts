/**
 * Root-free checks of the ownership scenario generator and oracle: the
 * colliding keys are real collisions, scenarios are deterministic, and the
 * oracle sees each kind of harm.
 */

import {
  deepStrictEqual as assertEquals,
  equal as assertEqual,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { collidingKeys, generateScenario, type OwnershipTarget, STEP_KINDS } from "./_gen.ts";
import { errorJsonProblem, judgeStep, type OwnershipCensus, ownershipProblems } from "./_oracle.ts";

Deno.test("collidingKeys() finds the a-b + c / a + b-c pair and only real collisions", () => {
  const keys = collidingKeys("a-b", "c");
  assert(keys.some((k) => k.id === "a" && k.ifname === "b-c"), JSON.stringify(keys));
  for (const k of keys) {
    assert(!(k.id === "a-b" && k.ifname === "c"), "not the key itself");
    assert(
      ["-", "_", ".", "@", ":"].some((sep) => `${k.id}${sep}${k.ifname}` === `a-b${sep}c`),
      `${k.id} + ${k.ifname} collides under some separator`,
    );
  }
  assertEquals(collidingKeys("abc", "eth0"), [], "nothing to split");
});

Deno.test("generateScenario() is deterministic per (seed, index) and reaches every step kind", () => {
  const t: OwnershipTarget = {
    victims: [{ id: "v-1", ifname: "e-0", path: "/run/netns/v", ips: ["192.168.122.171/24"] }],
    attackerNs: ["/run/netns/a1", "/run/netns/a2"],
    notNamespaces: ["/dev/null"],
    hostAddrs: ["192.168.10.22/24"],
    sentinels: [],
    stateDir: "/tmp/s",
  };
  const json = (x: unknown) => JSON.stringify(x, (_k, v) => v instanceof Set ? [...v] : v);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const a = generateScenario(7, i, t);
    assertEquals(json(a), json(generateScenario(7, i, t)), `scenario ${i}`);
    for (const step of a.steps) seen.add(step.what.slice(0, step.what.indexOf(":")));
  }
  assertEquals([...seen].sort(), [...STEP_KINDS].sort(), "every step kind is generated");
});

Deno.test("judgeStep() demands exactly one winner and the expected msg", () => {
  const ok = { exit: 0, stdout: '{"cniVersion":"1.1.0"}' };
  const err = { exit: 1, stdout: '{"code":999,"msg":"attachment already exists"}' };
  const other = { exit: 1, stdout: '{"code":999,"msg":"duplicate allocation"}' };
  assertEquals(judgeStep("ADD", [ok, err, err], { ok: true, codes: "any", exactlyOne: true }), []);
  assertEquals(
    judgeStep("ADD", [ok, ok, err], { ok: true, codes: "any", exactlyOne: true }).length,
    1,
  );
  assertEquals(judgeStep("ADD", [err], { ok: false, codes: "any", msg: "already" }), []);
  assertEquals(judgeStep("ADD", [other], { ok: false, codes: "any", msg: "already" }).length, 1);
  assertEquals(judgeStep("ADD", [ok], { ok: false, codes: new Set([7]) }).length, 1);
});

Deno.test("ownershipProblems() reports every kind of harm", () => {
  const base: OwnershipCensus = {
    victimLinks: ["v/eth0"],
    victimLeases: ["192.168.122.171"],
    victimRecords: ["v@eth0"],
    hostRoutes: ["r1", "r2"],
    sentinels: { "/x": "keep\n" },
    attackerLinks: [],
    attackerState: [],
    ran: [],
  };
  assertEquals(ownershipProblems(base, structuredClone(base)), []);
  const harmed: OwnershipCensus = {
    victimLinks: [],
    victimLeases: [],
    victimRecords: ["v@eth0", "planted"],
    hostRoutes: ["r1"],
    sentinels: { "/x": "" },
    attackerLinks: ["a1/eth0"],
    attackerState: ["lease 10.0.0.1"],
    ran: ["/tmp/pwned"],
  };
  const problems = ownershipProblems(base, harmed);
  for (
    const what of [
      "links lost",
      "leases lost",
      "records gained",
      "routes lost",
      "sentinel",
      "attacker links",
      "attacker state",
      "ran",
    ]
  ) {
    assert(problems.some((p) => p.includes(what)), `${what}: ${problems.join("; ")}`);
  }
});

Deno.test("errorJsonProblem() refuses an error JSON quoting its input whole", () => {
  const long = "a".repeat(102_400);
  assertEqual(errorJsonProblem(JSON.stringify({ code: 7, msg: "bad" })), undefined);
  assertMatch(errorJsonProblem(JSON.stringify({ code: 999, msg: long }))!, /msg of 102400/);
  assertMatch(
    errorJsonProblem(JSON.stringify({ code: 4, msg: "x", details: long }))!,
    /details of 102400/,
  );
  assertMatch(
    errorJsonProblem(JSON.stringify({ cniVersion: long, code: 1, msg: "x" }))!,
    /cniVersion of 102400/,
  );
});
