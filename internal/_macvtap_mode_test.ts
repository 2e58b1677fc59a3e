import assert from "node:assert/strict";
import { MACVLAN_MODES } from "../netlink/mod.ts";
import { MACVTAP_MODES, parseMacvtapMode } from "./_macvtap_mode.ts";

Deno.test("parseMacvtapMode() reads the offered modes, defaults to bridge, refuses the rest", () => {
  for (const mode of MACVTAP_MODES) assert.deepEqual(parseMacvtapMode(mode), { mode });
  for (const absent of [undefined, null, ""]) {
    assert.deepEqual(parseMacvtapMode(absent), { mode: "bridge" });
  }
  assert.deepEqual(parseMacvtapMode("source"), { problem: "unsupported" });
  for (const bad of ["brdge", "Bridge", 4, true, ["bridge"]]) {
    assert.deepEqual(parseMacvtapMode(bad), { problem: "unknown" });
  }
});

Deno.test("MACVTAP_MODES are the kernel modes of netlink's MACVLAN_MODES but source", () => {
  assert.deepEqual(
    [...MACVTAP_MODES].sort(),
    Object.keys(MACVLAN_MODES).filter((m) => m !== "source").sort(),
  );
});
