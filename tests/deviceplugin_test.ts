/**
 * Device plugin tests.
 *
 * - Unit: config validation, wire bytes, index and node rules.
 * - In-process against a fake host (no root): registration, ListAndWatch,
 *   health, stream cancellation, kubelet restart, stop.
 * - Privileged (root): the real `macvtap deviceplugin` process inside a
 *   throwaway namespace whose "NIC" is a veth, driven by the kubelet stand-in.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  allocateDevice,
  defaultEligible,
  deviceIdOf,
  DevicePluginConfigError,
  DevicePluginManager,
  endpointOf,
  ensureTapNode,
  HEALTHY,
  makedev,
  MAX_RESOURCES,
  parseDevicePluginConfig,
  resourceNameOf,
  ResourcePlugin,
  tapIndexFor,
  UNHEALTHY,
} from "../deviceplugin/mod.ts";
import {
  decodeAllocateRequest,
  encodeAllocateResponse,
  encodeListAndWatchResponse,
  encodeRegisterRequest,
} from "../deviceplugin/_protowire.ts";
import { Buffer } from "node:buffer";
import { METHODS } from "../deviceplugin/_api.ts";
import { type GrpcError, Status, unaryCall } from "../deviceplugin/_grpc.ts";
import { loadApi } from "../lab/_grpc_api.ts";
import { deviceIfname, tapIndexCandidates } from "../internal/_ifname.ts";
import { Logger } from "../internal/_log.ts";
import type { Link } from "../netlink/types.ts";
import { FakeHost, FakeTapFs } from "./deviceplugin_fake.ts";
import { MAX_PENDING_ALLOCATES, MAX_WATCHERS } from "../deviceplugin/plugin.ts";
import { devicePluginArgv, FakeKubelet } from "../lab/kubelet.ts";
import { cni, describe, exists, Lab, pluginBuilt, within } from "../lab/mod.ts";

const quiet = new Logger({ level: "error", prefix: "dp-test" });

Deno.test("parseDevicePluginConfig() applies defaults and the master alias", () => {
  const c = parseDevicePluginConfig(
    '[{"name":"lan","master":"eth1"},' +
      '{"name":"pt","lowerDevice":"eth2","mode":"passthru"},{"name":"v","lowerDevice":"eth1","mode":"vepa","capacity":0}]',
  );
  assert.deepEqual(c, {
    discover: false,
    resources: [
      { name: "lan", lowerDevice: "eth1", mode: "bridge", capacity: 100 },
      { name: "pt", lowerDevice: "eth2", mode: "passthru", capacity: 1 },
      { name: "v", lowerDevice: "eth1", mode: "vepa", capacity: 100 },
    ],
  });
  assert.deepEqual(parseDevicePluginConfig(" [ ] "), { discover: true, resources: [] });
  // Seed 003's example has a trailing comma.
  assert.equal(
    parseDevicePluginConfig('[{"name":"dataplane","lowerDevice":"eth0","capacity":50},]')
      .resources[0]?.capacity,
    50,
  );
});

Deno.test("parseDevicePluginConfig() rejects invalid content with the field", async (t) => {
  const cases: [string | undefined, string, RegExp][] = [
    [undefined, "", /is not set/],
    ["{}", "", /JSON array/],
    ['[{"lowerDevice":"eth0"}]', "[0].name", /is required/],
    ['[{"name":"a/b","lowerDevice":"eth0"}]', "[0].name", /must be at most/],
    ['[{"name":"a"}]', "[0].lowerDevice", /required/],
    ['[{"name":"a","lowerdevice":"eth0"}]', "[0].lowerdevice", /did you mean "lowerDevice"/],
    ['[{"name":"a","lowerDevice":"eth0","master":"eth1"}]', "[0].master", /alias/],
    ['[{"name":"a","lowerDevice":"averyveryverylongname"}]', "[0].lowerDevice", /longer than 15/],
    ['[{"name":"a","lowerDevice":"eth0","mode":"brdge"}]', "[0].mode", /not one of bridge/],
    ['[{"name":"a","lowerDevice":"eth0","mode":"source"}]', "[0].mode", /not supported/],
    ['[{"name":"a","lowerDevice":"eth0","capacity":-1}]', "[0].capacity", /whole number/],
    ['[{"name":"a","lowerDevice":"eth0","capacity":"5"}]', "[0].capacity", /whole number/],
    ['[{"name":"a","lowerDevice":"eth0","capacity":20000}]', "[0].capacity", /exceeds/],
    [
      '[{"name":"a","lowerDevice":"eth0","mode":"passthru","capacity":2}]',
      "[0].capacity",
      /must be 1/,
    ],
    [
      '[{"name":"a","lowerDevice":"e"},{"name":"a","lowerDevice":"f"}]',
      "[1].name",
      /used by \[0\]/,
    ],
    [
      '[{"name":"a","lowerDevice":"e","mode":"passthru"},{"name":"b","lowerDevice":"e"}]',
      "[1].lowerDevice",
      /passthru/,
    ],
  ];
  for (const [text, field, re] of cases) {
    await t.step(`${text} ⇒ ${field}`, () => {
      assert.throws(() => parseDevicePluginConfig(text), (err: unknown) => {
        assert.ok(err instanceof DevicePluginConfigError, String(err));
        assert.equal(err.field, field);
        assert.match(err.message, re);
        return true;
      });
    });
  }
  assert.throws(() => parseDevicePluginConfig("[{"), SyntaxError);
});

Deno.test("API messages encode with kubelet's v1beta1 field numbers", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const reg = encodeRegisterRequest({
    version: "v1beta1",
    endpoint: "e",
    resourceName: "r",
    options: { preStartRequired: true, getPreferredAllocationAvailable: true },
  });
  // 1:"v1beta1" 2:"e" 3:"r" 4:{1:true 2:true}
  assert.equal(hex(reg), "0a0776316265746131" + "120165" + "1a0172" + "2204" + "08011001");
  const lw = encodeListAndWatchResponse({ devices: [{ ID: "a-0", health: "Healthy" }] });
  // 1:{1:"a-0" 2:"Healthy"}
  assert.equal(hex(lw), "0a0e" + "0a03612d30" + "12074865616c746879");
  const bytes = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
  assert.deepEqual(decodeAllocateRequest(bytes("0a03" + "0a0178")), {
    containerRequests: [{ devicesIds: ["x"] }],
  });
  const resp = encodeAllocateResponse({
    containerResponses: [{
      envs: { A: "b" },
      devices: [{ containerPath: "/c", hostPath: "/h", permissions: "rw" }],
    }],
  });
  // 1:{1:map{1:"A" 2:"b"} 3:{1:"/c" 2:"/h" 3:"rw"}}
  assert.equal(hex(resp), "0a16" + "0a060a0141120162" + "1a0c0a022f6312022f681a027277");
});

Deno.test("device IDs, endpoints and the tap index rule", () => {
  assert.equal(resourceNameOf("lan"), "macvtap.network.kubevirt.io/lan");
  assert.equal(endpointOf("lan"), "macvtap.network.kubevirt.io_lan");
  assert.equal(deviceIdOf("lan", 7), "lan-7");
  const i = tapIndexFor("lan-7");
  assert.equal(i, tapIndexFor("lan-7"));
  assert.ok(i >= 0x10000 && i < 0x10000 + 0x1000000);
  assert.notEqual(tapIndexFor("lan-7"), tapIndexFor("lan-8"));
  assert.equal(makedev(246, 1), 62977);
  assert.equal(makedev(246, 300), (246 << 8) | 44 | (256 << 12));
});

Deno.test("ensureTapNode() keeps a right node, replaces a wrong one, creates a missing one", () => {
  const fs = new FakeTapFs();
  fs.minors.set("mvtx", 3);
  const tap = { ifname: "mvtx", index: 70000, tapPath: "/dev/tap70000" };
  assert.equal(ensureTapNode(fs, tap), "246:3");
  assert.equal(fs.nodes.get("/dev/tap70000"), makedev(246, 3));
  assert.equal(fs.mknods, 1);
  ensureTapNode(fs, tap);
  assert.equal(fs.mknods, 1);
  fs.nodes.set("/dev/tap70000", makedev(246, 9));
  ensureTapNode(fs, tap);
  assert.equal(fs.nodes.get("/dev/tap70000"), makedev(246, 3));
  assert.equal(fs.mknods, 2);
});

Deno.test("defaultEligible() takes physical NICs and bonds only", () => {
  const base: Link = {
    index: 2,
    name: "eno1",
    mtu: 1500,
    flags: 0,
    up: true,
    promisc: false,
    operState: "UP",
    type: 1,
  };
  const ok = defaultEligible();
  assert.equal(ok(base), true);
  assert.equal(ok({ ...base, name: "bond0", kind: "bond" }), true);
  assert.equal(ok({ ...base, name: "lo", type: 772 }), false);
  assert.equal(ok({ ...base, kind: "veth" }), false);
  assert.equal(ok({ ...base, kind: "macvtap" }), false);
  assert.equal(ok({ ...base, kind: "vlan" }), false);
  assert.equal(ok({ ...base, masterIndex: 5, slaveKind: "bond" }), false);
  assert.equal(ok({ ...base, masterIndex: 5, slaveKind: "bridge" }), false);
  assert.equal(defaultEligible(["veth"])({ ...base, kind: "veth" }), true);
});

async function withFakeSetup(
  conf: string,
  fn: (
    ctx: {
      host: FakeHost;
      tapFs: FakeTapFs;
      kubelet: FakeKubelet;
      dp: DevicePluginManager;
      dir: string;
    },
  ) => Promise<void>,
  options: { eligible?: (l: Link) => boolean; kubeletFirst?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dpt-" });
  const host = new FakeHost();
  const tapFs = new FakeTapFs();
  let kubelet: FakeKubelet | undefined;
  let dp: DevicePluginManager | undefined;
  try {
    if (options.kubeletFirst !== false) kubelet = await FakeKubelet.start(dir);
    host.put("eth1");
    dp = await DevicePluginManager.start({
      socketDir: dir,
      config: parseDevicePluginConfig(conf),
      backend: host,
      tapFs,
      devDir: "/fakedev",
      log: quiet,
      ...(options.eligible ? { eligible: options.eligible } : {}),
    });
    kubelet ??= await FakeKubelet.start(dir);
    await fn({ host, tapFs, kubelet, dp, dir });
  } finally {
    await dp?.stop();
    await kubelet?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
}

const allHealth = (h: string) => (m: { devices: { health: string }[] }) =>
  m.devices.length > 0 && m.devices.every((d) => d.health === h);

Deno.test("DevicePluginManager serves, registers, reports health and allocates (fake host)", async () => {
  await withFakeSetup(
    '[{"name":"lan","lowerDevice":"eth1","capacity":3}]',
    async ({ host, tapFs, kubelet, dp }) => {
      const reg = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
      assert.equal(reg.request.version, "v1beta1");
      assert.equal(reg.request.endpoint, "macvtap.network.kubevirt.io_lan");
      assert.deepEqual(reg.conn.options, {
        preStartRequired: false,
        getPreferredAllocationAvailable: false,
      });
      const first = await reg.conn.waitFor(allHealth(HEALTHY));
      assert.deepEqual(first.devices.map((d) => d.ID), ["lan-0", "lan-1", "lan-2"]);

      host.put("eth1", { carrier: false, operState: "DOWN" });
      await reg.conn.waitFor(allHealth(UNHEALTHY));
      host.put("eth1");
      await reg.conn.waitFor(allHealth(HEALTHY));
      host.remove("eth1");
      await reg.conn.waitFor(allHealth(UNHEALTHY));
      host.put("eth1");
      await reg.conn.waitFor(allHealth(HEALTHY));

      const res = await reg.conn.allocate([["lan-1"], ["lan-0", "lan-2"]]);
      assert.equal(res.containerResponses.length, 2);
      const [c1, c2] = res.containerResponses;
      const idx = host.find(deviceIfname("lan-1"))!.index;
      assert.equal(idx, tapIndexFor("lan-1"));
      assert.deepEqual(c1!.devices, [{
        containerPath: `/fakedev/tap${idx}`,
        hostPath: `/fakedev/tap${idx}`,
        permissions: "rw",
      }]);
      assert.deepEqual(c1!.envs, { MACVTAP_LAN_DEVICES: `lan-1=/fakedev/tap${idx}` });
      assert.equal(c2!.devices.length, 2);
      assert.equal(tapFs.nodes.size, 3);
      // A stale link is replaced.
      await reg.conn.allocate([["lan-1"]]);
      assert.equal(host.find(deviceIfname("lan-1"))!.index, idx);

      await assert.rejects(reg.conn.allocate([["lan-9"]]), /NOT_FOUND|Unknown device "lan-9"/);
      host.remove("eth1");
      await assert.rejects(reg.conn.allocate([["lan-0"]]), /lower device "eth1" does not exist/);
      assert.equal(dp.plugins.get("lan")!.stats.allocateErrors, 2);
    },
  );
});

Deno.test("ListAndWatch cancellation leaves no stream behind; streams past the cap are refused (fake host)", async () => {
  await withFakeSetup(
    '[{"name":"lan","lowerDevice":"eth1","capacity":2}]',
    async ({ host, kubelet, dp }) => {
      const reg = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
      await reg.conn.waitFor(allHealth(HEALTHY));
      const plugin = dp.plugins.get("lan")!;
      assert.equal(plugin.streamCount, 1);
      const subs = host.subscriptions;
      for (let i = 0; i < 20; i++) reg.conn.watch();
      await waitUntil(() => plugin.streamCount === MAX_WATCHERS);
      await waitUntil(() => reg.conn.streamError !== undefined);
      assert.equal(reg.conn.streamError!.code, Status.RESOURCE_EXHAUSTED);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(plugin.streamCount, MAX_WATCHERS);
      reg.conn.close();
      await waitUntil(() => plugin.streamCount === 0);
      // Streams cost no watcher: still the manager's one link subscription.
      assert.equal(host.subscriptions, subs);
      assert.equal(subs, 1);
    },
  );
});

Deno.test("GetPreferredAllocation: known IDs only, bounded by capacity; a request past the resource's bounds is refused (fake host)", async () => {
  await withFakeSetup(
    '[{"name":"lan","lowerDevice":"eth1","capacity":4}]',
    async ({ kubelet, dir }) => {
      await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
      const def = loadApi().DevicePlugin.service.GetPreferredAllocation!;
      const call = (available: string[], mustInclude: string[]) =>
        unaryCall(
          `${dir}/${endpointOf("lan")}`,
          METHODS.getPreferredAllocation,
          def.requestSerialize({
            containerRequests: [{
              availableDeviceIDs: available,
              mustIncludeDeviceIDs: mustInclude,
              allocationSize: 2_000_000_000,
            }],
          }),
          { timeoutMs: 10_000 },
        );
      const answer = def.responseDeserialize(
        Buffer.from(await call(["x-1", "lan-2", "lan-3", "lan-2"], ["lan-1", "nope", "lan-1"])),
      );
      assert.deepEqual(answer.containerResponses[0].deviceIDs, ["lan-1", "lan-2", "lan-3"]);
      // More IDs than twice the capacity (every device available and must-include).
      await assert.rejects(
        call(Array.from({ length: 9 }, (_, i) => `x-${i}`), []),
        (e: GrpcError) =>
          e.code === Status.INVALID_ARGUMENT && /more than 8 device IDs/.test(e.message),
      );
      // 30,000 IDs: refused by size before they are read.
      const t0 = performance.now();
      await assert.rejects(
        call(Array.from({ length: 30_000 }, (_, i) => `x-${i}`), []),
        (e: GrpcError) => e.code === Status.RESOURCE_EXHAUSTED,
      );
      assert.ok(performance.now() - t0 < 5000);
    },
  );
});

Deno.test("kubelet restart that only re-creates kubelet.sock, reusing its inode ⇒ re-registration (fake host)", async () => {
  await withFakeSetup(
    '[{"name":"lan","lowerDevice":"eth1"}]',
    async ({ kubelet, dir }) => {
      await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
      const sock = `${dir}/kubelet.sock`;
      let reused = 0;
      for (let round = 0; round < 8; round++) {
        const before = (await Deno.lstat(sock)).ino;
        await kubelet.restart({ onlyKubeletSock: true });
        if ((await Deno.lstat(sock)).ino === before) reused++;
        const reg = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan", {
          since: kubelet.listeningSince,
          timeoutMs: 5000,
        });
        await reg.conn.waitFor(allHealth(HEALTHY));
      }
      // ext4 (and most disk file systems) hand the freed inode straight back;
      // tmpfs does not, and then this test is only the plain restart.
      Deno.stderr.writeSync(new TextEncoder().encode(
        `kubelet.sock re-created with the same inode in ${reused} of 8 restarts\n`,
      ));
    },
  );
});

// Latency is printed, not asserted: timing goals live in benchmarks (the
// waits' timeouts only keep a hang from stalling the suite).
Deno.test("kubelet restart ⇒ re-registration (fake host)", async () => {
  await withFakeSetup(
    '[{"name":"lan","lowerDevice":"eth1"},{"name":"lan2","lowerDevice":"eth1"}]',
    async ({ kubelet, dp, dir }) => {
      await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
      await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan2");
      const latencies: number[] = [];
      for (let round = 0; round < 5; round++) {
        await kubelet.restart();
        const since = kubelet.listeningSince;
        const regs = await Promise.all(
          ["lan", "lan2"].map((n) =>
            kubelet.waitForRegistration(`macvtap.network.kubevirt.io/${n}`, {
              since,
              timeoutMs: 3000,
            })
          ),
        );
        for (const r of regs) {
          latencies.push(r.at - since);
        }
        await regs[0]!.conn.waitFor(allHealth(HEALTHY));
        assert.ok((await Deno.lstat(`${dir}/macvtap.network.kubevirt.io_lan`)).isSocket);
      }
      latencies.sort((a, b) => a - b);
      Deno.stderr.writeSync(new TextEncoder().encode(
        `re-registration latency (ms, fake host, 10): ${
          latencies.map((l) => l.toFixed(1)).join(" ")
        }\n`,
      ));
      assert.ok(dp.registrations >= 12);
    },
  );
});

Deno.test("plugin socket deleted ⇒ served again and re-registered (fake host)", async () => {
  await withFakeSetup('[{"name":"lan","lowerDevice":"eth1"}]', async ({ kubelet, dir }) => {
    await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan");
    const t0 = performance.now();
    await Deno.remove(`${dir}/${endpointOf("lan")}`);
    const r = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan", {
      since: t0,
      timeoutMs: 3000,
    });
    assert.ok(r.at >= t0);
    await r.conn.waitFor(allHealth(HEALTHY));
  });
});

Deno.test("plugin started before kubelet registers when kubelet.sock appears (fake host)", async () => {
  await withFakeSetup('[{"name":"lan","lowerDevice":"eth1"}]', async ({ kubelet }) => {
    const r = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/lan", {
      timeoutMs: 2000,
    });
    assert.ok(r.at >= kubelet.listeningSince, "registered with the kubelet that appeared");
  }, { kubeletFirst: false });
});

Deno.test("'[]' follows eligible links and stop() removes the sockets (fake host)", async () => {
  let dirSeen = "";
  await withFakeSetup("[]", async ({ host, kubelet, dp, dir }) => {
    dirSeen = dir;
    await kubelet.waitForRegistration("macvtap.network.kubevirt.io/eth1");
    host.put("eno2");
    host.put("veth9", { kind: "veth" });
    host.put("br0", { kind: "bridge" });
    host.put("eno3", { masterIndex: 40 });
    const r = await kubelet.waitForRegistration("macvtap.network.kubevirt.io/eno2");
    await r.conn.waitFor(allHealth(HEALTHY));
    assert.deepEqual([...dp.plugins.keys()].sort(), ["eno2", "eth1"]);
    host.remove("eno2");
    await waitUntil(() => !dp.plugins.has("eno2"));
    await waitUntil(async () => !(await exists(`${dir}/${endpointOf("eno2")}`)));
    await dp.stop();
    assert.equal(await exists(`${dir}/${endpointOf("eth1")}`), false);
    assert.equal(await exists(`${dir}/kubelet.sock`), true);
  });
  assert.ok(dirSeen !== "");
});

Deno.test("'[]' serves at most MAX_RESOURCES interfaces; those served are never displaced (fake host)", async () => {
  await withFakeSetup("[]", async ({ host, kubelet, dp }) => {
    await kubelet.waitForRegistration("macvtap.network.kubevirt.io/eth1");
    for (let i = 0; i < MAX_RESOURCES + 4; i++) host.put(`eno${i}`);
    await waitUntil(() => dp.plugins.size === MAX_RESOURCES);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(dp.plugins.size, MAX_RESOURCES);
    assert.ok(dp.plugins.has("eth1"), "the first one stays");
    // One served goes: one left out takes its place.
    const served = [...dp.plugins.keys()].find((n) => n !== "eth1")!;
    host.remove(served);
    await waitUntil(() => !dp.plugins.has(served) && dp.plugins.size === MAX_RESOURCES);
  });
});

async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms: ${cond}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---------------------------------------------------------------------------
// Privileged: the real process in a namespace lab.

const DP_MAIN = new URL("../cmd/deviceplugin.ts", import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
/** The heap bounds the DaemonSet uses. */

