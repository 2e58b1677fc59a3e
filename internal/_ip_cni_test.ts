import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  canonicalCidr,
  canonicalIP,
  cidrContains,
  cidrProblem,
  formatIP,
  ipFamily,
  isIPv4Mapped,
  networkOf,
  parseCidr,
  parseIP,
  parseIPv4,
  parseIPv6,
  unmapIPv4,
} from "./_ip.ts";

function assertEqual(a: unknown, b: unknown): void {
  assertEquals(a, b);
}

Deno.test("parseIPv4()", async (t) => {
  await t.step("parses dotted quads", () => {
    assertEqual(parseIPv4("10.1.2.3"), Uint8Array.of(10, 1, 2, 3));
    assertEqual(parseIPv4("0.0.0.0"), Uint8Array.of(0, 0, 0, 0));
    assertEqual(parseIPv4("255.255.255.255"), Uint8Array.of(255, 255, 255, 255));
  });
  await t.step("rejects leading zeros, out-of-range octets and wrong shapes", () => {
    for (
      const bad of [
        "010.0.0.1",
        "256.0.0.1",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.",
        "",
        "a.b.c.d",
        " 1.2.3.4",
        "1.2.3.-4",
        "1.2.3.4/8",
      ]
    ) {
      assertEqual(parseIPv4(bad), undefined);
    }
  });
});

Deno.test("parseIPv6()", async (t) => {
  await t.step("parses full, compressed and mixed forms", () => {
    assertEqual(formatIP(parseIPv6("2001:0db8:0000:0000:0000:0000:0000:0001")!), "2001:db8::1");
    assertEqual(parseIPv6("::"), new Uint8Array(16));
    assertEqual(parseIPv6("::1")![15], 1);
    assertEqual(formatIP(parseIPv6("1::")!), "1::");
    assertEqual(formatIP(parseIPv6("::ffff:192.0.2.1")!), "::ffff:192.0.2.1");
    assertEqual(formatIP(parseIPv6("64:ff9b::192.0.2.1")!), "64:ff9b::c000:201");
    assertEqual(formatIP(parseIPv6("1:2:3:4:5:6:7:8")!), "1:2:3:4:5:6:7:8");
    assertEqual(formatIP(parseIPv6("1:2:3:4:5:6:1.2.3.4")!), "1:2:3:4:5:6:102:304");
  });
  await t.step("rejects zone ids and malformed text", () => {
    for (
      const bad of [
        "fe80::1%eth0",
        "1::2::3",
        ":::",
        ":1::2",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7::8",
        "12345::",
        "g::",
        "::ffff:1.2.3",
        "::1.2.3.4:5",
        "1:",
        ":",
        "",
      ]
    ) {
      assertEqual(parseIPv6(bad), undefined);
    }
  });
});

Deno.test("formatIP() follows RFC 5952", async (t) => {
  const cases: [string, string][] = [
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // single zero group kept
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // longest run wins
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fe80:0000::0001", "fe80::1"],
    ["0:0:0:0:0:ffff:a00:1", "::ffff:10.0.0.1"],
  ];
  for (const [input, want] of cases) {
    await t.step(`${input} ⇒ ${want}`, () => assertEqual(canonicalIP(input), want));
  }
  await t.step("rejects byte strings of other lengths", () => {
    assertThrows(() => formatIP(new Uint8Array(5)), RangeError);
  });
});

Deno.test("parseIP() helpers", async (t) => {
  await t.step("ipFamily() tells 4 from 6", () => {
    assertEqual(ipFamily(parseIP("1.2.3.4")!), 4);
    assertEqual(ipFamily(parseIP("::1")!), 6);
  });
  await t.step("v4-mapped stays family 6 until unmapped", () => {
    const b = parseIP("::ffff:1.2.3.4")!;
    assertEqual(isIPv4Mapped(b), true);
    assertEqual(ipFamily(b), 6);
    assertEqual(unmapIPv4(b), Uint8Array.of(1, 2, 3, 4));
    assertEqual(isIPv4Mapped(parseIP("::1")!), false);
  });
  await t.step("canonicalIP() returns undefined for non-IPs", () => {
    assertEqual(canonicalIP("example.com"), undefined);
  });
});

Deno.test("parseCidr()", async (t) => {
  await t.step("keeps host bits and canonicalizes", () => {
    assertEqual(canonicalCidr("10.1.2.3/24"), "10.1.2.3/24");
    assertEqual(canonicalCidr("2001:DB8::0001/64"), "2001:db8::1/64");
    assertEqual(parseCidr("0.0.0.0/0")?.prefix, 0);
    assertEqual(parseCidr("::/128")?.family, 6);
  });
  await t.step("rejects bad prefixes", () => {
    for (
      const bad of [
        "10.0.0.1/33",
        "::1/129",
        "10.0.0.1/",
        "10.0.0.1/08",
        "10.0.0.1/-1",
        "10.0.0.1",
        "10.0.0.1/24/1",
        "fe80::1%eth0/64",
      ]
    ) {
      assertEqual(parseCidr(bad), undefined);
    }
  });
  await t.step("cidrProblem() explains", () => {
    assertEqual(cidrProblem("10.0.0.1/24"), undefined);
    assertEqual(cidrProblem("10.0.0.1"), "has no prefix length (expected address/prefix)");
    assertEqual(cidrProblem("10.0.0.1/40"), 'has an invalid prefix length "40" (expected 0 to 32)');
    assertEqual(cidrProblem("10.0.0.x/8"), 'has an invalid address "10.0.0.x"');
    assertEqual(cidrProblem("fe80::1%eth0/64"), "has a zone id, which is not allowed");
  });
  await t.step("networkOf() and cidrContains()", () => {
    const net = parseCidr("10.1.2.3/20")!;
    assertEqual(canonicalCidr(`${formatIP(networkOf(net).bytes)}/20`), "10.1.0.0/20");
    assertEqual(cidrContains(net, parseIP("10.1.15.255")!), true);
    assertEqual(cidrContains(net, parseIP("10.1.16.0")!), false);
    assertEqual(cidrContains(parseCidr("0.0.0.0/0")!, parseIP("8.8.8.8")!), true);
    assertEqual(cidrContains(parseCidr("2001:db8::/32")!, parseIP("2001:db8:ffff::1")!), true);
    assertEqual(cidrContains(parseCidr("2001:db8::/32")!, parseIP("1.2.3.4")!), false);
  });
});
