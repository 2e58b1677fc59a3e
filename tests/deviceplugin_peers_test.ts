/**
 * `dist/macvtap-deviceplugin` against any peer on its socket: the built
 * plugin in a namespace lab, attacked as a privileged neighbour would, with
 * raw HTTP/2 and raw unix connections (no kubelet needed: the plugin serves
 * its socket before it registers).
 *
 * - requests past the resource's bounds are refused before any work, and an
 *   ordinary close after them never takes the process down
 *   (denoland/deno#36788); the biggest accepted Allocate is measured;
 * - silent and idle connections cannot lock a real client out;
 * - an Allocate with one unknown or repeated ID, or one that fails half-way,
 *   leaves no macvtap and no `/dev/tapN` behind;
 * - a config past the device and resource limits is a clear error at start.
 *
 * `deno task build` first. Root only.
 *
 * @module
 */

import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { frame, GrpcError, MAX_RESPONSE_BYTES, Status, unaryCall } from "../deviceplugin/_grpc.ts";
import { encodeAllocateResponse } from "../deviceplugin/_protowire.ts";
import { METHODS } from "../deviceplugin/_api.ts";
import { MAX_WATCHERS } from "../deviceplugin/plugin.ts";
import {
  endpointOf,
  envNameOf,
  MAX_RESOURCES,
  MAX_TOTAL_DEVICES,
  TAP_INDEX_BASE,
  TAP_INDEX_SPAN,
  tapIndexFor,
} from "../deviceplugin/mod.ts";
import { concatBytes } from "../internal/_bytes.ts";
import { deviceIfname, tapIndexCandidates } from "../internal/_ifname.ts";
import {
  builtDevicePluginArgv,
  DP_PLUGIN,
  exists,
  Lab,
  pluginBuilt,
  run,
  within,
} from "../lab/mod.ts";

const ignore = Deno.uid() !== 0 || !pluginBuilt();
const enc = new TextEncoder();

function varint(v: number): number[] {
  const out = [];
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited protobuf field. */
function lenField(field: number, b: Uint8Array): Uint8Array {
  return concatBytes([new Uint8Array([field * 8 + 2, ...varint(b.length)]), b]);
}

/** `AllocateRequest` bytes: one inner array per container request. */
function allocateRequest(containers: readonly (readonly string[])[]): Uint8Array {
  return concatBytes(
    containers.map((ids) => lenField(1, concatBytes(ids.map((id) => lenField(1, enc.encode(id)))))),
  );
}

/** What a peer saw of one call. */
interface Outcome {
  code: number;
  message: string;
  /** Response message bytes. */
  bytes: number;
  ms: number;
}

/**
 * One call on a fresh connection, then the connection closed as an ordinary
 * client does (`session.close()`: GOAWAY), the shape that aborted the plugin.
 */
function call(
  sock: string,
  method: string,
  body: Uint8Array,
  options: { windowSize?: number; timeoutMs?: number } = {},
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect(sock),
      ...(options.windowSize !== undefined
        ? { settings: { initialWindowSize: options.windowSize } }
        : {}),
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`${method}: no answer within ${options.timeoutMs ?? 20_000} ms`));
    }, options.timeoutMs ?? 20_000);
    session.on("error", () => {});
    const req = session.request({
      ":method": "POST",
      ":path": method,
      "content-type": "application/grpc",
      "te": "trailers",
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let bytes = 0;
    // What the peer saw, for a call that ends without a status.
    const seen: string[] = [];
    const saw = (what: string) => seen.push(`${(performance.now() - t0).toFixed(0)} ms ${what}`);
    session.on("connect", () => saw("connected"));
    session.on("goaway", (code) => saw(`GOAWAY ${code}`));
    session.on("close", () => saw("connection closed"));
    req.on("response", (h) => (headers = h, saw("headers")));
    req.on("trailers", (t) => (trailers = t, saw("trailers")));
    req.on("data", (c: Uint8Array) => (bytes += c.length));
    req.on("error", (e) => saw(`error ${e}`));
    req.on("close", () => {
      clearTimeout(timer);
      saw(`stream closed (RST code ${req.rstCode})`);
      const status = trailers["grpc-status"] ?? headers["grpc-status"];
      const message = String(trailers["grpc-message"] ?? headers["grpc-message"] ?? "");
      session.close(); // GOAWAY, as any client closing normally
      resolve({
        code: status === undefined ? -1 : Number(status),
        message: status === undefined
          ? `no grpc-status: ${seen.join(", ")}`
          : decodeURIComponent(message),
        bytes: Math.max(0, bytes - 5),
        ms: performance.now() - t0,
      });
    });
    req.end(frame(body));
  });
}