function randomHex(bytes = 2): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Start `macvtap deviceplugin` inside lab namespace `ns`. */
function spawnDp(
  lab: Lab,
  ns: string,
  dir: string,
  env: Record<string, string>,
  extraArgs: string[] = [],
): Deno.ChildProcess {
  return lab.spawn(ns, devicePluginArgv(dir, { env, args: extraArgs }), {
    what: "macvtap deviceplugin",
  });
}

/** `major:minor` of `ifname`'s tap, read from sysfs inside `ns`. */
async function sysfsDev(lab: Lab, ns: string, ifname: string, index: number): Promise<string> {
  const r = await lab.exec(ns, ["cat", `/sys/class/net/${ifname}/macvtap/tap${index}/dev`]);
  assert.ok(r.success, r.stderr);
  return r.stdout.trim();
}

Deno.test({
  name:
    "macvtap deviceplugin in a netns: health, Allocate with real macvtaps, kubelet restart, SIGTERM [root]",
  ignore: Deno.uid() !== 0,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpt" });
    const host = await lab.netns("host");
    const peer = await lab.netns("peer");
    await lab.veth(host, "lan0", peer, "lan0p");
    const dir = await lab.tempDir("kubelet");
    await using kubelet = await FakeKubelet.start(dir);
    const name = `lan${randomHex()}`;
    const res = resourceNameOf(name);
    const child = spawnDp(lab, host, dir, {
      DP_MACVTAP_CONF: JSON.stringify([{ name, master: "lan0", capacity: 4 }]),
    });

    const reg = await kubelet.waitForRegistration(res, { timeoutMs: 20_000 });
    const conn = reg.conn;
    assert.deepEqual((await conn.waitFor(allHealth(HEALTHY))).devices.map((d) => d.ID), [
      `${name}-0`,
      `${name}-1`,
      `${name}-2`,
      `${name}-3`,
    ]);

    // Carrier lost (peer down) and back.
    let t0 = performance.now();
    await lab.ip(peer, "link", "set", "lan0p", "down");
    await conn.waitFor(allHealth(UNHEALTHY));
    const carrierMs = performance.now() - t0;
    await lab.ip(peer, "link", "set", "lan0p", "up");
    await conn.waitFor(allHealth(HEALTHY));
    // Lower device gone and back.
    t0 = performance.now();
    await lab.ip(host, "link", "del", "lan0");
    await conn.waitFor(allHealth(UNHEALTHY));
    const goneMs = performance.now() - t0;
    await lab.veth(host, "lan0", peer, "lan0p");
    await conn.waitFor(allHealth(HEALTHY));

    // Allocate: two devices for one container, one for another.
    const ids = [`${name}-0`, `${name}-1`, `${name}-2`];
    const alloc = await conn.allocate([[ids[0]!, ids[1]!], [ids[2]!]]);
    assert.equal(alloc.containerResponses.length, 2);
    const specs = alloc.containerResponses.flatMap((c) => c.devices);
    const env = Object.assign({}, ...alloc.containerResponses.map((c) => c.envs));
    const envName = `MACVTAP_${name.toUpperCase()}_DEVICES`;
    assert.match(
      alloc.containerResponses[0]!.envs[envName]!,
      new RegExp(`^${ids[0]}=/dev/tap\\d+,${ids[1]}=/dev/tap\\d+$`),
    );
    assert.ok(env[envName]);
    const lower = (await lab.ipJson<{ ifindex: number }[]>(host, "link", "show", "lan0"))[0]!;
    for (const [i, id] of ids.entries()) {
      const spec = specs[i]!;
      const ifname = deviceIfname(id);
      const [link] = await lab.ipJson<
        {
          ifindex: number;
          link_index?: number;
          operstate: string;
          linkinfo: { info_kind: string; info_data: { mode: string } };
        }[]
      >(host, "link", "show", ifname);
      assert.ok(link, `${ifname} exists`);
      assert.equal(link.linkinfo.info_kind, "macvtap");
      // A bridge resource's device is private until its VM transmits (the MAC guard).
      assert.equal(link.linkinfo.info_data.mode, "private");
      assert.equal(link.ifindex, tapIndexFor(id));
      assert.equal(link.operstate, "DOWN");
      assert.deepEqual(spec, {
        containerPath: `/dev/tap${link.ifindex}`,
        hostPath: `/dev/tap${link.ifindex}`,
        permissions: "rw",
      });
      const st = await Deno.lstat(spec.hostPath);
      assert.ok(st.isCharDevice);
      const [maj, min] = (await sysfsDev(lab, host, ifname, link.ifindex)).split(":").map(Number);
      assert.equal(st.rdev, makedev(maj!, min!));
      assert.ok(lower.ifindex > 0);
    }
    // Again: the stale link is replaced, same ifindex (same /dev/tapN).
    const again = await conn.allocate([[ids[0]!]]);
    assert.equal(again.containerResponses[0]!.devices[0]!.hostPath, specs[0]!.hostPath);
    await assert.rejects(conn.allocate([[`${name}-99`]]), /Unknown device/);

    // Kubelet restart: sockets wiped, kubelet.sock recreated.
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      await kubelet.restart();
      const since = kubelet.listeningSince;
      const r = await kubelet.waitForRegistration(res, { since, timeoutMs: 5000 });
      latencies.push(r.at - since);
      await r.conn.waitFor(allHealth(HEALTHY));
    }
    Deno.stderr.writeSync(new TextEncoder().encode(
      `[dp] health: carrier loss seen in ${carrierMs.toFixed(1)} ms, lower removal in ${
        goneMs.toFixed(1)
      } ms; ` +
        `re-registration after kubelet restart (ms): ${
          latencies.map((l) => l.toFixed(1)).join(" ")
        }\n`,
    ));

    // Probe from a second process.
    const probe = await lab.exec(host, [
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      DENO_JSON,
      DP_MAIN,
      "--probe",
      "--socket-dir",
      dir,
    ], { env: { DP_MACVTAP_CONF: JSON.stringify([{ name, master: "lan0" }]) } });
    assert.equal(probe.code, 0, probe.stderr);

    // SIGTERM: exit 0, socket removed, kubelet.sock left alone.
    child.kill("SIGTERM");
    const status = await within("the plugin to stop", child.status);
    assert.equal(status.code, 0);
    assert.equal(await exists(`${dir}/${endpointOf(name)}`), false);
    assert.equal(await exists(`${dir}/kubelet.sock`), true);
  },
});

