/**
 * The header relays of one proxy run: one in front of each data-server (and
 * reuse-connection) forward's Unix socket, on a socket beside it, so that
 * clients' calls there carry the user's token.
 *
 * @example
 * ```ts
 * import { TokenRelays } from "./token_relays.ts";
 *
 * await using relays = new TokenRelays(() => "Bearer …");
 * relays.front("/tmp/arrakis-x/f-1a2b3c4d", "data-a:40001"); // "/tmp/arrakis-x/f-1a2b3c4d.h2"
 * ```
 *
 * @module
 */
import { type Logger, silentLogger } from "../log.ts";
import { type HeaderRelayServer, serveHeaderRelay } from "./relay.ts";

/** See the module documentation. */
export class TokenRelays implements AsyncDisposable {
  #authorization: () => string | undefined;
  #logger: Logger;
  #relays = new Map<string, { path: string; server: HeaderRelayServer }>();

  /** `authorization` gives the header's value (`Bearer …`) per request. */
  constructor(authorization: () => string | undefined, logger: Logger = silentLogger) {
    this.#authorization = authorization;
    this.#logger = logger;
  }

  /**
   * The socket of a relay dialling the forward at `forwardPath` (one per
   * forward; asking again answers the same); `name` is the remote, for log lines.
   */
  front(forwardPath: string, name: string): string {
    const known = this.#relays.get(forwardPath);
    if (known) return known.path;
    const path = `${forwardPath}.h2`;
    const server = serveHeaderRelay(Deno.listen({ transport: "unix", path }), {
      dial: () => Deno.connect({ transport: "unix", path: forwardPath }),
      authorization: this.#authorization,
      logger: this.#logger,
      name,
    });
    this.#relays.set(forwardPath, { path, server });
    return path;
  }

  /** Stops every relay. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([...this.#relays.values()].map(({ server }) => server.close()));
    this.#relays.clear();
  }
}
