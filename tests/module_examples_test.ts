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
  // Marked `ts ignore` so that `deno test --doc` leaves them to this test.
  const re = /```ts ignore\n([\s\S]*?)```([\s\S]*?)(?=```ts ignore\n|$)/g;
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

/**
 * The plugin's commands with `hostNetns`, called from a script whose own
 * namespace is not the host: the master, the hostrouteif, the host routes
 * and the IPAM plugin are all in the lab host namespace; the caller's
 * namespace keeps only `lo`, and DEL removes everything again.
 */
const HOST_NETNS_SCRIPT = `
import { currentNetnsId, NetlinkHandle } from "${root}netlink.ts";
import { cmdAdd, cmdCheck, cmdDel } from "${root}plugin.ts";
import { formatResult } from "${root}cni.ts";

const [host, ctr, dataDir] = Deno.args as [string, string, string];
const config = {
  cniVersion: "1.1.0", name: "lan", type: "macvtap", master: "eth1", hostrouteif: "mvhost0",
  ipam: { type: "host-local", subnet: "10.9.0.0/24", dataDir },
};
const ctx = { containerId: "c1", netns: ctr, ifname: "eth0", args: "", path: ["/usr/lib/cni"] };
const options = { hostNetns: host };
const result = await cmdAdd(config, ctx, options);
console.log("ADD " + result.ips?.[0]?.address);
await cmdCheck({ ...config, prevResult: formatResult(result, "1.1.0") }, ctx, options);
console.log("CHECK ok");
// The attachment's record names the host namespace it used (by inode).
const inos: unknown[] = [];
const walk = (dir: string) => {
  for (const e of Deno.readDirSync(dir)) {
    const path = dir + "/" + e.name;
    if (e.isDirectory) walk(path);
    else if (e.isFile) {
      const m = /"hostNetnsIno":\\s*(\\d+)/.exec(Deno.readTextFileSync(path));
      if (m) inos.push(Number(m[1]));
    }
  }
};
walk(Deno.env.get("MACVTAP_STATE_ROOT")!);
console.log("RECORD " + JSON.stringify(inos));
using own = NetlinkHandle.open();
console.log("OWN " + own.links.list().map((l) => l.name).join(","));
using lab = NetlinkHandle.open({ netns: host });
const hostRoutes = lab.routes.list({ oif: "mvhost0" }).filter((r) => r.protocol === 249);
console.log("HOSTROUTES " + hostRoutes.map((r) => r.dst).join(","));
await cmdDel(config, ctx, options);
console.log("DEL ok");

// Without hostNetns the host is the caller's namespace: its inode is recorded too.
own.links.add({ kind: "veth", name: "eth9", peer: { name: "eth9p" }, up: true });
const config2 = { ...config, name: "lan2", master: "eth9", hostrouteif: "mvhost9" };
await cmdAdd(config2, ctx);
inos.length = 0;
walk(Deno.env.get("MACVTAP_STATE_ROOT")! + "/lan2");
console.log("RECORD2 " + JSON.stringify(inos) + " " + currentNetnsId());
await cmdDel(config2, ctx);

// The IPAM plugin runs in the host namespace given (it writes where it ran).
const probe = { cniVersion: "1.1.0", name: "lan3", type: "macvtap", master: "eth1", ipam: { type: "nsprobe" } };
const probeCtx = { ...ctx, path: [dataDir + "/bin"] };
const probed = await cmdAdd(probe, probeCtx, options);
console.log("PROBE " + probed.ips?.[0]?.address);
await cmdDel(probe, probeCtx, options);
`;

Deno.test({
  name: "cmdAdd/cmdCheck/cmdDel with hostNetns: the host is the namespace given, not the caller's",
  ignore: !privileged,
  async fn() {
    const tag = `mex${Deno.pid}hn`;
    const host = `${tag}-host`, ctr = `${tag}-ctr`;
    const dir = await Deno.makeTempDir();
    const state = await Deno.makeTempDir();
    try {
      await ipNetns("netns", "add", host);
      await ipNetns("netns", "add", ctr);
      await ipNetns("-n", host, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p");
      await ipNetns("-n", host, "link", "set", "eth1", "up");
      await ipNetns("-n", host, "link", "set", "eth1p", "up");
      // An IPAM plugin that notes the namespace it runs in.
      await Deno.mkdir(`${dir}/ipam/bin`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/ipam/bin/nsprobe`,
        `#!/bin/sh\nreadlink /proc/self/ns/net > "${dir}/ran-$CNI_COMMAND"\ncat > /dev/null\n` +
          `[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.1.0","ips":[{"address":"10.9.1.2/24"}]}'\n` +
          `exit 0\n`,
        { mode: 0o755 },
      );
      const file = `${dir}/hostnetns.ts`;
      await Deno.writeTextFile(file, HOST_NETNS_SCRIPT);
      // The script runs in a namespace of its own (unshare -n), never the host.
      const r = await run(
        [
          "unshare",
          "-n",
          Deno.execPath(),
          "run",
          ...["--allow-ffi", "--allow-run", "--allow-env", "--allow-read", "--allow-write"],
          file,
          `/run/netns/${host}`,
          `/run/netns/${ctr}`,
          `${dir}/ipam`,
        ],
        { timeoutMs: 60_000, env: { ...Deno.env.toObject(), MACVTAP_STATE_ROOT: state } },
      );
      assert(r.success, `${r.stdout}\n${r.stderr}`);
      assert(/^ADD 10\.9\.0\.\d+\/24$/m.test(r.stdout), r.stdout);
      assert(/^CHECK ok$/m.test(r.stdout), r.stdout);
      assert(/^OWN lo$/m.test(r.stdout), `the caller's namespace has only lo:\n${r.stdout}`);
      const hostIno = Deno.statSync(`/run/netns/${host}`).ino;
      assert(
        r.stdout.includes(`RECORD [${hostIno}]\n`),
        `record's host netns ${hostIno}:\n${r.stdout}`,
      );
      const address = /^ADD (10\.9\.0\.\d+)\/24$/m.exec(r.stdout)?.[1];
      assert(
        r.stdout.includes(`HOSTROUTES ${address}/32\n`),
        `host route in the lab host:\n${r.stdout}`,
      );
      assert(/^DEL ok$/m.test(r.stdout), r.stdout);
      assert(/^PROBE 10\.9\.1\.2\/24$/m.test(r.stdout), r.stdout);
      for (const command of ["ADD", "DEL"]) {
        const ran = (await Deno.readTextFile(`${dir}/ran-${command}`)).trim();
        assert(ran === `net:[${hostIno}]`, `IPAM ${command} ran in ${ran}, not the host's`);
      }
      const own = /^RECORD2 \[(\d+)\] net:\[(\d+)\]$/m.exec(r.stdout);
      assert(own && own[1] === own[2], `the caller's netns recorded as the host:\n${r.stdout}`);
      assert(!/warn/i.test(r.stderr), r.stderr);
      // DEL left the lab host as ADD found it, save the hostrouteif (kept, as on a node).
      const routes = (await run(["ip", "-n", host, "route", "show", "proto", "249"])).stdout;
      assert(routes.trim() === "", `host routes left in the lab host: ${routes}`);
      const links = (await run(["ip", "-n", host, "-br", "link"])).stdout;
      assert(/^mvhost0@eth1\s/m.test(links), `hostrouteif made in the lab host:\n${links}`);
      assert(!(await run(["ip", "-n", ctr, "link", "show", "eth0"])).success, "eth0 deleted");
      const leases = [...Deno.readDirSync(`${dir}/ipam/lan`)].map((e) => e.name);
      assert(!leases.some((n) => n.startsWith("10.9.0.")), `leases left: ${leases}`);
    } finally {
      for (const ns of [host, ctr]) await run(["ip", "netns", "del", ns]);
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(state, { recursive: true });
    }
  },
});

