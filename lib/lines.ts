/**
 * Newline-delimited text from a byte stream: the JSON-lines channels between our
 * processes (the proxy child, the mock deployment) speak it.
 *
 * @module
 */

/**
 * Yields each line of `stream` without its newline; a last line with no newline
 * is yielded too.
 *
 * @example
 * ```ts
 * for await (const line of readLines(Deno.stdin.readable)) console.log(line);
 * ```
 */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered.trim()) yield buffered;
}
