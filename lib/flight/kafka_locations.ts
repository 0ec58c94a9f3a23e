/**
 * What the proxy does with `kafka://host:port` locations: an Arrakis server
 * whose scope map has `direct_read: kafka://…` answers every Stream with
 * endpoints `[kafka://B1, kafka://B2, <Flight fallback>]`, and the real client
 * looks only at `locations[0]`: a kafka one makes it read from the brokers
 * (bootstrap.servers = the endpoint's kafka `host:port`s).
 *
 * Modes (`--kafka MODE`):
 * - `forward` (the default): each broker is reached through a local Kafka
 *   listener the parent opens ({@link KafkaResolver}); its locations become
 *   `kafka://127.0.0.1:PORT`. An endpoint with a broker that cannot be
 *   forwarded falls back to `flight`, with one line.
 * - `flight`: kafka locations move behind the Flight fallback of their
 *   endpoint, so the client streams through the Arrakis server.
 * - `direct`: kafka locations pass unchanged, for clients that reach the
 *   brokers themselves.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { formatNetloc, isIPv6Literal, isValidHost, isValidPort, unbracket } from "../netloc.ts";

/** What the proxy does with kafka:// locations. */
export type KafkaMode = "forward" | "flight" | "direct";

/** Every {@link KafkaMode}, the default first. */
export const KAFKA_MODES: readonly KafkaMode[] = ["forward", "flight", "direct"];

/** Parses a `--kafka` value; a wrong one is a one-line {@link UsageError}. */
export function parseKafkaMode(text: string): KafkaMode {
  const mode = KAFKA_MODES.find((mode) => mode === text);
  if (mode === undefined) {
    throw new UsageError(
      `--kafka ${JSON.stringify(text)}: expected one of ${KAFKA_MODES.join(", ")}`,
    );
  }
  return mode;
}

/** A Kafka broker's address. */
export interface KafkaAddress {
  /** Host as written, an IPv6 literal without brackets. */
  host: string;
  /** TCP port. */
  port: number;
}

/**
 * Opens a way to a broker (a local Kafka listener over the SSH connection)
 * and answers where the client reaches it; `undefined` when it cannot (the
 * login host cannot reach the broker), so its endpoints fall back to the
 * Flight server. The parent provides it.
 */
export type KafkaResolver = (broker: KafkaAddress) => Promise<KafkaAddress | undefined>;

/** A parsed `kafka://host:port` location, with its canonical `host:port` key. */
export interface KafkaLocation extends KafkaAddress {
  /** `host:port` with the host lowercased (IPv6 bracketed): the broker's key. */
  netloc: string;
}

