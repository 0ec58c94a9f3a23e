// The mock deployment on its own, no proxy: what every proxy test relies on.
// JSR is out of reach here, so assertions come from Node's built-in module.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import type { Table } from "apache-arrow";
import { flightType } from "../lib/flight/proto.ts";
import { schemaFromIpcBytes, tableToFlightData } from "../lib/flight/arrow_ipc.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";
import {
  DEFAULT_CHANNELS,
  expectedTable,
  parseCommand,
  REUSE_CONNECTION,
  startMockDeployment,
} from "./fixtures/mock_arrakis.ts";

const decoder = new TextDecoder();
const text = (bytes: Uint8Array) => decoder.decode(bytes);

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

async function rejectsWith(
  promise: Promise<unknown>,
  code: grpc.status,
): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    assert.equal((error as grpc.ServiceError).code, code, String(error));
    return error as grpc.ServiceError;
  }
  assert.fail(`expected status ${grpc.status[code]}`);
}

Deno.test("Count lists one endpoint per data server, each serving its own data", async () => {
  await using deployment = await startMockDeployment();
  using info = FlightTestClient.connect(deployment.infoUrl);
  const flight = await info.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
  assert.deepEqual(
    info.locations(flight),
    deployment.data.map((s) => [`grpc://${s.address}`]),
  );
  for (const [i, endpoint] of flight.endpoint.entries()) {
    const server = deployment.data[i];
    const ticket = endpoint.ticket!.ticket;
    assert.equal(parseCommand(ticket).server, server.name);
    using client = FlightTestClient.connect(endpoint.location[0].uri);
    const { table } = await client.doGet(ticket);
    assertSameTable(table, expectedTable({}, server.name));
    assert.equal(table.schema.metadata.get("server"), server.name);
    assert.equal(server.calls.at(-1)?.method, "DoGet");
  }
  assert.equal(deployment.info.calls[0].method, "GetFlightInfo");
});

Deno.test("advertised addresses go into locations while servers bind elsewhere", async () => {
  await using deployment = await startMockDeployment({
    info: { advertise: "arrakis-info:31206" },
    data: [{ name: "data-a", advertise: "data-a:40001" }],
  });
  using info = FlightTestClient.connect(deployment.infoUrl);
  const flight = await info.getFlightInfo(arrakisCommand("Find", {}));
  assert.deepEqual(info.locations(flight), [["grpc://data-a:40001"]]);
  assert.equal(deployment.data[0].advertise, "data-a:40001");
  assert.match(deployment.data[0].address, /^127\.0\.0\.1:\d+$/);
});

Deno.test("Stream: replicas, reuse-connection and empty endpoints, all redeemable", async () => {
  await using deployment = await startMockDeployment();
  using info = FlightTestClient.connect(deployment.infoUrl);
  const channels = ["X1:A", "X1:B", "X1:C", "X1:D"];
  const flight = await info.getFlightInfo(
    arrakisCommand("Stream", { channels, start: null, end: null }),
  );
  const [a, b] = deployment.data;
  assert.deepEqual(info.locations(flight), [
    [`grpc://${a.address}`, `grpc://${b.address}`],
    [REUSE_CONNECTION],
    [],
  ]);
  assert.equal(flight.ordered, true);
  assert.equal(flight.total_records, "32");
  assert.deepEqual(schemaFromIpcBytes(flight.schema)?.fields.map((f) => f.name), [
    "time",
    ...channels,
  ]);
  for (const endpoint of flight.endpoint) {
    assert.ok(Number(endpoint.expiration_time?.seconds) > Date.now() / 1000);
    assert.ok(endpoint.app_metadata.byteLength > 0);
  }
  const narrowed = flight.endpoint.map((e) => parseCommand(e.ticket!.ticket).args.channels);
  assert.deepEqual(narrowed, [["X1:A", "X1:D"], ["X1:B"], ["X1:C"]]);

  // Replicas serve the same channels; the schema metadata says which answered.
  for (const server of [a, b]) {
    using client = FlightTestClient.connect(`grpc://${server.address}`);
    const { table } = await client.doGet(flight.endpoint[0].ticket!.ticket);
    assertSameTable(table, expectedTable({ channels: ["X1:A", "X1:D"] }, server.name));
  }
  // Reuse-connection and empty-location endpoints are redeemed on the info server.
  for (const k of [1, 2]) {
    const { table } = await info.doGet(flight.endpoint[k].ticket!.ticket);
    assertSameTable(table, expectedTable({ channels: narrowed[k] }, "info"));
  }
});

