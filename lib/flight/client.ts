/**
 * A minimal Arrakis data client, as `doctor` and the demo need it: send a
 * request, fetch every endpoint the answer names (its first location, or the same
 * connection for reuse-connection and empty location lists, as the Python client
 * does), and decode the Arrow data. Also a round-trip probe for one server, and
 * the sample fetch doctor makes (a second of a couple of channels, summed up).
 *
 * @example
 * ```ts
 * import { fetchArrakis, summarizeTables } from "./client.ts";
 *
 * const fetched = await fetchArrakis("grpc://localhost:31206", {
 *   request: "Stream",
 *   args: { channels: ["X1:MOCK-CHAN_A"], start: null, end: null },
 * });
 * console.log(summarizeTables(fetched.map((endpoint) => endpoint.table)));
 * ```
 *
 * @module
 */
import type { Table } from "./arrow.ts";
import type { grpc } from "./grpc.ts";
import { FLIGHT_SERVICE, flightPackageDefinition } from "./proto.ts";
import { arrakisJson, CallError, callMetadata, EVERY_CHANNEL } from "./discovery.ts";
import { flightClient } from "./channel.ts";
import { REUSE_CONNECTION } from "./locations.ts";
import { isKafkaUri } from "./kafka_locations.ts";
import { gpsNowNs } from "./gps_time.ts";
import { type FlightData, flightDataToTable } from "./arrow_ipc.ts";

const service = flightPackageDefinition[FLIGHT_SERVICE] as grpc.ServiceDefinition;
// Each probe measures its own connection, not one another's backoff.
const CHANNEL_OPTIONS: grpc.ChannelOptions = { "grpc.use_local_subchannel_pool": 1 };

/** An Arrakis request: `{"request": NAME, "args": {...}}`. */
export interface ArrakisRequest {
  /** The request's name, e.g. `Find`. */
  request: string;
  /** Its arguments, as JSON. */
  args: unknown;
}

/** One endpoint's data, where it came from and how long it took. */
export interface FetchedEndpoint {
  /** The location used (`arrow-flight-reuse-connection://?` for the same connection). */
  location: string;
  /** The rows it sent. */
  table: Table;
  /** How long its DoGet took, in milliseconds. */
  ms: number;
  /** The kafka:// location it led with, read past (this client speaks Flight only). */
  kafka?: string;
}

interface Decoded {
  endpoint: { ticket: { ticket: Uint8Array } | null; location: { uri: string }[] }[];
}

function connect(url: string): grpc.Client {
  return flightClient(url, CHANNEL_OPTIONS);
}

function deadline(timeoutMs: number): grpc.CallOptions {
  return { deadline: Date.now() + timeoutMs };
}

/** How each call goes out: its time limit, and the `authorization` it carries (if any). */
interface CallSettings {
  timeoutMs: number;
  authorization?: string;
}

