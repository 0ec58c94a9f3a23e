/**
 * Splits a bounded Arrakis Stream endpoint into endpoints over disjoint subsets
 * of its channels (`--split-streams K`), so that the client opens one DoGet, one
 * TCP connection and so one SSH channel (one 2 MiB window) per subset.
 *
 * Arrakis writes each ticket as the request's JSON command (`create_command` of
 * arrakis 0.21, validated by arrakis-schema 0.5's `stream.json`): `{"request":
 * "Stream", "args": {"channels": [...], "start": ns, "end": ns, "replay_start",
 * "replay_end", "replay_id"}, "version": "0.5.0"}`. The server itself answers a
 * request spread over several data servers with one such ticket per server, each
 * naming its subset of the channels; the client runs every endpoint of one start
 * time at once and joins them by time. A split endpoint has that same shape.
 *
 * Only exactly that is split: a ticket of a known schema version, with no
 * argument outside the schema, no replay, integer start and end, an end in the
 * past, and at least two distinct channels; an endpoint with only a ticket and
 * gRPC (or reuse-connection) locations; a FlightInfo that is not `ordered`.
 * Anything else passes byte for byte.
 *
 * @module
 */
import { concatBytes, encodeLenField, scanFields, WireError, WireType } from "./wire.ts";
import { classifyLocation } from "./locations.ts";
import { gpsNowNs } from "./gps_time.ts";

/** The request schema versions whose Stream ticket this module knows. */
const KNOWN_VERSIONS = new Set(["0.5.0"]);

/** Every argument of arrakis-schema 0.5's `stream.json`. */
const STREAM_ARGS = new Set([
  "channels",
  "start",
  "end",
  "replay_start",
  "replay_end",
  "replay_id",
]);

const TOP_LEVEL = new Set(["request", "args", "version"]);

/** A JSON integer as written: GPS nanoseconds need more than a double's 53 bits. */
const INTEGER_RE = /^-?(0|[1-9][0-9]*)$/;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** A bounded Stream ticket that may be split: its channels, and tickets for subsets of them. */
export interface BoundedStream {
  /** The channels it names, in its order. */
  readonly channels: readonly string[];
  /** The same request for `channels` only; every other value as it was written. */
  ticketFor(channels: readonly string[]): Uint8Array;
}

// JSON.rawJSON (TC39 "JSON.parse source text access", in V8) is not in Deno's lib types yet.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/**
 * Reads an Arrakis Stream ticket; answers why it is not split when it is not
 * exactly a bounded request over past data (`nowNs`: GPS now, in ns).
 */
