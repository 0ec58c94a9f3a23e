/**
 * Asks an Arrakis info server for every data server it routes to, so the proxy
 * can forward them all before the first client asks.
 *
 * The server's own answer comes first: its `scope-map` action lists every data
 * server by URL (what the real client's `Client.endpoints()` reads). A server
 * without that action (older releases, other Flight services) is asked a `Count`
 * over every channel, shaped as the real client sends it, whose answer has one
 * endpoint per data server.
 *
 * @module
 */
import { grpc } from "./grpc.ts";
import { Buffer } from "node:buffer";
import { methodPath } from "./methods.ts";
import { concatBytes, encodeLenField, encodeVarint, readFields, WireType } from "./wire.ts";
import { collectLocations, Shapes } from "./rewrite.ts";
import { classifyLocation, type ParsedLocation } from "./locations.ts";
import { flightClient } from "./channel.ts";

/**
 * Find/Count arguments that match every channel, in the shape the real client
 * sends them (the real server's schema requires every field, `time` included).
 */
export const EVERY_CHANNEL = {
  pattern: ".*",
  data_type: [],
  min_rate: 0,
  max_rate: 4294967295,
  publisher: [],
  time: null,
  replay_id: null,
} as const;

/** The Arrakis command whose answer lists every data server (the real client's Count). */
export const COUNT_ALL_COMMAND = { request: "Count", args: EVERY_CHANNEL };

/** The Arrakis action that lists every data server the info server routes to. */
export const SCOPE_MAP_ACTION = "scope-map";

const encoder = new TextEncoder();

/**
 * An Arrakis command as JSON text; `bigint` values (GPS nanoseconds, beyond a
 * double's 2^53) are written as plain integers, as the server's schema wants.
 *
 * @example
 * ```ts
 * arrakisJson({ request: "Stream", args: { channels: ["H1:X"], start: 1400000000000000000n, end: null } });
 * // '{"request":"Stream","args":{"channels":["H1:X"],"start":1400000000000000000,"end":null}}'
 * ```
 */
export function arrakisJson(command: { request: string; args: unknown }): string {
  const marker = "\u0000bigint:";
  return JSON.stringify(command, (_, value) => typeof value === "bigint" ? marker + value : value)
    .replace(/"\\u0000bigint:(-?\d+)"/g, "$1");
}

/** Encodes an Arrakis command as a CMD FlightDescriptor (type = 2, cmd = the JSON). */
export function arrakisDescriptor(command: { request: string; args: unknown }): Uint8Array {
  const cmd = encoder.encode(arrakisJson(command));
  return concatBytes([
    encodeVarint(1 * 8 + WireType.VARINT),
    encodeVarint(2),
    ...encodeLenField(2, cmd),
  ]);
}

/** Encodes a Flight Action (1: type, 2: body). */
function encodeAction(type: string, body: Uint8Array): Uint8Array {
  return concatBytes([...encodeLenField(1, encoder.encode(type)), ...encodeLenField(2, body)]);
}

/** The body of an encoded Flight Result (field 1). */
function resultBody(bytes: Uint8Array): Uint8Array {
  let body: Uint8Array = new Uint8Array();
  for (const field of readFields(bytes)) {
    if (field.number === 1 && field.wireType === WireType.LEN) {
      body = bytes.subarray(field.valueStart, field.end);
    }
  }
  return body;
}

const pass = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A call the server answered with an error: its text, and its gRPC status code. */
export class CallError extends Error {
  /** The gRPC status code (16 UNAUTHENTICATED, 7 PERMISSION_DENIED, …). */
  readonly code: number;
  /** `message` is the server's text. */
  constructor(message: string, code: number) {
    super(message);
    this.name = "CallError";
    this.code = code;
  }
}

function callError(error: grpc.ServiceError): Error {
  return new CallError(error.details || error.message, error.code);
}

/** gRPC call metadata, as grpc-js has it. */
export type CallMetadata = grpc.Metadata;

/** Call metadata carrying `authorization` (`Bearer …`) when there is one. */
export function callMetadata(authorization?: string): CallMetadata {
  const metadata = new grpc.Metadata();
  if (authorization) metadata.set("authorization", authorization);
  return metadata;
}

/** One raw GetFlightInfo call; resolves to the encoded FlightInfo. */
export function getFlightInfoBytes(
  url: string,
  descriptor: Uint8Array,
  timeoutMs = 10_000,
  authorization?: string,
): Promise<Uint8Array> {
  const client = flightClient(url);
  return new Promise<Uint8Array>((resolve, reject) => {
    client.makeUnaryRequest<Uint8Array, Uint8Array>(
      methodPath("GetFlightInfo"),
      pass,
      (b) => b,
      descriptor,
      callMetadata(authorization),
      { deadline: Date.now() + timeoutMs },
      (error, value) => error ? reject(callError(error)) : resolve(value!),
    );
  }).finally(() => client.close());
}

