/**
 * Rewrites the location URIs inside encoded Flight messages without decoding
 * anything else: only the Location, FlightEndpoint and FlightInfo fields on the
 * path to a URI are rebuilt; every other byte, unknown fields included, is copied
 * as it arrived. A message with nothing to change comes back as the same buffer.
 *
 * @module
 */
import { concatBytes, encodeLenField, readFields, WireType } from "./wire.ts";
import { classifyLocation, type LocationMap, withNetloc } from "./locations.ts";

const URI = "uri";

/** Where location URIs sit in a message: field number → nested shape, or the URI itself. */
export interface MessageShape {
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

/** Every location URI in an encoded message of the given shape, in order. */
export function collectLocations(bytes: Uint8Array, shape: MessageShape): string[] {
  const uris: string[] = [];
  const visit = (start: number, end: number, shape: MessageShape) => {
    for (const field of readFields(bytes, start, end)) {
      const inner = shape[field.number];
      if (inner === undefined || field.wireType !== WireType.LEN) continue;
      if (inner === URI) uris.push(utf8Lenient.decode(bytes.subarray(field.valueStart, field.end)));
      else visit(field.valueStart, field.end, inner);
    }
  };
  visit(0, bytes.length, shape);
  return uris;
}

/**
 * Replaces each location URI for which `replace` answers a string. Returns the
 * input buffer itself when nothing changed. Throws `WireError` on malformed bytes.
 */
export function rewriteLocations(
  bytes: Uint8Array,
  shape: MessageShape,
  replace: (uri: string) => string | undefined,
): Uint8Array {
  const rewrite = (message: Uint8Array, shape: MessageShape): Uint8Array => {
    let chunks: Uint8Array[] | undefined;
    let copiedTo = 0;
    for (const field of readFields(message)) {
      const inner = shape[field.number];
      if (inner === undefined || field.wireType !== WireType.LEN) continue;
      const value = message.subarray(field.valueStart, field.end);
      let replaced: Uint8Array | undefined;
      if (inner === URI) {
        let uri: string | undefined;
        try {
          uri = utf8.decode(value);
        } catch {
          // Not UTF-8, so not a URI we could forward: leave it exactly as it is.
        }
        const next = uri === undefined ? undefined : replace(uri);
        if (next !== undefined && next !== uri) replaced = encoder.encode(next);
      } else {
        const next = rewrite(value, inner);
        if (next !== value) replaced = next;
      }
      if (replaced === undefined) continue;
      chunks ??= [];
      chunks.push(
        message.subarray(copiedTo, field.start),
        ...encodeLenField(field.number, replaced),
      );
      copiedTo = field.end;
    }
    if (!chunks) return message;
    chunks.push(message.subarray(copiedTo));
    return concatBytes(chunks);
  };
  return rewrite(bytes, shape);
}

/** A remote endpoint could not be forwarded; the proxy answers UNAVAILABLE. */
export class EndpointUnavailableError extends Error {
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
 * (requests that carry locations), warning once for each URI it cannot handle.
 */
export class LocationRewriter {
  #map: LocationMap;
  #warn: (message: string) => void;
  #warned = new Set<string>();

  constructor(map: LocationMap, warn: (message: string) => void = () => {}) {
    this.#map = map;
    this.#warn = warn;
  }

  /**
   * Rewrites remote locations to their local forwards, first opening forwards for
   * endpoints not seen before (when the map has a resolver; without one, unknown
   * endpoints pass unchanged). Throws {@link EndpointUnavailableError} when one
   * cannot be opened.
   */
  async toLocal(bytes: Uint8Array, shape: MessageShape): Promise<Uint8Array> {
    const wanted = new Map<string, { host: string; port: number; netloc: string }>();
    for (const uri of collectLocations(bytes, shape)) {
      const kind = this.#classify(uri);
      if (kind?.kind !== "endpoint") continue;
      const { location } = kind;
      if (this.#map.canResolve && this.#map.local(location.netloc) === undefined) {
        wanted.set(location.netloc, location);
      }
    }
    await Promise.all(
      [...wanted.values()].map((remote) =>
        this.#map.resolve(remote).catch((cause) => {
          throw new EndpointUnavailableError(remote.netloc, cause);
        })
      ),
    );
    return rewriteLocations(bytes, shape, (uri) => {
      const kind = classifyLocation(uri);
      if (kind.kind !== "endpoint") return undefined;
      const local = this.#map.local(kind.location.netloc);
      return local === undefined ? undefined : withNetloc(kind.location, local);
    });
  }

  /** Rewrites locations that name one of our local forwards back to the remote server. */
  toRemote(bytes: Uint8Array, shape: MessageShape): Uint8Array {
    return rewriteLocations(bytes, shape, (uri) => {
      const kind = classifyLocation(uri);
      if (kind.kind !== "endpoint") return undefined;
      const remote = this.#map.remote(kind.location.netloc);
      return remote === undefined ? undefined : withNetloc(kind.location, remote);
    });
  }

  #classify(uri: string) {
    const kind = classifyLocation(uri);
    if (kind.kind === "unsupported" && uri !== "" && !this.#warned.has(uri)) {
      this.#warned.add(uri);
      this.#warn(`location ${JSON.stringify(uri)} passed on unchanged: ${kind.reason}`);
    }
    return kind;
  }
}
