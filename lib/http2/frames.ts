/**
 * HTTP/2 frame layout (RFC 9113 §4, §6): the constants the relay needs and
 * the few frames it writes itself.
 *
 * @module
 */

/** The client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE: Uint8Array = new TextEncoder().encode(
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
);

/** Size of a frame header. */
export const FRAME_HEADER_SIZE = 9;

/** Every peer accepts frames of this size (SETTINGS_MAX_FRAME_SIZE's floor). */
export const MIN_MAX_FRAME_SIZE = 16384;

/** Frame types the relay looks at. */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PUSH_PROMISE: 0x5,
  GOAWAY: 0x7,
  CONTINUATION: 0x9,
} as const;

/** Frame flags the relay looks at. */
export const Flag = {
  END_STREAM: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Writes a frame header at `out[at]`. */
export function writeFrameHeader(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  new DataView(out.buffer, out.byteOffset + at + 5, 4).setUint32(0, streamId & 0x7fffffff);
}

/** A GOAWAY frame with `errorCode` and a short reason (RFC 9113 §6.8). */
export function goawayFrame(lastStreamId: number, errorCode: number, reason = ""): Uint8Array {
  const debug = new TextEncoder().encode(reason.slice(0, 200));
  const frame = new Uint8Array(FRAME_HEADER_SIZE + 8 + debug.length);
  writeFrameHeader(frame, 0, 8 + debug.length, FrameType.GOAWAY, 0, 0);
  const view = new DataView(frame.buffer);
  view.setUint32(FRAME_HEADER_SIZE, lastStreamId & 0x7fffffff);
  view.setUint32(FRAME_HEADER_SIZE + 4, errorCode);
  frame.set(debug, FRAME_HEADER_SIZE + 8);
  return frame;
}
