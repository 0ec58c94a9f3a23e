/**
 * The `--kafka` modes on real Stream FlightInfos of arrakis-server with the
 * Kafka backend (captured by fixtures/capture_kafka_flight_info.ts): direct
 * passes them as they are, flight moves the kafka:// locations behind the
 * Flight fallback, forward points them at local Kafka listeners and falls back
 * to flight for an endpoint whose broker cannot be forwarded.
 */
import { assert, assertEquals, assertStrictEquals, assertThrows } from "./assert.ts";
import {
  collectLocations,
  LocationRewriter,
  reorderEndpointLocations,
  Shapes,
} from "../lib/flight/rewrite.ts";
import { LocationMap, REUSE_CONNECTION } from "../lib/flight/locations.ts";
import {
  type KafkaAddress,
  KafkaLocations,
  type KafkaMode,
  kafkaUri,
  parseKafkaLocation,
  parseKafkaMode,
} from "../lib/flight/kafka_locations.ts";
import { flightType } from "../lib/flight/proto.ts";
import { concatBytes, encodeVarint } from "../lib/flight/wire.ts";
import { UsageError } from "../lib/errors.ts";

const captured = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/kafka_flight_info.json", import.meta.url)),
);
const decode64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
/** `[kafka://kafka:9092, reuse]`. */
const ONE_BROKER: Uint8Array = decode64(captured.oneBroker.flight_info);
/** `[kafka://kafka:9092, kafka://kafka-b:9093, reuse]`. */
const TWO_BROKERS: Uint8Array = decode64(captured.twoBrokers.flight_info);

interface Setup {
  mode: KafkaMode;
  resolver?: (broker: KafkaAddress) => Promise<KafkaAddress | undefined>;
  map?: LocationMap;
}

function rewriter({ mode, resolver, map = new LocationMap() }: Setup) {
  const warnings: string[] = [];
  const notes: string[] = [];
  const kafka = new KafkaLocations({ mode, resolver, warn: (line) => warnings.push(line) });
  const rewriter = new LocationRewriter(
    map,
    (line) => warnings.push(line),
    (line) => notes.push(line),
    kafka,
  );
  return { rewriter, warnings, notes, kafka };
}

/** The FlightInfo without its locations, decoded: what no mode may change. */
function allButLocations(bytes: Uint8Array): unknown {
  // deno-lint-ignore no-explicit-any
  const info = flightType("FlightInfo").toObject(flightType("FlightInfo").decode(bytes)) as any;
  for (const endpoint of info.endpoint) delete endpoint.location;
  return info;
}

function assertOnlyLocationsChanged(before: Uint8Array, after: Uint8Array) {
  assertEquals(allButLocations(after), allButLocations(before));
}

const listener = (port: number) => (broker: KafkaAddress) =>
  Promise.resolve({ host: "127.0.0.1", port: port + broker.port - 9092 });

Deno.test("the captured FlightInfos lead with the brokers, then the reuse fallback", () => {
  assertEquals(collectLocations(ONE_BROKER, Shapes.FlightInfo), [
    "kafka://kafka:9092",
    REUSE_CONNECTION,
  ]);
  assertEquals(collectLocations(TWO_BROKERS, Shapes.FlightInfo), [
    "kafka://kafka:9092",
    "kafka://kafka-b:9093",
    REUSE_CONNECTION,
  ]);
});

Deno.test("direct passes kafka:// locations on as they came, the same bytes", async () => {
  const { rewriter: r, warnings } = rewriter({ mode: "direct", resolver: listener(39092) });
  assertStrictEquals(await r.toLocal(TWO_BROKERS, Shapes.FlightInfo), TWO_BROKERS);
  assertEquals(warnings, []);
});

