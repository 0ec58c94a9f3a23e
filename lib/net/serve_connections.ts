/**
 * Serving every connection a listener accepts, and stopping it all at once:
 * the accept loop of the guarded client port and of the header relays.
 *
 * @example
 * ```ts
 * import { serveConnections } from "./serve_connections.ts";
 *
 * await using server = serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
 *   conn.close();
 * });
 * console.log(server.addr);
 * ```
 *
 * @module
 */
import { closeQuietly } from "./pipe.ts";

/** What {@link serveConnections} answers; stop it with `close` or `await using`. */
export interface ConnectionServer<A extends Deno.Addr = Deno.Addr> extends AsyncDisposable {
  /** Where it listens. */
  readonly addr: A;
  /** Stops listening, closes every connection still open and waits for their handlers. */
  close(): Promise<void>;
}

/**
 * Runs `handle` on each connection `listener` accepts, until closed. A handler
 * owns its connection (and whatever it opens for it): closing the connection
 * must end the handler.
 */
export function serveConnections<C extends Deno.Conn, A extends Deno.Addr>(
  listener: Deno.Listener<C, A>,
  handle: (conn: C) => Promise<void>,
): ConnectionServer<A> {
  const open = new Set<C>();
  const handlers = new Set<Promise<void>>();
  const accepting = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      const handler = handle(conn).catch(() => undefined).finally(() => {
        open.delete(conn);
        handlers.delete(handler);
      });
      handlers.add(handler);
    }
  })().catch(() => undefined);
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closeQuietly(listener);
      await accepting;
      for (const conn of open) closeQuietly(conn);
      await Promise.allSettled([...handlers]);
    })();
  return { addr: listener.addr, close, [Symbol.asyncDispose]: close };
}
