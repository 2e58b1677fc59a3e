/**
 * cnitool (libcni 1.1.2, built by tools/e2e_setup.sh from Debian's source
 * package) drives the plugin under test: add, check, del, del again.
 * cnitool is the only real client that sends CHECK (real-clients.md §4).
 *
 * @module
 */

import {
  assert,
  assertEquals,
  CACHE,
  checkTaskGone,
  checkTaskUp,
  Lab,
  plugin,
  REF_CNI_DIR,
  skipUnless,
} from "./_lab.ts";

const CNITOOL = `${CACHE}/cnitool`;
const ignore = skipUnless(CNITOOL) !== undefined;

for (const cniVersion of ["1.0.0", "0.4.0"]) {
  Deno.test({
    name: `cnitool add/check/del through ${plugin.type || "the plugin"} [${cniVersion}]`,
    ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await using lab = await Lab.create();
      const netns = await lab.taskNetns("task");
      await Deno.mkdir(`${lab.dir}/net.d`);
      await Deno.writeTextFile(`${lab.dir}/net.d/10-${lab.net}.conflist`, lab.conflist(cniVersion));
      const env = {
        NETCONFPATH: `${lab.dir}/net.d`,
        CNI_PATH: `${lab.binDir}:${REF_CNI_DIR}`,
      };
      const cnitool = (cmd: string) => lab.inHost([CNITOOL, cmd, lab.net, netns], { env });

      const add = await cnitool("add");
      assertEquals(add.code, 0, `cnitool add: ${add.stderr}`);
      lab.defer("cnitool del", () => cnitool("del"));
      const result = JSON.parse(add.stdout) as { ips?: { address: string }[] };
      const ip = await checkTaskUp(lab, netns);
      assertEquals(result.ips?.map((i) => i.address), [`${ip}/24`], "ADD result ips");

      const check = await cnitool("check");
      assertEquals(check.code, 0, `cnitool check: ${check.stderr}`);

      const del = await cnitool("del");
      assertEquals(del.code, 0, `cnitool del: ${del.stderr}`);
      await checkTaskGone(lab, ip);
      const again = await cnitool("del");
      assertEquals(again.code, 0, `second cnitool del: ${again.stderr}`);

      const calls = (await lab.spyCalls()).map((c) => c.command);
      assertEquals(calls, ["ADD", "CHECK", "DEL", "DEL"], "plugin calls");
      assert(
        (await lab.spyCalls()).every((c) => c.netns === netns),
        "every call carried the netns",
      );
    },
  });
}