/**
 * One call through the plugin's own client, as a status: where the peer's
 * shape does not matter, only what the plugin answers (a connection that
 * ends without a status is `UNAVAILABLE`, never mistaken for an answer).
 */
async function ownCall(sock: string, method: string, body: Uint8Array): Promise<Outcome> {
  const t0 = performance.now();
  try {
    const r = await unaryCall(sock, method, body, { timeoutMs: 20_000 });
    return { code: Status.OK, message: "", bytes: r.length, ms: performance.now() - t0 };
  } catch (err) {
    if (!(err instanceof GrpcError)) throw err;
    return { code: err.code, message: err.details, bytes: 0, ms: performance.now() - t0 };
  }
}

/** `GetDevicePluginOptions` through the plugin's own client (a fresh connection, dropped after). */
async function optionsCall(sock: string, timeoutMs = 2000): Promise<number> {
  const t0 = performance.now();
  await unaryCall(sock, METHODS.getDevicePluginOptions, new Uint8Array(), { timeoutMs });
  return performance.now() - t0;
}

/** The plugin in namespace "host" of `lab`, whose lower device `lan0` is a veth. */
async function startPlugin(
  lab: Lab,
  resources: { name: string; capacity: number }[],
  extraArgs: string[] = [],
): Promise<{ host: string; dir: string; child: Deno.ChildProcess; sock(name: string): string }> {
  const host = await lab.netns("host");
  const peer = await lab.netns("peer");
  await lab.veth(host, "lan0", peer, "lan0p");
  const dir = await lab.tempDir("kubelet");
  const conf = JSON.stringify(resources.map((r) => ({ ...r, lowerDevice: "lan0" })));
  const child = lab.spawn(
    host,
    builtDevicePluginArgv(dir, {
      env: { DP_MACVTAP_CONF: conf },
      logLevel: "error",
      args: extraArgs,
    }),
    { what: "macvtap deviceplugin", stderr: "null" },
  );
  const sock = (name: string) => `${dir}/${endpointOf(name)}`;
  // Every resource's socket: they appear one by one.
  for (const r of resources) {
    for (let i = 0; i < 600 && !(await exists(sock(r.name))); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { host, dir, child, sock };
}

async function alive(child: Deno.ChildProcess): Promise<boolean> {
  const done = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 100)),
  ]);
  return !done;
}

/** Names of the macvtaps in `ns`. */
async function macvtaps(lab: Lab, ns: string): Promise<string[]> {
  const links = await lab.ipJson<{ ifname: string; linkinfo?: { info_kind?: string } }[]>(
    ns,
    "link",
    "show",
  );
  return links.filter((l) => l.linkinfo?.info_kind === "macvtap").map((l) => l.ifname);
}

