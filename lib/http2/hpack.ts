/**
 * HPACK (RFC 7541) for a relay that edits request headers: a decoder that
 * follows the peer's encoder (static and dynamic table, Huffman, table size
 * updates), and a stateless encoder that never inserts into the dynamic table,
 * so the far side's table stays empty and nothing has to be tracked for it.
 *
 * Names and values are latin1 strings (one character per byte), so a field
 * goes through decode → encode byte for byte.
 *
 * @example
 * ```ts
 * import { encodeHeaderBlock, HpackDecoder } from "./hpack.ts";
 *
 * const block = encodeHeaderBlock([{ name: ":method", value: "POST" }]);
 * new HpackDecoder().decode(block); // [{ name: ":method", value: "POST", neverIndexed: false }]
 * ```
 *
 * @module
 */
import { CompressionError } from "./errors.ts";
import { huffmanDecode } from "./huffman.ts";

/** One header field; `neverIndexed` is the peer's "sensitive, never index" mark. */
export interface HeaderField {
  /** Field name, latin1 (HTTP/2 names are lower-case). */
  name: string;
  /** Field value, latin1. */
  value: string;
  /** Encoded as "never indexed" (RFC 7541 §6.2.3): intermediaries must keep it so. */
  neverIndexed?: boolean;
}

/** RFC 7541 appendix A; index 1 is `STATIC_TABLE[0]`. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
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

/** RFC 7541 §4.1: an entry's size is its name and value lengths plus 32. */
const ENTRY_OVERHEAD = 32;
/** HTTP/2's initial SETTINGS_HEADER_TABLE_SIZE. */
export const DEFAULT_TABLE_SIZE = 4096;

/** Options of {@link HpackDecoder}. */
export interface HpackDecoderOptions {
  /**
   * Largest dynamic table the peer may ask for in a size update: the
   * SETTINGS_HEADER_TABLE_SIZE its encoder was given. @default {65536}
   */
  maxTableSize?: number;
  /** Largest decoded header list (RFC 9113 sizes: name + value + 32 per field). @default {262144} */
  maxHeaderListSize?: number;
}

/** Decodes the header blocks of one direction of one connection, in order. */
export class HpackDecoder {
  #entries: [string, string][] = []; // newest last
  #size = 0;
  #tableSize = DEFAULT_TABLE_SIZE;
  #maxTableSize: number;
  #maxListSize: number;

  constructor(options: HpackDecoderOptions = {}) {
    this.#maxTableSize = options.maxTableSize ?? 65536;
    this.#maxListSize = options.maxHeaderListSize ?? 262144;
  }

  /** The dynamic table's current size in RFC 7541 units. */
  get dynamicTableSize(): number {
    return this.#size;
  }

  /**
   * Decodes one complete header block (HEADERS and CONTINUATION payloads
   * joined), updating the dynamic table as the peer's encoder did.
   *
   * @throws {CompressionError} on any malformed or out-of-range representation.
   */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    const cursor = { pos: 0 };
    let listSize = 0;
    const add = (field: HeaderField) => {
      fields.push(field);
      listSize += field.name.length + field.value.length + ENTRY_OVERHEAD;
      if (listSize > this.#maxListSize) {
        throw new CompressionError(`header list above ${this.#maxListSize} bytes`);
      }
    };
    while (cursor.pos < block.length) {
      const first = block[cursor.pos];
      if (first & 0x80) {
        const [name, value] = this.#lookup(readInteger(block, cursor, 7));
        add({ name, value, neverIndexed: false });
      } else if ((first & 0xe0) === 0x20) {
        if (fields.length > 0) throw new CompressionError("table size update after a field");
        const size = readInteger(block, cursor, 5);
        if (size > this.#maxTableSize) {
          throw new CompressionError(`table size ${size} above the ${this.#maxTableSize} allowed`);
        }
        this.#tableSize = size;
        this.#evict(0);
      } else {
        const indexing = (first & 0xc0) === 0x40;
        const index = readInteger(block, cursor, indexing ? 6 : 4);
        const name = index === 0 ? readString(block, cursor) : this.#lookup(index)[0];
        const value = readString(block, cursor);
        if (indexing) this.#insert(name, value);
        add({ name, value, neverIndexed: (first & 0xf0) === 0x10 });
      }
    }
    return fields;
  }

  #lookup(index: number): readonly [string, string] {
    if (index === 0) throw new CompressionError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const entry = this.#entries[this.#entries.length - (index - STATIC_TABLE.length)];
    if (entry === undefined) throw new CompressionError(`index ${index} beyond the table`);
    return entry;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4).
    this.#evict(size);
    if (size <= this.#tableSize) {
      this.#entries.push([name, value]);
      this.#size += size;
    }
  }

  /** Evicts oldest entries until `room` more fits. */
  #evict(room: number): void {
    let drop = 0;
    while (drop < this.#entries.length && this.#size + room > this.#tableSize) {
      const [name, value] = this.#entries[drop++];
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.#entries.splice(0, drop);
  }
}

