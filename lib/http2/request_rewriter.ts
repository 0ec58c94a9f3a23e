/**
 * The client-to-server half of an HTTP/2 connection, edited as it streams: the
 * preface is checked, request header blocks (HEADERS + CONTINUATION) are
 * decoded, given `authorization` when they carry none, and re-encoded; every
 * other frame comes out as the very bytes that went in (views of the input,
 * not copies). Without an `authorization` option header blocks pass as they
 * are too (only frames are delimited, e.g. to drop GOAWAY).
 *
 * Every block is re-encoded, not only those that change: the encoder inserts
 * nothing into the dynamic table, so the server's table stays empty and the
 * client's insertions (which the decoder follows) never have to reach it.
 *
 * @example
 * ```ts
 * import { RequestRewriter } from "./request_rewriter.ts";
 *
 * const rewriter = new RequestRewriter({ authorization: () => "Bearer abc" });
 * declare const chunk: Uint8Array; // what the client sent
 * for (const piece of rewriter.push(chunk)) {
 *   // write piece upstream, before the next push
 * }
 * if (rewriter.error) {
 *   // the last piece was a GOAWAY: close the connection
 * }
 * ```
 *
 * @module
 */
import { ErrorCode, Http2Error } from "./errors.ts";
import {
  CLIENT_PREFACE,
  Flag,
  FRAME_HEADER_SIZE,
  FrameType,
  goawayFrame,
  MIN_MAX_FRAME_SIZE,
  writeFrameHeader,
} from "./frames.ts";
import { encodeHeaderBlock, type HeaderField, HpackDecoder } from "./hpack.ts";

/** Options of {@link RequestRewriter}. */
export interface RequestRewriterOptions {
  /**
   * The `authorization` value to add to a request without one; undefined adds none.
   * Omitted: header blocks are not decoded at all and pass byte for byte.
   */
  authorization?: () => string | undefined;
  /** Largest header block (all its frames' payloads) accepted. @default {262144} */
  maxHeaderBlockBytes?: number;
  /** Leave out the client's GOAWAY frames (see {@link RequestRewriter}). @default {false} */
  dropGoaway?: boolean;
}

const AUTHORIZATION = "authorization";
// A header value must not smuggle a line break or control character (RFC 9113 §8.2.1).
const FIELD_VALUE = /^[\x20-\x7e]*$/;

/** See the module documentation. */
export class RequestRewriter {
  /** Set once the stream is refused; the last piece {@link push} gave was a GOAWAY. */
  error: Http2Error | undefined;
  /** Request header blocks that got `authorization` from {@link RequestRewriterOptions.authorization}. */
  added = 0;

  #authorization: (() => string | undefined) | undefined;
  #maxBlock: number;
  #decoder: HpackDecoder;
  #prefaceLeft = CLIENT_PREFACE.length;
  #head = new Uint8Array(FRAME_HEADER_SIZE);
  #headLength = 0;
  #passLeft = 0;
  // Payload bytes of a dropped frame still to skip.
  #dropLeft = 0;
  #dropping = false;
  #dropGoaway: boolean;
  // The header frame being read: its payload, and how much of it is still to come.
  #frame = new Uint8Array(0);
  #frameFilled = 0;
  #frameType = 0;
  #frameFlags = 0;
  #frameStream = 0;
  // The header block being gathered across HEADERS and CONTINUATION frames.
  #fragments: Uint8Array[] = [];
  #blockLength = 0;
  #blockStream = 0;
  #blockFlags = 0;
  #priority: Uint8Array | undefined;
  #highestStream = 0;

  constructor(options: RequestRewriterOptions) {
    this.#authorization = options.authorization;
    this.#maxBlock = options.maxHeaderBlockBytes ?? 262144;
    this.#dropGoaway = options.dropGoaway ?? false;
    this.#decoder = new HpackDecoder({ maxHeaderListSize: 4 * this.#maxBlock });
  }

