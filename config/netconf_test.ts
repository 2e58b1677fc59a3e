import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  throws as assertThrows,
} from "node:assert/strict";
import { ConfigError } from "./errors.ts";
import {
  DEFAULT_HOSTROUTE_METRIC,
  DEFAULT_STATE_DIR,
  parseNetConf,
  parseNetConfForDel,
} from "./netconf.ts";

const BASE = { cniVersion: "1.1.0", name: "lan", type: "macvtap" };
const ADD = { command: "ADD", args: "" } as const;

function conf(extra: Record<string, unknown>, args = "") {
  return parseNetConf({ ...BASE, ...extra }, { command: "ADD", args });
}

function rejects(
  extra: Record<string, unknown>,
  field: string,
  message: string | RegExp,
  args = "",
): void {
  assertThrows(() => conf(extra, args), (e: unknown) => {
    if (!(e instanceof ConfigError)) return false;
    assertEquals(e.field, field);
    if (typeof message === "string") assertEquals(e.message, message);
    else assertMatch(e.message, message);
    return true;
  });
}

Deno.test("parseNetConf() defaults", () => {
  assertEquals(parseNetConf(BASE, ADD), {
    cniVersion: "1.1.0",
    name: "lan",
    type: "macvtap",
    mode: "bridge",
    mtu: 0,
    silent: false,
    linkInContainer: false,
    hostrouteMetric: DEFAULT_HOSTROUTE_METRIC,
    requestedIps: [],
    validAttachments: [],
    stateDir: DEFAULT_STATE_DIR,
    ipamTimeoutMs: 30000,
    cniArgs: { ignoreUnknown: false, ips: [], unknown: [] },
  });
});

Deno.test("parseNetConf(): silent and linkInContainer, their defaults and the combinations refused", () => {
  assertEquals(conf({ deviceID: "lan-1" }).silent, true, "deviceID without IPAM");
  assertEquals(conf({ deviceID: "lan-1", silent: false }).silent, false);
  assertEquals(conf({ master: "eth1", silent: true }).silent, true);
  const ipam = { ipam: { type: "host-local" } };
  assertEquals(conf({ deviceID: "lan-1", ...ipam }).silent, false, "with IPAM");
  assertThrows(() => conf({ silent: true, ...ipam }), ConfigError, "silent: true needs a link");
  assertThrows(() => conf({ silent: "yes" }), ConfigError, "not a boolean");
  assertEquals(conf({ master: "eth1", linkInContainer: true }).linkInContainer, true);
  assertThrows(() => conf({ linkInContainer: true, deviceID: "lan-1" }), ConfigError, "deviceID");
  assertThrows(
    () => conf({ linkInContainer: true, hostrouteif: "mvt1" }),
    ConfigError,
    "hostrouteif",
  );
  assertThrows(() => conf({ linkInContainer: 1 }), ConfigError, "not a boolean");
});

Deno.test("parseNetConf() accepts a full config", () => {
  const c = conf({
    master: "eth1",
    mode: "vepa",
    mtu: 9000,
    mac: "02:AA:00:00:00:01",
    promiscMode: true,
    deviceID: "lan-7",
    hostrouteif: "macvtap1",
    hostrouteMetric: 0,
    ipam: { type: "host-local", subnet: "192.168.122.0/24" },
    dns: { nameservers: ["192.168.10.10"], search: ["lab"], options: [], domain: "lab" },
    logFile: "/var/log/macvtap/net.log",
    logLevel: "debug",
    capabilities: { mac: true },
    someRuntimeField: { x: 1 },
    stateDir: "/var/lib/cni/macvtap/tenant-a",
    ipamTimeoutMs: 5000,
  });
  assertEquals([c.master, c.mode, c.mtu, c.mac, c.promiscMode, c.deviceID], [
    "eth1",
    "vepa",
    9000,
    "02:aa:00:00:00:01",
    true,
    "lan-7",
  ]);
  assertEquals([c.hostrouteif, c.hostrouteMetric, c.stateDir, c.ipamTimeoutMs], [
    "macvtap1",
    0,
    "/var/lib/cni/macvtap/tenant-a",
    5000,
  ]);
  assertEquals(c.ipam, { type: "host-local", subnet: "192.168.122.0/24" });
  assertEquals(c.dns, { nameservers: ["192.168.10.10"], domain: "lab", search: ["lab"] });
  assertEquals([c.logFile, c.logLevel], ["/var/log/macvtap/net.log", "debug"]);
});

