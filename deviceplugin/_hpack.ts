/**
 * HPACK (RFC 7541), as much as a gRPC client needs: a decoder for every
 * header block a server may send (indexed fields, literals with and without
 * indexing, the dynamic table with its size updates, Huffman strings), and
 * an encoder that writes literal fields without indexing and raw strings,
 * so the peer's table never depends on us.
 *
 * I/O-free; the HTTP/2 framing is `_h2c.ts`.
 *
 * @module
 */

/** Malformed HPACK input: a connection error (`COMPRESSION_ERROR`). */
export class HpackError extends Error {
  override name = "HpackError";
}

/** A decoded header field. */
export type HeaderField = [name: string, value: string];

/** RFC 7541 Appendix A: the static table (index 1 … 61). */
const STATIC: readonly HeaderField[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/**
 * RFC 7541 Appendix B: the code length of symbols 0 … 256 (256 is EOS), one
 * letter each (`A` = 5 bits … `Z` = 30 bits). The code is canonical: codes
 * are assigned in order of (length, symbol), which is how the table's hex
 * codes run, so the lengths are the whole table.
 */
const HUFFMAN_LENGTHS =
  "ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ";

/** Canonical decoding tables: per length, the first code, and the symbols in code order. */
interface Canonical {
  /** `firstCode[len]`: the code of the first symbol of that length. */
  firstCode: number[];
  /** `firstIndex[len]`: where that length's symbols start in `symbols`. */
  firstIndex: number[];
  /** `count[len]`: how many symbols have that length. */
  count: number[];
  symbols: number[];
}

let canonical: Canonical | undefined;

function huffmanTables(): Canonical {
  if (canonical) return canonical;
  const lengths = Array.from(HUFFMAN_LENGTHS, (c) => c.charCodeAt(0) - 65 + 5);
  const symbols = lengths.map((_, sym) => sym).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const count: number[] = new Array(31).fill(0);
  for (const l of lengths) count[l]!++;
  // Codes of one length are consecutive; the first code of length n follows
  // the last of length n-1, shifted by one bit.
  const firstCode: number[] = new Array(31).fill(0);
  const firstIndex: number[] = new Array(31).fill(0);
  for (let len = 1; len <= 30; len++) {
    firstCode[len] = (firstCode[len - 1]! + count[len - 1]!) * 2;
    firstIndex[len] = firstIndex[len - 1]! + count[len - 1]!;
  }
  canonical = { firstCode, firstIndex, count, symbols };
  return canonical;
}

const EOS = 256;

/**
 * Decode a Huffman-coded string (RFC 7541 §5.2): padding of at most 7 bits,
 * all ones, and no EOS symbol.
 *
 * @throws {HpackError} on an invalid code, EOS, or bad padding.
 */
export function huffmanDecode(bytes: Uint8Array): Uint8Array {
  const { firstCode, firstIndex, count, symbols } = huffmanTables();
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const offset = code - firstCode[len]!;
      if (offset >= 0 && offset < count[len]!) {
        const sym = symbols[firstIndex[len]! + offset]!;
        if (sym === EOS) throw new HpackError("EOS in a Huffman string");
        out.push(sym);
        code = 0;
        len = 0;
      } else if (len >= 30) {
        throw new HpackError("invalid Huffman code");
      }
    }
  }
  // What is left must be a prefix of EOS (all ones) shorter than 8 bits.
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError("invalid Huffman padding");
  return new Uint8Array(out);
}

const latin1 = new TextDecoder("latin1");
const ascii = new TextEncoder();

/** An HPACK decoder; one per connection, fed every header block in order. */
export class HpackDecoder {
  #table: HeaderField[] = [];
  #size = 0;
  /** SETTINGS_HEADER_TABLE_SIZE as announced: no size update may exceed it. */
  #maxSize: number;
  /** The table's current size limit (the last size update, ≤ `#maxSize`). */
  #limit: number;
  /** The most a header list may hold (name + value + 32 per field), as SETTINGS_MAX_HEADER_LIST_SIZE. */
  readonly maxListSize: number;