/** RFC 7541 §5.1 integer with an `prefix`-bit prefix; refuses values above 2^28. */
function readInteger(block: Uint8Array, cursor: { pos: number }, prefix: number): number {
  const mask = (1 << prefix) - 1;
  let value = block[cursor.pos++] & mask;
  if (value < mask) return value;
  for (let shift = 0;; shift += 7) {
    if (cursor.pos >= block.length) throw new CompressionError("truncated integer");
    if (shift > 21) throw new CompressionError("integer too large");
    const byte = block[cursor.pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
}

/** RFC 7541 §5.2 string literal, as latin1. */
function readString(block: Uint8Array, cursor: { pos: number }): string {
  if (cursor.pos >= block.length) throw new CompressionError("truncated string");
  const huffman = (block[cursor.pos] & 0x80) !== 0;
  const length = readInteger(block, cursor, 7);
  const end = cursor.pos + length;
  if (end > block.length) throw new CompressionError("truncated string");
  const raw = block.subarray(cursor.pos, end);
  cursor.pos = end;
  return latin1(huffman ? huffmanDecode(raw) : raw);
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  // Chunks keep the argument list of fromCharCode small.
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return text;
}

// Static-table positions for the encoder: "name\0value" → index, name → first index.
const STATIC_FIELD = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  STATIC_FIELD.set(`${name}\0${value}`, i + 1);
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
});

/**
 * Encodes `fields` without touching the dynamic table: a field the static table
 * holds whole is one index; others are literals "without indexing" (or "never
 * indexed" when marked so), the name by static index when it has one, strings
 * raw (no Huffman: cheaper to write, and blocks are small).
 */
export function encodeHeaderBlock(fields: readonly HeaderField[]): Uint8Array {
  let size = 0;
  for (const field of fields) size += field.name.length + field.value.length + 15;
  const out = new Uint8Array(size);
  let pos = 0;
  const integer = (value: number, prefix: number, flags: number) => {
    const mask = (1 << prefix) - 1;
    if (value < mask) {
      out[pos++] = flags | value;
      return;
    }
    out[pos++] = flags | mask;
    value -= mask;
    while (value >= 0x80) {
      out[pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[pos++] = value;
  };
  const string = (text: string) => {
    integer(text.length, 7, 0);
    for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
  };
  for (const { name, value, neverIndexed } of fields) {
    const whole = neverIndexed ? undefined : STATIC_FIELD.get(`${name}\0${value}`);
    if (whole !== undefined) {
      integer(whole, 7, 0x80);
      continue;
    }
    integer(STATIC_NAME.get(name) ?? 0, 4, neverIndexed ? 0x10 : 0x00);
    if (!STATIC_NAME.has(name)) string(name);
    string(value);
  }
  return out.subarray(0, pos);
}
