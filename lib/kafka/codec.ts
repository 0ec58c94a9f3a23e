/**
 * The Kafka protocol's primitive types, read from and written to byte arrays:
 * big-endian integers, unsigned varints, classic (int16/int32-length) and
 * compact (varint length + 1) strings and arrays, and tagged-field sections —
 * what the few schemas {@link ./rewrite.ts} parses are built from.
 *
 * A read past the end throws {@link KafkaTruncatedError}, any other malformed
 * value {@link KafkaProtocolError}: callers never see a half-read value.
 *
 * @example
 * ```ts
 * import { KafkaReader, KafkaWriter } from "./codec.ts";
 *
 * const bytes = new KafkaWriter().int32(7).compactString("broker-1").finish();
 * const reader = new KafkaReader(bytes);
 * reader.int32(); // 7
 * reader.compactString(); // "broker-1"
 * ```
 *
 * @module
 */

/** Bytes that break the Kafka protocol (a bad length, an unknown version, garbage). */
export class KafkaProtocolError extends Error {
  /** An error saying what is wrong with the bytes. */
  constructor(message: string) {
    super(message);
    this.name = "KafkaProtocolError";
  }
}

/** A read ran past the bytes at hand: the frame is truncated, or longer than what was held. */
export class KafkaTruncatedError extends KafkaProtocolError {
  /** An error saying where the bytes ended. */
  constructor(message = "truncated") {
    super(message);
    this.name = "KafkaTruncatedError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** A cursor over `bytes[pos, end)`; every read checks the bounds first. */
export class KafkaReader {
  /** Offset of the next byte to read. */
  pos: number;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #end: number;

  /** Reads `bytes[pos, end)`. */
  constructor(bytes: Uint8Array, pos = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = pos;
    this.#end = end;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.#end - this.pos;
  }

  #take(n: number): number {
    if (n > this.#end - this.pos) throw new KafkaTruncatedError();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** An int16. */
  int16(): number {
    return this.#view.getInt16(this.#take(2));
  }

  /** An int32. */
  int32(): number {
    return this.#view.getInt32(this.#take(4));
  }

  /** Skips `n` bytes. */
  skip(n: number): void {
    this.#take(n);
  }

  /** An unsigned varint of at most 32 bits (5 bytes). */
  uvarint(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.#bytes[this.#take(1)];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (value > 0xffffffff) throw new KafkaProtocolError("varint above 32 bits");
        return value;
      }
    }
    throw new KafkaProtocolError("varint longer than 5 bytes");
  }

  #text(length: number): string {
    const at = this.#take(length);
    try {
      return utf8.decode(this.#bytes.subarray(at, at + length));
    } catch {
      throw new KafkaProtocolError("string is not UTF-8");
    }
  }

  /** A classic string (int16 length); null when nullable and the length is -1. */
  string(): string;
  /** A classic nullable string. */
  string(nullable: true): string | null;
  string(nullable = false): string | null {
    const length = this.int16();
    if (length === -1 && nullable) return null;
    if (length < 0) throw new KafkaProtocolError(`string length ${length}`);
    return this.#text(length);
  }

  /** Passes over a classic string (int16 length, -1 for null) without decoding it. */
  skipString(): void {
    const length = this.int16();
    if (length < -1) throw new KafkaProtocolError(`string length ${length}`);
    if (length > 0) this.skip(length);
  }

  /** A compact string (varint length + 1); null when nullable and the varint is 0. */
  compactString(): string;
  /** A compact nullable string. */
  compactString(nullable: true): string | null;
  compactString(nullable = false): string | null {
    const length = this.uvarint() - 1;
    if (length === -1 && nullable) return null;
    if (length < 0) throw new KafkaProtocolError("null in a non-nullable compact string");
    return this.#text(length);
  }

  /** A string of the flexible (compact) or classic encoding. */
  flexString(flexible: boolean, nullable: true): string | null;
  /** A non-nullable string of either encoding. */
  flexString(flexible: boolean): string;
  flexString(flexible: boolean, nullable = false): string | null {
    if (flexible) return nullable ? this.compactString(true) : this.compactString();
    return nullable ? this.string(true) : this.string();
  }

  /**
   * An array's element count, classic (int32) or compact (varint + 1); null for
   * a null array. The count is checked against the bytes left, each element
   * taking at least `minElementBytes`, so garbage cannot start a huge loop.
   */
  arrayLength(flexible: boolean, minElementBytes = 1): number | null {
    const count = flexible ? this.uvarint() - 1 : this.int32();
    if (count === -1) return null;
    if (count < 0) throw new KafkaProtocolError(`array length ${count}`);
    if (count * minElementBytes > this.remaining) throw new KafkaTruncatedError();
    return count;
  }

  /** Skips a tagged-field section (a count, then tag, size and bytes per field). */
  skipTaggedFields(): void {
    const count = this.uvarint();
    if (count > this.remaining) throw new KafkaTruncatedError();
    for (let i = 0; i < count; i++) {
      this.uvarint();
      this.skip(this.uvarint());
    }
  }
}

/** Builds a byte array from Kafka primitives; {@link KafkaWriter.finish} returns it. */
export class KafkaWriter {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  #room(n: number): number {
    if (this.#length + n > this.#bytes.length) {
      const bigger = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + n));
      bigger.set(this.#bytes.subarray(0, this.#length));
      this.#bytes = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const at = this.#length;
    this.#length += n;
    return at;
  }

  /** An int16. */
  int16(value: number): this {
    const at = this.#room(2);
    this.#view.setInt16(at, value);
    return this;
  }

  /** An int32. */
  int32(value: number): this {
    const at = this.#room(4);
    this.#view.setInt32(at, value);
    return this;
  }

  /** An unsigned varint. */
  uvarint(value: number): this {
    while (value >= 0x80) {
      const at = this.#room(1);
      this.#bytes[at] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    const at = this.#room(1);
    this.#bytes[at] = value;
    return this;
  }

  /** Bytes as they are. */
  raw(bytes: Uint8Array): this {
    const at = this.#room(bytes.length); // first: it may replace the buffer
    this.#bytes.set(bytes, at);
    return this;
  }

  /** A classic string (int16 length); null as -1. */
  string(value: string | null): this {
    if (value === null) return this.int16(-1);
    const bytes = encoder.encode(value);
    if (bytes.length > 0x7fff) throw new KafkaProtocolError("string longer than 32767 bytes");
    return this.int16(bytes.length).raw(bytes);
  }

  /** A compact string (varint length + 1); null as 0. */
  compactString(value: string | null): this {
    if (value === null) return this.uvarint(0);
    const bytes = encoder.encode(value);
    return this.uvarint(bytes.length + 1).raw(bytes);
  }

  /** A string of the flexible (compact) or classic encoding. */
  flexString(flexible: boolean, value: string | null): this {
    return flexible ? this.compactString(value) : this.string(value);
  }

  /** An array's element count, compact or classic; null as the null array. */
  arrayLength(flexible: boolean, count: number | null): this {
    if (flexible) return this.uvarint(count === null ? 0 : count + 1);
    return this.int32(count ?? -1);
  }

  /** What was written. */
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }
}