function unary<T>(client: grpc.Client, method: string, request: unknown, call: CallSettings) {
  const { requestSerialize, responseDeserialize } = service[method];
  return new Promise<T>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${FLIGHT_SERVICE}/${method}`,
      requestSerialize,
      responseDeserialize,
      request,
      callMetadata(call.authorization),
      deadline(call.timeoutMs),
      (error, value) => error ? reject(callError(method, error)) : resolve(value as T),
    );
  });
}

function serverStream<T>(
  client: grpc.Client,
  method: string,
  request: unknown,
  settings: CallSettings,
) {
  const { requestSerialize, responseDeserialize } = service[method];
  const call = client.makeServerStreamRequest(
    `/${FLIGHT_SERVICE}/${method}`,
    requestSerialize,
    responseDeserialize,
    request,
    callMetadata(settings.authorization),
    deadline(settings.timeoutMs),
  );
  return new Promise<T[]>((resolve, reject) => {
    const items: T[] = [];
    call.on("data", (item: T) => items.push(item));
    call.on("error", (error: grpc.ServiceError) => reject(callError(method, error)));
    call.on("end", () => resolve(items));
  });
}

function callError(method: string, error: grpc.ServiceError): Error {
  return new CallError(`${method}: ${error.details || error.message}`, error.code);
}

/**
 * Sends `request` to the Arrakis server at `url` (GetFlightInfo), then DoGets
 * every endpoint and decodes its data. Every call carries `authorization`
 * (`Bearer …`) when given.
 */
export async function fetchArrakis(
  url: string,
  request: ArrakisRequest,
  { timeoutMs = 30_000, authorization }: { timeoutMs?: number; authorization?: string } = {},
): Promise<FetchedEndpoint[]> {
  const settings = { timeoutMs, authorization };
  const info = connect(url);
  const opened: grpc.Client[] = [];
  try {
    const flightInfo = await unary<Decoded>(
      info,
      "GetFlightInfo",
      { type: "CMD", cmd: new TextEncoder().encode(arrakisJson(request)), path: [] },
      settings,
    );
    return await Promise.all(flightInfo.endpoint.map(async (endpoint) => {
      // Flight only: a Kafka-backed endpoint is read at its Flight fallback.
      const kafka = endpoint.location.find(({ uri }) => isKafkaUri(uri))?.uri;
      const location = endpoint.location.find(({ uri }) => !isKafkaUri(uri))?.uri ??
        REUSE_CONNECTION;
      let client = info;
      if (location !== REUSE_CONNECTION) opened.push(client = connect(location));
      const started = performance.now();
      const messages = await serverStream<FlightData>(
        client,
        "DoGet",
        { ticket: endpoint.ticket?.ticket ?? new Uint8Array() },
        settings,
      );
      const table = flightDataToTable(messages);
      return { location, table, ms: performance.now() - started, ...(kafka && { kafka }) };
    }));
  } finally {
    for (const client of [info, ...opened]) client.close();
  }
}

/** Round trip of one ListActions call to the Flight server at `url`, in milliseconds. */
export async function pingFlight(
  url: string,
  timeoutMs = 10_000,
  authorization?: string,
): Promise<number> {
  const client = connect(url);
  try {
    const started = performance.now();
    await serverStream(client, "ListActions", {}, { timeoutMs, authorization });
    return performance.now() - started;
  } finally {
    client.close();
  }
}

/** One channel (a non-`time` column) across the fetched tables. */
export interface ChannelSummary {
  /** The column's name, e.g. `H1:GDS-CALIB_STRAIN`. */
  name: string;
  /** Values in the column, over every table. */
  samples: number;
  /** Sample rate from the field metadata, when the server sets it. */
  rate?: number;
  /** The first value (of the first table that has the column). */
  first?: number;
  /** The last value (of the last table that has the column). */
  last?: number;
}

/** What a fetch brought back: rows, channels and the GPS time span. */
export interface DataSummary {
  /** Rows over every table. */
  rows: number;
  /** Each non-`time` column, one entry per table that has it. */
  channels: ChannelSummary[];
  /** First and last `time` value in GPS seconds, when there is a `time` column. */
  span?: { start: number; end: number };
}

/** Sums up tables of Arrakis data (a `time` column in GPS nanoseconds, one column per channel). */
export function summarizeTables(tables: Table[]): DataSummary {
  const channels: ChannelSummary[] = [];
  let rows = 0;
  let start = Infinity;
  let end = -Infinity;
  for (const table of tables) {
    rows += table.numRows;
    for (const field of table.schema.fields) {
      const column = table.getChild(field.name);
      if (!column || column.length === 0) continue;
      if (field.name === "time") {
        start = Math.min(start, Number(column.get(0)) / 1e9);
        end = Math.max(end, Number(column.get(column.length - 1)) / 1e9);
        continue;
      }
      const rate = Number(field.metadata.get("rate") ?? field.metadata.get("sample_rate"));
      channels.push({
        name: field.name,
        samples: column.length,
        rate: Number.isFinite(rate) ? rate : undefined,
        first: Number(column.get(0)),
        last: Number(column.get(column.length - 1)),
      });
    }
  }
  return { rows, channels, span: start <= end ? { start, end } : undefined };
}

/** What {@link sampleFetch} brought back. */
export interface SampleFetch {
  /** The channels asked for. */
  channels: string[];
  /** How many endpoints the answer named. */
  endpoints: number;
  /** The kafka:// locations they led with (read at their Flight fallbacks instead). */
  kafka: string[];
  /** Rows, channels and time span. */
  data: DataSummary;
  /** How long the Stream took (GetFlightInfo and every DoGet). */
  ms: number;
}

/**
 * Streams one second, a minute ago, of `channels` (default: the first ones a
 * Find lists) from the Arrakis server at `url`, and sums up what came back;
 * every call carries `authorization` when given.
 */
export async function sampleFetch(
  url: string,
  { channels = [], timeoutMs = 30_000, authorization }: {
    channels?: string[];
    timeoutMs?: number;
    authorization?: string;
  } = {},
): Promise<SampleFetch> {
  if (channels.length === 0) channels = await findChannels(url, { timeoutMs, authorization });
  const end = gpsNowNs() - 60_000_000_000n;
  const request = {
    request: "Stream",
    args: { channels, start: end - 1_000_000_000n, end },
  };
  const started = performance.now();
  const fetched = await fetchArrakis(url, request, { timeoutMs, authorization });
  return {
    channels,
    endpoints: fetched.length,
    kafka: [...new Set(fetched.flatMap((endpoint) => endpoint.kafka ?? []))],
    data: summarizeTables(fetched.map((endpoint) => endpoint.table)),
    ms: performance.now() - started,
  };
}

/**
 * A couple of channel names: from a Find's `channel` column, else (servers that
 * answer Find with stream-shaped data) its non-`time` columns.
 */
async function findChannels(url: string, settings: CallSettings): Promise<string[]> {
  const found = await fetchArrakis(url, { request: "Find", args: EVERY_CHANNEL }, settings);
  const names = new Set<string>();
  for (const { table } of found) {
    const column = table.getChild("channel");
    if (column) {
      for (let i = 0; i < column.length && names.size < 2; i++) names.add(String(column.get(i)));
    } else {
      for (const field of table.schema.fields) {
        if (field.name !== "time" && names.size < 2) names.add(field.name);
      }
    }
  }
  if (names.size === 0) throw new Error("Find listed no channels; pass --channel NAME");
  return [...names];
}
