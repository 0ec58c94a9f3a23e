/**
 * Hand-built protobuf wire bytes for tests: the proxy itself only reads and
 * rewrites them (lib/flight/wire.ts), so the encoders live here.
 *
 * @module
 */

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
