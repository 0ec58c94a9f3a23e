/**
 * Reading a Kafka connection frame by frame with one fixed buffer: look at the
 * start of a frame without consuming it, take a bounded number of bytes out, or
 * pass a frame's bytes on to a writer in buffer-sized pieces, so a frame of any
 * size crosses with bounded memory.
 *
 * @example
 * ```ts
 * import { ConnReader, writeAll } from "./conn_reader.ts";
 *
 * declare const client: Deno.Conn, upstream: Deno.Conn;
 * const reader = new ConnReader(client);
 * if (await reader.ensure(4)) {
 *   const size = new DataView(reader.peek().buffer, reader.peek().byteOffset).getInt32(0);
 *   await reader.pipe(4 + size, (chunk) => writeAll(upstream, chunk));
 * }
 * ```
 *
 * @module
 */
import { KafkaTruncatedError } from "./codec.ts";

/** Writes all of `bytes` to `conn` (a write may take only part). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** A buffered reader of one connection; see the module doc. */
export class ConnReader {
  readonly #conn: Deno.Conn;
  readonly #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  /** Bytes read from the connection so far. */
  bytesRead = 0;

  readonly #name: string;

  /** Reads `conn` through a buffer of `capacity` bytes; `name` says whose it is in errors. */
  constructor(conn: Deno.Conn, capacity = 256 * 1024, name = "peer") {
    this.#conn = conn;
    this.#buffer = new Uint8Array(capacity);
    this.#name = name;
  }

  #truncated(): KafkaTruncatedError {
    return new KafkaTruncatedError(`${this.#name} closed the connection inside a frame`);
  }

  /** The buffer's size: the most {@link ConnReader.ensure} can hold. */
  get capacity(): number {
    return this.#buffer.length;
  }

  /** The bytes buffered and not yet consumed (valid until the next call). */
  peek(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#end);
  }

  /** Drops `n` buffered bytes. */
  consume(n: number): void {
    this.#start += n;
  }

  async #fill(): Promise<number | null> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    else if (this.#start > 0 && this.#buffer.length - this.#end < this.#buffer.length / 4) {
      // Move the partial frame to the front, so the next read gets a large space.
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n !== null) {
      this.#end += n;
      this.bytesRead += n;
    }
    return n;
  }

  /**
   * Waits until `n` (≤ capacity) bytes are buffered. False when the connection
   * ended cleanly, with nothing buffered; a {@link KafkaTruncatedError} when it
   * ended inside a frame.
   */
  async ensure(n: number): Promise<boolean> {
    if (n > this.#buffer.length) throw new RangeError(`${n} bytes exceed the buffer`);
    while (this.#end - this.#start < n) {
      if (await this.#fill() === null) {
        if (this.#start === this.#end) return false;
        throw this.#truncated();
      }
    }
    return true;
  }

  /** Reads more bytes into the buffer, inside a frame: its end is a truncation. */
  async more(): Promise<void> {
    if (this.#end - this.#start >= this.#buffer.length) return;
    if (await this.#fill() === null) throw this.#truncated();
  }

  /** Takes the next `n` bytes out as a new array (any size: the caller bounds it). */
  async take(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let have = 0;
    await this.pipe(n, (chunk) => {
      out.set(chunk, have);
      have += chunk.length;
      return Promise.resolve();
    });
    return out;
  }

  /**
   * Passes the next `n` bytes to `write`, a buffer's worth at a time; a
   * {@link KafkaTruncatedError} if the connection ends first.
   */
  async pipe(n: number, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    while (n > 0) {
      if (this.#start === this.#end && await this.#fill() === null) {
        throw this.#truncated();
      }
      const length = Math.min(n, this.#end - this.#start);
      const chunk = this.#buffer.subarray(this.#start, this.#start + length);
      this.#start += length;
      n -= length;
      await write(chunk);
    }
  }
}
