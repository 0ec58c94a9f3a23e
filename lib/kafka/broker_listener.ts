/**
 * A local TCP listener standing for one Kafka broker: each client connection
 * it admits gets its own upstream connection (from `dialUpstream`, e.g. an SSH
 * forward) and is relayed Kafka-aware (`relay.ts`), so that answers naming
 * brokers name the addresses `mapBroker` gives instead.
 *
 * The listener outlives its upstream: when a dial fails (the SSH connection is
 * down, the broker restarts) only that client connection is closed, and the
 * port stays the same for the client's next try.
 *
 * @example
 * ```ts
 * import { serveKafkaBroker } from "./broker_listener.ts";
 *
 * await using broker = serveKafkaBroker({
 *   dialUpstream: () => Deno.connect({ hostname: "127.0.0.1", port: 40001 }),
 *   mapBroker: () => Promise.resolve({ host: "127.0.0.1", port: broker.address.port }),
 * });
 * console.log(`bootstrap.servers=127.0.0.1:${broker.address.port}`);
 * ```
 *
 * @module
 */
import { delay } from "../async.ts";
import { formatNetloc, type HostPort } from "../netloc.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { BrokerAddressMapper } from "./rewrite.ts";
import { relayKafka } from "./relay.ts";

/** Options of {@link serveKafkaBroker}. */
export interface KafkaBrokerListenerOptions {
  /** Local address to listen on. @default {127.0.0.1, a free port} */
  listen?: { hostname?: string; port?: number };
  /** Opens a connection to the broker (through the SSH forward). */
  dialUpstream: () => Promise<Deno.Conn>;
  /** Where the client should reach each broker an answer names. */
  mapBroker: BrokerAddressMapper;
  /** Whether to serve an accepted connection (e.g. only the proxy's own uid). @default {all} */
  admit?: (conn: Deno.TcpConn) => boolean | Promise<boolean>;
  /** The broker's name in log lines (its advertised `host:port`). @default {the listen address} */
  name?: string;
  /** Where lines go. @default {silentLogger} */
  logger?: Logger;
  /** Most bytes of one rewritten answer held in memory. @default {4 MiB} */
  maxHeldBytes?: number;
  /** Read buffer per direction of each connection. @default {256 KiB} */
  bufferBytes?: number;
}

/** What a {@link KafkaBrokerListener} has done, for `status`. */
export interface KafkaBrokerStats {
  /** Client connections served (admitted and dialled upstream). */
  connections: number;
  /** Of those, still open. */
  active: number;
  /** Connections `admit` turned away. */
  refused: number;
  /** Connections closed because the upstream could not be dialled. */
  dialFailures: number;
  /** Connections closed because of a frame the relay could not follow. */
  protocolErrors: number;
  /** Bytes from clients to the broker. */
  bytesUp: number;
  /** Bytes from the broker to clients. */
  bytesDown: number;
  /** The largest answer relayed, in bytes. */
  largestAnswer: number;
  /** Requests relayed, by API and version (`"Fetch v15": 12`): what clients negotiated. */
  requests: Record<string, number>;
}

