/**
 * The Publish answer `arrakis.Publisher` reads its bootstrap.servers from,
 * captured from arrakis-server with the Kafka backend
 * (fixtures/capture_kafka_flight_info.ts), rewritten to local Kafka listeners
 * and read back by pyarrow, as the Publisher reads it.
 */
import { assert, assertEquals, assertRejects } from "./assert.ts";
import {
  flightDataToIpcStream,
  ipcStreamToFlightData,
  tableToFlightData,
} from "../lib/flight/arrow_ipc.ts";
import {
  bootstrapThroughListeners,
  checkPublishFlightInfo,
  isPublishTicket,
  PublishAnswerError,
} from "../lib/flight/publish_answer.ts";
import { rewritePublishAnswer } from "../lib/flight/publish_batch.ts";
import { KafkaLocations } from "../lib/flight/kafka_locations.ts";
import { tableFromArrays } from "../lib/flight/arrow.ts";
import { pythonJson } from "./fixtures/python.ts";
import { concatBytes, encodeLenField, encodeVarint } from "../lib/flight/wire.ts";

/** A FlightInfo as arrakis-server answers a Publish: a PATH descriptor (its one path the command). */
function publishFlightInfo(location: string): Uint8Array {
  const text = new TextEncoder();
  const command = text.encode(JSON.stringify({ request: "Publish", args: { publisher_id: "K1" } }));
  const descriptor = concatBytes([encodeVarint(8), encodeVarint(1), ...encodeLenField(3, command)]);
  const endpoint = concatBytes(
    encodeLenField(2, concatBytes(encodeLenField(1, text.encode(location)))),
  );
  return concatBytes([...encodeLenField(2, descriptor), ...encodeLenField(3, endpoint)]);
}

const captured = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/kafka_flight_info.json", import.meta.url)),
).publish;
const ANSWER = ipcStreamToFlightData(
  Uint8Array.from(atob(captured.ipc_stream), (c) => c.charCodeAt(0)),
);

/** What pyarrow reads from an answer: its schema and every row's properties. */
async function readByPyarrow(messages: ReturnType<typeof ipcStreamToFlightData>) {
  const file = await Deno.makeTempFile({ suffix: ".arrows" });
  try {
    await Deno.writeFile(file, flightDataToIpcStream(messages));
    return await pythonJson<{ schema: string; rows: Record<string, string>[] }>([
      "-c",
      "import json, sys, pyarrow; t = pyarrow.ipc.open_stream(open(sys.argv[1], 'rb').read()).read_all(); " +
      "print(json.dumps({'schema': str(t.schema), 'rows': [dict(r) for r in t.column('properties').to_pylist()]}))",
      file,
    ]);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("the Publish answer gets the brokers' local listeners, and nothing else changes", async () => {
  assertEquals(captured.properties, [{ "bootstrap.servers": "kafka:9092" }]);
  const asked: string[] = [];
  const kafka = new KafkaLocations({
    resolver: (broker) => {
      asked.push(`${broker.host}:${broker.port}`);
      return Promise.resolve({ host: "127.0.0.1", port: 39092 });
    },
  });
  const out = await rewritePublishAnswer(ANSWER, bootstrapThroughListeners(kafka));
  const [before, after] = await Promise.all([readByPyarrow(ANSWER), readByPyarrow(out)]);
  assertEquals(after.rows, [{ "bootstrap.servers": "127.0.0.1:39092" }]);
  assertEquals(after.schema, before.schema);
  assertEquals(asked, ["kafka:9092"]);
});

Deno.test("a bootstrap list maps broker by broker; one that cannot be forwarded refuses in one line", async () => {
  const kafka = new KafkaLocations({
    resolver: (broker) =>
      Promise.resolve(
        broker.host === "b3" ? undefined : { host: "127.0.0.1", port: broker.port + 30000 },
      ),
  });
  const rewrite = bootstrapThroughListeners(kafka);
  assertEquals(await rewrite("b1:9092,kafka://b2:9093"), "127.0.0.1:39092,127.0.0.1:39093");
  const error = await assertRejects(() => rewrite("b1:9092,b3:9094"), PublishAnswerError);
  assert(!error.message.includes("\n") && error.message.includes("b3:9094"), error.message);
});

Deno.test("an answer that is not one properties map is refused, never changed", async () => {
  const other = tableToFlightData(tableFromArrays({ properties: ["bootstrap.servers"] }));
  await assertRejects(
    () => rewritePublishAnswer(other, (s) => Promise.resolve(s)),
    PublishAnswerError,
  );
  const garbled = [{ data_header: new Uint8Array([1, 2, 3]), data_body: new Uint8Array() }];
  await assertRejects(
    () => rewritePublishAnswer(garbled, (s) => Promise.resolve(s)),
    PublishAnswerError,
  );
});

Deno.test("Publish tickets are told apart from the others", () => {
  const ticket = (command: unknown) => new TextEncoder().encode(JSON.stringify(command));
  assert(
    isPublishTicket(ticket({ request: "Publish", args: { publisher_id: "K1-TEST" }, version: 1 })),
  );
  assert(!isPublishTicket(ticket({ request: "Stream", args: { channels: [] } })));
  assert(!isPublishTicket(new Uint8Array([0x7b, 0xff])));
  assert(!isPublishTicket(new Uint8Array()));
});

Deno.test("a Publish FlightInfo (PATH descriptor) redeemed on the same connection is recognised", () => {
  assertEquals(
    checkPublishFlightInfo(publishFlightInfo("arrow-flight-reuse-connection://?")),
    true,
  );
  const error = (() => {
    try {
      checkPublishFlightInfo(publishFlightInfo("grpc://data-a:40001"));
    } catch (error) {
      return error;
    }
  })();
  assert(error instanceof PublishAnswerError, "a Publish endpoint elsewhere is refused");
});
