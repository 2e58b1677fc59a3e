/**
 * The README's "Use it from Deno" scripts run as a Deno user would run them:
 * each one as its own `deno run` process with exactly the flags the README
 * gives under it (parsed from the text, so docs and test cannot drift), as
 * root inside a throwaway network namespace, with unique namespace names.
 * Each must type-check (`deno check`), succeed, print what the README says,
 * warn about nothing (a permission the flags lack shows up as a warning,
 * e.g. a sysctl not written), and leave no namespace behind. A script that
 * is a CNI plugin (it calls `runSkelMain`) is run as one: ADD, CHECK, DEL,
 * DEL again, with `CNI_*` in its environment and the config on stdin.
 */

import { ok as assert } from "node:assert/strict";
import { privileged, run } from "../lab/mod.ts";

const root = new URL("..", import.meta.url).pathname;

interface Example {
  code: string;
  flags: string[];
  file: string;
}

/** The ```ts blocks of the section, each with the `deno run FLAGS FILE` given after it. */
function examples(readme: string): Example[] {
  const section = readme.slice(readme.indexOf("## Use it from Deno"));
  const out: Example[] = [];
  const re = /```ts\n([\s\S]*?)```([\s\S]*?)(?=```ts\n|$)/g;
  for (const m of section.matchAll(re)) {
    const after = (m[2] ?? "").replace(/\s+/g, " ");
    const cmd = /Run it as root with `deno run ((?:--allow-[a-z]+ )+)(\S+\.ts)`/.exec(after);
    assert(cmd, `no "Run it as root with \`deno run …\`" after the block:\n${m[1]}`);
    out.push({ code: m[1]!, flags: cmd[1]!.trim().split(" "), file: cmd[2]! });
  }
  return out;
}

const readme = Deno.readTextFileSync(`${root}README.md`);
const found = examples(readme);

Deno.test("README: every 'Use it from Deno' script names the flags it runs with", () => {
  assert(found.length >= 2, `found ${found.length} scripts`);
  for (const e of found) assert(!e.flags.includes("--allow-all") && !e.flags.includes("-A"));
});

/** What each script must print (the README's sample output, less what varies). */
const expected: Record<string, RegExp[]> = {
  "lab.ts": [
    /^link eth0 kind=macvtap mode=bridge mac=([0-9a-f]{2}:){5}[0-9a-f]{2}$/m,
    /^addr 192\.168\.122\.10\/24$/m,
    /^route 0\.0\.0\.0\/0 via 192\.168\.122\.1 scope universe proto boot$/m,
    /^route 192\.168\.122\.0\/24 scope link proto kernel$/m,
    /^event new link eth0 up=/m,
    /^event new addr 192\.168\.122\.10\/24$/m,
    /^event new route 0\.0\.0\.0\/0$/m,
    /^event del link eth0 up=false$/m,
  ],
  "attach.ts": [/^ADD eth0 192\.168\.122\.\d+\/24$/m, /^CHECK ok$/m, /^DEL ok$/m],
};

/** The script with its imports pointing into this checkout and its namespaces renamed. */
function localized(code: string, tag: string): string {
  let script = code;
  for (const entry of ["netlink.ts", "cni.ts", "plugin.ts", "mod.ts"]) {
    script = script.replaceAll(`from "./${entry}"`, `from "${root}${entry}"`);
  }
  return script.replace(/"demo-([a-z]+)"/g, (_, n) => `"${tag}-${n}"`);
}

async function ipNetns(...args: string[]): Promise<void> {
  const r = await run(["ip", ...args]);
  assert(r.success, `ip ${args.join(" ")}: ${r.stderr}`);
}

/** Run a plugin script as a runtime would: ADD, CHECK, DEL, DEL, in a lab host namespace. */
async function runAsPlugin(example: Example, file: string, tag: string, dir: string) {
  const host = `${tag}-host`, ctr = `${tag}-ctr`;
  await ipNetns("netns", "add", host);
  await ipNetns("netns", "add", ctr);
  await ipNetns("-n", host, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p");
  await ipNetns("-n", host, "link", "set", "eth1", "up");
  const config = JSON.stringify({
    cniVersion: "1.1.0",
    name: "lan",
    type: "macvlan",
    master: "eth1",
    ipam: { type: "host-local", subnet: "10.9.0.0/24", dataDir: `${dir}/ipam` },
  });
  const call = async (command: string) => {
    const stdinFile = `${dir}/stdin.json`;
    await Deno.writeTextFile(stdinFile, config);
    return await run(
      [
        "sh",
        "-c",
        `exec ip netns exec ${host} "$0" run ${example.flags.join(" ")} "$1" < "$2"`,
        Deno.execPath(),
        file,
        stdinFile,
      ],
      {
        timeoutMs: 60_000,
        env: {
          ...Deno.env.toObject(),
          NO_COLOR: "1",
          CNI_COMMAND: command,
          CNI_CONTAINERID: "c1",
          CNI_NETNS: `/run/netns/${ctr}`,
          CNI_IFNAME: "eth0",
          CNI_PATH: "/usr/lib/cni",
        },
      },
    );
  };
  const add = await call("ADD");
  assert(add.success, `ADD: ${add.stdout}${add.stderr}`);
  const result = JSON.parse(add.stdout);
  assert(result.interfaces?.[0]?.name === "eth0", add.stdout);
  assert(/^10\.9\.0\.\d+\/24$/.test(result.ips?.[0]?.address), add.stdout);
  const seen = JSON.parse(
    (await run(["ip", "-n", ctr, "-j", "-d", "addr", "show", "eth0"])).stdout,
  );
  assert(seen[0]?.linkinfo?.info_kind === "macvlan", JSON.stringify(seen));
  assert(
    seen[0].addr_info.some((a: { local: string }) => `${a.local}/24` === result.ips[0].address),
  );
  for (const command of ["CHECK", "DEL", "DEL"]) {
    const r = await call(command);
    assert(r.success && r.stdout === "", `${command}: ${r.stdout}${r.stderr}`);
    assert(!/warn/i.test(r.stderr), `${command} stderr: ${r.stderr}`);
  }
  const left = (await run(["ip", "-n", ctr, "link", "show", "eth0"])).success;
  assert(!left, "DEL removed eth0");
  const leases = [...Deno.readDirSync(`${dir}/ipam/lan`)].map((e) => e.name);
  assert(!leases.some((n) => n.startsWith("10.9.0.")), `leases left: ${leases}`);
}

for (const example of found) {
  Deno.test({
    name: `README: ${example.file} runs with exactly \`deno run ${example.flags.join(" ")}\``,
    ignore: !privileged,
    async fn() {
      const tag = `mex${Deno.pid}${example.file.replace(/\W/g, "").slice(0, 4)}`;
      const dir = await Deno.makeTempDir();
      const state = await Deno.makeTempDir();
      try {
        const file = `${dir}/${example.file}`;
        await Deno.writeTextFile(file, localized(example.code, tag));
        const checked = await run([Deno.execPath(), "check", `--config=${root}deno.json`, file]);
        assert(checked.success, `deno check ${example.file}:\n${checked.stderr}`);
        if (example.code.includes("runSkelMain(")) {
          await runAsPlugin(example, file, tag, dir);
          return;
        }
        // A fresh network namespace is "the host" the script runs in; the
        // state root is the test's own (an environment choice, not a flag).
        const r = await run(
          ["unshare", "-n", Deno.execPath(), "run", ...example.flags, file],
          {
            timeoutMs: 120_000, // a guard against a hang (waiting for events), not a goal
            env: { ...Deno.env.toObject(), MACVTAP_STATE_ROOT: state, NO_COLOR: "1" },
          },
        );
        assert(r.success, `exit failed\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
        for (const line of expected[example.file] ?? []) {
          assert(line.test(r.stdout), `${line} in:\n${r.stdout}`);
        }
        assert(!/warn|NotCapable|Requires .* access/i.test(r.stderr), `stderr:\n${r.stderr}`);
        const left = (await run(["ip", "netns", "list"])).stdout;
        assert(!left.includes(tag), `namespaces left: ${left}`);
      } finally {
        await Deno.remove(dir, { recursive: true });
        await Deno.remove(state, { recursive: true });
        for (const ns of (await run(["ip", "netns", "list"])).stdout.split("\n")) {
          const name = ns.split(" ")[0];
          if (name?.startsWith(tag)) await run(["ip", "netns", "del", name]);
        }
      }
    },
  });
}