Deno.test({
  name:
    "macvtap deviceplugin '[]' picks up NICs via link events; mknod when /dev lacks the node [root]",
  ignore: Deno.uid() !== 0,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpt" });
    const host = await lab.netns("host");
    const peer = await lab.netns("peer");
    const nic0 = `n${randomHex()}a`;
    const nic1 = `n${randomHex()}b`;
    await lab.veth(host, nic0, peer, `${nic0}p`);
    const dir = await lab.tempDir("kubelet");
    const devDir = await lab.tempDir("dev");
    await using kubelet = await FakeKubelet.start(dir);
    const child = spawnDp(lab, host, dir, {
      DP_MACVTAP_CONF: "[]",
      DP_MACVTAP_DISCOVER_KINDS: "veth",
    }, ["--dev-dir", devDir]);
    const r0 = await kubelet.waitForRegistration(resourceNameOf(nic0), { timeoutMs: 20_000 });
    await r0.conn.waitFor((m) => m.devices.length === 100 && allHealth(HEALTHY)(m));

    // A NIC appears: a new resource; a bridge port and a bridge do not count.
    await lab.veth(host, nic1, peer, `${nic1}p`);
    await lab.ip(host, "link", "add", "br9", "type", "bridge");
    await lab.veth(host, "port9", peer, "port9p");
    await lab.ip(host, "link", "set", "port9", "master", "br9");
    const r1 = await kubelet.waitForRegistration(resourceNameOf(nic1), { timeoutMs: 5000 });
    await r1.conn.waitFor(allHealth(HEALTHY));
    const endpoints = async () => {
      const names: string[] = [];
      for await (const e of Deno.readDir(dir)) {
        if (e.name.startsWith("macvtap.")) names.push(e.name);
      }
      return names.sort();
    };
    // port9 may show up for a moment between creation and enslavement.
    const expected = [endpointOf(nic0), endpointOf(nic1)].sort().join(" ");
    await waitUntil(async () => (await endpoints()).join(" ") === expected);

    // It vanishes: its socket goes.
    await lab.ip(host, "link", "del", nic1);
    await waitUntil(async () => (await endpoints()).length === 1);

    // Allocate with a /dev that devtmpfs does not fill: the node is made from sysfs.
    const id = `${nic0}-5`;
    const alloc = await r0.conn.allocate([[id]]);
    const spec = alloc.containerResponses[0]!.devices[0]!;
    const index = tapIndexFor(id);
    assert.equal(spec.hostPath, `${devDir}/tap${index}`);
    const st = await Deno.lstat(spec.hostPath);
    assert.ok(st.isCharDevice);
    const [maj, min] = (await sysfsDev(lab, host, deviceIfname(id), index)).split(":").map(Number);
    assert.equal(st.rdev, makedev(maj!, min!));

    const probe = await lab.exec(host, [
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      DENO_JSON,
      DP_MAIN,
      "--probe",
      "--socket-dir",
      dir,
    ], { env: { DP_MACVTAP_CONF: "[]" } });
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(probe.stderr, new RegExp(`ok .*${endpointOf(nic0)}`));

    child.kill("SIGTERM");
    assert.equal((await within("the plugin to stop", child.status)).code, 0);
    assert.deepEqual(await endpoints(), []);
  },
});