/**
 * One DoAction call with an empty body; resolves to the bodies of its results.
 * `authorization`, when given, is sent as the call's `authorization` header.
 */
export function doActionBodies(
  url: string,
  type: string,
  timeoutMs = 10_000,
  authorization?: string,
): Promise<Uint8Array[]> {
  const client = flightClient(url);
  const action = encodeAction(type, new Uint8Array());
  return new Promise<Uint8Array[]>((resolve, reject) => {
    const bodies: Uint8Array[] = [];
    const call = client.makeServerStreamRequest<Uint8Array, Uint8Array>(
      methodPath("DoAction"),
      pass,
      (b) => b,
      action,
      callMetadata(authorization),
      { deadline: Date.now() + timeoutMs },
    );
    call.on("data", (bytes: Uint8Array) => {
      try {
        bodies.push(resultBody(bytes));
      } catch (error) {
        call.cancel();
        reject(error);
      }
    });
    call.on("error", (error: grpc.ServiceError) => reject(callError(error)));
    call.on("end", () => resolve(bodies));
  }).finally(() => client.close());
}

/** How {@link discoverEndpoints} found the data servers. */
export type DiscoveryMethod = "scope-map" | "count";

/** What {@link discoverEndpoints} found. */
export interface Discovery {
  /** Distinct remote endpoints, one per data server. */
  endpoints: ParsedLocation[];
  /** Which question the server answered. */
  method: DiscoveryMethod;
  /** Names the server gave that are not endpoints the proxy can forward. */
  ignored: string[];
}

/**
 * The data server URLs in a `scope-map` action's answer
 * (`{"endpoints": {"grpc://data-a:40001": {...}, ...}}`). Throws when the answer
 * is not shaped like that: the remote side is validated, not trusted.
 *
 * @example
 * ```ts
 * const body = new TextEncoder().encode('{"endpoints": {"grpc://data-a:40001": {}}}');
 * scopeMapUrls(body); // ["grpc://data-a:40001"]
 * ```
 */
export function scopeMapUrls(body: Uint8Array): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new Error(`the scope map is not JSON (${(error as Error).message})`);
  }
  const endpoints = (parsed as { endpoints?: unknown } | null)?.endpoints;
  if (typeof endpoints !== "object" || endpoints === null || Array.isArray(endpoints)) {
    throw new Error("the scope map has no endpoints object");
  }
  return Object.keys(endpoints);
}

function distinctEndpoints(uris: Iterable<string>): Pick<Discovery, "endpoints" | "ignored"> {
  const found = new Map<string, ParsedLocation>();
  const ignored: string[] = [];
  for (const uri of uris) {
    const kind = classifyLocation(uri);
    if (kind.kind === "endpoint") found.set(kind.location.netloc, kind.location);
    // The info server's own data: reached through its forward already.
    else if (kind.kind !== "reuse-connection" && uri !== "") ignored.push(uri);
  }
  return { endpoints: [...found.values()], ignored };
}

/**
 * The distinct remote endpoints (`host:port`) of the data servers behind the info
 * server at `url`: from its `scope-map` action, else from a Count over every
 * channel. Reuse-connection and empty locations name no other server and are left
 * out. Throws when the server answers neither. `authorization` (`Bearer …`)
 * goes with both calls, for deployments whose reads need a token.
 *
 * @example
 * ```ts
 * const { endpoints, method } = await discoverEndpoints("grpc://127.0.0.1:41001");
 * // endpoints: [{ netloc: "data-a:40001", … }, …], method: "scope-map"
 * ```
 */
export async function discoverEndpoints(
  url: string,
  timeoutMs?: number,
  authorization?: string,
): Promise<Discovery> {
  let scopeMapError: Error;
  try {
    const bodies = await doActionBodies(url, SCOPE_MAP_ACTION, timeoutMs, authorization);
    if (bodies.length !== 1) throw new Error(`${bodies.length} results, expected 1`);
    return { ...distinctEndpoints(scopeMapUrls(bodies[0])), method: "scope-map" };
  } catch (error) {
    scopeMapError = error as Error;
  }
  try {
    const info = await getFlightInfoBytes(
      url,
      arrakisDescriptor(COUNT_ALL_COMMAND),
      timeoutMs,
      authorization,
    );
    return { ...distinctEndpoints(collectLocations(info, Shapes.FlightInfo)), method: "count" };
  } catch (error) {
    const message = `scope-map action: ${scopeMapError.message}; Count: ${
      (error as Error).message
    }`;
    // Refused twice alike (no token, say): the caller can still tell why.
    const code = error instanceof CallError && scopeMapError instanceof CallError &&
        error.code === scopeMapError.code
      ? error.code
      : undefined;
    throw code === undefined ? new Error(message) : new CallError(message, code);
  }
}
