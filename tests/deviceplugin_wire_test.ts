/**
 * The device plugin's own wire layers, without root: the hand-written
 * protobuf codec checked against a general protobuf runtime (protobufjs, as
 * grpc-js clients use it), and the gRPC server and client over `node:http2`
 * checked against the protocol's rules with a raw HTTP/2 peer.
 *
 * @module
 */

import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import {
  decodeAllocateRequest,
  decodeDevicePluginOptions,
  decodeIgnored,
  decodePreferredAllocationRequest,
  encodeAllocateResponse,
  encodeDevicePluginOptions,
  encodeListAndWatchResponse,
  encodePreferredAllocationResponse,
  encodeRegisterRequest,
  WireError,
} from "../deviceplugin/_protowire.ts";
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  frame,
  GrpcError,
  GrpcServer,
  MAX_MESSAGE_BYTES,
  type ServerStream,
  Status,
  unaryCall,
  unframe,
} from "../deviceplugin/_grpc.ts";
import { loadApi } from "../lab/_grpc_api.ts";
import { within } from "../lab/run.ts";

const enc = new TextEncoder();
const bytes = (...parts: (number[] | Uint8Array)[]) =>
  new Uint8Array(parts.flatMap((p) => Array.from(p)));
const lenField = (field: number, b: Uint8Array) => bytes([field * 8 + 2, b.length], b);

// deno-lint-ignore no-explicit-any
type Codec = { serialize(v: any): Uint8Array; deserialize(b: Uint8Array): any };
function codec(
  service: "Registration" | "DevicePlugin",
  method: string,
  side: "req" | "res",
): Codec {
  const def = loadApi()[service].service[method]!;
  return side === "req"
    ? {
      serialize: (v) => def.requestSerialize(v),
      deserialize: (b) => def.requestDeserialize(b as Buffer),
    }
    : {
      serialize: (v) => def.responseSerialize(v),
      deserialize: (b) => def.responseDeserialize(b as Buffer),
    };
}

Deno.test("protowire: what the plugin writes, protobufjs reads back the same", () => {
  const reg = {
    version: "v1beta1",
    endpoint: "macvtap.network.kubevirt.io_lan",
    resourceName: "macvtap.network.kubevirt.io/lan",
    options: { preStartRequired: false, getPreferredAllocationAvailable: true },
  };
  assert.deepEqual(
    codec("Registration", "Register", "req").deserialize(encodeRegisterRequest(reg)),
    reg,
  );
  const options = { preStartRequired: true, getPreferredAllocationAvailable: false };
  assert.deepEqual(
    codec("DevicePlugin", "GetDevicePluginOptions", "res").deserialize(
      encodeDevicePluginOptions(options),
    ),
    options,
  );
  // 2,000 devices: lengths past one varint byte, and a non-ASCII ID.
  const devices = Array.from({ length: 2000 }, (_, i) => ({
    ID: i === 7 ? "län-7" : `lan-${i}`,
    health: i % 2 ? "Healthy" : "Unhealthy",
  }));
  const lw = codec("DevicePlugin", "ListAndWatch", "res").deserialize(
    encodeListAndWatchResponse({ devices }),
  );
  assert.deepEqual(
    lw.devices.map((d: { ID: string; health: string }) => [d.ID, d.health]),
    devices.map((d) => [d.ID, d.health]),
  );
  const pref = { containerResponses: [{ deviceIDs: ["a-1", ""] }, { deviceIDs: [] }] };
  assert.deepEqual(
    codec("DevicePlugin", "GetPreferredAllocation", "res").deserialize(
      encodePreferredAllocationResponse(pref),
    ),
    pref,
  );
  const alloc = {
    containerResponses: [{
      envs: { MACVTAP_LAN_DEVICES: "lan-1=/dev/tap70001,lan-2=/dev/tap70002", EMPTY: "" },
      mounts: [{ containerPath: "/m", hostPath: "/h", readOnly: true }],
      devices: [{ containerPath: "/dev/tap70001", hostPath: "/dev/tap70001", permissions: "rw" }],
      annotations: { "a/b": "ü" },
      cdiDevices: [{ name: "vendor.com/x=1" }],
    }, { envs: {}, devices: [] }],
  };
  const got = codec("DevicePlugin", "Allocate", "res").deserialize(encodeAllocateResponse(alloc));
  assert.deepEqual(got.containerResponses[0], alloc.containerResponses[0]);
  assert.deepEqual(got.containerResponses[1].envs, {});
  assert.deepEqual(got.containerResponses[1].devices, []);
});

