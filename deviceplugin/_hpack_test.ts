import assert from "node:assert/strict";
import { encodeHeaders, HpackDecoder, HpackError, huffmanDecode } from "./_hpack.ts";

const hex = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("huffmanDecode() decodes RFC 7541 C.4.1 and refuses bad padding and EOS", () => {
  assert.equal(text(huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f4ff"))), "www.example.com");
  assert.equal(text(huffmanDecode(hex("a8eb10649cbf"))), "no-cache");
  // "a" is 00011: padded with ones; padded with a zero bit it is invalid.
  assert.equal(text(huffmanDecode(hex("1f"))), "a");
  assert.throws(() => huffmanDecode(hex("1e")), HpackError);
  // Eight bits of padding (a whole 0xff byte) is invalid.
  assert.throws(() => huffmanDecode(hex("1fff")), HpackError);
  // EOS (30 ones) decoded as a symbol.
  assert.throws(() => huffmanDecode(hex("ffffffff")), HpackError);
});

Deno.test("HpackDecoder decodes RFC 7541 C.4 (requests, Huffman) with its dynamic table", () => {
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")), [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
  ]);
  assert.deepEqual(d.decode(hex("828684be5886a8eb10649cbf")).at(-1), ["cache-control", "no-cache"]);
  assert.deepEqual(d.decode(hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")).slice(2), [
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ]);
});

Deno.test("HpackDecoder decodes RFC 7541 C.6 (responses, table size 256: entries evicted)", () => {
  const d = new HpackDecoder(256);
  d.decode(hex(
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
  ));
  assert.deepEqual(d.decode(hex("4883640effc1c0bf"))[0], [":status", "307"]);
  const third = d.decode(hex(
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
  ));
  assert.deepEqual(third.at(-1), [
    "set-cookie",
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
  ]);
});

Deno.test("HpackDecoder refuses what a hostile server may send", () => {
  // An index past both tables.
  assert.throws(() => new HpackDecoder().decode(hex("ff00")), /index .* is in no table/);
  // A table size update above the one announced.
  assert.throws(() => new HpackDecoder(256).decode(hex("3fe201")), /table size/);
  // A string longer than the block.
  assert.throws(() => new HpackDecoder().decode(hex("000a41")), /past the end/);
  // A header list above the limit.
  const big = encodeHeaders([["x", "y".repeat(100)]]);
  assert.throws(() => new HpackDecoder(4096, 64).decode(big), /header list larger/);
  // An integer that never ends.
  assert.throws(() => new HpackDecoder().decode(hex("0fffffffffffff")), HpackError);
});

Deno.test("encodeHeaders() writes literals without indexing that decode back", () => {
  const fields: [string, string][] = [
    [":method", "POST"],
    [":path", "/v1.PodResourcesLister/Get"],
    ["te", "trailers"],
    ["grpc-timeout", "3000m"],
  ];
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(encodeHeaders(fields)), fields);
  // Nothing was indexed: a second block with an indexed reference to 62 fails.
  assert.throws(() => d.decode(hex("be")), /no table/);
  assert.throws(() => encodeHeaders([["x", "caf\u00e9"]]), RangeError);
});

Deno.test("HpackDecoder refuses an integer padded with empty groups (it would decode to NaN)", () => {
  // A literal without indexing, new name, whose name length is 127 + 0 * 128^k... for 150 bytes.
  const block = new Uint8Array([0x00, 0x7f, ...new Array(150).fill(0x80), 0x00, 0x61, 0x01, 0x62]);
  assert.throws(() => new HpackDecoder().decode(block), HpackError);
});
