import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { CniError } from "./errors.ts";
import type { Result } from "./result.ts";
import { MAX_STDIN_BYTES, runSkel, type SkelHandlers, type SkelRequest } from "./skel.ts";

interface Run {
  code: number;
  out: string;
  err: string;
  json: Record<string, unknown> | undefined;
  calls: SkelRequest[];
}

const ENV = {
  CNI_CONTAINERID: "ctr1",
  CNI_NETNS: "/var/run/netns/ctr1",
  CNI_IFNAME: "eth0",
  CNI_ARGS: "IgnoreUnknown=1",
  CNI_PATH: "/opt/cni/bin::/usr/lib/cni",
};

const RESULT: Result = {
  cniVersion: "1.1.0",
  interfaces: [{
    name: "eth0",
    mac: "02:00:00:00:00:01",
    mtu: 1500,
    sandbox: "/var/run/netns/ctr1",
  }],
  ips: [{ interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
};

function config(cniVersion: unknown = "1.1.0", extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion, name: "lan", type: "macvtap", ...extra });
}

async function run(
  env: Record<string, string | undefined>,
  stdin: string | Uint8Array | Error = config(),
  handlers: { [K in keyof SkelHandlers]?: SkelHandlers[K] | undefined } = {},
): Promise<Run> {
  const calls: SkelRequest[] = [];
  let out = "";
  let err = "";
  const code = await runSkel({
    add: (req) => {
      calls.push(req);
      return RESULT;
    },
    del: (req) => void calls.push(req),
    check: (req) => void calls.push(req),
    gc: (req) => void calls.push(req),
    status: (req) => void calls.push(req),
    ...handlers,
  } as SkelHandlers, {
    env,
    stdin: () => {
      if (stdin instanceof Error) throw stdin;
      return typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
    },
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = out ? JSON.parse(out) : undefined;
  } catch {
    json = undefined;
  }
  return { code, out, err, json, calls };
}

Deno.test("runSkel() without CNI_COMMAND prints about text", async () => {
  const r = await run({});
  assertEquals(r.code, 0);
  assertEquals(r.out, "");
  assertEquals(
    r.err.includes(
      "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
    ),
    true,
  );
});

Deno.test("runSkel() VERSION", async (t) => {
  await t.step("echoes a supported input version", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"0.4.0"}');
    assertEquals(r.code, 0);
    assertEquals(
      r.out,
      '{"cniVersion":"0.4.0","supportedVersions":' +
        '["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}',
    );
  });
  await t.step("answers 1.1.0 for garbage, unknown versions or unreadable stdin", async () => {
    for (const stdin of ["", "nope", '{"cniVersion":"9.9.9"}', new Error("EIO")]) {
      const r = await run({ CNI_COMMAND: "VERSION" }, stdin);
      assertEquals([r.code, r.json?.cniVersion], [0, "1.1.0"]);
    }
  });
  await t.step("needs no other env and calls no handler", async () => {
    const r = await run({ CNI_COMMAND: "VERSION", CNI_NETNS: "dummy" }, "{}");
    assertEquals(r.calls.length, 0);
  });
});

