/**
 * The Kafka codec of lib/kafka: answers captured from a real broker
 * (tests/fixtures/kafka_answers.json) and hand-made ones for every version
 * parsed, rewritten exactly where broker addresses are and nowhere else;
 * truncated, oversize and garbled frames refused, never passed on changed.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { ApiKey, KAFKA_APIS } from "../lib/kafka/apis.ts";
import {
  KafkaProtocolError,
  KafkaReader,
  KafkaTruncatedError,
  KafkaWriter,
} from "../lib/kafka/codec.ts";
import {
  type BrokerAddressMapper,
  type KafkaBroker,
  rewriteAnswerFrame,
} from "../lib/kafka/rewrite.ts";
import { CAPTURED_HOST } from "./fixtures/capture_kafka_answers.ts";

const captured: { port: number; answers: Record<string, string> } = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/kafka_answers.json", import.meta.url)),
);

function unhex(text: string): Uint8Array {
  return new Uint8Array(text.match(/../g)!.map((byte) => parseInt(byte, 16)));
}

function answer(name: string): Uint8Array {
  return unhex(captured.answers[name]);
}

const api = (key: number) => KAFKA_APIS.get(key)!;
const LOCAL = { host: "127.0.0.1", port: 40123 };

/** A mapper that records what it was asked and answers `to`. */
function recorder(to = LOCAL): BrokerAddressMapper & { seen: KafkaBroker[] } {
  const seen: KafkaBroker[] = [];
  return Object.assign((broker: KafkaBroker) => {
    seen.push(broker);
    return Promise.resolve(to);
  }, { seen });
}

const back: BrokerAddressMapper = () =>
  Promise.resolve({ host: CAPTURED_HOST, port: captured.port });

function includes(haystack: Uint8Array, needle: string): boolean {
  return new TextDecoder("latin1").decode(haystack).includes(needle);
}

function sizeOf(frame: Uint8Array): number {
  return new KafkaReader(frame).int32();
}

Deno.test("captured Metadata v0–v13 answers: the broker's host and port replaced, every other byte kept", async () => {
  for (let version = 0; version <= 13; version++) {
    const original = answer(`Metadata v${version}`);
    const map = recorder();
    const rewritten = await rewriteAnswerFrame(api(ApiKey.METADATA), version, original, map);
    assertEquals(
      map.seen,
      [{ nodeId: 1, host: CAPTURED_HOST, port: captured.port }],
      `v${version}`,
    );
    assertEquals(sizeOf(rewritten), rewritten.length - 4, `v${version} size prefix`);
    assert(includes(rewritten, "127.0.0.1") && !includes(rewritten, CAPTURED_HOST), `v${version}`);
    // Mapping back gives the broker's bytes exactly: only host and port changed.
    const again = await rewriteAnswerFrame(api(ApiKey.METADATA), version, rewritten, back);
    assertEquals(again, original, `v${version} round trip`);
  }
});

Deno.test("captured FindCoordinator v0–v6 answers: the coordinator's host and port replaced", async () => {
  for (let version = 0; version <= 6; version++) {
    const original = answer(`FindCoordinator v${version}`);
    const map = recorder();
    const rewritten = await rewriteAnswerFrame(
      api(ApiKey.FIND_COORDINATOR),
      version,
      original,
      map,
    );
    assertEquals(
      map.seen,
      [{ nodeId: 1, host: CAPTURED_HOST, port: captured.port }],
      `v${version}`,
    );
    assertEquals(sizeOf(rewritten), rewritten.length - 4);
    assert(!includes(rewritten, CAPTURED_HOST), `v${version}`);
    const again = await rewriteAnswerFrame(api(ApiKey.FIND_COORDINATOR), version, rewritten, back);
    assertEquals(again, original, `v${version} round trip`);
  }
});

/** The API list of an ApiVersions answer frame, and the bytes after it. */
function apiVersionsOf(frame: Uint8Array, flexible: boolean) {
  const reader = new KafkaReader(frame, 8);
  const errorCode = reader.int16();
  const apis = new Map<number, [number, number]>();
  for (let n = reader.arrayLength(flexible)!; n > 0; n--) {
    const key = reader.int16();
    apis.set(key, [reader.int16(), reader.int16()]);
    if (flexible) reader.skipTaggedFields();
  }
  return { errorCode, apis, tail: frame.subarray(reader.pos) };
}