/** The pod the CNI tests here attach (`CNI_ARGS`); the kubelet stand-in admits its devices. */
const VM_POD = { namespace: "default", name: "virt-launcher-vm1" };

/** Serve the stand-in's PodResources API in the lab; the CNI env that proves `VM_POD`'s devices. */
async function podResources(lab: Lab, kubelet: FakeKubelet) {
  await kubelet.servePodResources(`${await lab.tempDir("podres")}/kubelet.sock`);
  return kubelet.cniEnvFor(VM_POD);
}

/** The network of the CNI tests here: unique per run, so concurrent runs never share records. */
const DP_NET = `dp-${crypto.randomUUID().slice(0, 8)}`;

Deno.test({
  name:
    "Allocate, then CNI ADD with that deviceID: the pod's link keeps the ifindex of /dev/tapN [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpt" });
    const host = await lab.netns("host");
    const peer = await lab.netns("peer");
    const ctr = await lab.netns("ctr");
    await lab.veth(host, "lan0", peer, "lan0p");
    const dir = await lab.tempDir("kubelet");
    await using kubelet = await FakeKubelet.start(dir);
    const name = `cni${randomHex()}`;
    spawnDp(lab, host, dir, { DP_MACVTAP_CONF: JSON.stringify([{ name, lowerDevice: "lan0" }]) });
    await kubelet.waitForRegistration(resourceNameOf(name), { timeoutMs: 20_000 });
    const trust = await podResources(lab, kubelet);
    const id = `${name}-42`;
    const alloc = await kubelet.admit(VM_POD, resourceNameOf(name), [[id]]);
    const tapPath = alloc.containerResponses[0]!.devices[0]!.hostPath;
    const index = tapIndexFor(id);
    assert.equal(tapPath, `/dev/tap${index}`);

    const add = await cni(lab, host, {
      command: "ADD",
      containerId: "dp1",
      netns: lab.path(ctr),
      ifname: "net1",
      ...trust,
    }, { cniVersion: "1.0.0", name: DP_NET, type: "macvtap", deviceID: id });
    assert.equal(add.code, 0, describe(add));
    const [link] = await lab.ipJson<{ ifindex: number; linkinfo: { info_kind: string } }[]>(
      ctr,
      "link",
      "show",
      "net1",
    );
    assert.equal(link?.ifindex, index);
    assert.equal(link?.linkinfo.info_kind, "macvtap");
    // The node was re-created by the move; it is still /dev/tap<index>, matching sysfs in the pod.
    const st = await Deno.lstat(tapPath);
    assert.ok(st.isCharDevice);
    const [maj, min] = (await sysfsDev(lab, ctr, "net1", index)).split(":").map(Number);
    assert.equal(st.rdev, makedev(maj!, min!));
    const hostSide = await lab.ipJson(host, "link", "show");
    assert.ok(!hostSide.some((l) => l.ifname === deviceIfname(id)), "moved out of the host netns");
    const del = await cni(lab, host, {
      command: "DEL",
      containerId: "dp1",
      netns: lab.path(ctr),
      ifname: "net1",
      ...trust,
    }, { cniVersion: "1.0.0", name: DP_NET, type: "macvtap", deviceID: id });
    assert.equal(del.code, 0, describe(del));
  },
});