Deno.test("parseNetConf() validation", async (t) => {
  await t.step("rejects a missing or invalid name", () => {
    assertThrows(() => parseNetConf({ cniVersion: "1.0.0", type: "macvtap" }, ADD), ConfigError);
    rejects({ name: "a b" }, "name", 'name: invalid characters found in network name "a b"');
  });
  await t.step("rejects an unsupported cniVersion and selects from cniVersions", () => {
    rejects(
      { cniVersion: "9.9.9" },
      "cniVersion",
      'cniVersion: incompatible CNI version "9.9.9" ' +
        "(supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
    );
    assertEquals(
      conf({ cniVersion: "1.0.0", cniVersions: ["1.1.0", "2.0.0"] }).cniVersion,
      "1.0.0",
    );
    assertEquals(
      conf({ cniVersion: undefined, cniVersions: ["1.0.0", "1.1.0", "2.0.0"] }).cniVersion,
      "1.1.0",
    );
  });
  await t.step(
    "0.1.0 and 0.2.0: ADD needs ipam (the result carries an address); DEL does not",
    () => {
      for (const cniVersion of ["0.1.0", "0.2.0"]) {
        rejects(
          { cniVersion },
          "ipam",
          `ipam: a cniVersion ${cniVersion} result must carry an IP address, so an L2-only ` +
            "config (no ipam) needs cniVersion 0.3.0 or later",
        );
        rejects({ cniVersion, ipam: {} }, "ipam", /L2-only/);
        assertEquals(conf({ cniVersion, ipam: { type: "host-local" } }).cniVersion, cniVersion);
        assertEquals(parseNetConfForDel({ ...BASE, cniVersion }, { args: "" }).ipam, undefined);
      }
    },
  );
  await t.step("rejects a missing type", () => {
    rejects({ type: "" }, "type", 'type: "" is not a non-empty string');
  });
  await t.step("rejects unknown modes, and source as unsupported", () => {
    rejects(
      { mode: "foo" },
      "mode",
      'mode: unknown macvtap mode "foo" (expected bridge, private, vepa or passthru)',
    );
    assertThrows(() => conf({ mode: "source" }), (e: unknown) => (e as ConfigError).unsupported);
    for (const mode of ["bridge", "private", "vepa", "passthru"]) {
      assertEquals(conf({ mode }).mode, mode);
    }
    assertEquals(conf({ mode: "" }).mode, "bridge");
  });
  await t.step("rejects mtu below 68, above 65535 or not an integer", () => {
    for (const mtu of [67, 65536, 1500.5, "1500", -1]) {
      rejects(
        { mtu },
        "mtu",
        `mtu: invalid MTU ${JSON.stringify(mtu)} (expected 0 for the default, or 68 to 65535)`,
      );
    }
    assertEquals([conf({ mtu: 68 }).mtu, conf({ mtu: 65535 }).mtu, conf({ mtu: 0 }).mtu], [
      68,
      65535,
      0,
    ]);
  });
  await t.step("rejects bad MACs", () => {
    rejects(
      { mac: "nope" },
      "mac",
      'mac: "nope" is not a MAC address (expected aa:bb:cc:dd:ee:ff)',
    );
    rejects(
      { mac: "00:00:00:00:00:00" },
      "mac",
      'mac: "00:00:00:00:00:00" is the all-zero MAC address',
    );
    rejects(
      { mac: "03:00:00:00:00:01" },
      "mac",
      'mac: "03:00:00:00:00:01" is a multicast MAC address',
    );
  });
  await t.step("rejects bad interface names", () => {
    rejects(
      { master: "eth0:1" },
      "master",
      `master: interface name "eth0:1" contains '/', ':' or whitespace`,
    );
    rejects(
      { hostrouteif: "a-very-long-ifname" },
      "hostrouteif",
      'hostrouteif: interface name "a-very-long-ifname" is longer than 15 bytes',
    );
    assertEquals(conf({ master: "" }).master, undefined);
  });
  await t.step("rejects bad scalars", () => {
    rejects({ promiscMode: "yes" }, "promiscMode", 'promiscMode: "yes" is not a boolean');
    rejects({ deviceID: "" }, "deviceID", 'deviceID: "" must be 1 to 255 characters');
    rejects(
      { deviceID: "x".repeat(256) },
      "deviceID",
      `deviceID: "${"x".repeat(100)}"… (256 characters) must be 1 to 255 characters`,
    );
    rejects(
      { hostrouteMetric: 2 ** 32 },
      "hostrouteMetric",
      "hostrouteMetric: 4294967296 is not an integer in [0, 4294967295]",
    );
    assertEquals(conf({ logFile: "net.log" }).logFile, "/var/log/macvtap/net.log");
    for (const logFile of ["/etc/passwd", "/var/log/macvtap/../x", "/var/log/macvtap", "a/b"]) {
      rejects(
        { logFile },
        "logFile",
        /^logFile: .* \(the log root, set by MACVTAP_LOG_DIR\)$/,
      );
    }
    for (
      const stateDir of [
        "/etc/sudoers.d",
        "/var/lib/cni/macvtap/../x",
        "relative",
        "/var/lib/cni",
        // The plugin's own registry of state directories, and any dot part below the root.
        "/var/lib/cni/macvtap/.statedirs/d2f76",
        "/var/lib/cni/macvtap/.statedirs",
        "/var/lib/cni/macvtap/tenant/.hidden",
      ]
    ) {
      rejects({ stateDir }, "stateDir", /the state root, set by MACVTAP_STATE_ROOT/);
    }
    assertEquals(
      conf({ stateDir: "/var/lib/cni/macvtap/a.b" }).stateDir,
      "/var/lib/cni/macvtap/a.b",
    );
    rejects(
      { logLevel: "trace" },
      "logLevel",
      'logLevel: unknown log level "trace" (expected error, warn, info or debug)',
    );
  });
  await t.step("ipam: {} is L2 only; type must be a bare name", () => {
    assertEquals(conf({ ipam: {} }).ipam, undefined);
    rejects(
      { ipam: { subnet: "10.0.0.0/24" } },
      "ipam.type",
      "ipam.type: missing IPAM plugin type",
    );
    for (const type of ["../evil", "/usr/bin/x", "..", "."]) {
      rejects(
        { ipam: { type } },
        "ipam.type",
        `ipam.type: "${type}" is not a plugin name (no "/", "." or "..")`,
      );
    }
    rejects({ ipam: "host-local" }, "ipam", 'ipam: "host-local" is not an object');
  });
  await t.step("rejects bad dns", () => {
    rejects(
      { dns: { nameservers: ["dns.example"] } },
      "dns.nameservers[0]",
      'dns.nameservers[0]: "dns.example" is not an IP address',
    );
    rejects({ dns: { search: "a" } }, "dns.search", 'dns.search: "a" is not a list of strings');
  });
  await t.step("marks known-but-unsupported fields", () => {
    assertThrows(
      () => conf({ hostrouteip: "10.0.0.1" }),
      (e: unknown) => (e as ConfigError).unsupported,
    );
  });
  await t.step("rejects bad CNI_ARGS", () => {
    rejects({}, "CNI_ARGS", 'ARGS: unknown args ["FOO=1"]', "FOO=1");
  });
});

