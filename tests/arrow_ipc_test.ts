// JSR is out of reach here, so assertions come from Node's built-in module.
import assert from "node:assert/strict";
import {
  Field,
  Float64,
  Int64,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromArrays,
} from "apache-arrow";
import {
  flightDataToIpcStream,
  flightDataToTable,
  ipcStreamToFlightData,
  recordBatchToFlightData,
  schemaFromIpcBytes,
  schemaToFlightData,
  schemaToIpcBytes,
  tableToFlightData,
} from "../lib/flight/arrow_ipc.ts";

const schema = new Schema(
  [
    new Field("time", new Int64(), false),
    new Field("X1:CHAN", new Float64(), false, new Map([["rate", "16"], ["units", "m"]])),
  ],
  new Map([["server", "unit-test"]]),
);

function batch(start: number, rows: number): RecordBatch {
  const time = BigInt64Array.from({ length: rows }, (_, i) => BigInt(start + i) * 1_000_000n);
  const values = Float64Array.from({ length: rows }, (_, i) => (start + i) / 4);
  const children = [
    makeData({ type: new Int64(), length: rows, nullCount: 0, data: time }),
    makeData({ type: new Float64(), length: rows, nullCount: 0, data: values }),
  ];
  return new RecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length: rows, nullCount: 0, children }),
  );
}

function assertSameTable(actual: Table, expected: Table) {
  assert.deepEqual(actual.schema.metadata, expected.schema.metadata);
  assert.deepEqual(
    actual.schema.fields.map((f) => [f.name, String(f.type), f.metadata]),
    expected.schema.fields.map((f) => [f.name, String(f.type), f.metadata]),
  );
  assert.equal(actual.numRows, expected.numRows);
  for (const field of expected.schema.fields) {
    assert.deepEqual(
      actual.getChild(field.name)?.toArray(),
      expected.getChild(field.name)?.toArray(),
    );
  }
}

Deno.test("tableToFlightData: round trip keeps data, field and schema metadata", () => {
  const table = new Table([batch(0, 10)]);
  const messages = tableToFlightData(table);
  assert.equal(messages.length, 2, "schema + one batch");
  assert.equal(messages[0].data_body.byteLength, 0, "a schema message has no body");
  assert.ok(messages[1].data_body.byteLength >= 10 * 16);
  assertSameTable(flightDataToTable(messages), table);
});

Deno.test("tableToFlightData: one message per record batch", () => {
  const table = new Table([batch(0, 3), batch(3, 5), batch(8, 7)]);
  const messages = tableToFlightData(table);
  assert.equal(messages.length, 4);
  const back = flightDataToTable(messages);
  assert.deepEqual(back.batches.map((b) => b.numRows), [3, 5, 7]);
  assertSameTable(back, table);
});

Deno.test("tableToFlightData: an empty table is just its schema", () => {
  const messages = tableToFlightData(new Table(schema));
  assert.equal(messages.length, 1);
  const back = flightDataToTable(messages);
  assert.equal(back.numRows, 0);
  assert.deepEqual(back.schema.metadata, schema.metadata);
  assert.deepEqual(back.schema.fields.map((f) => f.name), ["time", "X1:CHAN"]);
});

Deno.test("recordBatchToFlightData: streams batch by batch after the schema", () => {
  const batches = [batch(0, 4), batch(4, 4)];
  const messages = [schemaToFlightData(schema), ...batches.flatMap(recordBatchToFlightData)];
  assert.equal(messages.length, 3);
  assertSameTable(flightDataToTable(messages), new Table(batches));
});

Deno.test("flightDataToIpcStream: reframes what ipcStreamToFlightData split", () => {
  const table = tableFromArrays({ a: new Float64Array([1, 2, 3]), b: new Int32Array([4, 5, 6]) });
  const messages = tableToFlightData(table);
  const again = ipcStreamToFlightData(flightDataToIpcStream(messages));
  assert.deepEqual(again, messages);
});

Deno.test("flightDataToTable: skips metadata-only messages", () => {
  const messages = tableToFlightData(new Table([batch(0, 2)]));
  const withExtra = [
    messages[0],
    {
      data_header: new Uint8Array(),
      data_body: new Uint8Array(),
      app_metadata: new Uint8Array([1]),
    },
    messages[1],
  ];
  assert.equal(flightDataToTable(withExtra).numRows, 2);
});

Deno.test("schemaToIpcBytes: framed schema message that decodes back", () => {
  const bytes = schemaToIpcBytes(schema);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(view.getUint32(0, true), 0xffffffff, "continuation marker");
  assert.equal(view.getInt32(4, true), bytes.byteLength - 8, "length covers the rest");
  const back = schemaFromIpcBytes(bytes);
  assert.deepEqual(back?.metadata, schema.metadata);
  assert.deepEqual(back?.fields[1].metadata, schema.fields[1].metadata);
  assert.equal(schemaFromIpcBytes(new Uint8Array()), null);
});