Deno.test("flight moves the brokers behind the Flight fallback, in their order", async () => {
  let asked = 0;
  const { rewriter: r, notes, warnings } = rewriter({
    mode: "flight",
    resolver: (broker) => (asked++, listener(39092)(broker)),
  });
  const one = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
  assertEquals(collectLocations(one, Shapes.FlightInfo), [REUSE_CONNECTION, "kafka://kafka:9092"]);
  assertEquals(one.length, ONE_BROKER.length);
  assertOnlyLocationsChanged(ONE_BROKER, one);
  const two = await r.toLocal(TWO_BROKERS, Shapes.FlightInfo);
  assertEquals(collectLocations(two, Shapes.FlightInfo), [
    REUSE_CONNECTION,
    "kafka://kafka:9092",
    "kafka://kafka-b:9093",
  ]);
  assertOnlyLocationsChanged(TWO_BROKERS, two);
  assertEquals(asked, 0, "the flight mode forwards no broker");
  assertEquals(warnings, []);
  assert(notes.some((note) => note.includes("kafka://kafka:9092")), notes.join("\n"));
});

Deno.test("flight with a reuse forward: the client redeems at the info server's forward", async () => {
  const map = new LocationMap([[REUSE_CONNECTION, "127.0.0.1:41000"]]);
  const { rewriter: r } = rewriter({ mode: "flight", map });
  const out = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
  assertEquals(collectLocations(out, Shapes.FlightInfo), [
    "grpc://127.0.0.1:41000",
    "kafka://kafka:9092",
  ]);
  assertOnlyLocationsChanged(ONE_BROKER, out);
});