  /**
   * Takes the next bytes from the client; answers what to send upstream, in
   * order. Pieces may be views of `chunk`: write them before the next call.
   * After a refusal ({@link error}), the pieces end with a GOAWAY and later
   * calls answer nothing.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.error) return out;
    let runStart = -1;
    const flushRun = (end: number) => {
      if (runStart >= 0 && end > runStart) out.push(chunk.subarray(runStart, end));
      runStart = -1;
    };
    let pos = 0;
    try {
      while (pos < chunk.length) {
        if (this.#prefaceLeft > 0) {
          const at = CLIENT_PREFACE.length - this.#prefaceLeft;
          const n = Math.min(this.#prefaceLeft, chunk.length - pos);
          for (let i = 0; i < n; i++) {
            if (chunk[pos + i] !== CLIENT_PREFACE[at + i]) {
              throw new Http2Error("not an HTTP/2 connection (bad client preface)");
            }
          }
          if (runStart < 0) runStart = pos;
          pos += n;
          this.#prefaceLeft -= n;
        } else if (this.#dropLeft > 0) {
          flushRun(pos);
          const n = Math.min(this.#dropLeft, chunk.length - pos);
          pos += n;
          this.#dropLeft -= n;
        } else if (this.#passLeft > 0) {
          const n = Math.min(this.#passLeft, chunk.length - pos);
          if (runStart < 0) runStart = pos;
          pos += n;
          this.#passLeft -= n;
        } else if (this.#frameFilled < this.#frame.length) {
          const n = Math.min(this.#frame.length - this.#frameFilled, chunk.length - pos);
          this.#frame.set(chunk.subarray(pos, pos + n), this.#frameFilled);
          this.#frameFilled += n;
          pos += n;
          if (this.#frameFilled === this.#frame.length) this.#headerFrameDone(out);
        } else if (this.#headLength === 0 && chunk.length - pos >= FRAME_HEADER_SIZE) {
          // The common case: the whole frame header is in this chunk.
          if (this.#startFrame(chunk.subarray(pos, pos + FRAME_HEADER_SIZE))) {
            if (runStart < 0) runStart = pos;
          } else {
            flushRun(pos);
            if (this.#dropping) this.#dropping = false;
            else if (this.#frame.length === 0) this.#headerFrameDone(out);
          }
          pos += FRAME_HEADER_SIZE;
        } else {
          // A frame header split across reads: gather it first.
          flushRun(pos);
          const n = Math.min(FRAME_HEADER_SIZE - this.#headLength, chunk.length - pos);
          this.#head.set(chunk.subarray(pos, pos + n), this.#headLength);
          this.#headLength += n;
          pos += n;
          if (this.#headLength < FRAME_HEADER_SIZE) continue;
          this.#headLength = 0;
          if (this.#startFrame(this.#head)) out.push(this.#head.slice());
          else if (this.#dropping) this.#dropping = false;
          else if (this.#frame.length === 0) this.#headerFrameDone(out);
        }
      }
      flushRun(pos);
    } catch (error) {
      if (!(error instanceof Http2Error)) throw error;
      flushRun(pos);
      this.error = error;
      out.push(goawayFrame(0, error.code, error.message));
    }
    return out;
  }

  /** Reads a frame header; true when the frame passes through as it is. */
  #startFrame(head: Uint8Array): boolean {
    const length = (head[0] << 16) | (head[1] << 8) | head[2];
    const type = head[3];
    const flags = head[4];
    const stream = ((head[5] & 0x7f) << 24 | head[6] << 16 | head[7] << 8 | head[8]) >>> 0;
    const continuing = this.#fragments.length > 0;
    if (continuing && type !== FrameType.CONTINUATION) {
      throw new Http2Error("header block interrupted by another frame");
    }
    if (type === FrameType.PUSH_PROMISE) throw new Http2Error("PUSH_PROMISE from a client");
    if (type === FrameType.GOAWAY && this.#dropGoaway) {
      // Deno's nghttp2 can abort the serving process on a client's GOAWAY
      // (denoland/deno#36788); the close that follows ends the session as well.
      this.#dropLeft = length;
      this.#dropping = true;
      return false;
    }
    if (
      (type !== FrameType.HEADERS && type !== FrameType.CONTINUATION) ||
      this.#authorization === undefined
    ) {
      this.#passLeft = length;
      return true;
    }
    if (stream === 0) throw new Http2Error("header block on stream 0");
    if (type === FrameType.CONTINUATION && (!continuing || stream !== this.#blockStream)) {
      throw new Http2Error("CONTINUATION without a header block to continue");
    }
    if (this.#blockLength + length > this.#maxBlock) {
      throw new Http2Error(
        `header block larger than ${this.#maxBlock} bytes`,
        ErrorCode.ENHANCE_YOUR_CALM,
      );
    }
    this.#frame = new Uint8Array(length);
    this.#frameFilled = 0;
    this.#frameType = type;
    this.#frameFlags = flags;
    this.#frameStream = stream;
    return false;
  }