Deno.test({
  name:
    "CNI ADD imports device IDs longer than 15 bytes and recreates a missing device with Allocate's /dev/tapN [root]",
  ignore: Deno.uid() !== 0 || !pluginBuilt(),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpt" });
    const host = await lab.netns("host");
    const peer = await lab.netns("peer");
    const ctr = await lab.netns("ctr");
    await lab.veth(host, "lan0", peer, "lan0p");
    const dir = await lab.tempDir("kubelet");
    await using kubelet = await FakeKubelet.start(dir);
    // "production-lan-xxxx": every device ID is longer than IFNAMSIZ - 1.
    const name = `production-lan-${randomHex()}`;
    spawnDp(lab, host, dir, { DP_MACVTAP_CONF: JSON.stringify([{ name, lowerDevice: "lan0" }]) });
    await kubelet.waitForRegistration(resourceNameOf(name), { timeoutMs: 20_000 });
    const trust = await podResources(lab, kubelet);
    const admit = (id: string) => kubelet.admit(VM_POD, resourceNameOf(name), [[id]]);
    const conf = { cniVersion: "1.0.0", name: DP_NET, type: "macvtap" };
    // Every attachment made is deleted at the end (its record lives in the state root).
    await using attached = new AsyncDisposableStack();
    const importAs = async (id: string, containerId: string, extra: object = {}) => {
      const env = { containerId, netns: lab.path(ctr), ifname: containerId, ...trust };
      const config = { ...conf, deviceID: id, ...extra };
      const add = await cni(lab, host, { command: "ADD", ...env }, config);
      assert.equal(add.code, 0, describe(add));
      attached.defer(async () => {
        const del = await cni(lab, host, { command: "DEL", ...env }, config);
        assert.equal(del.code, 0, describe(del));
      });
      const [link] = await lab.ipJson<{ ifindex: number }[]>(ctr, "link", "show", containerId);
      return link!.ifindex;
    };

    // 1. The long ID imports: never looked up as an interface name (ERANGE).
    const id1 = `${name}-12`;
    const alloc = await admit(id1);
    assert.equal(alloc.containerResponses[0]!.devices[0]!.hostPath, `/dev/tap${tapIndexFor(id1)}`);
    assert.equal(await importAs(id1, "net1"), tapIndexFor(id1));

    // 2. The device vanished after Allocate (the lower device was re-created):
    // ADD recreates it with the index Allocate announced, not a kernel-chosen one.
    const id2 = `${name}-13`;
    const alloc2 = await admit(id2);
    const tapPath = alloc2.containerResponses[0]!.devices[0]!.hostPath;
    await lab.ip(host, "link", "del", deviceIfname(id2));
    assert.equal(await importAs(id2, "net2", { master: "lan0" }), tapIndexFor(id2));
    const st = await Deno.lstat(tapPath);
    assert.ok(st.isCharDevice);
    assert.deepEqual([st.uid, st.gid], [107, 107]);

    // 3. The preferred index is taken on the host (the kernel answers
    // EEXIST): Allocate takes the next candidate, and a recreate at ADD
    // follows the same rule to the same index, never a kernel-chosen one.
    const id3 = `${name}-14`;
    const squat = ["link", "add", "squat0", "index", String(tapIndexFor(id3))];
    await lab.ip(host, ...squat, "type", "veth", "peer", "name", "squat0p");
    const alloc3 = await admit(id3);
    const next = tapIndexFor(id3) + 1;
    assert.equal(alloc3.containerResponses[0]!.devices[0]!.hostPath, `/dev/tap${next}`);
    await lab.ip(host, "link", "del", deviceIfname(id3));
    assert.equal(await importAs(id3, "net3", { master: "lan0" }), next);
  },
});

