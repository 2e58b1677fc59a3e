/**
 * The README's "Use it from Deno" script runs as written (with unique
 * namespace names, so parallel runs do not collide), prints the macvtap, its
 * address, route and link events, and leaves no namespace behind.
 */

import { ok as assert } from "node:assert/strict";
import { privileged, run } from "../lab/mod.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test({
  name: "README: the 'Use it from Deno' script builds a macvtap lab, watches events, cleans up",
  ignore: !privileged,
  async fn() {
    const readme = await Deno.readTextFile(`${root}README.md`);
    const section = readme.slice(readme.indexOf("## Use it from Deno"));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert(code, "README has a ts example under 'Use it from Deno'");
    assert(code.includes(`from "./netlink.ts"`), "it imports the ./netlink entry");
    const tag = `rdm${Deno.pid}`;
    const script = code
      .replace(`from "./netlink.ts"`, `from "${root}netlink.ts"`)
      .replaceAll('"demo-host"', `"${tag}-h"`)
      .replaceAll('"demo-ctr"', `"${tag}-c"`);
    assert(script.includes(`"${tag}-h"`) && script.includes(`"${tag}-c"`), "namespaces renamed");
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(file, script);
      const r = await run([
        Deno.execPath(),
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        file,
      ], { timeoutMs: 120_000 }); // a guard against a hang (waiting for events), not a goal
      assert(r.success, r.stderr);
      for (
        const line of [
          /^link eth0 kind=macvtap mode=bridge mac=([0-9a-f]{2}:){5}[0-9a-f]{2}$/m,
          /^addr 192\.168\.122\.10\/24$/m,
          /^route 0\.0\.0\.0\/0 via 192\.168\.122\.1 scope universe$/m,
          /^route 192\.168\.122\.0\/24 scope link$/m,
          /^event new eth0 up=/m,
          /^event del eth0 up=/m,
        ]
      ) {
        assert(line.test(r.stdout), `${line} in:\n${r.stdout}`);
      }
      const left = (await run(["ip", "netns", "list"])).stdout;
      assert(!left.includes(tag), `namespaces left: ${left}`);
    } finally {
      await Deno.remove(file);
      for (const ns of [`${tag}-h`, `${tag}-c`]) await run(["ip", "netns", "del", ns]);
    }
  },
});
