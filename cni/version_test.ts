import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  compareVersions,
  isSupportedVersion,
  parseVersion,
  selectVersion,
  SUPPORTED_VERSIONS,
  versionAllows,
} from "./version.ts";

Deno.test("compareVersions()", async (t) => {
  await t.step("orders numerically", () => {
    assertEquals(compareVersions("0.4.0", "0.10.0") < 0, true);
    assertEquals(compareVersions("1.1.0", "1.0.0") > 0, true);
    assertEquals(compareVersions("0.3.1", "0.3.1"), 0);
  });
  await t.step("throws on non-semver", () => {
    assertThrows(() => compareVersions("1.0", "1.0.0"), TypeError);
    assertEquals(parseVersion("01.0.0"), undefined);
    assertEquals(parseVersion("1.0.0-rc1"), undefined);
  });
});

Deno.test("SUPPORTED_VERSIONS", () => {
  assertEquals([...SUPPORTED_VERSIONS], [
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
  ]);
  assertEquals(isSupportedVersion("0.2.0"), true);
  assertEquals(isSupportedVersion("0.5.0"), false);
  assertEquals(Object.isFrozen(SUPPORTED_VERSIONS), true);
});

Deno.test("versionAllows()", async (t) => {
  await t.step("CHECK needs 0.4.0", () => {
    assertEquals(versionAllows("CHECK", "0.3.1"), false);
    assertEquals(versionAllows("CHECK", "0.4.0"), true);
  });
  await t.step("GC and STATUS need 1.1.0", () => {
    assertEquals(versionAllows("GC", "1.0.0"), false);
    assertEquals(versionAllows("STATUS", "1.0.0"), false);
    assertEquals(versionAllows("GC", "1.1.0"), true);
    assertEquals(versionAllows("STATUS", "1.1.0"), true);
  });
  await t.step("ADD and DEL at every version, nothing at garbage", () => {
    for (const v of SUPPORTED_VERSIONS) assertEquals(versionAllows("ADD", v), true);
    assertEquals(versionAllows("DEL", "bogus"), false);
  });
});

Deno.test("selectVersion()", async (t) => {
  await t.step(
    "cniVersion is the version supplied on input: cniVersions does not override it",
    () => {
      assertEquals(selectVersion("1.0.0", ["1.0.0", "1.1.0"]), "1.0.0");
      assertEquals(selectVersion("1.0.0", ["0.4.0", "1.1.0", "2.0.0"]), "1.0.0");
      assertEquals(selectVersion("1.1.0", ["0.4.0"]), "1.1.0");
      assertEquals(selectVersion("0.4.0"), "0.4.0");
      assertEquals(selectVersion("0.2.0", ["2.0.0", 7]), "0.2.0");
    },
  );
  await t.step("without cniVersion: the highest supported of cniVersions, else 0.1.0", () => {
    assertEquals(selectVersion(undefined, ["0.3.1", "1.0.0", "2.0.0", 7]), "1.0.0");
    assertEquals(selectVersion("", ["0.3.1"]), "0.3.1");
    assertEquals(selectVersion(undefined), "0.1.0");
    assertEquals(selectVersion(""), "0.1.0");
  });
  await t.step("returns undefined when the version is not supported", () => {
    assertEquals(selectVersion("9.9.9"), undefined);
    assertEquals(selectVersion("9.9.9", ["1.0.0"]), undefined);
    assertEquals(selectVersion(1), undefined);
    assertEquals(selectVersion(undefined, ["2.0.0"]), undefined);
  });
});