/** `host` as a backend that logs each create ("add") and delete ("delete") in `calls`. */
function recording(host: FakeHost, calls: string[]) {
  return {
    ...host,
    list: () => host.list(),
    find: (name: string) => host.find(name),
    subscribe: () => host.subscribe(),
    close: () => host.close(),
    addMacvtap: (spec: Parameters<FakeHost["addMacvtap"]>[0]) => {
      calls.push("add");
      host.addMacvtap(spec);
    },
    delete: (name: string) => (calls.push("delete"), host.delete(name)),
  };
}

Deno.test("allocateDevice() keeps an unused device that is already right, replaces a stale one (fake host)", () => {
  const host = new FakeHost();
  const lower = host.put("eth1");
  const fs = new FakeTapFs();
  const resource = { name: "lan", lowerDevice: "eth1", mode: "bridge" as const, capacity: 10 };
  const calls: string[] = [];
  const backend = recording(host, calls);
  const allocate = () => allocateDevice(resource, "lan-3", { backend, fs, devDir: "/fakedev" });
  const first = allocate();
  assert.deepEqual(calls.splice(0), ["add"]);
  // Allocate again (a retried Allocate, a sandbox that never reached CNI ADD): kept as
  // it is, without the kernel's ~30 ms delete.
  assert.deepEqual(allocate(), first);
  assert.deepEqual(calls.splice(0), []);
  // Up (in use on the host), or in another mode: stale, replaced.
  host.links.get(first.ifname)!.up = true;
  allocate();
  assert.deepEqual(calls.splice(0), ["delete", "add"]);
  host.links.get(first.ifname)!.mode = "vepa";
  allocate();
  assert.deepEqual(calls.splice(0), ["delete", "add"]);
  assert.equal(host.links.get(first.ifname)!.mode, "bridge");
  assert.equal(host.links.get(first.ifname)!.parentIndex, lower.index);
});