Deno.test("parseNetConf() MAC precedence: config < CNI_ARGS < runtimeConfig", async (t) => {
  await t.step("config only", () => {
    assertEquals(conf({ mac: "02:00:00:00:00:01" }).mac, "02:00:00:00:00:01");
  });
  await t.step("CNI_ARGS beats config", () => {
    assertEquals(
      conf({ mac: "02:00:00:00:00:01" }, "MAC=02:00:00:00:00:02").mac,
      "02:00:00:00:00:02",
    );
  });
  await t.step("runtimeConfig beats both, RuntimeConfig accepted too", () => {
    for (const key of ["runtimeConfig", "RuntimeConfig"]) {
      const c = conf(
        { mac: "02:00:00:00:00:01", [key]: { mac: "02:00:00:00:00:03" } },
        "MAC=02:00:00:00:00:02",
      );
      assertEquals(c.mac, "02:00:00:00:00:03");
    }
  });
  await t.step("runtimeConfig.mac is validated", () => {
    rejects(
      { runtimeConfig: { mac: "x" } },
      "runtimeConfig.mac",
      'runtimeConfig.mac: "x" is not a MAC address (expected aa:bb:cc:dd:ee:ff)',
    );
  });
});

Deno.test("parseNetConf() requested IPs: runtimeConfig > args.cni > CNI_ARGS", async (t) => {
  await t.step("each source alone", () => {
    assertEquals(conf({}, "IP=10.0.0.9").requestedIps, ["10.0.0.9"]);
    assertEquals(conf({ args: { cni: { ips: ["10.0.0.8/24"] } } }, "IP=10.0.0.9").requestedIps, [
      "10.0.0.8/24",
    ]);
    assertEquals(
      conf({ runtimeConfig: { ips: ["2001:db8::7/64"] }, args: { cni: { ips: ["10.0.0.8"] } } })
        .requestedIps,
      ["2001:db8::7/64"],
    );
  });
  await t.step("validated", () => {
    rejects(
      { args: { cni: { ips: ["10.0.0.8/40"] } } },
      "args.cni.ips[0]",
      'args.cni.ips[0]: "10.0.0.8/40" is not an IP address or CIDR',
    );
    rejects(
      { runtimeConfig: { ips: "10.0.0.1" } },
      "runtimeConfig.ips",
      'runtimeConfig.ips: "10.0.0.1" is not a list of strings',
    );
  });
  await t.step("other args are ignored", () => {
    assertEquals(conf({ args: { podman_options: { mode: "bridge" } } }).requestedIps, []);
  });
});