Deno.test({
  name: "netlink's JSDoc examples run with exactly the flags netlink.ts documents",
  ignore: !privileged,
  async fn() {
    const doc = await Deno.readTextFile(`${root}netlink.ts`);
    const flags = /`deno run ((?:--allow-[a-z]+ )+)script\.ts` runs every example here/
      .exec(doc.replace(/\n \* /g, " "))?.[1]?.trim().split(" ");
    assert(flags && flags.length > 0, "netlink.ts names the flags its examples run with");
    const files = [`${root}netlink.ts`];
    for (const e of Deno.readDirSync(`${root}netlink`)) {
      if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        files.push(`${root}netlink/${e.name}`);
      }
    }
    const r = await run(
      ["unshare", "-n", Deno.execPath(), "test", "--doc", ...flags, ...files],
      { timeoutMs: 300_000, env: { ...Deno.env.toObject(), NO_COLOR: "1" } },
    );
    assert(r.success, `${r.stdout}\n${r.stderr}`);
    assert(/ok \| \d+ passed/.test(r.stdout), r.stdout);
  },
});

Deno.test("MACVTAP_LIBMNL naming a file that does not load says so, with no package advice", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/libmnl-bad.so`;
    await Deno.writeTextFile(bad, "not an ELF file\n");
    const file = `${dir}/list.ts`;
    await Deno.writeTextFile(
      file,
      `import { NetlinkHandle } from "${root}netlink.ts";\n` +
        `using h = NetlinkHandle.open();\nh.links.list();\n`,
    );
    const r = await run(
      [Deno.execPath(), "run", "--allow-ffi", "--allow-env", "--allow-read", file],
      { env: { ...Deno.env.toObject(), NO_COLOR: "1", MACVTAP_LIBMNL: bad } },
    );
    assert(!r.success, r.stdout);
    assert(r.stderr.includes(`MACVTAP_LIBMNL=${bad} does not load`), r.stderr);
    assert(!r.stderr.includes("apt-get"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