Deno.test("captured ApiVersions v0–v4 answers: capped to the relayed versions, others dropped, the rest kept", async () => {
  for (let version = 0; version <= 4; version++) {
    const original = answer(`ApiVersions v${version}`);
    const rewritten = await rewriteAnswerFrame(
      api(ApiKey.API_VERSIONS),
      version,
      original,
      recorder(),
    );
    assertEquals(sizeOf(rewritten), rewritten.length - 4);
    const before = apiVersionsOf(original, version >= 3);
    const after = apiVersionsOf(rewritten, version >= 3);
    assertEquals(after.errorCode, 0);
    assertEquals(after.tail, before.tail, `v${version}: throttle time and features kept`);
    assert(before.apis.has(60) && before.apis.get(1)![1] >= 16, "the broker offers more");
    assertEquals(after.apis.get(ApiKey.FETCH)![1], 15);
    assertEquals(after.apis.get(ApiKey.PRODUCE)![1], 9);
    assertEquals(after.apis.get(ApiKey.METADATA)![1], 13);
    assertEquals(after.apis.get(ApiKey.FIND_COORDINATOR)![1], 6);
    assertEquals(after.apis.get(ApiKey.SASL_HANDSHAKE), [1, 1]);
    for (const dropped of [55, 60, 78, 79, 88, 89]) assert(!after.apis.has(dropped), `${dropped}`);
    for (const [key, [min, max]] of after.apis) {
      const relayed = KAFKA_APIS.get(key)!;
      const [brokerMin, brokerMax] = before.apis.get(key)!;
      assertEquals([min, max], [
        Math.max(brokerMin, relayed.minVersion),
        Math.min(brokerMax, relayed.maxVersion),
      ]);
    }
  }
});

Deno.test("an UNSUPPORTED_VERSION ApiVersions answer (v0 form, KIP-511) is read as v0", async () => {
  const original = answer("ApiVersions v5");
  const rewritten = await rewriteAnswerFrame(api(ApiKey.API_VERSIONS), 5, original, recorder());
  assertEquals(rewritten, original); // ApiVersions 0–4 is within what is relayed
  assertEquals(apiVersionsOf(rewritten, false).errorCode, 35);
});

// ---- hand-made answers: several brokers, racks, tagged fields -------------------------

interface Broker {
  nodeId: number;
  host: string;
  port: number;
  rack: string | null;
}

const TAGS = new Uint8Array([1, 7, 2, 0xab, 0xcd]); // one unknown tagged field, tag 7

/** A Metadata answer frame as the schema has it; `tail` stands for everything after the brokers. */
function metadataFrame(version: number, brokers: Broker[], tail: Uint8Array): Uint8Array {
  const flexible = version >= 9;
  const body = new KafkaWriter().int32(77); // correlation id
  if (flexible) body.raw(TAGS);
  if (version >= 3) body.int32(5); // throttle time
  body.arrayLength(flexible, brokers.length);
  for (const broker of brokers) {
    body.int32(broker.nodeId).flexString(flexible, broker.host).int32(broker.port);
    if (version >= 1) body.flexString(flexible, broker.rack);
    if (flexible) body.raw(TAGS);
  }
  const frame = body.raw(tail).finish();
  return new KafkaWriter().int32(frame.length).raw(frame).finish();
}

const BROKERS: Broker[] = [
  { nodeId: 1, host: "b1.cluster.internal", port: 9092, rack: null },
  { nodeId: 2, host: "b2.cluster.internal", port: 9093, rack: "rack-ä" },
  { nodeId: 30, host: "10.0.0.3", port: 19092, rack: "" },
];
const TAIL = new KafkaWriter().string("cluster-id").int32(1).int32(0).finish();

function mapByNode(broker: KafkaBroker) {
  return Promise.resolve({ host: "127.0.0.1", port: 41000 + broker.nodeId });
}

Deno.test("hand-made Metadata v0–v13 answers with three brokers: exactly their addresses change", async () => {
  for (let version = 0; version <= 13; version++) {
    const original = metadataFrame(version, BROKERS, TAIL);
    const expected = metadataFrame(
      version,
      BROKERS.map((broker) => ({ ...broker, host: "127.0.0.1", port: 41000 + broker.nodeId })),
      TAIL,
    );
    const rewritten = await rewriteAnswerFrame(api(ApiKey.METADATA), version, original, mapByNode);
    assertEquals(rewritten, expected, `v${version}`);
  }
});

