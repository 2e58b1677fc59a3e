/**
 * The device plugin as a long-running process: its own V8 flags (named by
 * the launcher line of `dist/macvtap-deviceplugin`, no re-exec) and the
 * page-out of its executable's start-up pages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DP_MALLOC_ARENA_MAX, DP_V8_FLAGS } from "../cmd/_dp_exec.ts";
import { parseMaps, trimmable } from "../deviceplugin/_trim.ts";
import { DP_PLUGIN, Lab, pluginBuilt } from "../lab/mod.ts";

/** The device plugin's executable, built beside dist/macvtap. */

Deno.test("trimmable(): only read-only or executable views of the executable", () => {
  const maps = parseMaps([
    "55d0a0000000-55d0a1000000 r--p 00000000 08:01 123 /opt/deno/deno",
    "55d0a1000000-55d0a5000000 r-xp 01000000 08:01 123 /opt/deno/deno",
    "55d0a5000000-55d0a5100000 rw-p 05000000 08:01 123 /opt/deno/deno",
    "55d0a5100000-55d0a5200000 rw-p 00000000 00:00 0 ",
    "7f0000000000-7f0000100000 r-xp 00000000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6",
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]",
  ].join("\n"));
  assert.equal(maps.length, 6);
  assert.deepEqual(
    trimmable(maps, "/opt/deno/deno").map((m) => [m.start.toString(16), m.perms]),
    [["55d0a0000000", "r--p"], ["55d0a1000000", "r-xp"]],
  );
  assert.equal(maps[3]!.path, "");
});

Deno.test({
  name:
    "dist/macvtap-deviceplugin runs Deno (same pid: the launcher execs) with its own V8 flags and arenas [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpx" });
    const ns = await lab.netns("node");
    const dir = await lab.tempDir("kubelet");
    const child = lab.spawn(ns, [
      "env",
      "DP_MACVTAP_CONF=[]",
      DP_PLUGIN,
      "--socket-dir",
      dir,
      "--log-level",
      "warn",
    ], { what: "macvtap-deviceplugin" });
    const read = (f: string) => Deno.readTextFileSync(`/proc/${child.pid}/${f}`).split("\0");
    // The shell line execs Deno: wait until the process image is Deno's with ours.
    let argv: string[] = [];
    for (let i = 0; i < 100; i++) {
      argv = read("cmdline");
      if (argv.includes(`--v8-flags=${DP_V8_FLAGS}`)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(argv.includes(`--v8-flags=${DP_V8_FLAGS}`), argv.join(" "));
    assert.equal(argv.filter((a) => a.startsWith("--v8-flags=")).length, 1);
    assert.deepEqual(argv.slice(argv.indexOf(DP_PLUGIN), -1), [
      DP_PLUGIN,
      "--socket-dir",
      dir,
      "--log-level",
      "warn",
    ]);
    const env = read("environ");
    assert.ok(env.includes(`MALLOC_ARENA_MAX=${DP_MALLOC_ARENA_MAX}`), "MALLOC_ARENA_MAX set");
    assert.ok(env.includes("DP_MACVTAP_CONF=[]"), "the caller's environment kept");
    // Still the plugin: it answers SIGTERM with exit 0.
    await new Promise((r) => setTimeout(r, 500));
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
  },
});
