import assert from "node:assert/strict";
import {
  align4,
  attrMap,
  AttrWriter,
  parseAttrs,
  readI32,
  readStr,
  readU16,
  readU32,
} from "./attr.ts";
import { NLA_F_NESTED } from "./constants.ts";

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

Deno.test("align4() rounds up to the netlink alignment", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9].map(align4), [0, 4, 4, 4, 4, 8, 8, 12]);
});

Deno.test("AttrWriter writes typed attributes little-endian, padded to 4", async (t) => {
  await t.step("u8, u16, u32, i32", () => {
    const w = new AttrWriter();
    w.u8(1, 0xab);
    w.u16(2, 0x1234);
    w.u32(3, 0xdeadbeef);
    w.i32(4, -2);
    assert.equal(
      hex(w.finish()),
      "05 00 01 00 ab 00 00 00 " + "06 00 02 00 34 12 00 00 " +
        "08 00 03 00 ef be ad de " + "08 00 04 00 fe ff ff ff",
    );
  });
  await t.step("strings are NUL-terminated; len excludes padding", () => {
    const w = new AttrWriter();
    w.str(3, "mv0");
    w.str(3, "eth1");
    w.str(3, "");
    assert.equal(
      hex(w.finish()),
      "08 00 03 00 6d 76 30 00 " + "09 00 03 00 65 74 68 31 00 00 00 00 " +
        "05 00 03 00 00 00 00 00",
    );
  });
  await t.step("raw payloads of any length", () => {
    const w = new AttrWriter();
    w.attr(1, Uint8Array.of(2, 0, 0, 0, 0, 1));
    assert.equal(hex(w.finish()), "0a 00 01 00 02 00 00 00 00 01 00 00");
  });
  await t.step("header area via zeros() and patching", () => {
    const w = new AttrWriter();
    const at = w.zeros(6);
    w.setU8(at, 7);
    w.setU16(at + 2, 0x0102);
    assert.equal(at, 0);
    assert.equal(w.length, 8);
    w.setU32(4, 0x01020304);
    assert.equal(hex(w.finish()), "07 00 02 01 04 03 02 01");
    const w2 = new AttrWriter();
    w2.zeros(4);
    w2.setI32(0, -1);
    assert.equal(hex(w2.finish()), "ff ff ff ff");
  });
});

Deno.test("AttrWriter nests attributes and closes their lengths", () => {
  const w = new AttrWriter();
  w.begin(18); // IFLA_LINKINFO
  w.chars(1, "macvtap"); // no NUL, as iproute2 sends IFLA_INFO_KIND
  w.begin(2); // IFLA_INFO_DATA
  w.u32(1, 4);
  w.end();
  w.end();
  // Same bytes as iproute2's IFLA_LINKINFO for `type macvtap mode bridge`.
  assert.equal(
    hex(w.finish()),
    "1c 00 12 00 0b 00 01 00 6d 61 63 76 74 61 70 00 0c 00 02 00 08 00 01 00 04 00 00 00",
  );
});

Deno.test("AttrWriter grows past its initial capacity", () => {
  const w = new AttrWriter(8);
  for (let i = 0; i < 100; i++) w.u32(i + 1, i);
  const attrs = parseAttrs(w.finish());
  assert.equal(attrs.length, 100);
  assert.equal(readU32(attrs[99]!.data), 99);
  assert.equal(attrs[99]!.type, 100);
});

Deno.test("AttrWriter rejects unbalanced nests", () => {
  const w = new AttrWriter();
  assert.throws(() => w.end(), /without begin/);
  w.begin(1);
  assert.throws(() => w.finish(), /open nests/);
});

Deno.test("parseAttrs() keeps every attribute, known or not, with the nested flag", () => {
  const w = new AttrWriter();
  w.u32(0x3fff, 1); // the largest type
  w.attr(0x8000 | 0x3e, new Uint8Array()); // empty nest with NLA_F_NESTED, as the kernel sends
  w.attr(0x4000 | 7, Uint8Array.of(1, 2)); // NLA_F_NET_BYTEORDER is masked off the type
  const attrs = parseAttrs(w.finish());
  assert.deepEqual(
    attrs.map((a) => [a.type, a.nested, a.data.length]),
    [[0x3fff, false, 4], [0x3e, true, 0], [7, false, 2]],
  );
  assert.equal(NLA_F_NESTED, 0x8000);
});

Deno.test("parseAttrs() stops at malformed trailing bytes", async (t) => {
  await t.step("a length below 4", () => {
    const b = Uint8Array.of(8, 0, 1, 0, 1, 0, 0, 0, 2, 0, 9, 0);
    assert.equal(parseAttrs(b).length, 1);
  });
  await t.step("a length beyond the buffer", () => {
    const b = Uint8Array.of(8, 0, 1, 0, 1, 0, 0, 0, 12, 0, 9, 0, 0, 0);
    assert.equal(parseAttrs(b).length, 1);
  });
  await t.step("fewer than 4 bytes left", () => {
    assert.deepEqual(parseAttrs(Uint8Array.of(4, 0, 1)), []);
    assert.deepEqual(parseAttrs(new Uint8Array()), []);
  });
  await t.step("the last attribute may omit its padding", () => {
    const b = Uint8Array.of(8, 0, 1, 0, 1, 0, 0, 0, 5, 0, 2, 0, 7);
    assert.deepEqual(parseAttrs(b).map((a) => [a.type, a.data[0]]), [[1, 1], [2, 7]]);
  });
});

Deno.test("parseAttrs() works on a view with a byte offset", () => {
  const backing = new Uint8Array(64);
  const inner = new AttrWriter();
  inner.u16(5, 0xbeef);
  backing.set(inner.finish(), 13);
  const view = backing.subarray(13, 21);
  assert.equal(readU16(parseAttrs(view)[0]!.data), 0xbeef);
});

Deno.test("attrMap() keys by type, last one wins", () => {
  const w = new AttrWriter();
  w.u32(1, 1);
  w.u32(2, 2);
  w.u32(1, 3);
  const m = attrMap(w.finish());
  assert.equal(m.size, 2);
  assert.equal(readU32(m.get(1)!), 3);
});

Deno.test("readers decode payloads", () => {
  assert.equal(readI32(Uint8Array.of(0xfe, 0xff, 0xff, 0xff)), -2);
  assert.equal(readU32(Uint8Array.of(0xfe, 0xff, 0xff, 0xff)), 0xfffffffe);
  assert.equal(readStr(new TextEncoder().encode("eth0\0junk")), "eth0");
  assert.equal(readStr(new TextEncoder().encode("no-nul")), "no-nul");
  assert.equal(readStr(new Uint8Array()), "");
});