Deno.test("Describe answers with a reuse-connection endpoint; unknown requests fail", async () => {
  await using deployment = await startMockDeployment();
  using info = FlightTestClient.connect(deployment.infoUrl);
  const flight = await info.getFlightInfo(arrakisCommand("Describe", { channels: ["X1:A"] }));
  assert.deepEqual(info.locations(flight), [[REUSE_CONNECTION]]);
  const error = await rejectsWith(
    info.getFlightInfo(arrakisCommand("Nope", {})),
    grpc.status.INVALID_ARGUMENT,
  );
  assert.match(error.details, /unknown Arrakis request "Nope"/);
});

Deno.test("Raw returns the given bytes verbatim, unknown fields included", async () => {
  await using deployment = await startMockDeployment();
  using info = FlightTestClient.connect(deployment.infoUrl);
  const FlightInfo = flightType("FlightInfo");
  const known = FlightInfo.encode(FlightInfo.fromObject({
    endpoint: [{ location: [{ uri: "grpc://somewhere:1" }] }],
    total_records: 7,
  })).finish();
  // Field 99, length-delimited "hi": a field this Flight version does not know.
  const raw = new Uint8Array([...known, 0x9a, 0x06, 0x02, 0x68, 0x69]);
  const command = arrakisCommand("Raw", { base64: Buffer.from(raw).toString("base64") });
  assert.deepEqual(await info.getFlightInfoBytes(command), raw);
  const decoded = await info.getFlightInfo(command);
  assert.deepEqual(info.locations(decoded), [["grpc://somewhere:1"]]);
  const poll = await info.pollFlightInfo(command);
  assert.deepEqual(info.locations(poll.info!), [["grpc://somewhere:1"]]);
});

Deno.test("PollFlightInfo wraps the FlightInfo; GetSchema and ListFlights answer", async () => {
  await using deployment = await startMockDeployment();
  using info = FlightTestClient.connect(deployment.infoUrl);
  const poll = await info.pollFlightInfo(arrakisCommand("Count", {}));
  assert.equal(poll.progress, 1);
  assert.equal(poll.info?.endpoint.length, 2);
  assert.ok(poll.expiration_time);

  const { schema } = await info.getSchema(arrakisCommand("Stream", { channels: ["X1:Z"] }));
  assert.deepEqual(schemaFromIpcBytes(schema)?.fields.map((f) => f.name), ["time", "X1:Z"]);

  const flights = await info.listFlights();
  const [a, b] = deployment.data.map((s) => `grpc://${s.address}`);
  assert.deepEqual(flights.map((f) => info.locations(f)), [[[a]], [[b]], [[a, b]]]);
});

Deno.test("a late data server appears in Count and Stream answers", async () => {
  await using deployment = await startMockDeployment({ data: [{ name: "data-a" }] });
  using info = FlightTestClient.connect(deployment.infoUrl);
  const stream = arrakisCommand("Stream", { channels: ["X1:A"] });
  assert.deepEqual((await info.getFlightInfo(stream)).endpoint[0].location.length, 1);

  const late = await deployment.addDataServer({ name: "data-late", advertise: "late:1234" });
  const count = await info.getFlightInfo(arrakisCommand("Count", {}));
  assert.deepEqual(info.locations(count).at(-1), ["grpc://late:1234"]);
  assert.deepEqual(info.locations(await info.getFlightInfo(stream))[0], [
    `grpc://${deployment.data[0].address}`,
    "grpc://late:1234",
  ]);
  using client = FlightTestClient.connect(late.url);
  const { table } = await client.doGet(count.endpoint.at(-1)!.ticket!.ticket);
  assert.equal(table.schema.metadata.get("server"), "data-late");

  await deployment.stopDataServer("data-late");
  await rejectsWith(client.doGet(count.endpoint.at(-1)!.ticket!.ticket), grpc.status.UNAVAILABLE);
  assert.equal((await info.getFlightInfo(arrakisCommand("Count", {}))).endpoint.length, 2);

  // Restarted on the same port it is reachable again, by a fresh client: the old
  // channel sits in grpc-js's reconnect backoff after the refused connection.
  const port = Number(late.address.split(":").at(-1));
  const again = await deployment.addDataServer({ name: "data-late", port, advertise: "late:1234" });
  assert.equal(again.address, late.address);
  assert.equal(deployment.data.length, 2);
  using fresh = FlightTestClient.connect(late.url);
  await fresh.doGet(count.endpoint.at(-1)!.ticket!.ticket);
  assert.equal(again.calls.length, 1);
  await deployment.stopDataServer("data-a", { forget: true });
  assert.equal((await info.getFlightInfo(arrakisCommand("Count", {}))).endpoint.length, 1);
});