Deno.test("parseNetConf() prevResult", async (t) => {
  await t.step("parses any version leniently", () => {
    const c = conf({
      prevResult: {
        cniVersion: "0.4.0",
        interfaces: [{ name: "eth0", sandbox: "/var/run/netns/x" }],
        ips: [{ version: "4", interface: 0, address: "10.0.0.2/24" }],
        dns: {},
      },
    });
    assertEquals(c.prevResult, {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", sandbox: "/var/run/netns/x" }],
      ips: [{ interface: 0, address: "10.0.0.2/24" }],
    });
  });
  await t.step("is ignored below 0.3.0, which has no chaining", () => {
    const prevResult = { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24" } };
    const ipam = { type: "host-local" };
    assertEquals(conf({ cniVersion: "0.2.0", ipam, prevResult }).prevResult, undefined);
    // Not an object at all: refused, as the Go types' decoding refuses it.
    rejects(
      { cniVersion: "0.1.0", ipam, prevResult: 7 },
      "prevResult",
      "prevResult: 7 is not an object",
    );
  });
  await t.step("rejects a bad one naming the member", () => {
    rejects(
      { prevResult: { ips: [{ address: "10.0.0.2" }] } },
      "prevResult",
      'prevResult: ips[0].address: "10.0.0.2" has no prefix length (expected address/prefix)',
    );
  });
});

Deno.test("parseNetConf() GC attachments", async (t) => {
  await t.step("missing ⇒ empty", () => {
    assertEquals(parseNetConf(BASE, { command: "GC", args: "" }).validAttachments, []);
  });
  await t.step("accepts either key and merges them", () => {
    const a = { containerID: "c1", ifname: "eth0" };
    const b = { containerID: "c2", ifname: "net1" };
    const c = parseNetConf({
      ...BASE,
      "cni.dev/valid-attachments": [a],
      "cni.dev/attachments": [a, b],
    }, {
      command: "GC",
      args: "",
    });
    assertEquals(c.validAttachments, [a, b]);
  });
  await t.step("rejects malformed entries", () => {
    rejects(
      { "cni.dev/valid-attachments": [{ containerID: "c1" }] },
      "cni.dev/valid-attachments[0]",
      'cni.dev/valid-attachments[0]: {"containerID":"c1"} is not {"containerID": string, "ifname": string}',
    );
  });
});

Deno.test("parseNetConfForDel() never fails on what DEL does not need", async (t) => {
  await t.step("broken master, mode, mtu, mac, CNI_ARGS, dns, prevResult fall back", () => {
    const c = parseNetConfForDel({
      ...BASE,
      master: "bad/name",
      mode: "foo",
      mtu: 9,
      mac: "x",
      promiscMode: "y",
      dns: 5,
      runtimeConfig: "z",
      prevResult: { ips: "nope" },
      hostrouteif: "ok0",
      hostrouteMetric: 7,
      logLevel: "trace",
      linkInContainer: true,
      ipam: { type: "host-local" },
    }, { args: "FOO=bar;junk" });
    assertEquals([c.master, c.mode, c.mtu, c.mac, c.promiscMode, c.dns, c.prevResult], [
      undefined,
      "bridge",
      0,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    assertEquals([c.hostrouteif, c.hostrouteMetric, c.ipam?.type, c.logLevel], [
      "ok0",
      7,
      "host-local",
      undefined,
    ]);
  });
  await t.step("parseNetConf() with DEL is lenient too", () => {
    assertEquals(parseNetConf({ ...BASE, mtu: 1 }, { command: "DEL", args: "x" }).mtu, 0);
  });
  await t.step("still rejects an unsafe ipam type and a bad name", () => {
    assertThrows(
      () => parseNetConfForDel({ ...BASE, ipam: { type: "../x" } }, { args: "" }),
      ConfigError,
    );
    assertThrows(() => parseNetConfForDel({ ...BASE, name: "" }, { args: "" }), ConfigError);
  });
});