Deno.test("runSkel() environment checks", async (t) => {
  await t.step("unknown command ⇒ 4", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "FOO" });
    assertEquals([r.code, r.json], [1, { code: 4, msg: "unknown CNI_COMMAND: FOO" }]);
  });
  await t.step("ADD lists missing variables in Go order ⇒ 4", async () => {
    const r = await run({ CNI_COMMAND: "ADD", CNI_NETNS: "" });
    assertEquals(r.json, {
      code: 4,
      msg: "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing",
    });
  });
  await t.step("DEL does not need CNI_NETNS", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "DEL", CNI_NETNS: "" });
    assertEquals([r.code, r.out, r.calls[0]?.netns], [0, "", ""]);
  });
  await t.step("GC and STATUS need only CNI_PATH", async () => {
    for (const cmd of ["GC", "STATUS"]) {
      assertEquals((await run({ CNI_COMMAND: cmd, CNI_PATH: "/x" })).code, 0);
      assertEquals(
        (await run({ CNI_COMMAND: cmd })).json?.msg,
        "required env variables [CNI_PATH] missing",
      );
    }
  });
  await t.step("bad container id ⇒ 4", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD", CNI_CONTAINERID: "-bad/id" });
    assertEquals([r.json?.code, r.json?.msg], [4, "invalid characters in containerID"]);
  });
  await t.step("bad ifname ⇒ 4", async () => {
    for (const ifname of ["a/b", "..", "eth0:1", "a very long name!"]) {
      const r = await run({ ...ENV, CNI_COMMAND: "ADD", CNI_IFNAME: ifname });
      assertEquals(r.json?.code, 4);
      assertEquals(String(r.json?.msg).startsWith(`invalid CNI_IFNAME "${ifname}"`), true);
    }
  });
});

Deno.test("runSkel() stdin and config checks", async (t) => {
  await t.step("stdin read failure ⇒ 5", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, new Error("EIO"));
    assertEquals([r.json?.code, r.json?.msg], [5, "Cannot read network config from stdin: EIO"]);
  });
  await t.step("stdin over the cap ⇒ 5", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, new Uint8Array(MAX_STDIN_BYTES + 1));
    assertEquals(r.json?.code, 5);
  });
  await t.step("bad JSON, non-object or bad UTF-8 ⇒ 6", async () => {
    for (const stdin of ["{", "[]", "null", "", Uint8Array.of(0x7b, 0xff, 0x7d)]) {
      assertEquals((await run({ ...ENV, CNI_COMMAND: "ADD" }, stdin)).json?.code, 6);
    }
  });
  await t.step("missing or invalid name ⇒ 7 with the config version", async () => {
    let r = await run({ ...ENV, CNI_COMMAND: "ADD" }, '{"cniVersion":"1.0.0"}');
    assertEquals(r.json, { cniVersion: "1.0.0", code: 7, msg: "missing network name" });
    r = await run({ ...ENV, CNI_COMMAND: "ADD" }, '{"cniVersion":"1.0.0","name":"a b"}');
    assertEquals([r.json?.code, r.json?.msg], [7, "invalid characters found in network name"]);
  });
  await t.step("unsupported cniVersion ⇒ 1 with details", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, config("9.9.9"));
    assertEquals(r.json, {
      cniVersion: "9.9.9",
      code: 1,
      msg: "incompatible CNI versions",
      details: 'config is "9.9.9", plugin supports ' +
        '["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]',
    });
  });
  await t.step("missing cniVersion counts as 0.1.0 (the Go config decoder's rule)", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "DEL" }, '{"name":"lan"}');
    assertEquals([r.code, r.calls[0]?.cniVersion], [0, "0.1.0"]);
  });
  await t.step("CHECK below 0.4.0 and GC/STATUS below 1.1.0 ⇒ 1", async () => {
    let r = await run({ ...ENV, CNI_COMMAND: "CHECK" }, config("0.3.1"));
    assertEquals([r.json?.code, r.json?.msg], [1, "config version does not allow CHECK"]);
    r = await run({ ...ENV, CNI_COMMAND: "GC" }, config("1.0.0"));
    assertEquals([r.json?.code, r.json?.msg], [1, "config version does not allow GC"]);
    r = await run({ ...ENV, CNI_COMMAND: "STATUS" }, config("1.0.0"));
    assertEquals([r.json?.code, r.json?.msg], [1, "config version does not allow STATUS"]);
    assertEquals(r.calls.length, 0);
  });
  await t.step(
    "cniVersion is the version used; a cniVersions passed through does not change it",
    async () => {
      let r = await run(
        { ...ENV, CNI_COMMAND: "GC" },
        config("1.0.0", { cniVersions: ["1.0.0", "1.1.0", "2.0.0"] }),
      );
      assertEquals([r.code, r.json?.msg], [1, "config version does not allow GC"]);
      r = await run(
        { ...ENV, CNI_COMMAND: "GC" },
        JSON.stringify({ name: "lan", type: "macvtap", cniVersions: ["1.0.0", "1.1.0", "2.0.0"] }),
      );
      assertEquals([r.code, r.calls[0]?.cniVersion], [0, "1.1.0"]);
    },
  );
  await t.step("0.1.0 and 0.2.0: ADD and DEL only; CHECK, GC and STATUS ⇒ 1", async () => {
    for (const v of ["0.1.0", "0.2.0"]) {
      for (const command of ["CHECK", "GC", "STATUS"]) {
        const r = await run({ ...ENV, CNI_COMMAND: command }, config(v));
        assertEquals(
          [r.code, r.json?.code, r.json?.msg, r.json?.cniVersion],
          [1, 1, `config version does not allow ${command}`, v],
        );
      }
      const del = await run({ ...ENV, CNI_COMMAND: "DEL" }, config(v));
      assertEquals([del.code, del.calls[0]?.cniVersion], [0, v]);
    }
  });
});

