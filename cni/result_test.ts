import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { CniError, ErrorCode } from "./errors.ts";
import { formatResult, parseResult, type Result } from "./result.ts";

const full: Result = {
  cniVersion: "1.1.0",
  interfaces: [{
    name: "eth0",
    mac: "02:00:00:00:00:01",
    mtu: 1500,
    sandbox: "/var/run/netns/x",
    socketPath: "/run/x.sock",
    pciID: "0000:00:01.0",
  }],
  ips: [
    { interface: 0, address: "10.99.0.2/24", gateway: "10.99.0.1" },
    { interface: 0, address: "2001:db8::2/64" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.99.0.1" },
    { dst: "192.0.2.0/24", mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 253 },
  ],
  dns: { nameservers: ["10.99.0.53"], search: ["lab.example"] },
};

function isDecodeError(err: unknown): boolean {
  return err instanceof CniError && err.code === ErrorCode.DECODE;
}

Deno.test("formatResult()", async (t) => {
  await t.step("prints the 1.1.0 superset at 1.1.0 in spec key order", () => {
    assertEquals(
      JSON.stringify(formatResult(full, "1.1.0")),
      '{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","mtu":1500,' +
        '"sandbox":"/var/run/netns/x","socketPath":"/run/x.sock","pciID":"0000:00:01.0"}],' +
        '"ips":[{"interface":0,"address":"10.99.0.2/24","gateway":"10.99.0.1"},' +
        '{"interface":0,"address":"2001:db8::2/64"}],' +
        '"routes":[{"dst":"0.0.0.0/0","gw":"10.99.0.1"},{"dst":"192.0.2.0/24","mtu":1400,' +
        '"advmss":1360,"priority":10,"table":100,"scope":253}],' +
        '"dns":{"nameservers":["10.99.0.53"],"search":["lab.example"]}}',
    );
  });
  await t.step("drops 1.1-only fields at 1.0.0", () => {
    assertEquals(formatResult(full, "1.0.0"), {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", mac: "02:00:00:00:00:01", sandbox: "/var/run/netns/x" }],
      ips: [
        { interface: 0, address: "10.99.0.2/24", gateway: "10.99.0.1" },
        { interface: 0, address: "2001:db8::2/64" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }, { dst: "192.0.2.0/24" }],
      dns: { nameservers: ["10.99.0.53"], search: ["lab.example"] },
    });
  });
  for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
    await t.step(`adds ips[].version first at ${v}`, () => {
      const out = formatResult(full, v);
      assertEquals(
        JSON.stringify((out.ips as unknown[])[0]),
        '{"version":"4","interface":0,"address":"10.99.0.2/24","gateway":"10.99.0.1"}',
      );
      assertEquals((out.ips as { version: string }[])[1]!.version, "6");
      assertEquals((out.routes as unknown[])[1], { dst: "192.0.2.0/24" });
    });
  }
  await t.step("prints dns {} below 1.0.0 and omits it from 1.0.0", () => {
    const l2: Result = { cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] };
    assertEquals(
      JSON.stringify(formatResult(l2, "0.3.1")),
      '{"cniVersion":"0.3.1","interfaces":[{"name":"eth0"}],"dns":{}}',
    );
    assertEquals(
      JSON.stringify(formatResult({ ...l2, dns: {} }, "1.0.0")),
      '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}',
    );
  });
  await t.step("throws code 1 for an unsupported version", () => {
    assertThrows(
      () => formatResult(full, "0.5.0"),
      (e: unknown) => e instanceof CniError && e.code === ErrorCode.INCOMPATIBLE_VERSION,
    );
  });
  for (const v of ["0.1.0", "0.2.0"]) {
    await t.step(`prints the legacy ip4/ip6 shape at ${v} (cni types/040 convertTo02x)`, () => {
      const r: Result = {
        ...full,
        ips: [
          { interface: 0, address: "10.99.0.2/24", gateway: "10.99.0.1" },
          { interface: 0, address: "10.99.1.2/24" },
          { interface: 0, address: "2001:db8::2/64" },
          { interface: 0, address: "2001:db8:1::2/64", gateway: "2001:db8:1::1" },
        ],
        routes: [
          { dst: "0.0.0.0/0", gw: "10.99.0.1" },
          { dst: "::/0", gw: "2001:db8::1", priority: 5 },
          { dst: "192.0.2.0/24", mtu: 1400 },
        ],
      };
      // First address of each family; routes by destination family; no
      // interfaces, no 1.x route attributes; dns always present.
      assertEquals(
        JSON.stringify(formatResult(r, v)),
        `{"cniVersion":"${v}",` +
          '"ip4":{"ip":"10.99.0.2/24","gateway":"10.99.0.1",' +
          '"routes":[{"dst":"0.0.0.0/0","gw":"10.99.0.1"},{"dst":"192.0.2.0/24"}]},' +
          '"ip6":{"ip":"2001:db8::2/64","routes":[{"dst":"::/0","gw":"2001:db8::1"}]},' +
          '"dns":{"nameservers":["10.99.0.53"],"search":["lab.example"]}}',
      );
      // A family without an address drops its routes; dns {} when empty.
      assertEquals(
        formatResult({
          cniVersion: "1.1.0",
          ips: [{ address: "2001:db8::2/64" }],
          routes: [{ dst: "0.0.0.0/0" }],
        }, v),
        { cniVersion: v, ip6: { ip: "2001:db8::2/64" }, dns: {} },
      );
      // Without an address there is nothing to print (the reference: cannot convert).
      assertThrows(
        () => formatResult({ cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] }, v),
        (e: unknown) => e instanceof CniError && e.code === ErrorCode.GENERIC,
      );
    });
  }
});