  /**
   * @param maxSize SETTINGS_HEADER_TABLE_SIZE we announced (default 4096).
   * @param maxListSize the largest header list accepted (default 64 KiB).
   */
  constructor(maxSize = 4096, maxListSize = 64 * 1024) {
    this.#maxSize = maxSize;
    this.#limit = maxSize;
    this.maxListSize = maxListSize;
  }

  /**
   * Decode one complete header block.
   *
   * @throws {HpackError} on malformed input, an index past the tables, a
   *   table size above the announced one, or a list above `maxListSize`.
   */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let pos = 0;
    const int = (prefix: number): number => {
      if (pos >= block.length) throw new HpackError("truncated integer");
      const max = 2 ** prefix - 1;
      let v = block[pos++]! & max;
      if (v < max) return v;
      let shift = 0;
      while (true) {
        if (pos >= block.length) throw new HpackError("truncated integer");
        const b = block[pos++]!;
        // Leading zero groups would keep v at 0 while 2 ** shift overflows (NaN after).
        if (shift > 28) throw new HpackError("integer too long");
        v += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if (v > 2 ** 31) throw new HpackError("integer too large");
        if (b < 0x80) return v;
      }
    };
    const str = (): string => {
      if (pos >= block.length) throw new HpackError("truncated string");
      const huffman = (block[pos]! & 0x80) !== 0;
      const n = int(7);
      if (n > block.length - pos) throw new HpackError("string past the end of the block");
      const raw = block.subarray(pos, pos + n);
      pos += n;
      return latin1.decode(huffman ? huffmanDecode(raw) : raw);
    };
    const entry = (index: number): HeaderField => {
      if (index >= 1 && index <= STATIC.length) return STATIC[index - 1]!;
      const e = this.#table[index - STATIC.length - 1];
      if (index < 1 || !e) throw new HpackError(`index ${index} is in no table`);
      return e;
    };
    while (pos < block.length) {
      const b = block[pos]!;
      let field: HeaderField;
      if (b & 0x80) {
        field = entry(int(7)); // indexed
      } else if ((b & 0xc0) === 0x40) {
        const index = int(6); // literal with incremental indexing
        field = [index ? entry(index)[0] : str(), str()];
        this.#insert(field);
      } else if ((b & 0xe0) === 0x20) {
        const size = int(5); // dynamic table size update
        if (size > this.#maxSize) throw new HpackError(`table size ${size} above ${this.#maxSize}`);
        this.#evict(size);
        this.#limit = size;
        continue;
      } else {
        const index = int(4); // literal without indexing / never indexed
        field = [index ? entry(index)[0] : str(), str()];
      }
      listSize += field[0].length + field[1].length + 32;
      if (listSize > this.maxListSize) {
        throw new HpackError(`header list larger than ${this.maxListSize} bytes`);
      }
      fields.push(field);
    }
    return fields;
  }

  #insert(field: HeaderField): void {
    const size = field[0].length + field[1].length + 32;
    this.#evict(Math.max(0, this.#limit - size));
    if (size <= this.#limit) {
      this.#table.unshift(field);
      this.#size += size;
    }
  }

  #evict(to: number): void {
    while (this.#size > to) {
      const [n, v] = this.#table.pop()!;
      this.#size -= n.length + v.length + 32;
    }
  }
}

/**
 * Encode fields as literals without indexing (`0000xxxx`), with the static
 * table's name index where it has the name, and raw strings.
 *
 * @throws {RangeError} for a non-ASCII name or value.
 */
export function encodeHeaders(fields: readonly HeaderField[]): Uint8Array {
  const out: number[] = [];
  const int = (v: number, prefix: number, first: number) => {
    const max = 2 ** prefix - 1;
    if (v < max) {
      out.push(first | v);
      return;
    }
    out.push(first | max);
    v -= max;
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
  };
  const str = (s: string) => {
    if (/[^\x20-\x7e]/.test(s)) throw new RangeError(`header text must be printable ASCII: ${s}`);
    int(s.length, 7, 0);
    out.push(...ascii.encode(s));
  };
  for (const [name, value] of fields) {
    const index = STATIC.findIndex(([n]) => n === name) + 1;
    int(index, 4, 0);
    if (!index) str(name);
    str(value);
  }
  return new Uint8Array(out);
}