Deno.test("DoGet streams a single batch over 64 MiB", async () => {
  await using deployment = await startMockDeployment({ data: [] });
  using info = FlightTestClient.connect(deployment.infoUrl);
  const args = { channels: ["X1:BIG"], rows_per_batch: 4_400_000, batches: 1 };
  const ticket = new TextEncoder().encode(JSON.stringify({ request: "Stream", args }));
  const { table, messages } = await info.doGet(ticket);
  assert.equal(messages.length, 2);
  assert.ok(messages[1].data_body.byteLength > 64 * 1024 * 1024);
  assert.equal(table.numRows, 4_400_000);
  const values = table.getChild("X1:BIG")!.toArray() as Float64Array;
  assert.equal(
    values[4_399_999],
    expectedTable({ ...args, rows_per_batch: 1 }, "info")
      .getChild("X1:BIG")!.get(0) + 4_399_999 / 4,
  );
});

Deno.test("DoPut acknowledges each message and keeps the upload", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.data[0].url);
  const upload = expectedTable({ channels: ["X1:UP"], batches: 3 }, "client");
  const messages = tableToFlightData(upload);
  messages[0] = { ...messages[0], flight_descriptor: arrakisCommand("Publish", {}) } as never;
  const results = await client.doPut(messages);
  assert.equal(results.length, 4);
  const last = JSON.parse(text(results.at(-1)!.app_metadata));
  assert.equal(last.messages, 4);
  assert.equal(last.bytes, messages.reduce((n, m) => n + m.data_body.byteLength, 0));
  assertSameTable(deployment.data[0].lastPut!, upload);
});

Deno.test("DoExchange echoes every message", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.infoUrl);
  const messages = tableToFlightData(expectedTable({}, "x"));
  const back = await client.doExchange(messages);
  assert.equal(back.length, messages.length);
  for (const [i, m] of back.entries()) {
    assert.deepEqual(new Uint8Array(m.data_header), messages[i].data_header);
    assert.deepEqual(new Uint8Array(m.data_body), messages[i].data_body);
  }
});

Deno.test("actions: echo, error trailers, headers, deadline, list, handshake", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.infoUrl);
  assert.equal(text((await client.doAction("echo", "hello"))[0].body), "hello");

  const error = await rejectsWith(client.doAction("error"), grpc.status.PERMISSION_DENIED);
  assert.equal(error.details, "denied by mock");
  assert.deepEqual(error.metadata.get("x-arrakis-detail"), ["mock-detail"]);
  assert.deepEqual(error.metadata.get("x-arrakis-trace-bin"), [
    Buffer.from([0xde, 0xad, 0xbe, 0xef]),
  ]);

  const headers = await client.doAction("headers", "", { metadata: { "x-token": "abc" } });
  assert.deepEqual(headers.headers.get("x-echo-x-token"), ["abc"]);
  assert.deepEqual(headers.trailers.get("x-trailer"), ["yes"]);
  assert.equal(JSON.parse(text(headers[0].body))["x-token"], "abc");

  const remaining = Number(
    text((await client.doAction("deadline", "", { timeout: 5000 }))[0].body),
  );
  assert.ok(remaining > 3000 && remaining <= 5000, String(remaining));
  assert.equal(text((await client.doAction("deadline"))[0].body), "none");

  const actions = await client.listActions();
  assert.ok(actions.some((a) => a.type === "CancelFlightInfo"));
  const shake = await client.handshake([new Uint8Array([1, 2])]);
  assert.deepEqual(new Uint8Array(shake[0].payload), new Uint8Array([1, 2]));
  assert.equal(shake[0].protocol_version, "1");
});

Deno.test("actions: CancelFlightInfo and RenewFlightEndpoint record locations", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.infoUrl);
  const info = await client.getFlightInfo(arrakisCommand("Stream", {}));
  const CancelRequest = flightType("CancelFlightInfoRequest");
  const cancel = await client.doAction(
    "CancelFlightInfo",
    CancelRequest.encode(CancelRequest.fromObject({ info })).finish(),
  );
  const CancelResult = flightType("CancelFlightInfoResult");
  assert.equal(CancelResult.decode(cancel[0].body).toJSON().status, "CANCEL_STATUS_CANCELLED");
  assert.deepEqual(
    deployment.info.seenLocations,
    info.endpoint.flatMap((e) => e.location).map((l) => l.uri),
  );

  const RenewRequest = flightType("RenewFlightEndpointRequest");
  const endpoint = info.endpoint[0];
  const renew = await client.doAction(
    "RenewFlightEndpoint",
    RenewRequest.encode(RenewRequest.fromObject({ endpoint })).finish(),
  );
  const renewed = flightType("FlightEndpoint").toObject(
    flightType("FlightEndpoint").decode(renew[0].body),
    { longs: Number },
  );
  assert.deepEqual(renewed.location, endpoint.location);
  assert.ok(renewed.expiration_time.seconds > Number(endpoint.expiration_time!.seconds));
});

