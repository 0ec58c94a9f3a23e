/**
 * What goes wrong on an HTTP/2 connection the relay reads: a value that names
 * the RFC 9113 error code to send in a GOAWAY.
 *
 * @module
 */

/** RFC 9113 §7 error codes the relay sends. */
export const ErrorCode = {
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FRAME_SIZE_ERROR: 0x6,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

/** A connection error: the connection cannot go on. */
export class Http2Error extends Error {
  /** The code to put in the GOAWAY. */
  readonly code: number;

  constructor(message: string, code: number = ErrorCode.PROTOCOL_ERROR) {
    super(message);
    this.name = "Http2Error";
    this.code = code;
  }
}

/** A header block that does not decode (RFC 7541): COMPRESSION_ERROR. */
export class CompressionError extends Http2Error {
  constructor(message: string) {
    super(`HPACK: ${message}`, ErrorCode.COMPRESSION_ERROR);
    this.name = "CompressionError";
  }
}
