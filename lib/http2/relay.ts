/**
 * A header relay: an HTTP/2 (gRPC, prior knowledge) connection from a client
 * passed on to an upstream, adding `authorization` to requests that carry
 * none. Client-to-server bytes go through a {@link RequestRewriter}; server-to-client
 * bytes are copied as they are. Each direction uses one buffer, reused for
 * every read, so memory stays bounded whatever the stream size.
 *
 * @example
 * ```ts
 * import { serveHeaderRelay } from "./relay.ts";
 *
 * await using relay = serveHeaderRelay(Deno.listen({ transport: "unix", path: "/tmp/x/relay" }), {
 *   dial: () => Deno.connect({ transport: "unix", path: "/tmp/x/forward" }),
 *   authorization: () => "Bearer …",
 * });
 * ```
 *
 * @module
 */
import { type Logger, silentLogger } from "../log.ts";
import { RequestRewriter } from "./request_rewriter.ts";
import { concatBytes } from "../flight/wire.ts";
import { closeQuietly, copyConnection, noDelay, PIPE_BUFFER, writeAll } from "../net/pipe.ts";
import { type ConnectionServer, serveConnections } from "../net/serve_connections.ts";

/** Options of {@link relayHttp2} and {@link serveHeaderRelay}. */
export interface HeaderRelayOptions {
  /** Opens the upstream connection (an SSH forward), once per client connection. */
  dial: () => Promise<Deno.Conn>;
  /**
   * The `authorization` value to add (`Bearer …`), read per request; undefined adds none.
   * Omitted: request headers pass byte for byte (no HPACK decoding and re-encoding).
   */
  authorization?: () => string | undefined;
  /** One line per refused or failed connection (never a header value). */
  logger?: Logger;
  /** What the log lines call the upstream, e.g. `data-a:40001`. @default {"upstream"} */
  name?: string;
  /** Largest request header block accepted. @default {262144} */
  maxHeaderBlockBytes?: number;
  /** Leave out the client's GOAWAY frames (in front of a grpc-js server under Deno). @default {false} */
  dropGoaway?: boolean;
}

// Server-to-client carries the bulk data (PIPE_BUFFER, large); requests are small.
const UPSTREAM_BUFFER = 64 * 1024;

/** Relays one client connection until either side ends it; closes both. */
export async function relayHttp2(client: Deno.Conn, options: HeaderRelayOptions): Promise<void> {
  const logger = options.logger ?? silentLogger;
  const name = options.name ?? "upstream";
  let upstream: Deno.Conn;
  try {
    upstream = await options.dial();
  } catch (error) {
    logger.warn(`header relay: cannot reach ${name}: ${(error as Error).message}`);
    closeQuietly(client);
    return;
  }
  noDelay(client);
  noDelay(upstream);
  const rewriter = new RequestRewriter({
    authorization: options.authorization,
    maxHeaderBlockBytes: options.maxHeaderBlockBytes,
    dropGoaway: options.dropGoaway,
  });
  const up = (async () => {
    const buffer = new Uint8Array(UPSTREAM_BUFFER);
    for (;;) {
      const n = await client.read(buffer);
      if (n === null) break;
      // One write per read: each write is a wake-up of the reader on the other side.
      const pieces = rewriter.push(buffer.subarray(0, n));
      if (pieces.length > 0) {
        await writeAll(upstream, pieces.length === 1 ? pieces[0] : concatBytes(pieces));
      }
      if (rewriter.error) {
        logger.warn(`header relay to ${name}: connection closed: ${rewriter.error.message}`);
        break;
      }
    }
  })();
  const down = copyConnection(upstream, client, PIPE_BUFFER);
  // Whichever direction ends first (or fails) ends the connection.
  await Promise.race([up, down]).catch(() => undefined);
  closeQuietly(client);
  closeQuietly(upstream);
  await Promise.allSettled([up, down]);
}

/** What {@link serveHeaderRelay} answers: stop it with `close` or `await using`. */
export type HeaderRelayServer = ConnectionServer;

/** Serves {@link relayHttp2} on every connection `listener` accepts. */
export function serveHeaderRelay(
  listener: Deno.Listener,
  options: HeaderRelayOptions,
): HeaderRelayServer {
  return serveConnections(listener, (conn) => relayHttp2(conn, options));
}