Deno.test("cancellation is recorded for slow actions and big downloads only", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.infoUrl);
  const calls = deployment.info.calls;
  const settled = async (n: number) => {
    for (let i = 0; i < 100 && calls.length >= n && calls[n - 1].cancelled === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  assert.equal(text((await client.doAction("slow", "10"))[0].body), "done");
  await client.doGet(new TextEncoder().encode('{"request": "Stream", "args": {}}'));
  await rejectsWith(
    client.doAction("slow", "5000", { timeout: 100 }),
    grpc.status.DEADLINE_EXCEEDED,
  );
  await settled(3);
  const huge = { request: "Stream", args: { rows_per_batch: 100_000, batches: 10_000 } };
  await rejectsWith(
    client.doGet(new TextEncoder().encode(JSON.stringify(huge)), { timeout: 200 }),
    grpc.status.DEADLINE_EXCEEDED,
  );
  await settled(4);
  assert.deepEqual(calls.map((c) => c.cancelled), [undefined, undefined, true, true]);
});

Deno.test("calls record method, metadata and request", async () => {
  await using deployment = await startMockDeployment();
  using client = FlightTestClient.connect(deployment.infoUrl);
  await client.getFlightInfo(arrakisCommand("Count", {}), {
    metadata: { "x-arrakis-user": "alice", "x-blob-bin": new Uint8Array([1, 2, 3]) },
  });
  const [call] = deployment.info.calls;
  assert.equal(call.method, "GetFlightInfo");
  assert.equal(call.metadata["x-arrakis-user"], "alice");
  assert.equal(call.metadata["x-blob-bin"], "AQID");
  assert.equal(parseCommand((call.request as { cmd: Uint8Array }).cmd).request, "Count");
});

Deno.test("default channels are used when a ticket names none", () => {
  const table = expectedTable({}, "data-a");
  assert.deepEqual(table.schema.fields.map((f) => f.name), ["time", ...DEFAULT_CHANNELS]);
  assert.equal(table.numRows, 32);
  assert.equal(table.schema.fields[1].metadata.get("rate"), "16");
});

Deno.test("mock_arrakis_main: ready line, add-data-server, exit on stdin EOF", async () => {
  const main = new URL("./fixtures/mock_arrakis_main.ts", import.meta.url).pathname;
  const options = { data: [{ name: "data-a", advertise: "data-a:40001" }] };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, JSON.stringify(options)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = child.stdin.getWriter();
  let buffered = "";
  const readLine = async () => {
    while (!buffered.includes("\n")) {
      const { value, done } = await stdout.read();
      if (done) throw new Error(`stdout ended; got ${JSON.stringify(buffered)}`);
      buffered += value;
    }
    const line = buffered.slice(0, buffered.indexOf("\n"));
    buffered = buffered.slice(line.length + 1);
    return JSON.parse(line);
  };
  const send = (command: unknown) =>
    stdin.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));

  const ready = await readLine();
  assert.match(ready.info, /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(ready.data.map((s: { name: string }) => s.name), ["data-a"]);

  await send({ cmd: "add-data-server", server: { name: "data-late", advertise: "late:9" } });
  const added = await readLine();
  assert.equal(added.ok, true);
  assert.match(added.address, /^127\.0\.0\.1:\d+$/);
  {
    using info = FlightTestClient.connect(`grpc://${ready.info}`);
    const count = await info.getFlightInfo(arrakisCommand("Count", {}));
    assert.deepEqual(info.locations(count), [["grpc://data-a:40001"], ["grpc://late:9"]]);
    using late = FlightTestClient.connect(`grpc://${added.address}`);
    const { table } = await late.doGet(count.endpoint[1].ticket!.ticket);
    assertSameTable(table, expectedTable({}, "data-late"));
  }
  await send({ cmd: "stop-data-server", name: "nobody" });
  assert.deepEqual(await readLine(), { ok: false, error: "no data server named nobody" });

  await stdin.close();
  assert.equal((await child.status).code, 0);
  assert.equal((await stdout.read()).done, true);
});