/** A listener from {@link serveKafkaBroker}; `await using` closes it and its connections. */
export class KafkaBrokerListener implements AsyncDisposable {
  /** Where it listens (127.0.0.1 and the port taken). */
  readonly address: HostPort;
  readonly #listener: Deno.TcpListener;
  readonly #options: KafkaBrokerListenerOptions;
  readonly #logger: Logger;
  readonly #name: string;
  readonly #open = new Set<Deno.Conn>();
  readonly #relays = new Set<Promise<void>>();
  readonly #stats: KafkaBrokerStats = {
    connections: 0,
    active: 0,
    refused: 0,
    dialFailures: 0,
    protocolErrors: 0,
    bytesUp: 0,
    bytesDown: 0,
    largestAnswer: 0,
    requests: {},
  };
  readonly #accepting: Promise<void>;
  #upstreamDown = false;
  #closed = false;

  /** Listens at once; see {@link serveKafkaBroker}. */
  constructor(options: KafkaBrokerListenerOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    const { hostname = "127.0.0.1", port = 0 } = options.listen ?? {};
    this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    this.address = { host: this.#listener.addr.hostname, port: this.#listener.addr.port };
    this.#name = options.name ?? formatNetloc(this.address.host, this.address.port);
    this.#accepting = this.#accept();
  }

  /** A copy of the counters. */
  stats(): KafkaBrokerStats {
    return { ...this.#stats, requests: { ...this.#stats.requests } };
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, say: keep the port, try again shortly.
        this.#logger.warn(`kafka ${this.#name}: accepting a connection failed: ${error}`);
        await delay(100);
        continue;
      }
      const relay = this.#serve(conn).finally(() => this.#relays.delete(relay));
      this.#relays.add(relay);
    }
  }

  /**
   * Where `client` is told to reach a broker: its listener's address, or, for
   * a listener on every address (remote clients allowed), the address this
   * client dialled, which reaches every listener of the run.
   */
  #reachableFor(client: Deno.TcpConn): BrokerAddressMapper {
    const dialled = client.localAddr.hostname.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
    return async (broker) => {
      const local = await this.#options.mapBroker(broker);
      return local.host === "0.0.0.0" || local.host === "::" ? { ...local, host: dialled } : local;
    };
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#open.add(client);
    let upstream: Deno.Conn | undefined;
    try {
      if (!await this.#admitted(client)) return;
      upstream = await this.#dial();
      if (!upstream || this.#closed) return;
      this.#open.add(upstream);
      client.setNoDelay(true);
      this.#stats.connections++;
      this.#stats.active++;
      const peer = formatNetloc(client.remoteAddr.hostname, client.remoteAddr.port);
      this.#logger.debug(`kafka ${this.#name}: client ${peer} connected`);
      const result = await relayKafka(client, upstream, {
        mapBroker: this.#reachableFor(client),
        maxHeldBytes: this.#options.maxHeldBytes,
        bufferBytes: this.#options.bufferBytes,
        onBytes: (direction, n) => {
          if (direction === "up") this.#stats.bytesUp += n;
          else this.#stats.bytesDown += n;
        },
        onRequest: (api, version) => {
          const key = `${api.name} v${version}`;
          this.#stats.requests[key] = (this.#stats.requests[key] ?? 0) + 1;
        },
        onAnswer: (bytes) => {
          if (bytes > this.#stats.largestAnswer) this.#stats.largestAnswer = bytes;
        },
      });
      this.#stats.active--;
      if (result.error && !this.#closed) {
        this.#stats.protocolErrors++;
        this.#logger.warn(
          `kafka ${this.#name}: closed the connection of ${peer}: ${result.error.message}`,
        );
      } else {
        const why = result.disconnect ? `: ${result.disconnect}` : "";
        this.#logger.debug(`kafka ${this.#name}: client ${peer} disconnected${why}`);
      }
    } finally {
      for (const conn of [client, upstream]) {
        if (!conn) continue;
        this.#open.delete(conn);
        try {
          conn.close();
        } catch { /* the relay closed it */ }
      }
    }
  }

  async #admitted(client: Deno.TcpConn): Promise<boolean> {
    const admit = this.#options.admit;
    let ok: boolean;
    try {
      ok = admit ? await admit(client) : true;
    } catch (error) {
      this.#logger.warn(`kafka ${this.#name}: refused a connection: ${(error as Error).message}`);
      ok = false;
    }
    if (!ok) this.#stats.refused++;
    return ok;
  }

  /** The upstream connection; undefined (said once per outage) when it cannot be had. */
  async #dial(): Promise<Deno.Conn | undefined> {
    try {
      const upstream = await this.#options.dialUpstream();
      if ("setNoDelay" in upstream) (upstream as Deno.TcpConn).setNoDelay(true);
      if (this.#upstreamDown) this.#logger.info(`kafka ${this.#name}: reachable again`);
      this.#upstreamDown = false;
      return upstream;
    } catch (error) {
      this.#stats.dialFailures++;
      const message = `kafka ${this.#name}: cannot reach the broker: ${(error as Error).message}`;
      if (this.#upstreamDown) this.#logger.debug(message);
      else this.#logger.warn(message);
      this.#upstreamDown = true;
      return undefined;
    }
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* closed meanwhile */ }
    }
    await this.#accepting;
    await Promise.all(this.#relays);
  }

  /** Same as {@link KafkaBrokerListener.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Listens (127.0.0.1, a free port unless given) and relays each admitted client
 * connection to its own `dialUpstream()` connection, rewriting broker addresses.
 */
export function serveKafkaBroker(options: KafkaBrokerListenerOptions): KafkaBrokerListener {
  return new KafkaBrokerListener(options);
}
