/**
 * Just enough of the protobuf wire format to walk a message field by field and
 * rebuild it with a few length-delimited fields replaced, copying every other
 * byte — unknown fields included — exactly as it arrived.
 *
 * @module
 */

/** The bytes are not a well-formed protobuf message. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** Protobuf wire types. */
export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  START_GROUP: 3,
  END_GROUP: 4,
  FIXED32: 5,
} as const;

/** One field of an encoded message, as offsets into the buffer. */
export interface WireField {
  /** Field number from the tag. */
  number: number;
  /** Wire type from the tag. */
  wireType: number;
  /** Offset of the tag: `[start, end)` is the whole field, tag included. */
  start: number;
  /** Offset of the value (for LEN, of the payload after its length). */
  valueStart: number;
  /** Offset just past the field. */
  end: number;
}

function readVarint(buf: Uint8Array, pos: number, end: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError("truncated varint");
    const byte = buf[pos++];
    // Multiply rather than shift: lengths and tags fit in 2^53, shifts stop at 2^31.
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, pos];
    scale *= 128;
  }
  throw new WireError("varint longer than 10 bytes");
}

/**
 * Reads the field that starts at `pos` into `field` (reused, so hot loops
 * allocate nothing). Throws {@link WireError} on malformed input.
 */
function readField(buf: Uint8Array, pos: number, end: number, field: WireField): void {
  field.start = pos;
  // Tags below 128 (fields 1-15) are one byte: the common case, read inline.
  let tag = buf[pos];
  if (tag < 0x80) pos++;
  else [tag, pos] = readVarint(buf, pos, end);
  const number = Math.floor(tag / 8);
  const wireType = tag % 8;
  if (number < 1 || number > 0x1fffffff) throw new WireError(`bad field number ${number}`);
  let valueStart = pos;
  switch (wireType) {
    case WireType.VARINT:
      [, pos] = readVarint(buf, pos, end);
      break;
    case WireType.FIXED64:
      pos += 8;
      break;
    case WireType.FIXED32:
      pos += 4;
      break;
    case WireType.LEN: {
      let length = buf[pos];
      if (length < 0x80 && pos < end) valueStart = pos + 1;
      else [length, valueStart] = readVarint(buf, pos, end);
      pos = valueStart + length;
      break;
    }
    case WireType.START_GROUP:
      pos = skipGroup(buf, pos, end, number);
      break;
    default:
      throw new WireError(`unexpected wire type ${wireType} for field ${number}`);
  }
  if (pos > end) throw new WireError(`field ${number} runs past the end of the message`);
  field.number = number;
  field.wireType = wireType;
  field.valueStart = valueStart;
  field.end = pos;
}

const emptyField = (): WireField => ({ number: 0, wireType: 0, start: 0, valueStart: 0, end: 0 });

/**
 * Calls `visit` for each field of the message in `buf[start, end)`, in order; the
 * allocation-free form of {@link readFields} for hot paths. `valueStart` is where
 * a LEN field's payload begins. Throws {@link WireError} on malformed input.
 */
export function scanFields(
  buf: Uint8Array,
  start: number,
  end: number,
  visit: (
    number: number,
    wireType: number,
    fieldStart: number,
    valueStart: number,
    fieldEnd: number,
  ) => void,
): void {
  const field = emptyField();
  for (let pos = start; pos < end; pos = field.end) {
    readField(buf, pos, end, field);
    visit(field.number, field.wireType, field.start, field.valueStart, field.end);
  }
}

/** Walks the fields of the message in `buf[start, end)`; throws {@link WireError} on malformed input. */
export function* readFields(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
): Generator<WireField> {
  for (let pos = start; pos < end;) {
    const field = emptyField();
    readField(buf, pos, end, field);
    pos = field.end;
    yield field;
  }
}

// Deprecated groups are rare but legal; they are kept verbatim like any unknown field.
function skipGroup(buf: Uint8Array, pos: number, end: number, number: number): number {
  const field = emptyField();
  while (pos < end) {
    const [tag, afterTag] = readVarint(buf, pos, end);
    if (tag % 8 === WireType.END_GROUP) {
      if (Math.floor(tag / 8) !== number) throw new WireError("mismatched end group");
      return afterTag;
    }
    readField(buf, pos, end, field);
    pos = field.end;
  }
  throw new WireError("unterminated group");
}

/** Encodes a non-negative integer below 2^53 as a varint. */
export function encodeVarint(value: number): Uint8Array {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Uint8Array.from(out);
}

/** Encodes one length-delimited field (tag, length, payload), as chunks to concatenate. */
export function encodeLenField(number: number, payload: Uint8Array): Uint8Array[] {
  return [encodeVarint(number * 8 + WireType.LEN), encodeVarint(payload.length), payload];
}

/** Joins byte chunks into one buffer. */
export function concatBytes(chunks: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
