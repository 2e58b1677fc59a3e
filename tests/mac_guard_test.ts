/**
 * The MAC guard (deviceplugin/mac_guard.ts) on real links, without a VM: a
 * "node" namespace whose NIC `lan0` is a veth to a LAN namespace, a macvtap
 * tracked the way Allocate hands it over (down, in the node's namespace),
 * then moved into a pod namespace and raised there as the CNI does. The guard
 * runs in its own process inside the node's namespace, as the device plugin
 * does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Lab, labIgnore, waitFor } from "../lab/mod.ts";

const GUARD = new URL("../deviceplugin/mac_guard.ts", import.meta.url).href;
const LOG = new URL("../internal/_log.ts", import.meta.url).href;

const CHILD = `
const { MacGuard } = await import(${JSON.stringify(GUARD)});
const { Logger } = await import(${JSON.stringify(LOG)});
const [index, lower] = Deno.args.map(Number);
const g = MacGuard.start({ log: new Logger({ level: "info", prefix: "guard" }) });
g.track({ id: "t-0", index, lowerIndex: lower, mode: "bridge" });
Deno.addSignalListener("SIGTERM", async () => {
  await g.close();
  Deno.exit(0);
});
Deno.stdout.writeSync(new TextEncoder().encode("ready\\n"));
setInterval(() => {}, 1 << 30);
`;

async function modeOf(lab: Lab, ns: string, ifname: string): Promise<string | undefined> {
  const [l] = await lab.ipJson<{ linkinfo?: { info_data?: { mode?: string } } }[]>(
    ns,
    "link",
    "show",
    ifname,
  );
  return l?.linkinfo?.info_data?.mode;
}

Deno.test({
  name: "the MAC guard: private until the pod's device transmits, private again when its MAC " +
    "arrives from the wire, and only the device it was given [root]",
  ignore: labIgnore(),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using lab = await Lab.create({ prefix: "mguard" });
    const node = await lab.netns("node");
    const lan = await lab.netns("lan");
    const pod = await lab.netns("pod");
    const other = await lab.netns("other");
    await lab.veth(node, "lan0", lan, "lan0p");
    await lab.ip(lan, "addr", "add", "10.98.0.1/24", "dev", "lan0p");
    // Ours (as Allocate makes it: down, bridge, a high ifindex) and a sibling that is not ours.
    // Random high ifindexes: /dev/tapN is global, shared with parallel tests.
    const index = 0x4000000 + Math.floor(Math.random() * 0x1000000) * 2;
    await lab.ip(
      node,
      ..."link add link lan0 name mvt0 index".split(" "),
      String(index),
      ..."type macvtap mode bridge".split(" "),
    );
    await lab.ip(
      node,
      ..."link add link lan0 name sib0 index".split(" "),
      String(index + 1),
      ..."type macvtap mode bridge".split(" "),
    );
    const [lower] = await lab.ipJson<{ ifindex: number }[]>(node, "link", "show", "lan0");
    const dir = await lab.tempDir("guard");
    await Deno.writeTextFile(`${dir}/child.ts`, CHILD);
    const child = lab.spawn(node, [
      Deno.execPath(),
      "run",
      "-A",
      "--no-config",
      "--no-lock",
      `${dir}/child.ts`,
      String(index),
      String(lower!.ifindex),
    ], { what: "mac guard", stdout: "piped" });
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.match((await reader.read()).value ?? "", /ready/);
    reader.releaseLock();
    child.stdout.cancel().catch(() => {});

    assert.strictEqual(await modeOf(lab, node, "mvt0"), "private", "tracked: private at once");
    // The CNI: into the pod, a MAC, up (IPv6 off: only what the test sends leaves the pod).
    const mac = "02:98:00:00:00:02";
    await lab.sysctl(pod, "net.ipv6.conf.default.disable_ipv6", "1");
    await lab.ip(node, "link", "set", "mvt0", "netns", pod);
    await lab.ip(pod, "link", "set", "mvt0", "address", mac, "name", "net1", "up");
    await lab.ip(pod, "addr", "add", "10.98.0.2/24", "dev", "net1");
    await lab.ip(node, "link", "set", "sib0", "netns", other);
    await lab.ip(other, "link", "set", "sib0", "up");
    await lab.ip(other, "addr", "add", "10.98.0.3/24", "dev", "sib0");
    assert.strictEqual(await modeOf(lab, pod, "net1"), "private", "nothing sent yet");

    // The pod's device transmits (its "VM" runs here): bridge, changed inside the pod's netns.
    const ping = await lab.exec(pod, ["/bin/busybox", "ping", "-c", "1", "-W", "2", "10.98.0.1"]);
    assert(ping.success, `ping from the pod: ${ping.stdout}${ping.stderr}`);
    await waitFor("bridge mode", async () => await modeOf(lab, pod, "net1") === "bridge", 3000);

    // Its MAC arrives from the wire in a broadcast (the VM announces itself elsewhere): private.
    await lab.ip(lan, "link", "set", "lan0p", "address", mac);
    const arping = await lab.exec(lan, [
      "/bin/busybox",
      ..."arping -U -c 1 -I lan0p 10.98.0.1".split(" "),
    ]);
    assert(arping.success, `arping: ${arping.stderr}`);
    await waitFor("private mode", async () => await modeOf(lab, pod, "net1") === "private", 3000);
    // A unicast from the wire with that MAC is not an announcement (a sibling's unicast to a
    // bridge-mode device passes the NIC's receive path too).

    // The real owner speaks again: bridge again.
    await lab.ip(lan, "link", "set", "lan0p", "address", "02:98:00:00:00:01");
    await lab.exec(pod, ["ip", "neigh", "flush", "dev", "net1"]);
    await lab.exec(pod, ["/bin/busybox", "ping", "-c", "1", "-W", "2", "10.98.0.1"]);
    await waitFor("bridge again", async () => await modeOf(lab, pod, "net1") === "bridge", 3000);

    // The sibling it was not given: transmitted and was the target of nothing, never touched.
    await lab.exec(other, ["/bin/busybox", "ping", "-c", "1", "-W", "2", "10.98.0.1"]);
    assert.strictEqual(await modeOf(lab, other, "sib0"), "bridge");
    await lab.stop(child, 3000);
  },
});