export function parseBoundedStream(ticket: Uint8Array, nowNs: bigint): BoundedStream | string {
  let text: string;
  try {
    text = utf8.decode(ticket);
  } catch {
    return "not UTF-8";
  }
  // Each number's text as written, by the object holding it.
  const numbers = new Map<unknown, Map<string, string>>();
  let request: unknown;
  try {
    request = JSON.parse(text, function (this: unknown, key, value, context?: { source?: string }) {
      if (typeof value === "number") {
        if (!numbers.has(this)) numbers.set(this, new Map());
        numbers.get(this)!.set(key, context?.source ?? "");
      }
      return value;
    });
  } catch {
    return "not JSON";
  }
  if (!isObject(request)) return "not a JSON object";
  const unknownKey = Object.keys(request).find((key) => !TOP_LEVEL.has(key));
  if (unknownKey !== undefined) return `unknown field ${JSON.stringify(unknownKey)}`;
  if (request.request !== "Stream") return "not a Stream request";
  if (typeof request.version !== "string" || !KNOWN_VERSIONS.has(request.version)) {
    return `schema version ${JSON.stringify(request.version)} is not one this proxy knows`;
  }
  const args = request.args;
  if (!isObject(args)) return "no args object";
  const unknownArg = Object.keys(args).find((key) => !STREAM_ARGS.has(key));
  if (unknownArg !== undefined) return `unknown argument ${JSON.stringify(unknownArg)}`;
  for (const key of ["replay_start", "replay_end", "replay_id"]) {
    if (args[key] !== undefined && args[key] !== null) return "a replay";
  }
  const written = numbers.get(args);
  const start = written?.get("start");
  const end = written?.get("end");
  if (typeof args.start !== "number" || !start || !INTEGER_RE.test(start)) {
    return "no integer start (live)";
  }
  if (typeof args.end !== "number" || !end || !INTEGER_RE.test(end)) {
    return "no integer end (live)";
  }
  if (BigInt(end) > nowNs) return "ends in the future (live)";
  if (BigInt(start) >= BigInt(end)) return "empty span";
  const channels = args.channels;
  if (!Array.isArray(channels) || !channels.every((name) => typeof name === "string")) {
    return "channels are not a list of names";
  }
  if (new Set(channels).size !== channels.length) return "a channel named twice";
  if (channels.length < 2) return "fewer than two channels";
  // The rest as written: integers in their own digits, nulls and strings as they are.
  const template = {
    ...request,
    args: { ...args, start: rawJSON(start), end: rawJSON(end) },
  };
  return {
    channels,
    ticketFor: (subset) =>
      encoder.encode(JSON.stringify({ ...template, args: { ...template.args, channels: subset } })),
  };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** `channels` in `parts` contiguous runs as even as possible (fewer when there are fewer channels). */
export function partition<T>(channels: readonly T[], parts: number): T[][] {
  const count = Math.min(parts, channels.length);
  const runs: T[][] = [];
  let from = 0;
  for (let i = 0; i < count; i++) {
    const to = from + Math.floor(channels.length / count) + (i < channels.length % count ? 1 : 0);
    runs.push(channels.slice(from, to));
    from = to;
  }
  return runs;
}

// FlightInfo: 3 = endpoint (repeated), 6 = ordered. FlightEndpoint: 1 = ticket, 2 = location.
// Ticket: 1 = ticket bytes. Location: 1 = uri.
const INFO_ENDPOINT = 3;
const INFO_ORDERED = 6;
const ENDPOINT_TICKET = 1;
const ENDPOINT_LOCATION = 2;

/**
 * An encoded FlightInfo with each splittable endpoint (see the module) replaced
 * by up to `parts` endpoints with the same locations; the input itself when
 * none is. `refused` hears why a Stream-like endpoint was left whole. Throws
 * `WireError` on malformed bytes.
 */
export function splitStreamEndpoints(
  info: Uint8Array,
  parts: number,
  { nowNs = gpsNowNs(), refused = () => {} }: {
    nowNs?: bigint;
    refused?: (reason: string) => void;
  } = {},
): Uint8Array {
  if (!(parts >= 2)) return info;
  const out: Uint8Array[] = [];
  let copiedTo = 0;
  let split = false;
  let ordered = false;
  scanFields(info, 0, info.length, (number, wireType, fieldStart, valueStart, fieldEnd) => {
    if (number === INFO_ORDERED && wireType === WireType.VARINT) {
      ordered = scanVarintIsTrue(info, valueStart, fieldEnd);
    }
    if (number !== INFO_ENDPOINT || wireType !== WireType.LEN) return;
    const endpoints = splitEndpoint(info.subarray(valueStart, fieldEnd), parts, nowNs, refused);
    if (endpoints === undefined) return;
    out.push(info.subarray(copiedTo, fieldStart));
    for (const endpoint of endpoints) out.push(...encodeLenField(INFO_ENDPOINT, endpoint));
    copiedTo = fieldEnd;
    split = true;
  });
  if (!split) return info;
  // An ordered FlightInfo promises its endpoints' order means something: leave it whole.
  if (ordered) {
    refused("the FlightInfo is ordered");
    return info;
  }
  out.push(info.subarray(copiedTo));
  return concatBytes(out);
}

const scanVarintIsTrue = (bytes: Uint8Array, start: number, end: number): boolean =>
  bytes.subarray(start, end).some((byte) => (byte & 0x7f) !== 0);

/** The encoded endpoints one endpoint becomes, or undefined to keep it as it is. */
function splitEndpoint(
  endpoint: Uint8Array,
  parts: number,
  nowNs: bigint,
  refused: (reason: string) => void,
): Uint8Array[] | undefined {
  let ticket: Uint8Array | undefined;
  let tickets = 0;
  const locations: Uint8Array[] = [];
  let other = false;
  scanFields(endpoint, 0, endpoint.length, (number, wireType, fieldStart, valueStart, fieldEnd) => {
    if (number === ENDPOINT_TICKET && wireType === WireType.LEN) {
      tickets++;
      ticket = ticketBytes(endpoint.subarray(valueStart, fieldEnd));
    } else if (number === ENDPOINT_LOCATION && wireType === WireType.LEN) {
      const uri = locationUri(endpoint.subarray(valueStart, fieldEnd));
      const kind = uri === undefined ? undefined : classifyLocation(uri).kind;
      if (kind !== "endpoint" && kind !== "reuse-connection") other = true;
      locations.push(endpoint.subarray(fieldStart, fieldEnd));
    } else other = true;
  });
  if (tickets !== 1 || ticket === undefined) return undefined;
  const stream = parseBoundedStream(ticket, nowNs);
  if (typeof stream === "string") {
    // Only requests that look like Stream tickets are worth a line.
    if (stream !== "not a Stream request" && stream !== "not JSON") refused(stream);
    return undefined;
  }
  if (other) {
    refused("its endpoint has a field or location other than a ticket and gRPC locations");
    return undefined;
  }
  return partition(stream.channels, parts).map((channels) =>
    concatBytes([
      ...encodeLenField(
        ENDPOINT_TICKET,
        concatBytes(encodeLenField(1, stream.ticketFor(channels))),
      ),
      ...locations,
    ])
  );
}

/** A Ticket message's bytes field, or undefined when it holds anything else. */
function ticketBytes(message: Uint8Array): Uint8Array | undefined {
  let bytes: Uint8Array | undefined;
  let fields = 0;
  scanFields(message, 0, message.length, (number, wireType, _start, valueStart, fieldEnd) => {
    fields++;
    if (number === 1 && wireType === WireType.LEN) bytes = message.subarray(valueStart, fieldEnd);
  });
  return fields === 1 ? bytes : undefined;
}

/** A Location message's URI, or undefined when it holds anything else or is not UTF-8. */
function locationUri(message: Uint8Array): string | undefined {
  let uri: string | undefined;
  let fields = 0;
  try {
    scanFields(message, 0, message.length, (number, wireType, _start, valueStart, fieldEnd) => {
      fields++;
      if (number === 1 && wireType === WireType.LEN) {
        uri = utf8.decode(message.subarray(valueStart, fieldEnd));
      }
    });
  } catch (error) {
    if (error instanceof WireError) throw error;
    return undefined;
  }
  return fields === 1 ? uri : undefined;
}

/**
 * What the proxy applies to each GetFlightInfo answer: {@link splitStreamEndpoints}
 * into `parts` (the identity when `parts` is below 2). Each reason for leaving an
 * endpoint whole goes to `debug` once; malformed bytes pass on unchanged (the
 * location rewriter that follows reports them).
 */
export function streamSplitter(
  parts: number | undefined,
  debug: (message: string) => void,
): (info: Uint8Array) => Uint8Array {
  if (parts === undefined || !(parts >= 2)) return (info) => info;
  const told = new Set<string>();
  const refused = (reason: string) => {
    if (told.has(reason)) return;
    told.add(reason);
    debug(`--split-streams: a Stream endpoint stays whole: ${reason}`);
  };
  return (info) => {
    try {
      return splitStreamEndpoints(info, parts, { refused });
    } catch (error) {
      if (error instanceof WireError) return info;
      throw error;
    }
  };
}
