/**
 * Asks an Arrakis info server for every endpoint it knows: a `Count` over all
 * channels answers one endpoint per data server.
 *
 * @module
 */
import { grpc } from "./grpc.ts";
import { Buffer } from "node:buffer";
import { FLIGHT_SERVICE, flightType } from "./proto.ts";
import { collectLocations, Shapes } from "./rewrite.ts";
import { classifyLocation, type ParsedLocation } from "./locations.ts";
import { backendTarget } from "./proxy.ts";

/** The Arrakis command whose answer lists every data server. */
export const COUNT_ALL_COMMAND = {
  request: "Count",
  args: { pattern: ".*", data_type: [], min_rate: 0, max_rate: 4294967295, publisher: [] },
};

/** Encodes an Arrakis command as a CMD FlightDescriptor. */
export function arrakisDescriptor(command: { request: string; args: unknown }): Uint8Array {
  return flightType("FlightDescriptor").encode({
    type: 2,
    cmd: new TextEncoder().encode(JSON.stringify(command)),
  }).finish();
}

/** One raw GetFlightInfo call; resolves to the encoded FlightInfo. */
export function getFlightInfoBytes(
  url: string,
  descriptor: Uint8Array,
  timeoutMs = 10_000,
): Promise<Uint8Array> {
  const client = new grpc.Client(backendTarget(url), grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
  });
  const pass = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return new Promise<Uint8Array>((resolve, reject) => {
    client.makeUnaryRequest<Uint8Array, Uint8Array>(
      `/${FLIGHT_SERVICE}/GetFlightInfo`,
      pass,
      (b) => b,
      descriptor,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, value) => error ? reject(new Error(error.details || error.message)) : resolve(value!),
    );
  }).finally(() => client.close());
}

/**
 * The distinct remote endpoints (`host:port`) the info server at `url` hands out
 * for a Count over every channel. Reuse-connection and empty locations name no
 * other server and are left out.
 */
export async function discoverEndpoints(
  url: string,
  timeoutMs?: number,
): Promise<ParsedLocation[]> {
  const info = await getFlightInfoBytes(url, arrakisDescriptor(COUNT_ALL_COMMAND), timeoutMs);
  const found = new Map<string, ParsedLocation>();
  for (const uri of collectLocations(info, Shapes.FlightInfo)) {
    const kind = classifyLocation(uri);
    if (kind.kind === "endpoint") found.set(kind.location.netloc, kind.location);
  }
  return [...found.values()];
}
