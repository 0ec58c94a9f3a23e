/**
 * Rewrites the location URIs inside encoded Flight messages without decoding
 * anything else: only the Location, FlightEndpoint and FlightInfo fields on the
 * path to a URI are rebuilt; every other byte, unknown fields included, is copied
 * as it arrived. A message with nothing to change comes back as the same buffer.
 *
 * @module
 */
import { concatBytes, encodeLenField, scanFields, WireType } from "./wire.ts";
import {
  classifyLocation,
  isSocketPath,
  localUrl,
  type LocationMap,
  REUSE_CONNECTION,
  unixLocation,
  unixPathOf,
  withNetloc,
} from "./locations.ts";
import { formatNetloc, parseNetloc } from "../netloc.ts";
import { isKafkaUri, type KafkaLocations, parseKafkaLocation } from "./kafka_locations.ts";

/** Marks the field that holds the URI itself in a {@link MessageShape}. */
export const URI = "uri";

/** Where location URIs sit in a message: field number → nested shape, or the URI itself. */
export interface MessageShape {
  /** A field number: the nested message's shape, or {@link URI} for the URI field. */
  readonly [field: number]: MessageShape | typeof URI;
}

const LOCATION: MessageShape = { 1: URI };
const FLIGHT_ENDPOINT: MessageShape = { 2: LOCATION };
const FLIGHT_INFO: MessageShape = { 3: FLIGHT_ENDPOINT };

/** The messages that carry locations, by their protobuf name. */
export const Shapes = {
  Location: LOCATION,
  FlightEndpoint: FLIGHT_ENDPOINT,
  FlightInfo: FLIGHT_INFO,
  PollInfo: { 1: FLIGHT_INFO },
  CancelFlightInfoRequest: { 1: FLIGHT_INFO },
  RenewFlightEndpointRequest: { 1: FLIGHT_ENDPOINT },
} as const satisfies Record<string, MessageShape>;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lenient = new TextDecoder("utf-8");
const encoder = new TextEncoder();

/** Calls `visit` with the raw bytes of every location URI, in order. */
function forEachUri(
  bytes: Uint8Array,
  shape: MessageShape,
  visit: (value: Uint8Array) => void,
): void {
  bytes = plainView(bytes);
  const walk = (start: number, end: number, shape: MessageShape) =>
    scanFields(bytes, start, end, (number, wireType, _start, valueStart, fieldEnd) => {
      const inner = shape[number];
      if (inner === undefined || wireType !== WireType.LEN) return;
      if (inner === URI) visit(bytes.subarray(valueStart, fieldEnd));
      else walk(valueStart, fieldEnd, inner);
    });
  walk(0, bytes.length, shape);
}

// A FlightInfo names a few servers thousands of times: key URIs by their bytes
// cheaply (no decoder call) and decode each distinct one once.
const bytesKey = (value: Uint8Array): string =>
  value.length <= 1024
    ? String.fromCharCode.apply(null, value as unknown as number[])
    : utf8Lenient.decode(value);

/** Every location URI in an encoded message of the given shape, in order. */
export function collectLocations(bytes: Uint8Array, shape: MessageShape): string[] {
  const uris: string[] = [];
  forEachUri(bytes, shape, (value) => uris.push(utf8Lenient.decode(value)));
  return uris;
}

// node:Buffer's subarray allocates a Buffer object each time (several times slower
// than a plain view's), and the walk takes thousands of them.
const plainView = (bytes: Uint8Array): Uint8Array =>
  bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);

const varintSize = (value: number): number => {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
};

/** One length-delimited field, encoded. */
const lenField = (number: number, payload: Uint8Array): Uint8Array =>
  concatBytes(encodeLenField(number, payload));

/**
 * Replaces each location URI for which `replace` answers a string (asked once per
 * distinct URI), and gives each FlightEndpoint without a location the location
 * `fillEmpty` (when given). Returns the input buffer itself when nothing changed.
 * Throws `WireError` on malformed bytes.
 *
 * Two passes: the first finds the new length of every message that changes, the
 * second writes the result into one buffer of the final size. Messages with no
 * change inside are copied as they are, length prefix included.
 */
