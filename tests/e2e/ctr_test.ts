/**
 * containerd 1.6 `ctr run --cni` (go-cni inside ctr; real-clients.md §6.1).
 *
 * ctr reads the first file of the hard-coded `/etc/cni/net.d` and looks for
 * plugins in `/opt/cni/bin` then `/usr/lib/cni`, so this test writes
 * `/etc/cni/net.d/000-e2e-<id>.conflist` and a spy named like the plugin into
 * `/opt/cni/bin` (an `e2e-<id>-<type>` alias when that name is taken), and
 * removes both afterwards. Its DEL arrives with an empty CNI_NETNS: the task
 * has exited by then.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Containerd } from "./_containerd.ts";
import {
  checkTaskGone,
  checkTaskUp,
  E2eLab,
  LAN,
  note,
  plugin,
  skipUnless,
  waitFor,
} from "../../lab/e2e.ts";

const ignore = skipUnless("/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc") !== undefined;

const CONF_DIR = "/etc/cni/net.d";
const BIN_DIR = "/opt/cni/bin";

/** `mkdir -p dir`; the directories it creates are removed (when empty) on cleanup. */
async function mkdirTracked(lab: E2eLab, dir: string): Promise<void> {
  const created: string[] = [];
  for (let d = dir; d !== "/" && d !== ""; d = d.slice(0, d.lastIndexOf("/")) || "/") {
    try {
      await Deno.stat(d);
      break;
    } catch {
      created.push(d);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  // Deepest first runs last-registered-first: register the outermost first.
  for (const d of created.reverse()) {
    lab.defer(`rmdir ${d}`, () => Deno.remove(d).catch(() => {}));
  }
}

/** Put the spy where ctr looks; return the CNI type to use. */
async function installSpy(lab: E2eLab): Promise<string> {
  await mkdirTracked(lab, BIN_DIR);
  let type = plugin.type;
  try {
    await Deno.lstat(`${BIN_DIR}/${type}`);
    type = `e2e-${lab.id}-${plugin.type}`; // an installed plugin owns the name: leave it alone
  } catch {
    // free
  }
  const path = `${BIN_DIR}/${type}`;
  lab.defer(`rm ${path}`, () => Deno.remove(path));
  await lab.writeSpy(path);
  return type;
}

Deno.test({
  name: `ctr run --cni through ${plugin.type || "the plugin"} (DEL with empty CNI_NETNS)`,
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await E2eLab.create();
    const type = await installSpy(lab);
    await mkdirTracked(lab, CONF_DIR);
    const conf = `${CONF_DIR}/000-e2e-${lab.id}.conflist`;
    lab.defer(`rm ${conf}`, () => Deno.remove(conf));
    const list = JSON.parse(lab.conflist());
    list.plugins[0].type = type;
    await Deno.writeTextFile(conf, JSON.stringify(list));
    const first = [...Deno.readDirSync(CONF_DIR)].map((e) => e.name)
      .filter((n) => /\.(conflist|conf|json)$/.test(n)).sort()[0];
    assert.deepStrictEqual(
      first,
      `000-e2e-${lab.id}.conflist`,
      `ctr loads the first file of ${CONF_DIR}`,
    );

    const ctrd = await Containerd.start(lab);
    const ns = ctrd.namespace;
    await ctrd.importImage(ns, "probe");
    const id = "c1";

    const t0 = performance.now();
    const runner = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${lab.hostNs}`,
        "ctr",
        "-a",
        ctrd.sock,
        "-n",
        ns,
        "run",
        "--rm",
        "--cni",
        "localhost/bb:probe",
        id,
        "sleep",
        "600",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const finished = runner.output();
    let exited: Deno.CommandOutput | undefined;
    finished.then((o) => exited = o, () => {});
    lab.defer("ctr task kill", async () => {
      await ctrd.ctr(ns, ["task", "kill", "-s", "SIGKILL", id]);
      await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))]);
    });

    let pid = 0;
    await waitFor("the ctr task to run", async () => {
      if (exited) {
        const err = new TextDecoder().decode(exited.stderr).trim();
        throw new Error(`ctr run exited ${exited.code} before its task ran: ${err}`);
      }
      const out = await ctrd.ctr(ns, ["task", "ls"]);
      const m = out.stdout.match(new RegExp(`^${id}\\s+(\\d+)\\s+RUNNING`, "m"));
      if (m) pid = Number(m[1]);
      return pid > 0;
    }, 15_000);
    note(`ctr run: task running after ${(performance.now() - t0).toFixed(0)} ms`);
    const netns = `/proc/${pid}/ns/net`;
    const ip = await checkTaskUp(lab, netns);
    const ping = await ctrd.ctr(ns, [
      "task",
      "exec",
      "--exec-id",
      "ping",
      id,
      "ping",
      "-c1",
      "-W2",
      LAN.peer,
    ]);
    assert.deepStrictEqual(ping.code, 0, `ctr task exec ping: ${ping.stdout}${ping.stderr}`);

    const t1 = performance.now();
    const kill = await ctrd.ctr(ns, ["task", "kill", "-s", "SIGKILL", id]);
    assert.deepStrictEqual(kill.code, 0, `ctr task kill: ${kill.stderr}`);
    const out = await finished;
    note(`ctr run exited ${out.code} ${(performance.now() - t1).toFixed(0)} ms after the kill`);
    await checkTaskGone(lab, ip);
    const containers = await ctrd.ctr(ns, ["containers", "ls", "-q"]);
    assert.deepStrictEqual(containers.stdout.trim(), "", "ctr run --rm removed the container");

    const calls = await lab.spyCalls();
    assert.deepStrictEqual(calls.map((c) => c.command), ["ADD", "DEL"], "plugin calls");
    assert.deepStrictEqual(calls[0]!.netns, netns, "ADD netns");
    assert.deepStrictEqual(calls[1]!.netns, "", "DEL netns (the task has exited)");
    assert(JSON.parse(calls[1]!.stdin).prevResult, "ctr sends prevResult on DEL");
  },
});