Deno.test("a Metadata answer larger than what is held: only its start is needed", async () => {
  const big = new Uint8Array(1 << 20).fill(0x5a);
  const original = metadataFrame(12, BROKERS, big);
  const held = original.subarray(0, 300);
  const start = await rewriteAnswerFrame(api(ApiKey.METADATA), 12, held, mapByNode);
  const expected = metadataFrame(
    12,
    BROKERS.map((b) => ({ ...b, host: "127.0.0.1", port: 41000 + b.nodeId })),
    big,
  );
  assertEquals(sizeOf(start), expected.length - 4);
  assertEquals(start, expected.subarray(0, start.length));
});

interface Coordinator {
  key: string;
  nodeId: number;
  host: string;
  port: number;
  errorCode: number;
}

function findCoordinatorFrame(version: number, coordinators: Coordinator[]): Uint8Array {
  const flexible = version >= 3;
  const body = new KafkaWriter().int32(78);
  if (flexible) body.raw(TAGS);
  if (version >= 1) body.int32(0);
  if (version <= 3) {
    const [c] = coordinators;
    body.int16(c.errorCode);
    if (version >= 1) body.flexString(flexible, c.errorCode ? "not yet" : null);
    body.int32(c.nodeId).flexString(flexible, c.host).int32(c.port);
  } else {
    body.arrayLength(true, coordinators.length);
    for (const c of coordinators) {
      body.compactString(c.key).int32(c.nodeId).compactString(c.host).int32(c.port)
        .int16(c.errorCode).compactString(c.errorCode ? "not yet" : null).raw(TAGS);
    }
  }
  if (flexible) body.raw(TAGS);
  const frame = body.finish();
  return new KafkaWriter().int32(frame.length).raw(frame).finish();
}

Deno.test("hand-made FindCoordinator v0–v6 answers: valid coordinators mapped, error entries kept as they are", async () => {
  const ok = { key: "group-a", nodeId: 2, host: "b2.cluster.internal", port: 9093, errorCode: 0 };
  const failed = { key: "group-b", nodeId: -1, host: "", port: -1, errorCode: 15 };
  const mapped = { ...ok, host: "127.0.0.1", port: 41002 };
  for (let version = 0; version <= 6; version++) {
    const list = version >= 4 ? [ok, failed, ok] : [ok];
    const rewritten = await rewriteAnswerFrame(
      api(ApiKey.FIND_COORDINATOR),
      version,
      findCoordinatorFrame(version, list),
      mapByNode,
    );
    const expected = findCoordinatorFrame(version, list.map((c) => c === ok ? mapped : c));
    assertEquals(rewritten, expected, `v${version}`);
    const error = findCoordinatorFrame(version, [failed]);
    const map = recorder();
    assertEquals(
      await rewriteAnswerFrame(api(ApiKey.FIND_COORDINATOR), version, error, map),
      error,
    );
    assertEquals(map.seen, []);
  }
});

// ---- hostile input --------------------------------------------------------------------

const REWRITTEN = [
  ...Array.from({ length: 14 }, (_, v) => [ApiKey.METADATA, v, `Metadata v${v}`] as const),
  ...Array.from(
    { length: 7 },
    (_, v) => [ApiKey.FIND_COORDINATOR, v, `FindCoordinator v${v}`] as const,
  ),
  ...Array.from({ length: 5 }, (_, v) => [ApiKey.API_VERSIONS, v, `ApiVersions v${v}`] as const),
];

Deno.test("an answer cut anywhere inside what is parsed is refused, never rewritten", async () => {
  for (const [key, version, name] of REWRITTEN) {
    const whole = answer(name);
    // The size prefix still says the whole frame: what is held is all there is.
    let parsedUpTo = 0;
    for (let cut = 0; cut < whole.length; cut++) {
      try {
        const start = await rewriteAnswerFrame(
          api(key),
          version,
          whole.subarray(0, cut),
          recorder(),
        );
        // Accepted only once everything parsed is there; then the kept bytes match.
        const full = await rewriteAnswerFrame(api(key), version, whole, recorder());
        assertEquals(start, full.subarray(0, start.length), `${name} cut at ${cut}`);
      } catch (error) {
        assert(error instanceof KafkaProtocolError, `${name} cut at ${cut}: ${error}`);
        parsedUpTo = cut;
      }
    }
    assert(parsedUpTo > 8, `${name}: its cuts were refused`);
  }
});