  #headerFrameDone(out: Uint8Array[]): void {
    let payload = this.#frame;
    this.#frame = new Uint8Array(0);
    this.#frameFilled = 0;
    if (this.#frameType === FrameType.HEADERS) {
      const flags = this.#frameFlags;
      let start = 0;
      let padding = 0;
      if (flags & Flag.PADDED) {
        if (payload.length < 1) throw new Http2Error("PADDED HEADERS without a pad length");
        padding = payload[0];
        start = 1;
      }
      if (flags & Flag.PRIORITY) {
        if (payload.length < start + 5) throw new Http2Error("HEADERS too short for PRIORITY");
        this.#priority = payload.slice(start, start + 5);
        start += 5;
      } else {
        this.#priority = undefined;
      }
      if (start + padding > payload.length) throw new Http2Error("padding longer than HEADERS");
      payload = payload.subarray(start, payload.length - padding);
      this.#blockStream = this.#frameStream;
      this.#blockFlags = flags;
    }
    this.#fragments.push(payload);
    this.#blockLength += payload.length;
    if (this.#frameFlags & Flag.END_HEADERS) this.#blockDone(out);
  }

  #blockDone(out: Uint8Array[]): void {
    const fragments = this.#fragments;
    let block = fragments[0];
    if (fragments.length > 1) {
      block = new Uint8Array(this.#blockLength);
      let at = 0;
      for (const fragment of fragments) {
        block.set(fragment, (at += fragment.length) - fragment.length);
      }
    }
    this.#fragments = [];
    this.#blockLength = 0;
    const fields = this.#decoder.decode(block);
    // Streams a client opens only grow: a block on an older stream is its trailers.
    const stream = this.#blockStream;
    if (stream > this.#highestStream) {
      this.#highestStream = stream;
      if (!fields.some((field) => field.name === AUTHORIZATION)) this.#addAuthorization(fields);
    }
    out.push(headerFrames(stream, this.#blockFlags & Flag.END_STREAM, this.#priority, fields));
  }

  #addAuthorization(fields: HeaderField[]): void {
    const value = this.#authorization?.();
    if (value === undefined || !FIELD_VALUE.test(value)) return;
    fields.push({ name: AUTHORIZATION, value, neverIndexed: true });
    this.added++;
  }
}

/** One header block as HEADERS + CONTINUATION frames no larger than any peer accepts. */
function headerFrames(
  stream: number,
  endStream: number,
  priority: Uint8Array | undefined,
  fields: readonly HeaderField[],
): Uint8Array {
  const block = encodeHeaderBlock(fields);
  const first = Math.min(block.length, MIN_MAX_FRAME_SIZE - (priority?.length ?? 0));
  const rest = block.length - first;
  const continuations = Math.ceil(rest / MIN_MAX_FRAME_SIZE);
  const out = new Uint8Array(
    FRAME_HEADER_SIZE * (1 + continuations) + (priority?.length ?? 0) + block.length,
  );
  const lastFlag = (last: boolean) => last ? Flag.END_HEADERS : 0;
  writeFrameHeader(
    out,
    0,
    first + (priority?.length ?? 0),
    FrameType.HEADERS,
    endStream | (priority ? Flag.PRIORITY : 0) | lastFlag(continuations === 0),
    stream,
  );
  let at = FRAME_HEADER_SIZE;
  if (priority) {
    out.set(priority, at);
    at += priority.length;
  }
  out.set(block.subarray(0, first), at);
  at += first;
  for (let i = 0, from = first; i < continuations; i++) {
    const size = Math.min(MIN_MAX_FRAME_SIZE, block.length - from);
    writeFrameHeader(
      out,
      at,
      size,
      FrameType.CONTINUATION,
      lastFlag(i === continuations - 1),
      stream,
    );
    out.set(block.subarray(from, from + size), at + FRAME_HEADER_SIZE);
    at += FRAME_HEADER_SIZE + size;
    from += size;
  }
  return out;
}
