/**
 * Conversion between Arrow tables and Flight `FlightData` messages.
 *
 * Flight carries an Arrow IPC stream one message at a time: each `FlightData`
 * holds one IPC message, its flatbuffer metadata in `data_header` and its body
 * in `data_body`, without the stream framing (continuation marker, length,
 * padding). These helpers add and strip that framing so apache-arrow's own IPC
 * reader and writer can do the rest.
 *
 * @example
 * ```ts
 * import { tableFromArrays } from "apache-arrow";
 * import { flightDataToTable, tableToFlightData } from "./arrow_ipc.ts";
 *
 * const table = tableFromArrays({ x: new Float64Array([1, 2, 3]) });
 * const messages = tableToFlightData(table); // schema, then one per batch
 * flightDataToTable(messages).numRows; // 3
 * ```
 *
 * @module
 */
import {
  Message,
  type RecordBatch,
  RecordBatchStreamWriter,
  type Schema,
  Table,
  tableFromIPC,
  tableToIPC,
} from "./arrow.ts";

/** One Flight `FlightData` message, as far as the Arrow payload goes. */
export interface FlightData {
  /** The IPC message metadata: a flatbuffer `Message`, unframed. */
  data_header: Uint8Array;
  /** The IPC message body (buffers of a record or dictionary batch); empty for a schema. */
  data_body: Uint8Array;
  /** Application bytes riding beside the data; not part of the Arrow stream. */
  app_metadata?: Uint8Array;
}

/** The IPC stream continuation marker that precedes every framed message. */
const CONTINUATION = 0xffffffff;

/** Frames are padded so each message body starts 8-byte aligned. */
const ALIGNMENT = 8;

/**
 * Split an Arrow IPC stream (bytes as written by `tableToIPC(t, "stream")`) into
 * FlightData messages, one per IPC message, dropping the end-of-stream marker.
 *
 * Accepts both the current framing (continuation marker, then length) and the
 * legacy one (length only, before Arrow 0.15).
 */
export function ipcStreamToFlightData(stream: Uint8Array): FlightData[] {
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const messages: FlightData[] = [];
  let offset = 0;
  while (offset + 4 <= stream.byteLength) {
    let length = view.getInt32(offset, true);
    offset += 4;
    if (length === -1) {
      if (offset + 4 > stream.byteLength) break;
      length = view.getInt32(offset, true);
      offset += 4;
    }
    if (length === 0) break; // end of stream
    if (length < 0 || offset + length > stream.byteLength) {
      throw new RangeError(`Truncated Arrow IPC stream: message of ${length} bytes at ${offset}`);
    }
    // The length includes the padding; the flatbuffer ignores the trailing zeros.
    const header = stream.subarray(offset, offset + length);
    offset += length;
    const bodyLength = Message.decode(header).bodyLength;
    if (offset + bodyLength > stream.byteLength) {
      throw new RangeError(`Truncated Arrow IPC stream: body of ${bodyLength} bytes at ${offset}`);
    }
    messages.push({ data_header: header, data_body: stream.subarray(offset, offset + bodyLength) });
    offset += bodyLength;
  }
  return messages;
}

/**
 * Frame FlightData messages back into one Arrow IPC stream, end marker included.
 * Messages without a `data_header` (pure app_metadata) are skipped.
 */
export function flightDataToIpcStream(messages: Iterable<FlightData>): Uint8Array {
  const frames: Array<{ header: Uint8Array; padded: number; body: Uint8Array }> = [];
  let total = 8; // end-of-stream marker
  for (const { data_header: header, data_body: body } of messages) {
    if (!header || header.byteLength === 0) continue;
    const padded = alignUp(header.byteLength);
    const bodyBytes = body ?? new Uint8Array();
    frames.push({ header, padded, body: bodyBytes });
    total += 8 + padded + bodyBytes.byteLength;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const { header, padded, body } of frames) {
    view.setUint32(offset, CONTINUATION, true);
    view.setInt32(offset + 4, padded, true);
    out.set(header, offset + 8);
    offset += 8 + padded;
    // Bodies are written as-is: the reader reads exactly the bodyLength the header states.
    out.set(body, offset);
    offset += body.byteLength;
  }
  view.setUint32(offset, CONTINUATION, true); // then a zero length: end of stream
  return out;
}

/**
 * Encode a table as FlightData: the schema message first, then dictionary
 * batches if any, then one message per record batch.
 */
export function tableToFlightData(table: Table): FlightData[] {
  return ipcStreamToFlightData(tableToIPC(table, "stream"));
}

/**
 * Encode one record batch as the FlightData messages that follow the schema
 * (its dictionaries, if any, then the batch itself), for streaming a table batch
 * by batch without holding it whole. Send {@link schemaToFlightData} first.
 */
export function recordBatchToFlightData(batch: RecordBatch): FlightData[] {
  // A one-batch stream is schema + batch; drop the schema, the caller sent it.
  const writer = new RecordBatchStreamWriter();
  writer.write(batch);
  writer.finish();
  return ipcStreamToFlightData(writer.toUint8Array(true)).slice(1);
}

/** The schema message that opens a FlightData stream. */
export function schemaToFlightData(schema: Schema): FlightData {
  return ipcStreamToFlightData(tableToIPC(new Table(schema), "stream"))[0];
}

/** Decode a FlightData stream (schema message first) into a table. */
export function flightDataToTable(messages: Iterable<FlightData>): Table {
  return tableFromIPC(flightDataToIpcStream(messages));
}

/**
 * The framed IPC schema message used by `FlightInfo.schema` and
 * `SchemaResult.schema`: continuation marker, length, flatbuffer.
 */
export function schemaToIpcBytes(schema: Schema): Uint8Array {
  const stream = tableToIPC(new Table(schema), "stream");
  return stream.subarray(0, stream.byteLength - 8).slice(); // drop the end marker
}

/** Decode `FlightInfo.schema` / `SchemaResult.schema` bytes; null when empty. */
export function schemaFromIpcBytes(bytes: Uint8Array): Schema | null {
  if (bytes.byteLength === 0) return null;
  const [schema] = ipcStreamToFlightData(bytes);
  if (!schema) return null;
  return flightDataToTable([schema]).schema;
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}