function status(pid: number): { rssMiB: number; hwmMiB: number } {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

function note(line: string): void {
  Deno.stderr.writeSync(enc.encode(`[dp-peers] ${line}\n`));
}

/** The largest number of devices of `name` whose Allocate answer (one container) fits one send. */
function largestAcceptedAllocate(name: string, capacity: number): number {
  const worst = `/dev/tap${TAP_INDEX_BASE + TAP_INDEX_SPAN - 1}`;
  let n = 0;
  while (n < capacity) {
    const ids = Array.from({ length: n + 1 }, (_, i) => `${name}-${i}`);
    const size = encodeAllocateResponse({
      containerResponses: [{
        envs: { [envNameOf(name)]: ids.map((id) => `${id}=${worst}`).join(",") },
        devices: ids.map(() => ({ containerPath: worst, hostPath: worst, permissions: "rw" })),
      }],
    }).length;
    if (size > MAX_RESPONSE_BYTES) break;
    n++;
  }
  return n;
}

Deno.test({
  name:
    "deviceplugin: a 1 MB Allocate, 40,000 container requests, repeated IDs, then a close: refused at once, the process lives [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpp" });
    const { host, child, sock } = await startPlugin(lab, [{ name: "lan", capacity: 4 }]);
    const s = sock("lan");
    const cases: [string, Uint8Array, number][] = [
      // 120,000 IDs of the 4 devices (1 MB): a 7 MB answer and an abort before.
      [
        "120,000 IDs",
        allocateRequest([Array.from({ length: 120_000 }, (_, i) => `lan-${i % 4}`)]),
        Status.RESOURCE_EXHAUSTED,
      ],
      [
        "40,000 container requests",
        allocateRequest(Array.from({ length: 40_000 }, (_, i) => [`lan-${i % 4}`])),
        Status.RESOURCE_EXHAUSTED,
      ],
      // Within the byte bound, but more IDs than the resource has devices.
      [
        "5 IDs of 4 devices",
        allocateRequest([["lan-0", "lan-1", "lan-2", "lan-3", "lan-0"]]),
        Status.INVALID_ARGUMENT,
      ],
      [
        "5 container requests of 4 devices",
        allocateRequest([[], [], [], [], []]),
        Status.INVALID_ARGUMENT,
      ],
      ["an ID twice", allocateRequest([["lan-1", "lan-1"]]), Status.INVALID_ARGUMENT],
      ["an ID in two containers", allocateRequest([["lan-2"], ["lan-2"]]), Status.INVALID_ARGUMENT],
      ["a 200-byte ID", allocateRequest([["lan-" + "1".repeat(196)]]), Status.INVALID_ARGUMENT],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [what, body, code] of cases) {
        const r = await call(s, METHODS.allocate, body);
        assert.equal(r.code, code, `${what}: ${r.code} ${r.message}`);
        assert.ok(r.ms < 2000, `${what}: answered in ${r.ms.toFixed(0)} ms`);
        if (round === 0) note(`${what}: ${r.code} in ${r.ms.toFixed(0)} ms: ${r.message}`);
      }
      // The process is alive after each ordinary close, and still serves.
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(await alive(child), `alive after round ${round}`);
      await optionsCall(s);
    }
    assert.deepEqual(await macvtaps(lab, host), [], "nothing created");
    // Every other method too: 1 MB to a method that reads nothing, or 30,000 IDs to GetPreferredAllocation.
    const big = allocateRequest([Array.from({ length: 120_000 }, (_, i) => `lan-${i % 4}`)]);
    for (
      const m of [
        METHODS.getDevicePluginOptions,
        METHODS.listAndWatch,
        METHODS.getPreferredAllocation,
        METHODS.preStartContainer,
      ]
    ) {
      const r = await call(s, m, big);
      assert.equal(r.code, Status.RESOURCE_EXHAUSTED, `${m}: ${r.code} ${r.message}`);
      assert.ok(r.ms < 2000, `${m}: ${r.ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(await alive(child), "alive after every method's 1 MB request");

    // ListAndWatch streams are capped (each is sent the whole list on every change).
    let socket: net.Socket | undefined;
    const session = http2.connect("http://localhost", {
      createConnection: () => (socket = net.connect(s)),
    });
    session.on("error", () => {});
    const statuses = await within(
      "every ListAndWatch stream's first message or status",
      Promise.all(
        Array.from(
          { length: MAX_WATCHERS + 1 },
          () =>
            new Promise<string | undefined>((resolve) => {
              const w = session.request({
                ":method": "POST",
                ":path": METHODS.listAndWatch,
                "content-type": "application/grpc",
              });
              w.on("error", () => {});
              w.on("data", () => resolve("streaming"));
              w.on("trailers", (t) => resolve(String(t["grpc-status"])));
              w.end(frame(new Uint8Array()));
            }),
        ),
      ),
    );
    assert.deepEqual(statuses.filter((x) => x !== "streaming"), [
      String(Status.RESOURCE_EXHAUSTED),
    ]);
    socket?.destroy();
    session.destroy();
    const { rssMiB, hwmMiB } = status(child.pid);
    note(`after the refused requests: RSS ${rssMiB.toFixed(1)} MiB, peak ${hwmMiB.toFixed(1)} MiB`);
  },
});

Deno.test({
  name:
    "deviceplugin: the biggest accepted Allocate fits one send; one device more is refused before any work; a peer's small window too [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpp" });
    const capacity = 2000;
    const { host, child, sock } = await startPlugin(lab, [{ name: "big", capacity }]);
    const s = sock("big");
    const n = largestAcceptedAllocate("big", capacity);
    assert.ok(n > 100 && n < capacity, `largest accepted: ${n}`);
    const ids = Array.from({ length: n + 1 }, (_, i) => `big-${i}`);

    // One device more than fits: refused, nothing created.
    const over = await call(s, METHODS.allocate, allocateRequest([ids]));
    assert.equal(over.code, Status.RESOURCE_EXHAUSTED, over.message);
    assert.deepEqual(await macvtaps(lab, host), []);
    // A peer whose flow-control window is smaller than the answer: refused, nothing created.
    const small = await call(s, METHODS.allocate, allocateRequest([ids.slice(0, 2)]), {
      windowSize: 100,
    });
    assert.equal(small.code, Status.RESOURCE_EXHAUSTED, small.message);
    assert.deepEqual(await macvtaps(lab, host), []);

    // A peer that goes away in the middle of it: what was created is undone.
    const quitter = net.connect(s);
    quitter.on("error", () => {});
    const qs = http2.connect("http://localhost", { createConnection: () => quitter });
    qs.on("error", () => {});
    const qr = qs.request({
      ":method": "POST",
      ":path": METHODS.allocate,
      "content-type": "application/grpc",
    });
    qr.on("error", () => {});
    qr.end(frame(allocateRequest([ids.slice(0, n)])));
    for (let i = 0; i < 200 && (await macvtaps(lab, host)).length < 5; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const partial = (await macvtaps(lab, host)).length;
    assert.ok(partial > 0 && partial < n, `${partial} created before the peer left`);
    quitter.destroy();
    qs.destroy();
    for (let i = 0; i < 500 && (await macvtaps(lab, host)).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(await macvtaps(lab, host), [], "undone after the peer left");

    // The biggest accepted one, while another client calls every 20 ms:
    // the event loop keeps answering between two devices.
    const before = status(child.pid);
    let stop = false;
    const latencies: number[] = [];
    const probeErrors: string[] = [];
    // Never rejects: a probe that gets no answer is counted, not thrown.
    const prober = (async () => {
      while (!stop) {
        const t0 = performance.now();
        try {
          latencies.push(await optionsCall(s, 60_000));
        } catch (err) {
          latencies.push(performance.now() - t0);
          probeErrors.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const ok = await call(s, METHODS.allocate, allocateRequest([ids.slice(0, n)]), {
      timeoutMs: 120_000,
    });
    stop = true;
    await prober;
    assert.equal(ok.code, Status.OK, ok.message);
    assert.ok(ok.bytes <= MAX_RESPONSE_BYTES, `${ok.bytes} bytes`);
    assert.equal((await macvtaps(lab, host)).length, n);
    const after = status(child.pid);
    const worst = Math.max(...latencies);
    note(
      `largest accepted Allocate: ${n} devices, answer ${ok.bytes} bytes in ${
        ok.ms.toFixed(0)
      } ms; concurrent calls: ${latencies.length}, slowest ${worst.toFixed(1)} ms; ` +
        `RSS ${before.rssMiB.toFixed(1)} → ${after.rssMiB.toFixed(1)} MiB, peak ${
          after.hwmMiB.toFixed(1)
        } MiB`,
    );
    // Never blocked for the whole call (before: 10 s for 120,000 IDs, one
    // probe waiting all along): other calls are answered all through it,
    // however slow a loaded machine makes both.
    assert.deepEqual(probeErrors, []);
    assert.ok(latencies.length >= 3, `${latencies.length} calls answered during the Allocate`);
    assert.ok(
      worst < ok.ms / 2,
      `event loop blocked ${worst.toFixed(0)} ms of ${ok.ms.toFixed(0)}`,
    );
    // Again, then closed: the devices are reused, the answer is the same size.
    for (let i = 0; i < 3; i++) {
      const again = await call(s, METHODS.allocate, allocateRequest([ids.slice(0, n)]), {
        timeoutMs: 60_000,
      });
      assert.equal(again.code, Status.OK, again.message);
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(await alive(child));
    await optionsCall(s);
  },
});

Deno.test({
  name:
    "deviceplugin: 80 raw silent connections and 80 idle HTTP/2 ones do not lock a client out, and are closed [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpp" });
    const { child, sock } = await startPlugin(lab, [{ name: "lan", capacity: 4 }]);
    const s = sock("lan");
    const sockets: net.Socket[] = [];
    lab.defer("close raw connections", () => sockets.forEach((x) => x.destroy()));
    const open = async (count: number, send?: Uint8Array) => {
      const batch: { socket: net.Socket; closed: Promise<number> }[] = [];
      for (let i = 0; i < count; i++) {
        const socket = net.connect(s);
        socket.on("error", () => {});
        socket.on("data", () => {});
        const t0 = performance.now();
        const closed = new Promise<number>((r) =>
          socket.on("close", () => r(performance.now() - t0))
        );
        await within(
          `connection ${i} of ${count}`,
          new Promise<void>((r, reject) => {
            socket.once("connect", () => r());
            socket.once("error", reject);
          }),
        );
        if (send) socket.write(send);
        sockets.push(socket);
        batch.push({ socket, closed });
      }
      return batch;
    };

    // 80 connections that send nothing.
    const silent = await open(80);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await optionsCall(s);
    note(`5 calls past 80 silent connections: ${(performance.now() - t0).toFixed(0)} ms`);
    // Each is closed within the preface timeout (3 s), the evicted ones at once.
    const closedAfter = await within(
      "the plugin to close every silent connection",
      Promise.all(silent.map((c) => c.closed)),
    );
    assert.ok(Math.max(...closedAfter) < 6000, `closed after ${Math.max(...closedAfter)} ms`);

    // 80 connections that send the preface and SETTINGS, then nothing.
    const preface = concatBytes([
      enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]),
    ]);
    const idle = await open(80, preface);
    const t1 = performance.now();
    for (let i = 0; i < 5; i++) await optionsCall(s);
    note(`5 calls past 80 idle HTTP/2 connections: ${(performance.now() - t1).toFixed(0)} ms`);
    // Those over the cap made room for newer ones and for the client: 16,
    // and one for the first call (the cap is 64; a call's connection is gone
    // before the next); the rest are kept until their idle timeout.
    let closed = 0;
    idle.forEach((c) => c.closed.then(() => closed++));
    for (let i = 0; i < 100 && closed < 17; i++) await new Promise((r) => setTimeout(r, 20));
    note(`idle HTTP/2 connections dropped at the cap: ${closed} of 80`);
    assert.ok(closed >= 17 && closed < 80, `${closed} dropped`);
    assert.ok(await alive(child));
  },
});

Deno.test({
  name:
    "deviceplugin: an Allocate with an unknown or repeated ID, or failing half-way, leaves no macvtap and no /dev/tapN [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using lab = await Lab.create({ prefix: "dpp" });
    const devDir = await lab.tempDir("dev");
    // A name of this run, so /dev/tap<index> of its IDs are this test's alone.
    const name = `lan${crypto.randomUUID().slice(0, 6)}`;
    const { host, child, sock } = await startPlugin(lab, [{ name, capacity: 4 }]);
    const s = sock(name);
    const id = (n: number) => `${name}-${n}`;
    const nothingLeft = async (what: string) => {
      assert.deepEqual(await macvtaps(lab, host), [], `${what}: macvtaps`);
      for (let n = 0; n < 4; n++) {
        assert.equal(await exists(`/dev/tap${tapIndexFor(id(n))}`), false, `${what}: /dev`);
      }
    };

    // Mixed known and unknown IDs, in one container and across two.
    for (
      const containers of [[[id(0), id(1), `${name}-9`]], [[id(0)], [id(1), "other-1"]], [[
        id(0),
        id(1),
        id(0),
      ]]]
    ) {
      const r = await call(s, METHODS.allocate, allocateRequest(containers));
      assert.ok(
        r.code === Status.NOT_FOUND || r.code === Status.INVALID_ARGUMENT,
        `${JSON.stringify(containers)}: ${r.code} ${r.message}`,
      );
      assert.match(r.message, /nothing was allocated/);
      await nothingLeft(JSON.stringify(containers));
    }

    // Half-way failure: every index the second device may take is in use.
    for (const index of tapIndexCandidates(id(1))) {
      await lab.ip(
        host,
        "link",
        "add",
        `sq${index}`,
        "index",
        String(index),
        "type",
        "veth",
        "peer",
        "name",
        `sq${index}p`,
      );
    }
    const r = await ownCall(s, METHODS.allocate, allocateRequest([[id(0), id(1)]]));
    assert.equal(r.code, Status.INTERNAL, r.message);
    assert.match(r.message, /Cannot create macvtap/);
    await nothingLeft("second device failed");
    assert.equal(await exists(`/sys/class/net/${deviceIfname(id(0))}`), false);

    // The same with a /dev that devtmpfs does not fill: the node made for
    // the first device is removed, and a wrong one it replaced comes back.
    child.kill("SIGTERM");
    await within("the plugin to stop on SIGTERM", child.status);
    const dir2 = await lab.tempDir("kubelet");
    const conf = JSON.stringify([{ name, lowerDevice: "lan0", capacity: 4 }]);
    const child2 = lab.spawn(
      host,
      builtDevicePluginArgv(dir2, {
        env: { DP_MACVTAP_CONF: conf },
        logLevel: "error",
        args: ["--dev-dir", devDir],
      }),
      { what: "macvtap deviceplugin", stderr: "null" },
    );
    const s2 = `${dir2}/${endpointOf(name)}`;
    for (let i = 0; i < 200 && !(await exists(s2)); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const node0 = `${devDir}/tap${tapIndexFor(id(0))}`;
    const mk = await run(["mknod", node0, "c", "1", "3"]);
    assert.ok(mk.success, mk.stderr);
    const r2 = await ownCall(s2, METHODS.allocate, allocateRequest([[id(0), id(1)]]));
    assert.equal(r2.code, Status.INTERNAL, r2.message);
    assert.match(r2.message, /Cannot create macvtap/);
    assert.deepEqual(await macvtaps(lab, host), []);
    const st = await Deno.lstat(node0);
    assert.ok(st.isCharDevice);
    assert.equal(st.rdev, (1 << 8) | 3, "the node that was there is back");
    const made = [];
    for await (const e of Deno.readDir(devDir)) made.push(e.name);
    assert.deepEqual(made, [`tap${tapIndexFor(id(0))}`]);
    // And a good Allocate still works.
    const ok = await call(s2, METHODS.allocate, allocateRequest([[id(0)]]));
    assert.equal(ok.code, Status.OK, ok.message);
    assert.deepEqual(await macvtaps(lab, host), [deviceIfname(id(0))]);
    child2.kill("SIGTERM");
    await within("the plugin to stop on SIGTERM", child2.status);
  },
});

Deno.test({
  name: "deviceplugin: a config past the resource or device limit is a clear error at start [root]",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const start = async (conf: unknown[]) => {
      const t0 = performance.now();
      const r = await run([DP_PLUGIN, "--socket-dir", "/nonexistent-dp-peers"], {
        env: { DP_MACVTAP_CONF: JSON.stringify(conf) },
      });
      return { ...r, ms: performance.now() - t0 };
    };
    const entry = (i: number, capacity: number) => ({
      name: `r${i}`,
      lowerDevice: "lan0",
      capacity,
    });
    // 300 × 10,000 ran V8 out of memory; 30 × 10,000 idled at 94–108 MiB.
    const many = await start(Array.from({ length: 300 }, (_, i) => entry(i, 10_000)));
    assert.equal(many.code, 2, many.stderr);
    assert.match(many.stderr, new RegExp(`at most ${MAX_RESOURCES} \\(MAX_RESOURCES\\)`));
    const big = await start(Array.from({ length: 3 }, (_, i) => entry(i, 10_000)));
    assert.equal(big.code, 2, big.stderr);
    assert.match(
      big.stderr,
      new RegExp(
        `\\[2\\]\\.capacity: brings the device count to 30000 \\(30000 in all\\), over the limit of ${MAX_TOTAL_DEVICES}`,
      ),
    );
    note(`over-large configs refused in ${many.ms.toFixed(0)} / ${big.ms.toFixed(0)} ms`);
    // At the limit it starts (and stops on SIGTERM).
    await using lab = await Lab.create({ prefix: "dpp" });
    const { child, sock } = await startPlugin(lab, [
      { name: "a", capacity: 10_000 },
      { name: "b", capacity: MAX_TOTAL_DEVICES - 10_000 },
    ]);
    await optionsCall(sock("b"));
    child.kill("SIGTERM");
    assert.equal((await within("the plugin to stop on SIGTERM", child.status)).code, 0);
  },
});
