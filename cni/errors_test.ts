import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { CniError, ErrorCode } from "./errors.ts";

Deno.test("CniError", async (t) => {
  await t.step("toJSON() orders cniVersion, code, msg, details", () => {
    const err = new CniError(ErrorCode.INVALID_CONFIG, "mtu: invalid", "master lab0");
    assertEquals(
      JSON.stringify(err.toJSON("1.0.0")),
      '{"cniVersion":"1.0.0","code":7,"msg":"mtu: invalid","details":"master lab0"}',
    );
  });
  await t.step("toJSON() omits unknown version and empty details", () => {
    assertEquals(new CniError(4, "x", "").toJSON(), { code: 4, msg: "x" });
  });
  await t.step("keeps the cause", () => {
    const cause = new Error("inner");
    assertEquals(new CniError(999, "outer", undefined, { cause }).cause, cause);
  });
});

Deno.test("ErrorCode is frozen and matches the spec", () => {
  assertEquals(Object.isFrozen(ErrorCode), true);
  assertEquals(
    [ErrorCode.INCOMPATIBLE_VERSION, ErrorCode.UNSUPPORTED_FIELD, ErrorCode.UNKNOWN_CONTAINER],
    [1, 2, 3],
  );
  assertEquals([ErrorCode.INVALID_ENV, ErrorCode.IO, ErrorCode.DECODE, ErrorCode.INVALID_CONFIG], [
    4,
    5,
    6,
    7,
  ]);
  assertEquals([ErrorCode.TRY_AGAIN, ErrorCode.NOT_AVAILABLE, ErrorCode.LIMITED_CONNECTIVITY], [
    11,
    50,
    51,
  ]);
  assertEquals([ErrorCode.NETLINK, ErrorCode.IPAM, ErrorCode.TIMEOUT, ErrorCode.GENERIC], [
    100,
    101,
    102,
    999,
  ]);
});