Deno.test("garbled answers: refused with a KafkaProtocolError, or rewritten consistently", async () => {
  let seed = 17;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let refused = 0;
  for (let round = 0; round < 3000; round++) {
    const [key, version, name] = REWRITTEN[round % REWRITTEN.length];
    const frame = answer(name).slice();
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
      frame[8 + Math.floor(random() * (frame.length - 8))] = Math.floor(random() * 256);
    }
    try {
      const rewritten = await rewriteAnswerFrame(api(key), version, frame, recorder());
      assertEquals(sizeOf(rewritten) - rewritten.length, sizeOf(frame) - frame.length);
    } catch (error) {
      assert(error instanceof KafkaProtocolError, `${name}: ${error}`);
      refused++;
    }
  }
  assert(refused > 100, `only ${refused} garbled answers refused`);
});

Deno.test("a mapper that fails, or gives no usable address, fails the rewrite", async () => {
  const frame = answer("Metadata v12");
  await assertRejects(
    () =>
      rewriteAnswerFrame(
        api(ApiKey.METADATA),
        12,
        frame,
        () => Promise.reject(new Error("no forward")),
      ),
    Error,
    "no forward",
  );
  await assertRejects(
    () =>
      rewriteAnswerFrame(
        api(ApiKey.METADATA),
        12,
        frame,
        () => Promise.resolve({ host: "", port: 1 }),
      ),
    Error,
    "no valid address for broker 1",
  );
  await assertRejects(
    () =>
      rewriteAnswerFrame(
        api(ApiKey.METADATA),
        12,
        frame,
        () => Promise.resolve({ host: "h", port: 0 }),
      ),
    Error,
    "no valid address",
  );
});

Deno.test("codec skipString: passes over a client id of any bytes, refuses a bad length", () => {
  // A request's client id is passed on as it came: skipped by its length, never decoded.
  const bytes = new KafkaWriter().string(null).string("").int16(2).raw(new Uint8Array([0xff, 0xfe]))
    .int32(7).finish();
  const reader = new KafkaReader(bytes);
  reader.skipString();
  reader.skipString();
  reader.skipString();
  assertEquals(reader.int32(), 7);
  assertThrows(
    () => new KafkaReader(new Uint8Array([0xff, 0xfe])).skipString(),
    KafkaProtocolError,
  );
  assertThrows(
    () => new KafkaReader(new Uint8Array([0x00, 0x05, 0x61])).skipString(),
    KafkaTruncatedError,
  );
});

Deno.test("codec primitives: varints, compact strings and arrays, null values", () => {
  const bytes = new KafkaWriter().uvarint(0).uvarint(127).uvarint(128).uvarint(2 ** 32 - 1)
    .compactString(null).compactString("é").string(null).string("").arrayLength(true, null)
    .arrayLength(false, 0).finish();
  const reader = new KafkaReader(bytes);
  assertEquals([reader.uvarint(), reader.uvarint(), reader.uvarint(), reader.uvarint()], [
    0,
    127,
    128,
    2 ** 32 - 1,
  ]);
  assertEquals(reader.compactString(true), null);
  assertEquals(reader.compactString(), "é");
  assertEquals(reader.string(true), null);
  assertEquals(reader.string(), "");
  assertEquals(reader.arrayLength(true), null);
  assertEquals(reader.arrayLength(false), 0);
  assertEquals(reader.remaining, 0);
  const hostile = [
    new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), // varint of 6 bytes
    new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]), // above 32 bits
    new Uint8Array([0x7f, 0xff, 0xff, 0xff]), // array of 2^31 - 1 in four bytes
    new Uint8Array([0x00]), // compact string null where none may be
    new Uint8Array([0x03, 0xff, 0xfe]), // not UTF-8
  ];
  const reads = [
    (r: KafkaReader) => r.uvarint(),
    (r: KafkaReader) => r.uvarint(),
    (r: KafkaReader) => r.arrayLength(false),
    (r: KafkaReader) => r.compactString(),
    (r: KafkaReader) => r.compactString(),
  ];
  hostile.forEach((input, i) => {
    let thrown: unknown;
    try {
      reads[i](new KafkaReader(input));
    } catch (error) {
      thrown = error;
    }
    assert(thrown instanceof KafkaProtocolError, `hostile input ${i}: ${thrown}`);
  });
});
