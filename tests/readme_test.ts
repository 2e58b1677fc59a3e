/**
 * The README's Deno module example runs as written (with unique namespace
 * names, so parallel runs do not collide) and leaves no namespace behind.
 */

import { ok as assert } from "node:assert/strict";
import { privileged, run } from "./_lab.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test({
  name: "README: the mod.ts example creates, reads back and removes a macvtap lab",
  ignore: !privileged,
  async fn() {
    const readme = await Deno.readTextFile(`${root}README.md`);
    const section = readme.slice(readme.indexOf("## The Deno module"));
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert(code, "README has a ts example under 'The Deno module'");
    const tag = `rdm${Deno.pid}`;
    const script = code
      .replace(`from "./mod.ts"`, `from "${root}mod.ts"`)
      .replaceAll('"demo-a"', `"${tag}-a"`)
      .replaceAll('"demo-b"', `"${tag}-b"`);
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
      ]);
      assert(r.success, r.stderr);
      assert(r.stdout.includes('kind: "macvtap"') && r.stdout.includes('mode: "bridge"'), r.stdout);
      assert(
        r.stdout.includes("192.168.122.10/24") && r.stdout.includes('gw: "192.168.122.1"'),
        r.stdout,
      );
      const left = (await run(["ip", "netns", "list"])).stdout;
      assert(!left.includes(tag), `namespaces left: ${left}`);
    } finally {
      await Deno.remove(file);
      for (const ns of [`${tag}-a`, `${tag}-b`]) await run(["ip", "netns", "del", ns]);
    }
  },
});
