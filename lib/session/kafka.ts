/**
 * The parent's side of `--kafka forward`: one local Kafka listener per broker,
 * each relaying to an SSH forward to that broker over the run's master. The
 * proxy child asks for brokers (kafka:// locations of FlightInfos) over the
 * pipe; the listeners ask for the brokers a Metadata answer names. Both go
 * through {@link KafkaSession.resolve}, once per broker.
 *
 * `ssh -O forward` succeeds even when the login host cannot reach the broker,
 * so a broker is only given a listener once an ApiVersions round trip through
 * its forward was answered; otherwise it resolves to `undefined` and the
 * child falls back to the Flight server for its endpoints (one line there).
 *
 * The listeners are local TCP ports (librdkafka has no Unix sockets) and keep
 * them across SSH reconnects; each client connection dials the broker's
 * forward (a Unix socket in the run's private directory, or a port) as it is
 * at that moment.
 *
 * @module
 */
import type { SshSupervisor } from "../ssh/supervisor.ts";
import { type LocalAddress, localName } from "../ssh/connection.ts";
import { serveKafkaBroker } from "../kafka/broker_listener.ts";
import type { KafkaBrokerListener, KafkaBrokerStats } from "../kafka/broker_listener.ts";
import { probeKafka } from "../kafka/probe.ts";
import {
  dialableAddress,
  formatNetloc,
  type HostPort,
  isValidHost,
  isValidPort,
} from "../netloc.ts";
import type { Logger } from "../log.ts";

/** Decides whether a Kafka listener serves an accepted connection. */
export type KafkaAdmit = (conn: Deno.TcpConn) => boolean | Promise<boolean>;

/** Options of {@link KafkaSession}. */
export interface KafkaSessionOptions {
  /** The run's SSH master; forwards asked of it are restored after reconnects. */
  ssh: Pick<SshSupervisor, "forward">;
  /** One info line per broker forwarded; warnings. */
  logger: Logger;
  /** Which connections the listeners serve. @default {all} */
  admit?: KafkaAdmit;
  /** Time limit of the ApiVersions probe through a new forward. @default {5000} */
  probeTimeoutMs?: number;
  /**
   * Where the listeners listen: loopback, or, with remote clients allowed,
   * the proxy's listen address (a client there must reach them too).
   * @default {"127.0.0.1"}
   */
  listenHost?: string;
}

/** One broker as the session knows it. */
export interface KafkaBrokerForward {
  /** The broker's `host:port` as advertised. */
  remote: string;
  /** Its local Kafka listener, `127.0.0.1:PORT` (the listen address with remote clients). */
  local: string;
  /** The SSH forward it relays to, `host:port` or a socket path (a port may move on reconnect). */
  forward: string;
  /** How many APIs the broker listed in its probe's ApiVersions answer. */
  apis: number;
  /** The probe's round trip through the forward, in milliseconds. */
  probeMs: number;
  /** The listener's counters. */
  stats(): KafkaBrokerStats;
}

/** A broker that could not be forwarded, and why (for doctor). */
export interface KafkaBrokerRefusal {
  /** The broker's `host:port`. */
  remote: string;
  /** Why: the probe's error. */
  error: string;
}

/** The supervisor key of a broker's forward: kept apart from a Flight forward to the same place. */
export function kafkaForwardKey(netloc: string): string {
  return `kafka ${netloc}`;
}

interface Broker {
  info: Omit<KafkaBrokerForward, "stats">;
  forward: LocalAddress;
  listener: KafkaBrokerListener;
}

/** Connects to a forward's local end: its Unix socket, or its port (a wildcard bind is loopback). */
function dialForward(local: LocalAddress): Promise<Deno.Conn> {
  if (local.path !== undefined) return Deno.connect({ transport: "unix", path: local.path });
  const { host, port } = dialableAddress(local);
  return Deno.connect({ hostname: host, port });
}

/** The Kafka listeners of one run; `await using` closes them. */
export class KafkaSession implements AsyncDisposable {
  readonly #options: KafkaSessionOptions;
  readonly #brokers = new Map<string, Broker>();
  readonly #pending = new Map<string, Promise<HostPort | undefined>>();
  readonly #refused = new Map<string, string>();
  #closed = false;

