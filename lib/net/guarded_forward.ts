/**
 * The proxy's client port, kept to its user: a TCP listener whose connections
 * are admitted only from the proxy's own uid (`guard.ts`) and then relayed,
 * frame by frame but unchanged except that the client's GOAWAY is left out, to
 * a Unix socket in the private directory, where the gRPC server listens.
 *
 * @example
 * ```ts
 * import { serveGuardedForward } from "./guarded_forward.ts";
 *
 * await using port = serveGuardedForward(Deno.listen({ hostname: "127.0.0.1", port: 31206 }), {
 *   dial: () => Deno.connect({ transport: "unix", path: "/tmp/arrakis-x/proxy" }),
 * });
 * ```
 *
 * @module
 */
import { type Logger, silentLogger } from "../log.ts";
import { UserError } from "../errors.ts";
import { formatNetloc, type HostPort } from "../netloc.ts";
import { admitsOwnUser } from "./guard.ts";
import { relayHttp2 } from "../http2/relay.ts";
import { type ConnectionServer, serveConnections } from "./serve_connections.ts";

/** Options of {@link serveGuardedForward}. */
export interface GuardedForwardOptions {
  /** Where an admitted connection goes. */
  dial: () => Promise<Deno.Conn>;
  /** One line per refused connection or failed dial. */
  logger?: Logger;
}

/** What {@link serveGuardedForward} answers (its TCP address); stop it with `close` or `await using`. */
export type GuardedForward = ConnectionServer<Deno.NetAddr>;

/** Accepts on `listener`, admits (see the module doc) and pipes to `dial()`. */
export function serveGuardedForward(
  listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>,
  options: GuardedForwardOptions,
): GuardedForward {
  const logger = options.logger ?? silentLogger;
  return serveConnections(listener, async (conn) => {
    if (!await admitsOwnUser(conn, logger)) return;
    // Frame by frame, so that the client's GOAWAY never reaches the grpc-js
    // child: Deno's nghttp2 aborts on one after many streams (denoland/deno#36788).
    // Closing conn (at close) ends the relay, which closes the child's end too.
    // No authorization option: header blocks pass byte for byte, not re-encoded.
    await relayHttp2(conn, {
      dial: options.dial,
      dropGoaway: true,
      logger,
      name: "the proxy process",
    });
  });
}

/**
 * The client port at `listen`, guarded (see {@link serveGuardedForward}).
 * `localhost` gets both loopback addresses on one port, as grpc-js bound them:
 * a port left free on ::1 is one another user could take, and clients trying
 * ::1 first would reach them.
 *
 * @throws {UserError} when the port (or, for localhost, the other address's) is taken.
 */
export function serveGuardedPort(listen: HostPort, options: GuardedForwardOptions): GuardedForward {
  const first = serveGuardedForward(listenOrSay(listen.host, listen.port), options);
  if (listen.host.toLowerCase() !== "localhost") return first;
  const other = first.addr.hostname.includes(":") ? "127.0.0.1" : "::1";
  let second: GuardedForward;
  try {
    second = serveGuardedForward(listenOrSay(other, first.addr.port), options);
  } catch (error) {
    if (!(error instanceof UserError)) return first; // no such address family here: nothing to take
    void first.close();
    throw new UserError(
      `${error.message}, and clients of localhost may reach whoever holds it; choose another --listen`,
    );
  }
  const close = async () => {
    await Promise.all([first.close(), second.close()]);
  };
  return { addr: first.addr, close, [Symbol.asyncDispose]: close };
}

/** A TCP listener on `host:port`; a port in use is one {@link UserError} line. */
function listenOrSay(host: string, port: number): Deno.Listener<Deno.TcpConn, Deno.NetAddr> {
  try {
    return Deno.listen({ hostname: host, port });
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    throw new UserError(`cannot listen on ${formatNetloc(host, port)}: address already in use`);
  }
}
