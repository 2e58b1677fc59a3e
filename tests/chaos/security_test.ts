/**
 * Security: the plugin never runs a shell or any binary outside CNI_PATH
 * (ADD, DEL, STATUS, GC traced with `strace -f -e trace=execve`: every
 * execve is the plugin itself, the Deno its launcher names, or a file in a
 * CNI_PATH directory); the files it writes (state records and their
 * directories, `logFile`) are created 0600/0700 even under umask 000; a
 * symlink planted in place of the state directory, the network's record
 * directory, a record or the log file is not followed.
 */

import { equal, ok as assert } from "node:assert/strict";
import {
  CNI_BIN,
  type CniCall,
  cniEnv,
  describe,
  Lab,
  labIgnore,
  PLUGIN,
  pluginBuilt,
} from "../../lab/mod.ts";
import { figure, leftovers } from "./_chaos.ts";
import { errorJsonProblem } from "./_oracle.ts";

/** The cache directory `deno task build` writes into the launcher (tools/build.ts, `--deno-dir`). */
const LAUNCHER_DENO_DIR = "/var/cache/macvtap/deno";

const ignore = labIgnore(["strace"]);
type Json = Record<string, unknown>;

function parse(r: { code: number; stdout: string; stderr: string; success: boolean }): CniCall {
  let json: Json | undefined;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

Deno.test({
  name:
    "security: no shell, no binary outside CNI_PATH; safe file modes; planted symlinks not followed",
  ignore,
  async fn(t) {
    assert(pluginBuilt(), `${PLUGIN} is missing: run "deno task build" first`);
    await using lab = await Lab.create({ prefix: "chaos" });
    const l = await lab.simple();
    const tmp = await lab.tempDir("sec");
    const dataDir = await lab.tempDir("ipam");
    const cniPath = [CNI_BIN];
    const base = (stateDir: string, extra: Json = {}): Json => ({
      cniVersion: "1.0.0",
      name: "secnet",
      type: "macvtap",
      master: l.master,
      hostrouteif: "hr0",
      stateDir,
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: "10.99.0.0/24", rangeStart: "10.99.0.10" }]],
        dataDir,
      },
      ...extra,
    });

    /** Run the plugin in the host namespace, optionally wrapped (strace, umask). */
    async function plugin(
      command: string,
      config: Json,
      wrap: string[] = [],
      containerId = "sec1",
    ): Promise<CniCall> {
      const r = await lab.exec(l.host, [...wrap, PLUGIN], {
        stdin: JSON.stringify(config),
        env: cniEnv({
          command,
          containerId,
          netns: l.ctrPath,
          ifname: "eth0",
          path: cniPath.join(":"),
        }),
        clearEnv: true,
      });
      return parse(r);
    }

    await t.step(
      "every execve is the plugin, its Deno, its launcher's cache-dir check, or inside CNI_PATH",
      async () => {
        const stateDir = `${tmp}/trace-state`;
        const allowed = new Set([PLUGIN, Deno.execPath(), Deno.realPathSync(Deno.execPath())]);
        const seen = new Map<string, number>();
        const bad: string[] = [];
        for (
          const [command, conf] of [
            ["ADD", base(stateDir)],
            ["STATUS", { ...base(stateDir), cniVersion: "1.1.0" }],
            ["DEL", base(stateDir)],
            ["GC", { ...base(stateDir), cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }],
          ] as const
        ) {
          const trace = `${tmp}/execve-${command}.txt`;
          const c = await plugin(command, conf, [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-o",
            trace,
          ]);
          equal(c.code, 0, `${command}: ${describe(c)}`);
          for (const line of (await Deno.readTextFile(trace)).split("\n")) {
            const m = /execve\("([^"]*)"/.exec(line);
            if (!m) continue;
            const path = m[1]!;
            seen.set(path, (seen.get(path) ?? 0) + 1);
            const inCniPath = cniPath.some((d) =>
              path.startsWith(`${d}/`) && !path.slice(d.length + 1).includes("/")
            );
            // The launcher's one `find` (internal/_trusted_dir.ts): its cache-dir check runs
            // before Deno, from a fixed PATH, with fixed arguments naming the cache dir.
            const launcherFind = (path === "/usr/bin/find" || path === "/bin/find") &&
              line.includes(`"-path", "${LAUNCHER_DENO_DIR}"`) && line.includes(`"-maxdepth", "1"`);
            if (!allowed.has(path) && !inCniPath && !launcherFind) {
              bad.push(`${command}: ${line.trim()}`);
            }
          }
        }
        figure("security", `execve paths: ${JSON.stringify(Object.fromEntries(seen))}`);
        assert(
          seen.has(`${cniPath[0]}/host-local`),
          "the trace missed the IPAM child: strace -f not effective?",
        );
        equal(
          bad.length,
          0,
          `execve outside the plugin, Deno and CNI_PATH:\n  ${bad.join("\n  ")}`,
        );
      },
    );

    await t.step(
      "state records, their directories and logFile are 0600/0700 under umask 000",
      async () => {
        const stateDir = `${tmp}/perm/state/deep`;
        await Deno.mkdir(`${tmp}/logs`, { mode: 0o755 });
        const logFile = `${tmp}/logs/macvtap.log`;
        const conf = base(stateDir, { logFile, logLevel: "debug" });
        const umask0 = ["sh", "-c", 'umask 000; exec "$0"'];
        const add = await plugin("ADD", conf, umask0, "perm1");
        equal(add.code, 0, describe(add));
        try {
          const modes: string[] = [];
          const check = (path: string, want: "file" | "dir") => {
            const st = Deno.lstatSync(path);
            const mode = st.mode! & 0o777;
            modes.push(`${path.slice(tmp.length)} ${mode.toString(8)}`);
            assert(want === "file" ? st.isFile : st.isDirectory, `${path} is not a ${want}`);
            equal(mode & 0o077, 0, `${path} has mode ${mode.toString(8)}`);
          };
          check(stateDir, "dir");
          check(`${stateDir}/secnet`, "dir");
          check(`${stateDir}/secnet/perm1@eth0`, "file");
          check(logFile, "file");
          figure("security", `modes: ${modes.join(", ")}`);
        } finally {
          const del = await plugin("DEL", conf, [], "perm1");
          equal(del.code, 0, describe(del));
        }
      },
    );

    /** A config whose ADD must not write through `victim`; DEL it if it succeeded. */
    async function notFollowed(
      what: string,
      stateDir: string,
      victim: string,
      extra: Json = {},
    ): Promise<string> {
      const before = await snapshot(victim);
      const conf = base(stateDir, extra);
      const add = await plugin("ADD", conf, [], "sym1");
      if (add.code !== 0) {
        const problem = errorJsonProblem(add.stdout.trim());
        assert(!problem, `${what}: ${problem}: ${describe(add)}`);
      }
      const del = await plugin("DEL", conf, [], "sym1");
      const after = await snapshot(victim);
      equal(after, before, `${what}: the symlink was followed: ${victim} changed`);
      const left = await leftovers(lab, {
        host: l.host,
        ctrs: [l.ctr],
        dataDir,
        hostLinks: new Set(["hr0"]),
      });
      equal(left.length, 0, `${what}: left behind ${left.join("; ")}`);
      return `${what}: ADD exit ${add.code} ${add.json?.msg ?? ""}, DEL exit ${del.code}`;
    }

    async function snapshot(path: string): Promise<string> {
      const st = await Deno.lstat(path);
      if (st.isDirectory) {
        const names: string[] = [];
        for await (const e of Deno.readDir(path)) names.push(e.name);
        return `dir ${(st.mode! & 0o777).toString(8)} [${names.sort().join(",")}]`;
      }
      return `file ${(st.mode! & 0o777).toString(8)} ${await Deno.readTextFile(path)}`;
    }

    await t.step("symlink in place of the state directory", async () => {
      const victim = `${tmp}/victim-statedir`;
      await Deno.mkdir(victim, { mode: 0o755 });
      await Deno.symlink(victim, `${tmp}/sym-state`);
      figure("security", await notFollowed("stateDir symlink", `${tmp}/sym-state`, victim));
    });

    await t.step("symlink in place of the network's record directory", async () => {
      const victim = `${tmp}/victim-netdir`;
      await Deno.mkdir(victim, { mode: 0o755 });
      await Deno.mkdir(`${tmp}/state-nd`, { mode: 0o700 });
      await Deno.symlink(victim, `${tmp}/state-nd/secnet`);
      figure("security", await notFollowed("network dir symlink", `${tmp}/state-nd`, victim));
    });

    await t.step("symlink in place of the record", async () => {
      const victim = `${tmp}/victim-record`;
      await Deno.writeTextFile(victim, "precious\n", { mode: 0o644 });
      await Deno.mkdir(`${tmp}/state-rec/secnet`, { recursive: true, mode: 0o700 });
      await Deno.symlink(victim, `${tmp}/state-rec/secnet/sym1@eth0`);
      figure("security", await notFollowed("record symlink", `${tmp}/state-rec`, victim));
    });

    await t.step("symlink in place of logFile", async () => {
      const victim = `${tmp}/victim-log`;
      await Deno.writeTextFile(victim, "precious\n", { mode: 0o644 });
      await Deno.mkdir(`${tmp}/logs2`, { mode: 0o755 });
      await Deno.symlink(victim, `${tmp}/logs2/macvtap.log`);
      figure(
        "security",
        await notFollowed("logFile symlink", `${tmp}/state-log`, victim, {
          logFile: `${tmp}/logs2/macvtap.log`,
          logLevel: "debug",
        }),
      );
    });
  },
});