Deno.test("forward points each broker at its local listener, asking once per broker", async () => {
  const asked: string[] = [];
  const { rewriter: r, warnings, kafka } = rewriter({
    mode: "forward",
    resolver: async (broker) => {
      asked.push(`${broker.host}:${broker.port}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return listener(39092)(broker);
    },
  });
  const [one, two] = await Promise.all([
    r.toLocal(ONE_BROKER, Shapes.FlightInfo),
    r.toLocal(TWO_BROKERS, Shapes.FlightInfo),
  ]);
  assertEquals(collectLocations(one, Shapes.FlightInfo), [
    "kafka://127.0.0.1:39092",
    REUSE_CONNECTION,
  ]);
  assertEquals(collectLocations(two, Shapes.FlightInfo), [
    "kafka://127.0.0.1:39092",
    "kafka://127.0.0.1:39093",
    REUSE_CONNECTION,
  ]);
  assertOnlyLocationsChanged(ONE_BROKER, one);
  assertOnlyLocationsChanged(TWO_BROKERS, two);
  await r.toLocal(TWO_BROKERS, Shapes.FlightInfo);
  assertEquals(asked.sort(), ["kafka-b:9093", "kafka:9092"]);
  assertEquals(warnings, []);
  assertEquals(kafka.remote("kafka://127.0.0.1:39093"), "kafka://kafka-b:9093");
});

Deno.test("forward: a broker that cannot be forwarded sends its endpoint through Flight, said once", async () => {
  const { rewriter: r, warnings } = rewriter({
    mode: "forward",
    resolver: (broker) =>
      Promise.resolve(broker.host === "kafka-b" ? undefined : { host: "127.0.0.1", port: 39092 }),
  });
  const two = await r.toLocal(TWO_BROKERS, Shapes.FlightInfo);
  assertEquals(collectLocations(two, Shapes.FlightInfo)[0], REUSE_CONNECTION);
  assertEquals(collectLocations(two, Shapes.FlightInfo).slice(1).sort(), [
    "kafka://127.0.0.1:39092",
    "kafka://kafka-b:9093",
  ]);
  assertOnlyLocationsChanged(TWO_BROKERS, two);
  // The other endpoint's broker is forwarded: it reads through its listener.
  const one = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
  assertEquals(collectLocations(one, Shapes.FlightInfo)[0], "kafka://127.0.0.1:39092");
  await r.toLocal(TWO_BROKERS, Shapes.FlightInfo);
  assertEquals(warnings.length, 1, warnings.join("\n"));
  assert(!warnings[0].includes("\n"));
  assert(warnings[0].includes("kafka-b:9093") && warnings[0].includes("Arrakis server"));
});

Deno.test("forward without a resolver, or one that fails: the flight mode, with the reason", async () => {
  for (
    const resolver of [undefined, () => Promise.reject(new Error("ssh -O forward failed"))]
  ) {
    const { rewriter: r, warnings } = rewriter({ mode: "forward", resolver });
    const out = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
    assertEquals(collectLocations(out, Shapes.FlightInfo), [
      REUSE_CONNECTION,
      "kafka://kafka:9092",
    ]);
    assertEquals(warnings.length, 1);
    if (resolver) assert(warnings[0].includes("ssh -O forward failed"), warnings[0]);
  }
});

Deno.test("the client gets 127.0.0.1 for an IPv6 loopback listener; other IPv6 falls back", async () => {
  assertEquals(kafkaUri({ host: "::1", port: 39092 }), "kafka://127.0.0.1:39092");
  assertEquals(kafkaUri({ host: "fd00::1", port: 39092 }), undefined);
  const { rewriter: r, warnings } = rewriter({
    mode: "forward",
    resolver: () => Promise.resolve({ host: "fd00::1", port: 39092 }),
  });
  const out = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
  assertEquals(collectLocations(out, Shapes.FlightInfo)[0], REUSE_CONNECTION);
  assertEquals(warnings.length, 1);
});

Deno.test("requests carrying locations get the brokers back", async () => {
  const { rewriter: r } = rewriter({ mode: "forward", resolver: listener(39092) });
  const local = await r.toLocal(ONE_BROKER, Shapes.FlightInfo);
  const cancel = concatBytes([encodeVarint(1 * 8 + 2), encodeVarint(local.length), local]);
  const back = r.toRemote(cancel, Shapes.CancelFlightInfoRequest);
  assertEquals(collectLocations(back, Shapes.CancelFlightInfoRequest), [
    "kafka://kafka:9092",
    REUSE_CONNECTION,
  ]);
});

Deno.test("an endpoint with only Kafka locations has nothing to fall back on: unchanged, one line", async () => {
  const info = flightType("FlightInfo").encode({
    endpoint: [{ ticket: { ticket: new Uint8Array([1]) }, location: [{ uri: "kafka://k:9092" }] }],
  }).finish();
  const { rewriter: r, warnings } = rewriter({ mode: "flight" });
  assertEquals(collectLocations(await r.toLocal(info, Shapes.FlightInfo), Shapes.FlightInfo), [
    "kafka://k:9092",
  ]);
  assertEquals(warnings.length, 1);
});

Deno.test("reordering keeps fields between the locations and the endpoint's length", () => {
  const field = (n: number, bytes: Uint8Array) =>
    concatBytes([encodeVarint(n * 8 + 2), encodeVarint(bytes.length), bytes]);
  const text = (s: string) => new TextEncoder().encode(s);
  const location = (uri: string) => field(2, field(1, text(uri)));
  const endpoint = concatBytes([
    field(1, field(1, text("ticket"))),
    location("kafka://a:1"),
    field(40, text("unknown")),
    location("grpc://b:2"),
    field(4, text("app")),
  ]);
  const info = field(3, endpoint);
  const out = reorderEndpointLocations(info, Shapes.FlightInfo, () => [1, 0]);
  assertEquals(out.length, info.length);
  assertEquals(collectLocations(out, Shapes.FlightInfo), ["grpc://b:2", "kafka://a:1"]);
  const unknown = new TextDecoder().decode(out);
  assert(unknown.includes("unknown") && unknown.includes("ticket") && unknown.includes("app"));
  assertStrictEquals(reorderEndpointLocations(info, Shapes.FlightInfo, () => undefined), info);
  assertThrows(() => reorderEndpointLocations(info, Shapes.FlightInfo, () => [0, 0]), RangeError);
});

Deno.test("--kafka takes forward, flight or direct; anything else is one usage line", () => {
  assertEquals(["forward", "flight", "direct"].map(parseKafkaMode), [
    "forward",
    "flight",
    "direct",
  ]);
  const error = assertThrows(() => parseKafkaMode("kafka"), UsageError);
  assert(!error.message.includes("\n") && error.message.includes("forward, flight, direct"));
  assertEquals(parseKafkaLocation("kafka://[::1]:9092")?.netloc, "[::1]:9092");
  assertEquals(parseKafkaLocation("kafka://Kafka:9092")?.netloc, "kafka:9092");
  assertEquals(parseKafkaLocation("kafka://k:9092,l:9093"), undefined);
  assertEquals(parseKafkaLocation("grpc://k:9092"), undefined);
});