  /** A session with no brokers yet. */
  constructor(options: KafkaSessionOptions) {
    this.#options = options;
  }

  /**
   * The local listener for `broker`, forwarding and probing it first when new
   * (concurrent asks share one); `undefined` when it cannot be reached through
   * the login host. A refusal is not kept: a later ask tries again.
   */
  resolve(broker: { host: string; port: number }): Promise<HostPort | undefined> {
    // From the remote side (a FlightInfo, a Metadata answer): checked before ssh sees it.
    if (!isValidHost(broker.host) || !isValidPort(broker.port)) {
      return Promise.reject(
        new Error(
          `invalid Kafka broker address ${JSON.stringify(`${broker.host}:${broker.port}`)}`,
        ),
      );
    }
    const netloc = formatNetloc(broker.host.toLowerCase(), broker.port);
    const known = this.#brokers.get(netloc);
    if (known) return Promise.resolve(known.listener.address);
    let pending = this.#pending.get(netloc);
    if (!pending) {
      pending = this.#open(netloc, broker.host, broker.port)
        .finally(() => this.#pending.delete(netloc));
      this.#pending.set(netloc, pending);
    }
    return pending;
  }

  /** Every broker forwarded so far. */
  get brokers(): KafkaBrokerForward[] {
    return [...this.#brokers.values()].map(({ info, listener }) => ({
      ...info,
      stats: () => listener.stats(),
    }));
  }

  /** Brokers whose last ask failed, and why. */
  get refused(): KafkaBrokerRefusal[] {
    return [...this.#refused].map(([remote, error]) => ({ remote, error }));
  }

  /**
   * A forward the supervisor restored on another port after a reconnect;
   * whether `key` was one of ours.
   */
  moved(key: string | undefined, local: LocalAddress): boolean {
    for (const [netloc, broker] of this.#brokers) {
      if (kafkaForwardKey(netloc) !== key) continue;
      broker.forward = local;
      broker.info.forward = localName(local);
      return true;
    }
    return false;
  }

  async #open(netloc: string, host: string, port: number): Promise<HostPort | undefined> {
    const { ssh, logger } = this.#options;
    let forward: LocalAddress;
    let apis: number;
    const started = performance.now();
    try {
      forward = await ssh.forward(host, port, { key: kafkaForwardKey(netloc) });
      using conn = await dialForward(forward);
      apis = (await probeKafka(conn, { timeoutMs: this.#options.probeTimeoutMs })).apis.size;
    } catch (error) {
      const message = (error as Error).message;
      this.#refused.set(netloc, message);
      logger.debug(`Kafka broker ${netloc}: no ApiVersions answer through its forward: ${message}`);
      return undefined;
    }
    const probeMs = performance.now() - started;
    if (this.#closed) return undefined;
    this.#refused.delete(netloc);
    const broker: Broker = {
      forward,
      info: {
        remote: netloc,
        local: "",
        forward: localName(forward),
        apis,
        probeMs,
      },
      listener: serveKafkaBroker({
        listen: { hostname: this.#options.listenHost ?? "127.0.0.1" },
        dialUpstream: () => dialForward(broker.forward),
        // Brokers a Metadata answer names get listeners of their own, on demand.
        mapBroker: async (named) => {
          const local = await this.resolve(named);
          if (!local) throw new Error(`Kafka broker ${named.host}:${named.port} cannot be reached`);
          return local;
        },
        admit: this.#options.admit,
        name: netloc,
        logger,
      }),
    };
    const local = broker.listener.address;
    broker.info.local = formatNetloc(local.host, local.port);
    this.#brokers.set(netloc, broker);
    logger.info(`forwarding ${broker.info.local} → ${netloc} (Kafka)`);
    return local;
  }

  /** Closes every listener (their SSH forwards end with the master). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#brokers.values()].map(({ listener }) => listener.close()));
    this.#brokers.clear();
  }

  /** Same as {@link KafkaSession.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