const KAFKA_RE = /^kafka:\/\/(\[[0-9A-Fa-f:.]+\]|[^/?#:@\[\]\s]+):(\d+)\/?$/i;

/**
 * Parses `kafka://host:port` (as arrakis-server writes one per broker);
 * `undefined` for any other URI, or a kafka one with more than a host:port.
 */
export function parseKafkaLocation(uri: string): KafkaLocation | undefined {
  const match = KAFKA_RE.exec(uri);
  if (!match) return undefined;
  const host = unbracket(match[1]);
  const port = Number(match[2]);
  if (!isValidHost(host) || !isValidPort(port)) return undefined;
  return { host, port, netloc: formatNetloc(host.toLowerCase(), port) };
}

/** Whether `uri` is a kafka:// location of any form (the scheme decides, as for the client). */
export function isKafkaUri(uri: string): boolean {
  return /^kafka:/i.test(uri);
}

/**
 * The `kafka://host:port` a client is given for a local listener. The client
 * builds bootstrap.servers as `hostname:port`, which breaks on an IPv6
 * literal: the IPv6 loopback is written 127.0.0.1 (the listeners listen on
 * both), any other IPv6 literal cannot be written (`undefined`).
 */
export function kafkaUri(local: KafkaAddress): string | undefined {
  if (isIPv6Literal(local.host)) {
    return local.host === "::1" ? `kafka://127.0.0.1:${local.port}` : undefined;
  }
  return `kafka://${local.host}:${local.port}`;
}

/** Options of {@link KafkaLocations}. */
export interface KafkaLocationsOptions {
  /**
   * What to do with kafka:// locations.
   * @default {"forward"}
   */
  mode?: KafkaMode;
  /** Required by `forward`; without one every broker falls back to `flight`. */
  resolver?: KafkaResolver;
  /** The one line said when a broker cannot be forwarded. */
  warn?: (message: string) => void;
}

/**
 * The mode and, for `forward`, the brokers forwarded so far: broker → local
 * listener, asked of the resolver once per broker (concurrent asks share one;
 * a refusal is not remembered, so a later FlightInfo asks again).
 */
export class KafkaLocations {
  /** The mode in force. */
  readonly mode: KafkaMode;
  #resolver?: KafkaResolver;
  #warn: (message: string) => void;
  #local = new Map<string, string>();
  #remote = new Map<string, string>();
  #pending = new Map<string, Promise<string | undefined>>();
  #refused = new Set<string>();

  /** The mode and resolver of a proxy run. */
  constructor(options: KafkaLocationsOptions = {}) {
    this.mode = options.mode ?? "forward";
    this.#resolver = options.resolver;
    this.#warn = options.warn ?? (() => {});
  }

  /** The local `kafka://…` URI for a broker already forwarded. */
  local(broker: KafkaLocation): string | undefined {
    return this.#local.get(broker.netloc);
  }

  /**
   * The broker's `kafka://host:port` behind a local URI we handed out; to a
   * remote client (`clientHost`, the host it dialled) it was named by that host.
   */
  remote(localUri: string, clientHost?: string): string | undefined {
    const known = this.#remote.get(localUri.toLowerCase());
    if (known !== undefined || clientHost === undefined) return known;
    const local = parseKafkaLocation(localUri);
    if (local?.host.toLowerCase() !== clientHost.toLowerCase()) return undefined;
    for (const [uri, remote] of this.#remote) {
      if (parseKafkaLocation(uri)?.port === local.port) return remote;
    }
    return undefined;
  }

  /**
   * The local `kafka://…` URI for `broker`, forwarding it first when new;
   * `undefined` when it cannot be forwarded (said once, until it can again).
   */
  resolve(broker: KafkaLocation): Promise<string | undefined> {
    const known = this.#local.get(broker.netloc);
    if (known !== undefined) return Promise.resolve(known);
    const pending = this.#pending.get(broker.netloc);
    if (pending) return pending;
    const promise = this.#ask(broker).finally(() => this.#pending.delete(broker.netloc));
    this.#pending.set(broker.netloc, promise);
    return promise;
  }

  async #ask(broker: KafkaLocation): Promise<string | undefined> {
    let reason = "no way to forward Kafka brokers";
    let uri: string | undefined;
    if (this.#resolver) {
      try {
        const local = await this.#resolver({ host: broker.host, port: broker.port });
        uri = local === undefined ? undefined : kafkaUri(local);
        reason = local === undefined
          ? "the login host cannot reach it"
          : `its listener ${
            formatNetloc(local.host, local.port)
          } cannot be named to a Kafka client`;
      } catch (error) {
        reason = error instanceof Error ? error.message : String(error);
      }
    }
    if (uri === undefined) {
      if (!this.#refused.has(broker.netloc)) {
        this.#refused.add(broker.netloc);
        this.#warn(
          `Kafka broker ${broker.netloc} cannot be forwarded (${reason}): ` +
            `its data streams through the Arrakis server instead`,
        );
      }
      return undefined;
    }
    this.#refused.delete(broker.netloc);
    this.#local.set(broker.netloc, uri);
    this.#remote.set(uri.toLowerCase(), `kafka://${broker.netloc}`);
    return uri;
  }
}
