/**
 * podman 4.3 with the CNI backend (runc, cgroupfs; real-clients.md §5) runs a
 * busybox container on a network of the plugin under test.
 *
 * Each test has its own podman storage, run root and network config dir in
 * the lab's temp dir; the image comes read-only from the store that
 * tools/e2e_setup.sh filled (`additionalimagestores`), so nothing is pulled.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ExecResult, runOk } from "../../lab/mod.ts";
import {
  checkTaskGone,
  checkTaskUp,
  E2eLab,
  LAN,
  note,
  plugin,
  PODMAN_IMAGE_STORE,
  REF_CNI_DIR,
  writePodmanConfig,
} from "../../lab/e2e.ts";
import { skipUnless } from "../../lab/e2e.ts";

const ignore = skipUnless("/usr/bin/podman", "/usr/sbin/runc", PODMAN_IMAGE_STORE) !== undefined;

/** Per-test podman config and the test's network; the env podman needs. */
async function podmanEnv(lab: E2eLab): Promise<Record<string, string>> {
  const d = `${lab.dir}/podman`;
  const env = await writePodmanConfig(d, { pluginDirs: [lab.binDir, REF_CNI_DIR] });
  await Deno.writeTextFile(`${d}/net.d/${lab.net}.conflist`, lab.conflist());
  return env;
}

Deno.test({
  name: `podman run --network through ${plugin.type || "the plugin"} (CNI backend)`,
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await E2eLab.create();
    const env = await podmanEnv(lab);
    const podman = (...args: string[]): Promise<ExecResult> =>
      lab.inHost(["podman", ...args], { env });
    lab.defer("podman rm -a", async () => {
      const r = await podman("rm", "--force", "--all", "--time", "0");
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const name = `e2e-${lab.id}`;

    const t0 = performance.now();
    const started = await podman(
      "run",
      "--detach",
      "--name",
      name,
      "--network",
      lab.net,
      "localhost/bb:probe",
      "sleep",
      "600",
    );
    assert.deepStrictEqual(started.code, 0, `podman run: ${started.stderr}`);
    note(`podman run --detach: ${(performance.now() - t0).toFixed(0)} ms`);
    const inspect = (format: string) =>
      runOk(
        ["nsenter", `--net=/run/netns/${lab.hostNs}`, "podman", "inspect", "-f", format, name],
        {
          env,
        },
      );
    const netns = (await inspect("{{.NetworkSettings.SandboxKey}}")).trim();
    assert(netns.startsWith("/run/netns/"), `sandbox key ${netns}`);

    const ip = await checkTaskUp(lab, netns);
    const networks = await inspect("{{json .NetworkSettings.Networks}}");
    assert.deepStrictEqual(
      (JSON.parse(networks) as Record<string, { IPAddress?: string }>)[lab.net]?.IPAddress,
      ip,
      `podman inspect networks: ${networks}`,
    );
    const ping = await podman("exec", name, "ping", "-c1", "-W2", LAN.peer);
    assert.deepStrictEqual(
      ping.code,
      0,
      `podman exec ping ${LAN.peer}: ${ping.stdout}${ping.stderr}`,
    );

    const t1 = performance.now();
    const stopped = await podman("stop", "--time", "0", name);
    assert.deepStrictEqual(stopped.code, 0, `podman stop: ${stopped.stderr}`);
    note(`podman stop: ${(performance.now() - t1).toFixed(0)} ms`);
    await checkTaskGone(lab, ip);
    const rm = await podman("rm", name);
    assert.deepStrictEqual(rm.code, 0, `podman rm: ${rm.stderr}`);

    const calls = await lab.spyCalls();
    const ops = calls.filter((c) => c.command !== "VERSION").map((c) => c.command);
    assert.deepStrictEqual(ops, ["ADD", "DEL"], "plugin calls other than VERSION");
    const del = calls.find((c) => c.command === "DEL")!;
    assert(JSON.parse(del.stdin).prevResult, "podman sends prevResult on DEL");
  },
});
