/**
 * The few Flight calls the bench makes, on raw bytes: requests are encoded once
 * and responses are only counted, so the client costs the same on every path
 * and what differs between two measurements is the path itself.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { tableFromArrays } from "apache-arrow";
import { FLIGHT_SERVICE, flightType } from "../lib/flight/proto.ts";
import { tableToFlightData } from "../lib/flight/arrow_ipc.ts";

const pass = (bytes: Buffer) => bytes;
const path = (method: string) => `/${FLIGHT_SERVICE}/${method}`;

/** A grpc-js channel with unlimited message sizes and no codecs. */
export function rawClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
    // Each path gets its own channel; never share a subchannel between them.
    "grpc.use_local_subchannel_pool": 1,
  });
}

const encode = (type: string, value: Record<string, unknown>) =>
  Buffer.from(flightType(type).encode(flightType(type).fromObject(value)).finish());

/** An encoded CMD FlightDescriptor for an Arrakis request. */
export function arrakisDescriptor(request: string, args: Record<string, unknown>): Buffer {
  const cmd = new TextEncoder().encode(JSON.stringify({ request, args }));
  return encode("FlightDescriptor", { type: 2, cmd });
}

/** An encoded Ticket asking the mock for `batches` batches of `bytes` each (one channel). */
export function streamTicket(messageBytes: number, batches: number): Buffer {
  // One Float64 channel plus the int64 time column: 16 bytes a row.
  const args = { channels: ["X1:BENCH"], rows_per_batch: messageBytes / 16, batches };
  return encode("Ticket", {
    ticket: new TextEncoder().encode(JSON.stringify({ request: "Stream", args })),
  });
}

/** One unary call; resolves with the raw response. */
export function unary(client: grpc.Client, method: string, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest<Buffer, Buffer>(
      path(method),
      pass,
      pass,
      request,
      (error, value) => error ? reject(error) : resolve(value!),
    )
  );
}

/** A DoGet read to the end; resolves with the bytes received. */
export function doGet(client: grpc.Client, ticket: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const call = client.makeServerStreamRequest<Buffer, Buffer>(path("DoGet"), pass, pass, ticket);
    call.on("data", (message: Buffer) => bytes += message.byteLength);
    call.on("error", reject);
    call.on("end", () => resolve(bytes));
  });
}

/** A valid Arrow upload: the schema message, then one record batch of `messageBytes` repeated. */
export function putMessages(messageBytes: number, batches: number): Buffer[] {
  const table = tableFromArrays({ x: new Float64Array(messageBytes / 8).map((_, i) => i) });
  const [schema, batch] = tableToFlightData(table).map((m) => encode("FlightData", { ...m }));
  return [schema, ...Array.from({ length: batches }, () => batch)];
}

/** A DoPut of `messages` with backpressure; resolves with the bytes sent once the server is done. */
export function doPut(client: grpc.Client, messages: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest<Buffer, Buffer>(path("DoPut"), pass, pass);
    let bytes = 0;
    call.on("data", () => {});
    call.on("error", reject);
    call.on("end", () => resolve(bytes));
    let i = 0;
    const pump = () => {
      while (i < messages.length) {
        bytes += messages[i].byteLength;
        if (!call.write(messages[i++])) return void call.once("drain", pump);
      }
      call.end();
    };
    pump();
  });
}

/** Waits until the channel is connected, so the first timed call pays no handshake. */
export function ready(client: grpc.Client, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + timeoutMs, (error) => error ? reject(error) : resolve())
  );
}
