/**
 * containerd 1.6's CRI plugin, driven the way a kubelet does through our small
 * gRPC client: RunPodSandbox, PodSandboxStatus, StopPodSandbox,
 * RemovePodSandbox (real-clients.md §6.2). containerd runs inside the lab host
 * netns with its CNI bin and conf dirs in the lab's temp dir.
 *
 * @module
 */

import assert from "node:assert/strict";
import { run } from "../../lab/mod.ts";
import { Containerd } from "./_containerd.ts";
import { CriClient, sandboxNetns } from "./_cri.ts";
import {
  checkTaskGone,
  checkTaskUp,
  E2eLab,
  note,
  plugin,
  skipUnless,
  waitFor,
} from "../../lab/e2e.ts";

const ignore = skipUnless("/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc") !== undefined;

Deno.test({
  name: `CRI RunPodSandbox/StopPodSandbox/RemovePodSandbox through ${plugin.type || "the plugin"}`,
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await E2eLab.create();
    const confDir = `${lab.dir}/cri-net.d`;
    await Deno.mkdir(confDir);
    await Deno.mkdir(`${lab.dir}/pods`);
    await Deno.writeTextFile(`${confDir}/10-${lab.net}.conflist`, lab.conflist());
    const ctrd = await Containerd.start(lab, { cri: { binDir: lab.binDir, confDir } });
    await ctrd.importImage("k8s.io", "pause");

    const cri = new CriClient(ctrd.sock, lab.dir);
    lab.defer("close the CRI client", () => cri.close());
    const v = await cri.version();
    note(`CRI: ${v.runtime_name} ${v.runtime_version}`);
    // The CRI plugin loads the CNI config asynchronously.
    await waitFor("CRI NetworkReady", async () => {
      const c = await cri.conditions();
      return c.some((x) => x.type === "NetworkReady" && x.status);
    }, 10_000);

    // Whatever happens below, no sandbox outlives the test.
    lab.defer("remove leftover sandboxes", async () => {
      for (const s of await cri.listPodSandbox()) {
        await cri.stopPodSandbox(s.id).catch(() => {});
        await cri.removePodSandbox(s.id);
      }
    });

    const t0 = performance.now();
    const id = await cri.runPodSandbox({
      name: `pod-${lab.id}`,
      uid: `uid-${lab.id}`,
      namespace: "default",
      logDirectory: `${lab.dir}/pods`,
    });
    note(`RunPodSandbox: ${(performance.now() - t0).toFixed(0)} ms`);
    const st = await cri.podSandboxStatus(id);
    assert.deepStrictEqual(st.status.state, "SANDBOX_READY", "sandbox state");
    const netns = sandboxNetns(st);
    assert(netns, `no network namespace in the sandbox status: ${JSON.stringify(st.info)}`);
    lab.defer(`remove ${netns}`, async () => {
      // Normally gone after StopPodSandbox; only a failed run leaves it.
      const name = netns.slice(netns.lastIndexOf("/") + 1);
      await run(["ip", "netns", "del", name]);
    });
    const ip = await checkTaskUp(lab, netns);
    assert.deepStrictEqual(st.status.network?.ip, ip, "PodSandboxStatus network ip");

    const t1 = performance.now();
    await cri.stopPodSandbox(id);
    note(`StopPodSandbox: ${(performance.now() - t1).toFixed(0)} ms`);
    await checkTaskGone(lab, ip);
    const afterStop = await cri.podSandboxStatus(id);
    assert.deepStrictEqual(
      afterStop.status.state,
      "SANDBOX_NOTREADY",
      "state after StopPodSandbox",
    );

    const t2 = performance.now();
    await cri.removePodSandbox(id);
    note(`RemovePodSandbox: ${(performance.now() - t2).toFixed(0)} ms`);
    assert.deepStrictEqual(await cri.listPodSandbox(), [], "sandboxes after RemovePodSandbox");
    await checkTaskGone(lab, ip);

    const calls = await lab.spyCalls();
    note(`plugin calls: ${calls.map((c) => `${c.command}(${c.netns || "no netns"})`).join(" ")}`);
    assert.deepStrictEqual(calls[0]?.command, "ADD", "first call");
    assert.deepStrictEqual(calls[0]?.netns, netns, "ADD netns");
    assert(
      calls.slice(1).every((c) => c.command === "DEL"),
      "only DELs after the ADD",
    );
    assert.deepStrictEqual(calls[1]?.netns, netns, "StopPodSandbox's DEL carries the netns");
    assert.deepStrictEqual(calls.length, 3, "ADD, DEL on StopPodSandbox, DEL on RemovePodSandbox");
    assert.deepStrictEqual(calls[2]?.netns, "", "RemovePodSandbox's DEL has an empty CNI_NETNS");
    assert(
      /K8S_POD_NAME=pod-/.test(calls[0]!.args) && calls[0]!.args.includes("IgnoreUnknown=1"),
      `CNI_ARGS from CRI: ${calls[0]!.args}`,
    );
  },
});