export function rewriteLocations(
  bytes: Uint8Array,
  shape: MessageShape,
  replace: (uri: string) => string | undefined,
  fillEmpty?: string,
): Uint8Array {
  const input = bytes;
  bytes = plainView(bytes);
  const replacements = new Map<string, Uint8Array | null>();
  const replacementFor = (value: Uint8Array): Uint8Array | null => {
    const key = bytesKey(value);
    let replacement = replacements.get(key);
    if (replacement === undefined) {
      let uri: string | undefined;
      try {
        uri = utf8.decode(value);
      } catch {
        // Not UTF-8, so not a URI we could forward: leave it exactly as it is.
      }
      const next = uri === undefined ? undefined : replace(uri);
      replacement = next !== undefined && next !== uri ? encoder.encode(next) : null;
      replacements.set(key, replacement);
    }
    return replacement;
  };

  // Every changed field, in the order both passes meet them (parent before
  // children): where its old payload starts, its new length, and for a URI its
  // new bytes. Plain arrays: a FlightInfo can hold tens of thousands of them.
  const offsets: number[] = [];
  const lengths: number[] = [];
  const uris: (Uint8Array | undefined)[] = [];
  // A Location field (2) holding `fillEmpty`, appended to endpoints that have none;
  // `filled` holds the offsets index of each such endpoint (-1: the whole message).
  const fill = fillEmpty === undefined
    ? undefined
    : lenField(2, lenField(1, encoder.encode(fillEmpty)));
  const filled = new Set<number>();
  const measure = (start: number, end: number, shape: MessageShape, self: number): number => {
    let size = end - start;
    let locations = 0;
    scanFields(bytes, start, end, (number, wireType, fieldStart, valueStart, fieldEnd) => {
      const inner = shape[number];
      if (inner === undefined || wireType !== WireType.LEN) return;
      if (inner === LOCATION) locations++;
      let length: number;
      if (inner === URI) {
        const replacement = replacementFor(bytes.subarray(valueStart, fieldEnd));
        if (replacement === null) return;
        length = replacement.length;
        offsets.push(valueStart);
        lengths.push(length);
        uris.push(replacement);
      } else {
        const index = offsets.length;
        offsets.push(valueStart);
        lengths.push(0);
        uris.push(undefined);
        length = measure(valueStart, fieldEnd, inner, index);
        if (offsets.length === index + 1 && !filled.has(index)) {
          // Nothing inside changed: copy this one as it is.
          offsets.pop();
          lengths.pop();
          uris.pop();
          return;
        }
        lengths[index] = length;
      }
      const tag = number * 8 + WireType.LEN;
      size += varintSize(tag) + varintSize(length) + length - (fieldEnd - fieldStart);
    });
    if (fill && shape === FLIGHT_ENDPOINT && locations === 0) {
      filled.add(self);
      size += fill.length;
    }
    return size;
  };
  const size = measure(0, bytes.length, shape, -1);
  if (offsets.length === 0 && filled.size === 0) return input;

  const out = new Uint8Array(size);
  let pos = 0;
  const putVarint = (value: number) => {
    while (value >= 0x80) {
      out[pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    out[pos++] = value;
  };
  const copy = (from: Uint8Array, start: number, end: number) => {
    // Most runs are a few bytes (a tag, a ticket): a loop beats allocating a view.
    if (end - start < 64) { for (let i = start; i < end; i++) out[pos++] = from[i]; }
    else {
      out.set(from.subarray(start, end), pos);
      pos += end - start;
    }
  };
  let next = 0;
  const write = (start: number, end: number, shape: MessageShape, self: number) => {
    let copiedTo = start;
    scanFields(bytes, start, end, (number, wireType, fieldStart, valueStart, fieldEnd) => {
      const inner = shape[number];
      if (inner === undefined || wireType !== WireType.LEN || offsets[next] !== valueStart) return;
      const index = next++;
      copy(bytes, copiedTo, fieldStart);
      putVarint(number * 8 + WireType.LEN);
      putVarint(lengths[index]);
      const replacement = uris[index];
      if (replacement) copy(replacement, 0, replacement.length);
      else write(valueStart, fieldEnd, inner as MessageShape, index);
      copiedTo = fieldEnd;
    });
    copy(bytes, copiedTo, end);
    if (fill && filled.has(self)) copy(fill, 0, fill.length);
  };
  write(0, bytes.length, shape, -1);
  return out;
}

/**
 * Reorders the locations of each FlightEndpoint: `order` gets an endpoint's
 * location URIs and answers the new order as indices (or `undefined`: keep
 * it). Only the Location fields move, each copied whole; an endpoint keeps its
 * length, so nothing around it changes. Returns the input buffer itself when
 * nothing moved. Throws `WireError` on malformed bytes.
 */
export function reorderEndpointLocations(
  bytes: Uint8Array,
  shape: MessageShape,
  order: (uris: string[]) => number[] | undefined,
): Uint8Array {
  const input = plainView(bytes);
  let out: Uint8Array | undefined;
  const endpoint = (start: number, end: number) => {
    const locations: { start: number; end: number; uri: string }[] = [];
    const others: { start: number; end: number }[] = [];
    scanFields(input, start, end, (number, wireType, fieldStart, valueStart, fieldEnd) => {
      if (number !== 2 || wireType !== WireType.LEN) {
        others.push({ start: fieldStart, end: fieldEnd });
        return;
      }
      let uri = "";
      scanFields(input, valueStart, fieldEnd, (inner, innerType, _start, uriStart, uriEnd) => {
        if (inner === 1 && innerType === WireType.LEN) {
          uri = utf8Lenient.decode(input.subarray(uriStart, uriEnd));
        }
      });
      locations.push({ start: fieldStart, end: fieldEnd, uri });
    });
    const wanted = order(locations.map((location) => location.uri));
    if (wanted === undefined || wanted.every((index, position) => index === position)) return;
    if (
      wanted.length !== locations.length ||
      new Set(wanted).size !== wanted.length ||
      wanted.some((index) => !(index >= 0 && index < locations.length))
    ) {
      throw new RangeError(`not a reordering of ${locations.length} locations: ${wanted}`);
    }
    // The span from the first location to the last: locations in their new
    // order, then any other field that sat between them, as it was.
    const from = locations[0].start;
    const to = locations[locations.length - 1].end;
    out ??= input.slice();
    let pos = from;
    const put = (field: { start: number; end: number }) => {
      out!.set(input.subarray(field.start, field.end), pos);
      pos += field.end - field.start;
    };
    for (const index of wanted) put(locations[index]);
    for (const field of others) if (field.start > from && field.end < to) put(field);
  };
  const walk = (start: number, end: number, shape: MessageShape) =>
    scanFields(input, start, end, (number, wireType, _start, valueStart, fieldEnd) => {
      const inner = shape[number];
      if (inner === undefined || inner === URI || wireType !== WireType.LEN) return;
      if (inner === FLIGHT_ENDPOINT) endpoint(valueStart, fieldEnd);
      else walk(valueStart, fieldEnd, inner);
    });
  if (shape === FLIGHT_ENDPOINT) endpoint(0, input.length);
  else walk(0, input.length, shape);
  return out ?? bytes;
}

/** A remote endpoint could not be forwarded; the proxy answers UNAVAILABLE. */
export class EndpointUnavailableError extends Error {
  /** `netloc` is the remote `host:port`; `cause` why its forward failed. */
  constructor(readonly netloc: string, cause: unknown) {
    super(
      `cannot forward endpoint ${netloc}: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
    this.name = "EndpointUnavailableError";
  }
}

/**
 * Points locations at local forwards (responses) and back at the remote servers
 * (requests that carry locations). Once for each URI it notes where it sends it
 * (`--verbose`), or why it passes it on unchanged: a warning for a gRPC location
 * it cannot parse, a note for another transport such as `kafka://`, which
 * clients use as it is.
 *
 * `arrow-flight-reuse-connection://?` ("redeem on the server you asked") goes to
 * the map's {@link REUSE_CONNECTION} entry when it has one: a forward straight to
 * the info server, so bulk data need not pass through the proxy; an endpoint with
 * no location (the same meaning) gets that location. Without the entry both pass
 * unchanged and clients redeem them at the proxy. On the way back the server
 * sees reuse-connection for either.
 *
 * For clients on other machines (`clientHost`, the host they dialled), local
 * forwards are named by that host rather than by the address they listen on.
 *
 * `kafka://` locations follow `kafka` (kafka_locations.ts): unchanged without
 * it or in the `direct` mode; moved behind their endpoint's Flight fallback in
 * the `flight` mode; in the `forward` mode rewritten to the brokers' local
 * listeners, except in endpoints with a broker that cannot be forwarded, which
 * get the `flight` treatment.
 */
export class LocationRewriter {
  #map: LocationMap;
  #warn: (message: string) => void;
  #note: (message: string) => void;
  #kafka?: KafkaLocations;
  #seen = new Set<string>();

  /** Rewrites through `map`; `warn` gets refusals, `note` one-time notices. */
  constructor(
    map: LocationMap,
    warn: (message: string) => void = () => {},
    note: (message: string) => void = () => {},
    kafka?: KafkaLocations,
  ) {
    this.#map = map;
    this.#warn = warn;
    this.#note = note;
    this.#kafka = kafka;
  }

  /**
   * Rewrites remote locations to their local forwards, first opening forwards for
   * endpoints not seen before (when the map has a resolver; without one, unknown
   * endpoints pass unchanged). Throws {@link EndpointUnavailableError} when one
   * cannot be opened.
   */
  async toLocal(bytes: Uint8Array, shape: MessageShape, clientHost?: string): Promise<Uint8Array> {
    bytes = await this.#kafkaLocations(bytes, shape);
    // Optimistic: one pass when every endpoint is known (the common case); when
    // some are new, open their forwards and rewrite again.
    const wanted = new Map<string, { host: string; port: number; netloc: string }>();
    // Endpoints with no location are redeemed where reuse-connection ones are.
    const reuse = this.#map.local(REUSE_CONNECTION);
    const fillEmpty = reuse === undefined ? undefined : localUrl(reachable(reuse, clientHost));
    const rewrite = () =>
      rewriteLocations(bytes, shape, (uri) => {
        const kind = this.#classify(uri);
        if (kind.kind === "reuse-connection") {
          const local = this.#map.local(REUSE_CONNECTION);
          return local === undefined
            ? undefined
            : this.#announce(uri, localUrl(reachable(local, clientHost)), "the info server");
        }
        if (kind.kind === "other-scheme" && this.#kafka?.mode === "forward") {
          const broker = parseKafkaLocation(uri);
          const local = broker && this.#kafka.local(broker);
          return local === undefined
            ? undefined
            : this.#announce(uri, kafkaReachable(local, clientHost), "its Kafka listener");
        }
        if (kind.kind !== "endpoint") return undefined;
        const { location } = kind;
        const local = this.#map.local(location.netloc);
        if (local === undefined && this.#map.canResolve) wanted.set(location.netloc, location);
        return local === undefined ? undefined : this.#announce(
          uri,
          isSocketPath(local)
            ? unixLocation(local)
            : withNetloc(location, reachable(local, clientHost)),
        );
      }, fillEmpty);
    const out = rewrite();
    if (wanted.size === 0) return out;
    await Promise.all(
      [...wanted.values()].map((remote) =>
        this.#map.resolve(remote).catch((cause) => {
          throw new EndpointUnavailableError(remote.netloc, cause);
        })
      ),
    );
    wanted.clear();
    return rewrite();
  }

  /**
   * Rewrites locations that name one of our local forwards back to what the
   * server gave: its own endpoint, or the reuse-connection location.
   */
  toRemote(bytes: Uint8Array, shape: MessageShape, clientHost?: string): Uint8Array {
    return rewriteLocations(bytes, shape, (uri) => {
      const path = unixPathOf(uri);
      if (path !== undefined) {
        const remote = this.#map.remote(path);
        if (remote === undefined) return undefined;
        return remote === REUSE_CONNECTION ? REUSE_CONNECTION : `grpc://${remote}`;
      }
      const kind = classifyLocation(uri);
      if (kind.kind === "other-scheme") return this.#kafka?.remote(uri, clientHost);
      if (kind.kind !== "endpoint") return undefined;
      const { location } = kind;
      const remote = clientHost !== undefined &&
          location.host.toLowerCase() === clientHost.toLowerCase()
        ? this.#map.remoteAtPort(location.port)
        : this.#map.remote(location.netloc);
      if (remote === undefined) return undefined;
      return remote === REUSE_CONNECTION ? REUSE_CONNECTION : withNetloc(location, remote);
    });
  }

  /**
   * The kafka:// part of {@link toLocal}: in the `flight` mode every endpoint's
   * kafka locations move behind the others; in `forward` each broker is
   * forwarded first, and only endpoints naming one that cannot be get moved.
   */
  async #kafkaLocations(bytes: Uint8Array, shape: MessageShape): Promise<Uint8Array> {
    const kafka = this.#kafka;
    if (kafka === undefined || kafka.mode === "direct") return bytes;
    const uris = collectLocations(bytes, shape).filter(isKafkaUri);
    if (uris.length === 0) return bytes;
    const unforwarded = new Set<string>();
    if (kafka.mode === "forward") {
      await Promise.all([...new Set(uris)].map(async (uri) => {
        const broker = parseKafkaLocation(uri);
        if (broker === undefined) {
          unforwarded.add(uri);
          this.#warnOnce(
            `kafka ${uri}`,
            `location ${JSON.stringify(uri)} is not a Kafka broker's kafka://host:port: ` +
              `its endpoints stream through the Arrakis server instead`,
          );
        } else if (await kafka.resolve(broker) === undefined) unforwarded.add(uri);
      }));
      if (unforwarded.size === 0) return bytes;
    }
    return reorderEndpointLocations(bytes, shape, (locations) => {
      const moved = locations.filter((uri) =>
        isKafkaUri(uri) && (kafka.mode === "flight" || unforwarded.has(uri))
      );
      if (moved.length === 0) return undefined;
      if (!locations.some((uri) => !isKafkaUri(uri))) {
        this.#warnOnce(
          `kafka-only ${locations.join(" ")}`,
          `an endpoint has only Kafka locations (${locations.join(", ")}) and no Flight ` +
            `location to stream through instead: it passes unchanged`,
        );
        return undefined;
      }
      for (const uri of moved) {
        this.#announce(uri, "behind the Flight location", "the client streams through Arrakis");
      }
      const indices = locations.map((_, index) => index);
      const last = (index: number) => isKafkaUri(locations[index]);
      return [...indices.filter((index) => !last(index)), ...indices.filter(last)];
    });
  }

  /** Whether a Kafka mode other than `direct` takes care of `uri` (and says so itself). */
  #handlesKafka(uri: string): boolean {
    return isKafkaUri(uri) && this.#kafka !== undefined && this.#kafka.mode !== "direct";
  }

  #warnOnce(key: string, message: string): void {
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.#warn(message);
  }

  /** Notes, once per URI, where it is sent; returns the new URI. */
  #announce(uri: string, to: string, what?: string): string {
    const key = `${uri} ${to}`;
    if (!this.#seen.has(key)) {
      this.#seen.add(key);
      this.#note(`location ${uri} → ${to}${what ? ` (${what})` : ""}`);
    }
    return to;
  }

  #classify(uri: string) {
    const kind = classifyLocation(uri);
    if (uri === "" || this.#seen.has(uri)) return kind;
    if (kind.kind === "unsupported") {
      this.#seen.add(uri);
      this.#warn(`location ${JSON.stringify(uri)} passed on unchanged: ${kind.reason}`);
    } else if (kind.kind === "other-scheme" && !this.#handlesKafka(uri)) {
      this.#seen.add(uri);
      this.#note(
        `location ${JSON.stringify(uri)} passed on unchanged: ${kind.scheme}:// is not ` +
          `a gRPC location, clients reach it themselves`,
      );
    }
    return kind;
  }
}

/** A local forward's `host:port` as a client on `clientHost` reaches it (a socket path as it is). */
/** A local `kafka://host:port` as {@link reachable} names it to the client. */
function kafkaReachable(local: string, clientHost: string | undefined): string {
  return clientHost === undefined
    ? local
    : `kafka://${reachable(local.slice("kafka://".length), clientHost)}`;
}

function reachable(local: string, clientHost: string | undefined): string {
  if (clientHost === undefined) return local;
  const port = parseNetloc(local)?.port;
  return port === undefined ? local : formatNetloc(clientHost, port);
}
