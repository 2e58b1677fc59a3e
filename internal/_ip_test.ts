import assert from "node:assert/strict";
import {
  bytesEqual,
  cidrContains,
  formatCidr,
  formatIP,
  formatMac,
  networkOf,
  parseCidr,
  parseIP,
  parseIPv4,
  parseIPv6,
  parseMac,
} from "./_ip.ts";

/** Canonical text of IP text, or undefined when it does not parse. */
function canon(text: string): string | undefined {
  const b = parseIP(text);
  return b && formatIP(b);
}

Deno.test("formatIP() writes IPv6 as RFC 5952 says", async (t) => {
  const cases: [string, string][] = [
    // 4.1 leading zeros dropped; 4.3 lower case
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    // 4.2.2 a single 16-bit zero field is not shortened
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    // 4.2.3 the longest run is shortened; the first one on a tie
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    // 4.2.1 as short as possible; edges
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fe80:0:0:0:0:0:0:0", "fe80::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
    ["0:1:0:0:2:0:0:0", "0:1:0:0:2::"],
    // 5. IPv4-mapped addresses are written with the dotted quad
    ["::ffff:c000:0280", "::ffff:192.0.2.128"],
    ["::ffff:0:0", "::ffff:0.0.0.0"],
    // ...but IPv4-compatible and other embeddings stay hex
    ["::192.0.2.128", "::c000:280"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ];
  for (const [input, want] of cases) {
    await t.step(`${input} ⇒ ${want}`, () => assert.equal(canon(input), want));
  }
});

Deno.test("formatIP() writes IPv4 as a dotted quad and rejects other lengths", () => {
  assert.equal(formatIP(Uint8Array.of(10, 0, 0, 255)), "10.0.0.255");
  assert.throws(() => formatIP(new Uint8Array(5)), RangeError);
});

Deno.test("parseIPv4() accepts only four decimal octets", () => {
  assert.deepEqual(parseIPv4("192.0.2.1"), Uint8Array.of(192, 0, 2, 1));
  assert.deepEqual(parseIPv4("0.0.0.0"), new Uint8Array(4));
  assert.deepEqual(parseIPv4("255.255.255.255"), Uint8Array.of(255, 255, 255, 255));
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.1",
      "01.2.3.4", // leading zero: octal in inet_aton, ambiguous
      "1.2.3.-4",
      "1.2.3.4 ",
      " 1.2.3.4",
      "1..3.4",
      "0x1.2.3.4",
      "1.2.3.1000",
      "1e2.0.0.1",
    ]
  ) assert.equal(parseIPv4(bad), undefined, JSON.stringify(bad));
});

Deno.test("parseIPv6() handles compression, embedded IPv4 and rejects the rest", () => {
  assert.deepEqual(parseIPv6("::"), new Uint8Array(16));
  assert.equal(canon("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
  assert.equal(canon("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8");
  assert.equal(canon("1:2:3:4:5:6:1.2.3.4"), "1:2:3:4:5:6:102:304");
  assert.equal(canon("::FFFF:1.2.3.4"), "::ffff:1.2.3.4");
  assert.equal(canon("0000:0000::0001"), "::1");
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1::2::3",
      ":1::",
      "::1:",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "g::1",
      "fe80::1%eth0", // zones are not addresses
      "1:2:3:4:5:6:7:1.2.3.4", // nine groups' worth
      "::1.2.3",
      "::1.2.3.256",
      "1.2::3",
      "[::1]",
      " ::1",
    ]
  ) assert.equal(parseIPv6(bad), undefined, JSON.stringify(bad));
});

Deno.test("parseIP() picks the family by the presence of a colon", () => {
  assert.equal(parseIP("10.1.2.3")?.length, 4);
  assert.equal(parseIP("::1")?.length, 16);
  assert.equal(parseIP("eth0"), undefined);
});

Deno.test("parseCidr() parses address/prefix and keeps host bits", () => {
  assert.deepEqual(parseCidr("10.1.2.3/24"), {
    family: 4,
    bytes: Uint8Array.of(10, 1, 2, 3),
    prefix: 24,
  });
  assert.equal(parseCidr("fd00::5/64")?.family, 6);
  assert.equal(parseCidr("0.0.0.0/0")?.prefix, 0);
  assert.equal(parseCidr("::/128")?.prefix, 128);
  for (
    const bad of [
      "10.1.2.3",
      "10.1.2.3/",
      "10.1.2.3/33",
      "fd00::/129",
      "10.1.2.3/024",
      "10.1.2.3/-1",
      "10.1.2.3/24/1",
      "10.1.2.3/ 24",
      "/24",
      "x/24",
    ]
  ) assert.equal(parseCidr(bad), undefined, JSON.stringify(bad));
});

Deno.test("formatCidr(), networkOf() and cidrContains()", () => {
  const c = parseCidr("2001:DB8:0:0:1::5/64")!;
  assert.equal(formatCidr(c), "2001:db8::1:0:0:5/64"); // first of two equal runs
  assert.equal(formatCidr(networkOf(c)), "2001:db8::/64");
  assert.equal(formatCidr(networkOf(parseCidr("10.1.2.3/23")!)), "10.1.2.0/23");
  assert.equal(formatCidr(networkOf(parseCidr("10.1.2.3/0")!)), "0.0.0.0/0");
  assert.equal(formatCidr(networkOf(parseCidr("10.1.2.3/32")!)), "10.1.2.3/32");
  assert.equal(formatCidr(networkOf(parseCidr("10.1.2.255/29")!)), "10.1.2.248/29");
  const net = parseCidr("10.1.2.0/24")!;
  assert.ok(cidrContains(net, parseIP("10.1.2.254")!));
  assert.ok(!cidrContains(net, parseIP("10.1.3.1")!));
  assert.ok(!cidrContains(net, parseIP("::ffff:10.1.2.1")!), "families differ");
  assert.ok(c.bytes[15] === 5, "networkOf() does not modify its input");
});

Deno.test("bytesEqual() compares lengths and contents", () => {
  assert.ok(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  assert.ok(!bytesEqual(Uint8Array.of(1), Uint8Array.of(1, 0)));
});

Deno.test("parseMac() and formatMac() round trip in lower case", () => {
  assert.equal(formatMac(parseMac("02:AB:cd:00:0F:ff")!), "02:ab:cd:00:0f:ff");
  assert.equal(formatMac(parseMac("02-ab-cd-00-0f-ff")!), "02:ab:cd:00:0f:ff");
  for (
    const bad of [
      "",
      "02:ab:cd:00:0f",
      "02:ab:cd:00:0f:ff:00",
      "2:ab:cd:0:f:ff",
      "zz:ab:cd:00:0f:ff",
    ]
  ) {
    assert.equal(parseMac(bad), undefined, JSON.stringify(bad));
  }
});