Deno.test("protowire: what kubelet writes (protobufjs), the plugin reads the same", () => {
  const alloc = { containerRequests: [{ devicesIds: ["lan-1", "lan-2"] }, { devicesIds: [] }] };
  assert.deepEqual(
    decodeAllocateRequest(codec("DevicePlugin", "Allocate", "req").serialize(alloc)),
    alloc,
  );
  const pref = {
    containerRequests: [
      { availableDeviceIDs: ["a", "b"], mustIncludeDeviceIDs: ["b"], allocationSize: 2 },
      { availableDeviceIDs: [], mustIncludeDeviceIDs: [], allocationSize: -3 },
      { availableDeviceIDs: ["x"], mustIncludeDeviceIDs: [], allocationSize: 2147483647 },
    ],
  };
  assert.deepEqual(
    decodePreferredAllocationRequest(
      codec("DevicePlugin", "GetPreferredAllocation", "req").serialize(pref),
    ),
    pref,
  );
  const options = { preStartRequired: true, getPreferredAllocationAvailable: true };
  assert.deepEqual(
    decodeDevicePluginOptions(
      codec("DevicePlugin", "GetDevicePluginOptions", "res").serialize(options),
    ),
    options,
  );
});

Deno.test("protowire: fields of a newer API are skipped, whatever their wire type", () => {
  const unknown = bytes(
    [9 << 3, 0x96, 0x01], // varint
    [(10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8], // fixed64
    lenField(11, enc.encode("later")), // length-delimited
    [(12 << 3) | 5, 1, 2, 3, 4], // fixed32
  );
  const container = bytes(lenField(1, enc.encode("lan-1")), unknown);
  assert.deepEqual(decodeAllocateRequest(bytes(unknown, lenField(1, container))), {
    containerRequests: [{ devicesIds: ["lan-1"] }],
  });
  decodeIgnored(unknown);
});

Deno.test("protowire: malformed bytes are a WireError, never a wrong message", () => {
  const cases: [string, Uint8Array][] = [
    ["truncated varint", bytes([0x08, 0x80])],
    ["length past the end", bytes([0x0a, 0x05, 0x61])],
    ["a group (wire type 3)", bytes([0x0b])],
    ["field number 0", bytes([0x02, 0x00])],
    ["invalid UTF-8 in an ID", lenField(1, lenField(1, bytes([0xff, 0xfe])))],
    ["a length past 32 bits (2^32 + 2)", bytes([0x0a, 0x82, 0x80, 0x80, 0x80, 0x10, 0x61, 0x62])],
    ["a tag past 32 bits", bytes([0x8a, 0x80, 0x80, 0x80, 0x10, 0x00])],
    ["fixed64 past the end", bytes([0x49, 1, 2])],
    ["varint longer than 10 bytes", bytes([0x48], new Array(11).fill(0xff), [0x01])],
  ];
  for (const [what, b] of cases) {
    assert.throws(() => decodeAllocateRequest(b), WireError, what);
  }
});

Deno.test("protowire: read as protobuf-go reads it (BOM kept, wide bools, a known field's other wire type skipped)", () => {
  const bom = decodeAllocateRequest(lenField(1, lenField(1, enc.encode("\uFEFFlan-0"))));
  assert.equal(bom.containerRequests[0]!.devicesIds[0], "\uFEFFlan-0", "a BOM is not stripped");
  // bool 2^32 (varint 80 80 80 80 10) is true, not its low 32 bits.
  assert.deepEqual(decodeDevicePluginOptions(bytes([0x08, 0x80, 0x80, 0x80, 0x80, 0x10])), {
    preStartRequired: true,
    getPreferredAllocationAvailable: false,
  });
  assert.deepEqual(decodeAllocateRequest(bytes([0x08, 0x01])), { containerRequests: [] });
});

Deno.test("gRPC framing and grpc-message encoding", () => {
  const f = frame(enc.encode("abc"));
  assert.deepEqual(Array.from(f), [0, 0, 0, 0, 3, 0x61, 0x62, 0x63]);
  assert.deepEqual(unframe(bytes(f, frame(new Uint8Array()))).map((m) => m.length), [3, 0]);
  assert.throws(
    () => unframe(f.subarray(0, 6)),
    (e: unknown) => (e as GrpcError).code === Status.INTERNAL,
  );
  assert.throws(() => unframe(bytes([1, 0, 0, 0, 0])), /compressed/);
  for (const s of ["plain", "100% ok", "ünïcode\nline", ""]) {
    const e = encodeGrpcMessage(s);
    assert.match(e, /^[\x20-\x7e]*$/);
    assert.equal(decodeGrpcMessage(e), s);
  }
  assert.equal(encodeGrpcMessage("a%b\n"), "a%25b%0A");
});

/** A server on a temp socket with a few test methods, and what its streams saw. */
async function testServer() {
  const dir = await Deno.makeTempDir({ prefix: "grpc-wire-" });
  const path = `${dir}/s.sock`;
  const streams: ServerStream[] = [];
  let closedStreams = 0;
  const server = new GrpcServer({
    "/t.S/Echo": { kind: "unary", handle: (req) => req },
    "/t.S/Fail": {
      kind: "unary",
      handle: () => {
        throw new GrpcError(Status.NOT_FOUND, 'no device "ü" 100%');
      },
    },
    "/t.S/Slow": { kind: "unary", handle: () => new Promise(() => {}) },
    "/t.S/Watch": {
      kind: "stream",
      handle: (req, call) => {
        streams.push(call);
        call.onClose(() => closedStreams++);
        call.write(req);
      },
    },
  }, { bodyTimeoutMs: 300 });
  await server.listen(path);
  return {
    path,
    server,
    streams,
    closedStreams: () => closedStreams,
    async [Symbol.asyncDispose]() {
      server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A client connection, and dropping it without GOAWAY (see unaryCall). */
function connect(path: string): { session: http2.ClientHttp2Session; drop(): void } {
  let socket: net.Socket | undefined;
  const session = http2.connect("http://localhost", {
    createConnection: () => (socket = net.connect(path)),
  });
  session.on("error", () => {});
  return {
    session,
    drop() {
      socket?.destroy();
      session.destroy();
    },
  };
}

/** One raw HTTP/2 request: status headers, trailers and body as the peer saw them. */
async function raw(
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<
  { headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Uint8Array }
> {
  let socket: net.Socket | undefined;
  const session = http2.connect("http://localhost", {
    createConnection: () => (socket = net.connect(path)),
  });
  try {
    return await new Promise((resolve, reject) => {
      session.on("error", reject);
      const req = session.request({
        ":method": "POST",
        "content-type": "application/grpc",
        ...headers,
      });
      let h: http2.IncomingHttpHeaders = {};
      let t: http2.IncomingHttpHeaders = {};
      const chunks: number[] = [];
      req.on("response", (x) => (h = x));
      req.on("trailers", (x) => (t = x));
      req.on("data", (c: Uint8Array) => chunks.push(...c));
      req.on("error", reject);
      req.on("close", () => resolve({ headers: h, trailers: t, body: new Uint8Array(chunks) }));
      if (headers[":method"] !== "GET") req.end(body); // a GET is sent ended
    });
  } finally {
    socket?.destroy(); // no GOAWAY (see unaryCall)
    session.destroy();
  }
}

const statusOf = (r: { headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }) =>
  Number(r.trailers["grpc-status"] ?? r.headers["grpc-status"]);

Deno.test("gRPC server: the protocol's answers to wrong requests", async () => {
  await using t = await testServer();
  const one = frame(enc.encode("x"));
  let r = await raw(t.path, { ":path": "/t.S/Echo" }, one);
  assert.equal(r.headers[":status"], 200);
  assert.equal(statusOf(r), 0);
  assert.deepEqual(unframe(r.body).map((m) => new TextDecoder().decode(m)), ["x"]);

  r = await raw(t.path, { ":path": "/t.S/Nope" }, one);
  assert.equal(statusOf(r), Status.UNIMPLEMENTED, "unknown method: 12, Trailers-Only");
  assert.equal(r.body.length, 0);
  r = await raw(t.path, { ":path": "/t.S/Echo", "content-type": "text/plain" }, one);
  assert.equal(r.headers[":status"], 415);
  r = await raw(t.path, { ":path": "/t.S/Echo", ":method": "GET" }, new Uint8Array());
  assert.equal(r.headers[":status"], 405);
  r = await raw(t.path, { ":path": "/t.S/Echo", "grpc-encoding": "gzip" }, one);
  assert.equal(statusOf(r), Status.UNIMPLEMENTED);
  assert.equal(r.headers["grpc-accept-encoding"], "identity");
  r = await raw(t.path, { ":path": "/t.S/Echo" }, bytes([1, 0, 0, 0, 1, 0x78]));
  assert.equal(statusOf(r), Status.INTERNAL, "a compressed frame");
  r = await raw(t.path, { ":path": "/t.S/Echo" }, bytes(one, one));
  assert.equal(statusOf(r), Status.INTERNAL, "two messages to a unary method");
  r = await raw(t.path, { ":path": "/t.S/Echo" }, new Uint8Array());
  assert.equal(statusOf(r), Status.INTERNAL, "no message");
  r = await raw(t.path, { ":path": "/t.S/Echo", "content-type": "application/grpc+proto" }, one);
  assert.equal(statusOf(r), 0, "application/grpc+proto is gRPC");
  r = await raw(t.path, { ":path": "/t.S/Echo" }, frame(new Uint8Array(MAX_MESSAGE_BYTES + 1)));
  assert.equal(statusOf(r), Status.RESOURCE_EXHAUSTED, "a request past the size limit");
  r = await raw(t.path, { ":path": "/t.S/Echo", "content-type": "application/grpc+json" }, one);
  assert.equal(r.headers[":status"], 415, "only protobuf is spoken");
  r = await raw(t.path, { ":path": "/t.S/Fail" }, one);
  assert.equal(statusOf(r), Status.NOT_FOUND);
  assert.equal(decodeGrpcMessage(String(r.headers["grpc-message"])), 'no device "ü" 100%');
});

Deno.test("gRPC server: a body that never ends is cut off; an ended stream's status reaches the peer", async () => {
  await using t = await testServer();
  const { session, drop } = connect(t.path);
  const req = session.request({
    ":method": "POST",
    ":path": "/t.S/Echo",
    "content-type": "application/grpc",
  });
  req.on("error", () => {});
  let trailers: http2.IncomingHttpHeaders = {};
  let headers: http2.IncomingHttpHeaders = {};
  req.on("response", (h) => (headers = h));
  req.on("trailers", (x) => (trailers = x));
  req.write(bytes([0, 0, 0, 0, 9])); // announces 9 bytes, sends none, does not end
  while (headers["grpc-status"] === undefined && trailers["grpc-status"] === undefined) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(Number(trailers["grpc-status"] ?? headers["grpc-status"]), Status.DEADLINE_EXCEEDED);
  req.end(); // the client ends its side; the stream closes cleanly
  await within("the stream to close", new Promise((r) => req.on("close", r)));

  const w = session.request({
    ":method": "POST",
    ":path": "/t.S/Watch",
    "content-type": "application/grpc",
  });
  w.on("error", () => {});
  let wt: http2.IncomingHttpHeaders = {};
  w.on("trailers", (x) => (wt = x));
  w.on("data", () => {});
  w.end(frame(enc.encode("x")));
  while (t.streams.length < 1) await new Promise((r) => setTimeout(r, 5));
  t.streams[0]!.end(); // ends with status 0 while the connection lives
  await within("the stream to close", new Promise((r) => w.on("close", r)));
  assert.equal(wt["grpc-status"], "0", "the stream ended with status 0, not a bare RST_STREAM");
  drop();
});

Deno.test("gRPC client: statuses, deadline, cancel, a socket nobody serves", async () => {
  await using t = await testServer();
  const echoed = await unaryCall(t.path, "/t.S/Echo", enc.encode("hi"));
  assert.equal(new TextDecoder().decode(echoed), "hi");
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof GrpcError, String(err));
      return [err.code, err.details];
    }
    throw new Error("resolved");
  };
  assert.deepEqual(await code(unaryCall(t.path, "/t.S/Fail", new Uint8Array())), [
    Status.NOT_FOUND,
    'no device "ü" 100%',
  ]);
  assert.equal(
    (await code(unaryCall(t.path, "/t.S/Nope", new Uint8Array())))[0],
    Status.UNIMPLEMENTED,
  );
  assert.equal(
    (await code(unaryCall(t.path, "/t.S/Slow", new Uint8Array(), { timeoutMs: 100 })))[0],
    Status.DEADLINE_EXCEEDED,
  );
  const abort = new AbortController();
  const slow = unaryCall(t.path, "/t.S/Slow", new Uint8Array(), { signal: abort.signal });
  setTimeout(() => abort.abort(), 20);
  assert.equal((await code(slow))[0], Status.CANCELLED);
  assert.equal(
    (await code(unaryCall(`${t.path}.missing`, "/t.S/Echo", new Uint8Array())))[0],
    Status.UNAVAILABLE,
  );
  // Every client connection is closed after its call.
  for (let i = 0; i < 50 && t.server.sessionCount > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(t.server.sessionCount, 0);
});

Deno.test("gRPC server streams: a client's cancel and the server's close both end the call", async () => {
  await using t = await testServer();
  const { session, drop } = connect(t.path);
  const watch = () => {
    const req = session.request({
      ":method": "POST",
      ":path": "/t.S/Watch",
      "content-type": "application/grpc",
    });
    const got: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => got.push(c));
    req.on("error", () => {});
    req.end(frame(enc.encode("first")));
    return { req, got, closed: new Promise<void>((r) => req.on("close", r)) };
  };
  const a = watch();
  const b = watch();
  while (t.streams.length < 2 || a.got.length === 0 || b.got.length === 0) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.streams[0]!.write(enc.encode("update"));
  a.req.close(http2.constants.NGHTTP2_CANCEL); // kubelet cancels its ListAndWatch
  await a.closed;
  while (t.closedStreams() < 1) await new Promise((r) => setTimeout(r, 5));
  assert.ok(t.streams[0]!.closed);
  t.streams[0]!.write(enc.encode("after close")); // ignored, no throw
  t.server.close();
  await b.closed;
  while (t.closedStreams() < 2) await new Promise((r) => setTimeout(r, 5));
  assert.ok(t.streams[1]!.closed);
  drop();
});

/** A raw unix connection to `path`, and when it was closed by the server. */
async function rawConnection(path: string, send?: Uint8Array) {
  const socket = net.connect(path);
  socket.on("error", () => {});
  socket.on("data", () => {});
  const t0 = performance.now();
  let closedAt: number | undefined;
  const closed = new Promise<number>((r) =>
    socket.on("close", () => r(closedAt = performance.now() - t0))
  );
  await within(
    "the connection",
    new Promise<void>((r, reject) => {
      socket.once("connect", () => r());
      socket.once("error", reject);
    }),
  );
  if (send) socket.write(send);
  return {
    socket,
    closed,
    get closedAt() {
      return closedAt;
    },
  };
}

const PREFACE = bytes(enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), [0, 0, 0, 4, 0, 0, 0, 0, 0]);

Deno.test("gRPC server: silent connections time out, idle ones too, and at the cap the silent ones make room", async () => {
  const dir = await Deno.makeTempDir({ prefix: "grpc-conn-" });
  const path = `${dir}/s.sock`;
  const server = new GrpcServer({ "/t.S/Echo": { kind: "unary", handle: (req) => req } }, {
    prefaceTimeoutMs: 300,
    idleTimeoutMs: 600,
    maxSessions: 4,
  });
  await server.listen(path);
  const opened: net.Socket[] = [];
  try {
    // Silent: dropped after the preface timeout.
    const silent = await rawConnection(path);
    opened.push(silent.socket);
    const silentMs = await silent.closed;
    assert.ok(silentMs >= 250 && silentMs < 2000, `silent closed after ${silentMs} ms`);
    // Preface and SETTINGS, then nothing: dropped after the idle timeout, not the preface one.
    const idle = await rawConnection(path, PREFACE);
    opened.push(idle.socket);
    const idleMs = await idle.closed;
    assert.ok(idleMs >= 550 && idleMs < 3000, `idle closed after ${idleMs} ms`);
    // At the cap (4): two idle HTTP/2 ones and two silent ones; a client's
    // call takes the oldest silent one's place.
    const a = await rawConnection(path, PREFACE);
    const b = await rawConnection(path, PREFACE);
    const c = await rawConnection(path);
    const d = await rawConnection(path);
    opened.push(a.socket, b.socket, c.socket, d.socket);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.sessionCount, 4);
    assert.equal(
      new TextDecoder().decode(await unaryCall(path, "/t.S/Echo", enc.encode("x"))),
      "x",
    );
    await within("the server to close the connection", c.closed);
    assert.equal(d.closedAt, undefined, "the younger silent one stays (until its timeout)");
    assert.equal(a.closedAt, undefined, "idle HTTP/2 ones go only when no silent one is left");
    // Now the silent ones are gone (timeout): the oldest idle makes room.
    await d.closed;
    const e = await rawConnection(path, PREFACE);
    const f = await rawConnection(path, PREFACE);
    opened.push(e.socket, f.socket);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(
      new TextDecoder().decode(await unaryCall(path, "/t.S/Echo", enc.encode("y"))),
      "y",
    );
    await a.closed;
    assert.equal(b.closedAt, undefined);
  } finally {
    for (const s of opened) s.destroy();
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gRPC server: a method's request bound is enforced from the frame header, before the body", async () => {
  const dir = await Deno.makeTempDir({ prefix: "grpc-limit-" });
  const path = `${dir}/s.sock`;
  const server = new GrpcServer({
    "/t.S/Small": { kind: "unary", maxRequestBytes: 10, handle: (req) => req },
    "/t.S/Big": { kind: "unary", handle: () => new Uint8Array(70_000) },
  }, { bodyTimeoutMs: 5000 });
  await server.listen(path);
  try {
    const { session, drop } = connect(path);
    const req = session.request({
      ":method": "POST",
      ":path": "/t.S/Small",
      "content-type": "application/grpc",
    });
    req.on("error", () => {});
    let status: string | undefined;
    req.on("response", (h) => status ??= h["grpc-status"] as string | undefined);
    req.on("trailers", (t) => status ??= t["grpc-status"] as string | undefined);
    const t0 = performance.now();
    req.write(bytes([0, 0, 0, 0x10, 0])); // announces 4096 bytes, sends none
    while (status === undefined && performance.now() - t0 < 3000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(Number(status), Status.RESOURCE_EXHAUSTED);
    assert.ok(performance.now() - t0 < 1000, "refused at the header, not at the body timeout");
    req.end();
    drop();
    // Within the bound: answered.
    assert.deepEqual(Array.from(await unaryCall(path, "/t.S/Small", bytes([1, 2]))), [1, 2]);
    // A response larger than one flow-control window is never sent.
    await assert.rejects(
      unaryCall(path, "/t.S/Big", new Uint8Array()),
      (e: GrpcError) => e.code === Status.RESOURCE_EXHAUSTED && /does not fit/.test(e.details),
    );
  } finally {
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
