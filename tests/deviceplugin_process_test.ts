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
import { endpointOf } from "../deviceplugin/mod.ts";
import { MAX_RESOURCES, MAX_TOTAL_DEVICES } from "../deviceplugin/config.ts";
import {
  builtDevicePluginArgv,
  DP_PLUGIN,
  exists,
  Lab,
  pluginBuilt,
  waitFor,
  within,
} from "../lab/mod.ts";

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

/** A namespace `node` whose lower device `lan0` is a veth, and a socket directory. */
async function pluginNode(lab: Lab): Promise<{ ns: string; dir: string }> {
  const ns = await lab.netns("node");
  const peer = await lab.netns("peer");
  await lab.veth(ns, "lan0", peer, "lan0p");
  return { ns, dir: await lab.tempDir("kubelet") };
}

/** `dist/macvtap-deviceplugin` in `ns` with `conf` as `DP_MACVTAP_CONF`, its log collected. */
function spawnPlugin(lab: Lab, ns: string, dir: string, conf: string) {
  const child = lab.spawn(
    ns,
    builtDevicePluginArgv(dir, { env: { DP_MACVTAP_CONF: conf }, logLevel: "info" }),
    { what: "macvtap-deviceplugin", stderr: "piped" },
  );
  const log = { text: "" };
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log.text += chunk;
  })();
  /** Its exit status after SIGTERM, once its log is read to the end. */
  const stop = async (what = "the plugin to stop", timeoutMs?: number) => {
    child.kill("SIGTERM");
    const status = await within(what, child.status, timeoutMs);
    await reading;
    return status;
  };
  return { child, log, stop };
}

Deno.test({
  name:
    "dist/macvtap-deviceplugin runs Deno (same pid: the launcher execs) with its own V8 flags and arenas [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpx" });
    const { ns, dir } = await pluginNode(lab);
    const { child, log, stop } = spawnPlugin(lab, ns, dir, "[]");
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
      "info",
    ]);
    const env = read("environ");
    assert.ok(env.includes(`MALLOC_ARENA_MAX=${DP_MALLOC_ARENA_MAX}`), "MALLOC_ARENA_MAX set");
    assert.ok(env.includes("DP_MACVTAP_CONF=[]"), "the caller's environment kept");
    // Still the plugin: serving, it answers SIGTERM with exit 0.
    await waitFor("serving in", () => log.text.includes("serving in"), 30_000);
    assert.equal((await stop()).code, 0, log.text);
  },
});

Deno.test({
  name:
    "a SIGTERM while the device plugin starts (its first resource serving, the next not yet) stops it cleanly: exit 0 [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpx" });
    const { ns, dir } = await pluginNode(lab);
    // Sixteen resources of the device limit start one after the other:
    // each takes milliseconds, the whole start-up well over 100.
    const resources = Array.from({ length: MAX_RESOURCES }, (_, i) => ({
      name: `r${i}`,
      lowerDevice: "lan0",
      capacity: Math.floor(MAX_TOTAL_DEVICES / MAX_RESOURCES),
    }));
    const { log, stop } = spawnPlugin(lab, ns, dir, JSON.stringify(resources));
    const first = `${dir}/${endpointOf("r0")}`;
    // Polled tightly: the window is the rest of start-up.
    const end = Date.now() + 30_000;
    while (!(await exists(first)) && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
    const status = await stop();
    const last = await exists(`${dir}/${endpointOf(`r${MAX_RESOURCES - 1}`)}`);
    assert.equal(status.code, 0, `exit ${status.code} (signal ${status.signal}): ${log.text}`);
    assert.equal(last, false, "its sockets are removed on the way out");
  },
});

Deno.test({
  name:
    "a kubelet that accepts Register and never answers holds neither start-up nor a SIGTERM off [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpx" });
    const { ns, dir } = await pluginNode(lab);
    // kubelet.sock: connections are taken and never read or answered.
    const kubelet = Deno.listen({ transport: "unix", path: `${dir}/kubelet.sock` });
    const held: Deno.Conn[] = [];
    lab.defer("close the mute kubelet", () => {
      held.forEach((c) => c.close());
      kubelet.close();
    });
    (async () => {
      for await (const c of kubelet) held.push(c);
    })().catch(() => {});
    const conf = JSON.stringify([{ name: "lan", lowerDevice: "lan0", capacity: 2 }]);
    const socket = `${dir}/${endpointOf("lan")}`;

    // Start-up ends after the first Register attempt (its 5 s deadline), though
    // the kubelet keeps the plugin retrying: it serves, and stops on SIGTERM.
    const a = spawnPlugin(lab, ns, dir, conf);
    await waitFor("serving in", () => a.log.text.includes("serving in"), 30_000);
    assert.equal((await a.stop()).code, 0, a.log.text);
    assert.equal(await exists(socket), false, "its socket removed");

    // A SIGTERM while the first Register hangs: start-up is cut short.
    const b = spawnPlugin(lab, ns, dir, conf);
    await waitFor("the resource's socket", () => exists(socket), 30_000);
    const status = await b.stop("the plugin to stop during start-up", 20_000);
    assert.equal(status.code, 0, b.log.text);
    assert.match(b.log.text, /SIGTERM during start-up/);
    assert.equal(await exists(socket), false, "its socket removed");
    assert.ok(held.length >= 2, `${held.length} Register connections`);
  },
});
