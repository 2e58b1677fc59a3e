/**
 * Every documented error of `dist/macvtap`, run as a runtime runs it: spec
 * error JSON on stdout, the right code, a non-zero exit, and nothing left
 * behind (no link, no lease, no host route, no record).
 */

import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { cni, cniHere, describe, Lab, labIgnore, PLUGIN, pluginBuilt } from "../lab/mod.ts";

const ignore = labIgnore();
type Json = Record<string, unknown>;

function assertError(
  c: { code: number; json: Json | undefined; stdout: string; stderr: string },
  code: number,
  msg?: RegExp,
): void {
  assert(c.code !== 0, `expected failure, got exit 0: ${c.stdout}`);
  assert(c.json, `stdout is not JSON: ${c.stdout} / ${c.stderr}`);
  assertEquals(c.json.code, code, `${c.stdout}\n${c.stderr}`);
  assertEquals(typeof c.json.msg, "string");
  if (msg) assertMatch(c.json.msg as string, msg);
}

Deno.test({
  name: "VERSION echoes the config version and lists 0.1.0 … 1.1.0",
  ignore: !pluginBuilt(),
  async fn() {
    const c = await cniHere({ command: "VERSION" }, { cniVersion: "0.4.0" });
    assertEquals(c.code, 0, describe(c));
    assertEquals(c.json, {
      cniVersion: "0.4.0",
      supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
  },
});

Deno.test({
  name: "--help and --version work by hand",
  ignore: !pluginBuilt(),
  async fn() {
    const help = await new Deno.Command(PLUGIN, { args: ["--help"], stdout: "piped" }).output();
    assert(help.success);
    assertMatch(new TextDecoder().decode(help.stdout), /CNI_COMMAND/);
    const version = await new Deno.Command(PLUGIN, { args: ["--version"], stdout: "piped" })
      .output();
    assert(version.success);
    assertMatch(new TextDecoder().decode(version.stdout), /^macvtap \d+\.\d+\.\d+/);
  },
});

Deno.test({
  name: "environment and protocol errors have spec codes [1.0.0]",
  ignore: !pluginBuilt(),
  async fn(t) {
    const base = { cniVersion: "1.0.0", name: "n", type: "macvtap", master: "lab0" };
    await t.step("missing CNI_CONTAINERID, CNI_NETNS ⇒ 4", async () => {
      const c = await cniHere(
        { command: "ADD", extra: { CNI_CONTAINERID: undefined, CNI_NETNS: undefined } },
        base,
      );
      assertError(c, 4, /CNI_CONTAINERID.*CNI_NETNS|CNI_NETNS.*CNI_CONTAINERID/);
    });
    await t.step("bad container id ⇒ 4", async () => {
      assertError(await cniHere({ command: "ADD", containerId: "-bad/id", netns: "/x" }, base), 4);
    });
    await t.step("ifname too long ⇒ 4", async () => {
      assertError(
        await cniHere({ command: "ADD", netns: "/x", ifname: "a234567890123456" }, base),
        4,
      );
    });
    await t.step("ifname with '/' ⇒ 4", async () => {
      assertError(await cniHere({ command: "ADD", netns: "/x", ifname: "a/b" }, base), 4);
    });
    await t.step("unknown command ⇒ 4", async () => {
      assertError(await cniHere({ command: "FOO", netns: "/x" }, base), 4);
    });
    await t.step("malformed JSON ⇒ 6", async () => {
      assertError(await cniHere({ command: "ADD", netns: "/x" }, '{"cniVersion": "1.0.0",'), 6);
    });
    await t.step("missing name ⇒ 7", async () => {
      assertError(await cniHere({ command: "ADD", netns: "/x" }, { ...base, name: undefined }), 7);
    });
    await t.step("unsupported cniVersion ⇒ 1", async () => {
      assertError(
        await cniHere({ command: "ADD", netns: "/x" }, { ...base, cniVersion: "9.9.9" }),
        1,
      );
    });
    await t.step("CHECK at 0.3.1 ⇒ 1", async () => {
      assertError(
        await cniHere({ command: "CHECK", netns: "/x" }, { ...base, cniVersion: "0.3.1" }),
        1,
      );
    });
    await t.step("STATUS at 1.0.0 ⇒ 1", async () => {
      assertError(await cniHere({ command: "STATUS" }, base), 1);
    });
    await t.step("GC at 0.4.0 ⇒ 1", async () => {
      assertError(await cniHere({ command: "GC" }, { ...base, cniVersion: "0.4.0" }), 1);
    });
    await t.step("error JSON carries the config's cniVersion", async () => {
      const c = await cniHere({ command: "ADD", netns: "/x" }, { ...base, mode: "nope" });
      assertEquals(c.json?.cniVersion, "1.0.0");
      assertEquals(c.json?.code, 7);
      assertMatch(c.json?.msg as string, /mode/);
    });
  },
});

Deno.test({
  name: "config errors leave nothing behind [1.1.0]",
  ignore,
  async fn(t) {
    await using lab = await Lab.create();
    const l = await lab.simple();
    const dataDir = await lab.tempDir("ipam");
    const stateDir = await lab.tempDir("state");
    const ipam = { type: "host-local", subnet: "10.99.0.0/24", dataDir };
    const base: Json = {
      cniVersion: "1.1.0",
      name: "errnet",
      type: "macvtap",
      master: l.master,
      stateDir,
      ipam,
    };
    const env = { command: "ADD", containerId: "ctr-err", netns: l.ctrPath, ifname: "eth0" };

    async function nothingLeft(): Promise<void> {
      assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
      assertEquals(await lab.ipJson(l.host, "link", "show", "type", "macvtap"), []);
      const leases = [...Deno.readDirSync(dataDir)].flatMap((d) =>
        d.isDirectory
          ? [...Deno.readDirSync(`${dataDir}/${d.name}`)].filter((f) => /^\d/.test(f.name))
          : []
      );
      assertEquals(leases, []);
      const records = [...Deno.readDirSync(stateDir)].flatMap((d) =>
        d.isDirectory ? [...Deno.readDirSync(`${stateDir}/${d.name}`)] : []
      );
      assertEquals(records, []);
    }

    const cases: [string, Json, number, RegExp?, Partial<typeof env>?][] = [
      ["unknown mode", { mode: "fast" }, 7, /mode/],
      ["MTU above the master's", { mtu: 9000 }, 7, /MTU 9000/],
      ["MTU out of range", { mtu: 70000 }, 7, /mtu/i],
      ["master missing", { master: "nosuch0" }, 7, /nosuch0/],
      ["bad MAC", { mac: "02:11:22:33:44" }, 7, /mac/i],
      ["multicast MAC", { mac: "01:00:5e:00:00:01" }, 7, /mac/i],
      ["ipam.type with a slash", { ipam: { type: "../bin/sh" } }, 7, /ipam/],
      ["bad args.cni.ips", { args: { cni: { ips: ["10.99.0.300"] } } }, 7, /ips/],
      ["illegal hostrouteif", { hostrouteif: "a b" }, 7, /hostrouteif/],
      ["unknown CNI_ARGS key", {}, 7, /unknown args/i, { args: "FOO=bar" } as Partial<typeof env>],
      ["netns missing", {}, 103, /netns|namespace/i, { netns: "/run/netns/does-not-exist" }],
      ["IPAM plugin missing", { ipam: { type: "no-such-ipam" } }, 101, /no-such-ipam/],
      ["IPAM error keeps its code", { ipam: { type: "host-local" } }, 0],
    ];
    for (const [what, patch, code, msg, envPatch] of cases) {
      await t.step(`${what} ⇒ ${code || "IPAM's own code"}`, async () => {
        const c = await cni(lab, l.host, { ...env, ...envPatch }, { ...base, ...patch });
        if (code) assertError(c, code, msg);
        else {
          assert(c.code !== 0 && c.json && typeof c.json.code === "number", describe(c));
        }
        await nothingLeft();
      });
    }

    await t.step(
      "interface name taken in the container ⇒ error, the existing link untouched",
      async () => {
        await lab.ip(l.ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
        const c = await cni(lab, l.host, env, base);
        assert(c.code !== 0, describe(c));
        assertMatch((c.json?.msg as string) ?? "", /exists/);
        assertEquals(await lab.ipJson(l.ctr, "link", "show", "type", "macvtap"), []);
        const del = await cni(lab, l.host, { ...env, command: "DEL" }, base);
        assertEquals(del.code, 0, describe(del));
        assertEquals(
          (await lab.ipJson(l.ctr, "link", "show", "eth0")).length,
          1,
          "DEL left the veth alone",
        );
        await lab.ip(l.ctr, "link", "del", "eth0");
        await nothingLeft();
      },
    );
  },
});
