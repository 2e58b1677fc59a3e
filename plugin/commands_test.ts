import assert from "node:assert/strict";
import { log, Logger, setLogger } from "../internal/_log.ts";
import { LOG_ROOT_ENV } from "../internal/_owned_path.ts";
// The public entry: it installs the async context the commands scope their logger in.
import { cmdStatus, type CommandOptions } from "../plugin.ts";
import type { Ipam } from "../ipam/mod.ts";

/** An IPAM stand-in whose STATUS logs through the shared `log`, as plugin code does. */
function loggingIpam(tag: string): Ipam {
  const fail = () => Promise.reject(new Error("not used"));
  return {
    type: "host-local",
    add: fail,
    del: fail,
    check: fail,
    gc: fail,
    async status(): Promise<void> {
      log.info(`ipam status ${tag}`);
      await null; // the other calls run meanwhile
      log.debug(`ipam status ${tag} done`);
    },
  };
}

/** STATUS of a network whose master does not exist: it fails (50) after IPAM's STATUS started. */
async function status(logFile: string, tag: string, options: CommandOptions = {}): Promise<void> {
  const config = {
    cniVersion: "1.1.0",
    name: "logtest",
    type: "macvtap",
    master: "nope9",
    logFile,
    logLevel: "debug",
  };
  const ctx = { containerId: "", netns: "", ifname: "", args: "", path: [] };
  await assert.rejects(cmdStatus(config, ctx, { ...options, ipam: loggingIpam(tag) }));
}

function lines(path: string): { level: string; msg: string }[] {
  return Deno.readTextFileSync(path).trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test({
  name:
    "cmdStatus() as a function logs to the config's logFile without replacing the process logger",
  sanitizeResources: false,
  async fn() {
    const root = Deno.makeTempDirSync();
    const before = Deno.env.get(LOG_ROOT_ENV);
    Deno.env.set(LOG_ROOT_ENV, root);
    const processLines: string[] = [];
    setLogger(new Logger({ level: "debug", sink: { write: (l) => processLines.push(l) } }));
    try {
      await status("call.log", "scoped");
      assert.deepEqual(lines(`${root}/call.log`).map((r) => [r.level, r.msg]), [
        ["info", "ipam status scoped"],
        ["debug", "ipam status scoped done"],
      ]);
      assert.deepEqual(processLines, [], "nothing went to the process logger");
      log.info("after the call");
      assert.equal(processLines.length, 1, "the process logger is still the process's");
      assert.match(processLines[0]!, /after the call/);
      assert.equal(lines(`${root}/call.log`).length, 2, "the call's file got nothing later");

      // The executable's choice: the config's logger becomes the process's.
      await status("proc.log", "process", { processLogger: true });
      log.info("after the executable-style call");
      assert.deepEqual(lines(`${root}/proc.log`).map((r) => r.msg), [
        "ipam status process",
        "ipam status process done",
        "after the executable-style call",
      ]);
      assert.equal(processLines.length, 1);
    } finally {
      setLogger(new Logger());
      if (before === undefined) Deno.env.delete(LOG_ROOT_ENV);
      else Deno.env.set(LOG_ROOT_ENV, before);
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "concurrent commands each log to their own logFile",
  async fn() {
    const root = Deno.makeTempDirSync();
    const before = Deno.env.get(LOG_ROOT_ENV);
    Deno.env.set(LOG_ROOT_ENV, root);
    try {
      await Promise.all(["a", "b", "c"].map((tag) => status(`${tag}.log`, tag)));
      for (const tag of ["a", "b", "c"]) {
        assert.deepEqual(lines(`${root}/${tag}.log`).map((r) => r.msg), [
          `ipam status ${tag}`,
          `ipam status ${tag} done`,
        ]);
      }
    } finally {
      if (before === undefined) Deno.env.delete(LOG_ROOT_ENV);
      else Deno.env.set(LOG_ROOT_ENV, before);
      Deno.removeSync(root, { recursive: true });
    }
  },
});
