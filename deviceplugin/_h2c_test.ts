import assert from "node:assert/strict";
import { h2cUnary } from "./_h2c.ts";
import { GrpcServer } from "./_grpc.ts";
import { GrpcError, Status } from "./_grpc_wire.ts";

async function tempSocket(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "h2c-test-" });
  return {
    path: `${dir}/s.sock`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function refused(p: Promise<unknown>, code: number, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GrpcError, String(err));
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("h2cUnary() calls a node:http2 gRPC server (the device plugin's), status and message both ways", async () => {
  await using sock = await tempSocket();
  const server = new GrpcServer({
    "/t.S/Echo": { kind: "unary", handle: (req) => req.slice().reverse() },
    // Several HTTP/2 frames (16 KiB each), within the one window the server sends at most.
    "/t.S/Big": { kind: "unary", handle: () => new Uint8Array(60_000).fill(7) },
    "/t.S/Fail": {
      kind: "unary",
      handle: () => {
        throw new GrpcError(Status.NOT_FOUND, "no such pod: ns/p ü");
      },
    },
  });
  await server.listen(sock.path);
  try {
    assert.deepEqual(
      await h2cUnary(sock.path, "/t.S/Echo", new Uint8Array([1, 2, 3])),
      new Uint8Array([3, 2, 1]),
    );
    assert.equal((await h2cUnary(sock.path, "/t.S/Big", new Uint8Array())).length, 60_000);
    await refused(h2cUnary(sock.path, "/t.S/Fail", new Uint8Array()), Status.NOT_FOUND, /ns\/p ü/);
    await refused(h2cUnary(sock.path, "/t.S/None", new Uint8Array()), Status.UNIMPLEMENTED);
    await refused(
      h2cUnary(sock.path, "/t.S/Big", new Uint8Array(), { maxResponseBytes: 30_000 }),
      Status.RESOURCE_EXHAUSTED,
    );
  } finally {
    server.close();
  }
});

/** A unix server that answers each connection with `reply` (after reading the request). */
async function rawServer(
  path: string,
  reply: (conn: Deno.Conn) => Promise<void>,
): Promise<Deno.Listener> {
  const l = Deno.listen({ transport: "unix", path });
  (async () => {
    for await (const conn of l) {
      (async () => {
        await conn.read(new Uint8Array(4096)).catch(() => null);
        await reply(conn).catch(() => {});
      })();
    }
  })();
  return await Promise.resolve(l);
}

Deno.test("h2cUnary() bounds what a hostile peer can do: no server, silence, early close, huge frames", async () => {
  await using sock = await tempSocket();
  await refused(h2cUnary(sock.path, "/x/y", new Uint8Array()), Status.UNAVAILABLE);
  const conns: Deno.Conn[] = [];
  let mode = "silent";
  const l = await rawServer(sock.path, async (conn) => {
    conns.push(conn);
    if (mode === "close") conn.close();
    if (mode === "huge") {
      // A frame header announcing 1 MiB, above the 16 KiB maximum.
      await conn.write(new Uint8Array([0x10, 0x00, 0x00, 0, 0, 0, 0, 0, 1]));
    }
    if (mode === "garbage") await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad\r\n\r\n"));
    if (mode === "endless") {
      const frame = (type: number, flags: number) => {
        const f = new Uint8Array(9 + 16_000);
        new DataView(f.buffer).setUint32(0, 16_000 << 8);
        f[3] = type;
        f[4] = flags;
        new DataView(f.buffer).setUint32(5, 1);
        return f;
      };
      await conn.write(frame(0x1, 0)); // HEADERS on stream 1, no END_HEADERS
      for (let i = 0; i < 200; i++) await conn.write(frame(0x9, 0)); // CONTINUATION, 3.2 MB in all
    }
  });
  try {
    await refused(
      h2cUnary(sock.path, "/x/y", new Uint8Array(), { timeoutMs: 200 }),
      Status.DEADLINE_EXCEEDED,
    );
    mode = "close";
    await refused(h2cUnary(sock.path, "/x/y", new Uint8Array()), Status.UNAVAILABLE);
    mode = "huge";
    await refused(h2cUnary(sock.path, "/x/y", new Uint8Array()), Status.INTERNAL, /frame of/);
    // HEADERS without END_HEADERS, then CONTINUATION frames without end: refused once
    // the block passes the header list limit, never buffered without bound.
    mode = "endless";
    const t0 = performance.now();
    await refused(
      h2cUnary(sock.path, "/x/y", new Uint8Array(), { timeoutMs: 10_000 }),
      Status.INTERNAL,
      /header block larger/,
    );
    assert.ok(performance.now() - t0 < 9_000, "refused before the deadline");
    mode = "garbage";
    await assert.rejects(h2cUnary(sock.path, "/x/y", new Uint8Array(), { timeoutMs: 500 }));
  } finally {
    l.close();
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed by the test's mode
      }
    }
  }
});