Deno.test("runSkel() dispatch", async (t) => {
  await t.step("ADD passes the request and prints the result at the config version", async () => {
    const stdin = config("0.3.1", { master: "eth1" });
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, stdin);
    assertEquals(r.code, 0);
    assertEquals(
      r.out,
      '{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01",' +
        '"sandbox":"/var/run/netns/ctr1"}],"ips":[{"version":"4","interface":0,' +
        '"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}',
    );
    const req = r.calls[0]!;
    assertEquals(req.command, "ADD");
    assertEquals([req.containerId, req.netns, req.ifname, req.args], [
      "ctr1",
      "/var/run/netns/ctr1",
      "eth0",
      "IgnoreUnknown=1",
    ]);
    assertEquals(req.path, ["/opt/cni/bin", "/usr/lib/cni"]);
    assertEquals(req.config.master, "eth1");
    assertEquals(req.cniVersion, "0.3.1");
    assertEquals(new TextDecoder().decode(req.stdin), stdin);
  });
  for (const cmd of ["DEL", "CHECK", "GC", "STATUS"]) {
    await t.step(`${cmd} prints nothing on success`, async () => {
      const r = await run({ ...ENV, CNI_COMMAND: cmd });
      assertEquals([r.code, r.out, r.calls[0]?.command], [0, "", cmd]);
    });
  }
  await t.step("GC and STATUS without handlers succeed", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "GC" }, config(), { gc: undefined });
    assertEquals([r.code, r.out], [0, ""]);
  });
});

Deno.test("runSkel() handler errors", async (t) => {
  await t.step("a CniError passes through with the config version", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "DEL" }, config("1.0.0"), {
      del: () => {
        throw new CniError(11, "busy", "try later");
      },
    });
    assertEquals([r.code, r.out], [
      1,
      '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"try later"}',
    ]);
  });
  await t.step("anything else ⇒ 999 with the cause chain", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, config(), {
      add: () => {
        throw new Error("outer", { cause: new Error("middle", { cause: "root" }) });
      },
    });
    assertEquals(r.json, { cniVersion: "1.1.0", code: 999, msg: "outer", details: "middle: root" });
  });
  await t.step("the injected mapping is used", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "CHECK" }, config(), {
      check: () => {
        throw new RangeError("x");
      },
      toCniError: (e) => new CniError(7, `mapped ${(e as Error).name}`),
    });
    assertEquals(r.json, { cniVersion: "1.1.0", code: 7, msg: "mapped RangeError" });
  });
  await t.step("ADD result without interfaces is printed as is", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "ADD" }, config(), {
      add: () => ({ cniVersion: "1.1.0", ips: [{ address: "1.2.3.4/24" }] }),
    });
    assertEquals(r.code, 0);
  });
});