Deno.test("parseResult()", async (t) => {
  await t.step("round-trips every version's output", () => {
    for (const v of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
      const back = parseResult(JSON.stringify(formatResult(full, v)));
      assertEquals(formatResult(back, v), formatResult(full, v));
    }
  });
  await t.step("accepts what libcni sends: dns {}, ips[].version", () => {
    const r = parseResult({
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", mac: "12:AF:DD:37:FC:CA", sandbox: "/var/run/netns/c" }],
      ips: [{ version: "4", interface: 0, address: "10.98.0.2/24", gateway: "10.98.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: {},
    });
    assertEquals(r, {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", mac: "12:af:dd:37:fc:ca", sandbox: "/var/run/netns/c" }],
      ips: [{ interface: 0, address: "10.98.0.2/24", gateway: "10.98.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    });
  });
  await t.step("accepts an IPAM result without interfaces, dns or cniVersion", () => {
    assertEquals(
      parseResult({ ips: [{ address: "2001:DB8::5/64", gateway: "2001:db8::1" }] }, {
        cniVersion: "0.3.1",
      }),
      { cniVersion: "0.3.1", ips: [{ address: "2001:db8::5/64", gateway: "2001:db8::1" }] },
    );
    assertEquals(parseResult("{}").cniVersion, "1.0.0");
  });
  await t.step("converts the 0.2.0 ip4/ip6 shape up", () => {
    assertEquals(
      parseResult({
        cniVersion: "0.2.0",
        ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1", routes: [{ dst: "0.0.0.0/0" }] },
        ip6: { ip: "2001:db8::2/64", routes: [{ dst: "::/0", gw: "2001:db8::1" }] },
        dns: { nameservers: ["10.0.0.53"] },
      }),
      {
        cniVersion: "0.2.0",
        ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }, { address: "2001:db8::2/64" }],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0", gw: "2001:db8::1" }],
        dns: { nameservers: ["10.0.0.53"] },
      },
    );
  });
  await t.step("rejects bad addresses with a clear error", () => {
    const cases: [unknown, string][] = [
      [{ ips: [{ address: "10.0.0.2" }] }, 'ips[0].address: "10.0.0.2" has no prefix length'],
      [{ ips: [{ address: "10.0.0.2/33" }] }, "invalid prefix length"],
      [{ ips: [{ address: "10.0.0.2/24", gateway: "nope" }] }, '"nope" is not an IP address'],
      [{ ips: [{ address: "10.0.0.2/24", gateway: "::1" }] }, "not in the family"],
      [{ ips: [{ version: "6", address: "10.0.0.2/24" }] }, "does not match"],
      [{ ips: [{ interface: 1, address: "10.0.0.2/24" }] }, "out of range"],
      [{ routes: [{ gw: "10.0.0.1" }] }, "routes[0].dst: is missing"],
      [{ routes: [{ dst: "0.0.0.0/0", table: -1 }] }, "routes[0].table"],
      [{ interfaces: [{ mac: "x" }] }, "interfaces[0].name: is missing"],
      [{ dns: { nameservers: "1.1.1.1" } }, "dns.nameservers"],
      [[], "is not an object"],
      ["{", "not JSON"],
    ];
    for (const [input, text] of cases) {
      assertThrows(() => parseResult(input), (e: unknown) => {
        if (!isDecodeError(e)) return false;
        if (!(e as Error).message.includes(text)) {
          throw new Error(`message ${JSON.stringify((e as Error).message)} lacks ${text}`);
        }
        return true;
      });
    }
  });
});