Deno.test("allocateDevice() removes a stale link's own /dev/tapN before the link, and no other node (fake host)", () => {
  const host = new FakeHost();
  const lower = host.put("eth1");
  const resource = { name: "lan", lowerDevice: "eth1", mode: "bridge" as const, capacity: 10 };
  const calls: string[] = [];
  const real = new FakeTapFs();
  const fs: FakeTapFs = Object.assign(Object.create(real), {
    remove: (path: string) => (calls.push(`remove ${path}`), real.remove(path)),
  });
  const backend = recording(host, calls);
  // A link with the device's name, up (in use: stale), at an index outside
  // its rule, whose node a mknod made: once the link is gone, its minor is
  // the next macvtap's, and the node would open that device.
  const ifname = deviceIfname("lan-7");
  const stale = 4242;
  assert.ok(!tapIndexCandidates("lan-7").includes(stale));
  host.put(ifname, { index: stale, kind: "macvtap", parentIndex: lower.index, mode: "bridge" });
  const [major, minor] = real.readDevNumber(ifname, stale).split(":").map(Number);
  real.nodes.set(`/fakedev/tap${stale}`, makedev(major!, minor!));
  allocateDevice(resource, "lan-7", { backend, fs, devDir: "/fakedev" });
  assert.deepEqual(calls.splice(0), [`remove /fakedev/tap${stale}`, "delete", "add"]);
  assert.equal(real.nodes.has(`/fakedev/tap${stale}`), false);
  // A node at its index that is another device's is not its own: left alone.
  host.links.get(ifname)!.up = true;
  const index = host.links.get(ifname)!.index;
  const theirs = makedev(246, 77);
  real.nodes.set(`/fakedev/tap${index}`, theirs);
  real.live.add(theirs);
  allocateDevice(resource, "lan-7", { backend, fs, devDir: "/fakedev" });
  assert.deepEqual(calls.splice(0), ["delete", "add"]);
  assert.equal(real.nodes.get(`/fakedev/tap${index}`), theirs);
});

