import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { hostRoutesFor } from "./manager.ts";

Deno.test("hostRoutesFor() makes /32 and /128 host routes from task addresses", () => {
  assertEquals(hostRoutesFor(["192.168.122.177/24", "fd22::177/64"], 50), [
    { family: 4, dst: "192.168.122.177/32", metric: 50 },
    { family: 6, dst: "fd22::177/128", metric: 50 },
  ]);
});

Deno.test("hostRoutesFor() canonicalizes IPv6 text", () => {
  assertEquals(hostRoutesFor(["FD22:0:0::0177/64"], 7), [{
    family: 6,
    dst: "fd22::177/128",
    metric: 7,
  }]);
});

Deno.test("hostRoutesFor() rejects a malformed address", () => {
  assertThrows(() => hostRoutesFor(["10.0.0.300/24"], 50), TypeError);
});