Deno.test("ResourcePlugin.allocate(): checks the whole request first, and undoes every device when one fails (fake host)", async () => {
  const host = new FakeHost();
  host.put("eth1");
  const fs = new FakeTapFs();
  const plugin = new ResourcePlugin(
    { name: "lan", lowerDevice: "eth1", mode: "bridge", capacity: 4 },
    { backend: host, tapFs: fs, log: quiet, devDir: "/fakedev" },
  );
  const before = () => ({ links: [...host.links.keys()], nodes: [...fs.nodes] });
  // A wrong node where lan-0's will go: put back when the Allocate fails.
  fs.nodes.set(`/fakedev/tap${tapIndexFor("lan-0")}`, makedev(1, 3));
  const start = before();
  for (
    const [containers, status] of [
      [[["lan-0", "lan-1", "lan-9"]], "NOT_FOUND"],
      [[["lan-0"], ["lan-1", "lan-01"]], "NOT_FOUND"],
      [[["lan-0"], ["lan-0"]], "INVALID_ARGUMENT"],
    ] as const
  ) {
    await assert.rejects(
      plugin.allocate(containers),
      (e: Error & { status?: string }) => e.status === status,
      JSON.stringify(containers),
    );
    assert.deepEqual(before(), start, `${JSON.stringify(containers)}: nothing changed`);
    assert.equal(fs.mknods, 0);
  }
  // lan-1 cannot be created (every index it may take is in use): lan-0 is undone.
  for (const [i, index] of tapIndexCandidates("lan-1").entries()) host.put(`sq${i}`, { index });
  const squatted = before();
  await assert.rejects(plugin.allocate([["lan-0", "lan-1"]]), /Cannot create macvtap/);
  assert.deepEqual(before(), squatted, "lan-0's link and node undone, the old node back");
  assert.equal(fs.nodes.get(`/fakedev/tap${tapIndexFor("lan-0")}`), makedev(1, 3));
  // Allocates run one at a time: two at once both succeed, one after the other.
  for (const [i] of tapIndexCandidates("lan-1").entries()) host.remove(`sq${i}`);
  const [a, b] = await Promise.all([plugin.allocate([["lan-2"]]), plugin.allocate([["lan-2"]])]);
  assert.deepEqual(a, b);
  // The caller goes away half-way: what this call created is undone.
  const gone = new AbortController();
  const quitter = new ResourcePlugin(
    { name: "q", lowerDevice: "eth1", mode: "bridge", capacity: 4 },
    {
      backend: {
        ...host,
        list: () => host.list(),
        find: (name: string) => host.find(name),
        subscribe: () => host.subscribe(),
        close: () => host.close(),
        delete: (name: string) => host.delete(name),
        addMacvtap: (spec: Parameters<FakeHost["addMacvtap"]>[0]) => {
          host.addMacvtap(spec);
          gone.abort(); // after the first device
        },
      },
      tapFs: fs,
      log: quiet,
      devDir: "/fakedev",
    },
  );
  const beforeQuit = before();
  await assert.rejects(
    quitter.allocate([["q-0", "q-1", "q-2"]], Infinity, gone.signal),
    (e: Error & { status?: string }) => e.status === "CANCELLED",
  );
  assert.deepEqual(before(), beforeQuit, "the first device undone");
  // At most MAX_PENDING_ALLOCATES wait; more are refused at once.
  const calls = Array.from(
    { length: MAX_PENDING_ALLOCATES + 2 },
    () => plugin.allocate([["lan-3"]]),
  );
  const results = await Promise.allSettled(calls);
  assert.deepEqual(
    results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as { status: string }).status),
    [...Array(MAX_PENDING_ALLOCATES).fill("ok"), "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"],
  );
});

Deno.test("allocateDevice() never takes an index whose /dev/tapN is a live device's, and never replaces such a node (fake host)", () => {
  const host = new FakeHost();
  host.put("eth1");
  const fs = new FakeTapFs();
  const resource = { name: "lan", lowerDevice: "eth1", mode: "bridge" as const, capacity: 10 };
  const [first, second] = tapIndexCandidates("lan-4");
  // Another pod's imported tap has ifindex `first` in its namespace: its node is in /dev.
  const theirs = makedev(246, 99);
  fs.nodes.set(`/fakedev/tap${first}`, theirs);
  fs.live.add(theirs);
  const dev = allocateDevice(resource, "lan-4", { backend: host, fs, devDir: "/fakedev" });
  assert.equal(dev.index, second, "the next candidate");
  assert.equal(fs.nodes.get(`/fakedev/tap${first}`), theirs, "their node untouched");
  // A stale node (no live device has its number) is replaced as before.
  const stale = makedev(246, 98);
  const [third] = tapIndexCandidates("lan-5");
  fs.nodes.set(`/fakedev/tap${third}`, stale);
  const dev5 = allocateDevice(resource, "lan-5", { backend: host, fs, devDir: "/fakedev" });
  assert.equal(dev5.index, third);
  assert.notEqual(fs.nodes.get(`/fakedev/tap${third}`), stale);
});
