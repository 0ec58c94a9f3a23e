/**
 * `--split-streams`: which Stream tickets are split and which pass untouched,
 * the FlightInfo it writes, and the real client through a splitting proxy in
 * front of the real `arrakis-server` (the same arrays, one DoGet per part).
 */
import { assert, assertEquals, assertStrictEquals, assertStringIncludes } from "./assert.ts";
import {
  parseBoundedStream,
  partition,
  splitStreamEndpoints,
  streamSplitter,
} from "../lib/flight/split_streams.ts";
import { concatBytes, encodeLenField, readFields } from "../lib/flight/wire.ts";
import { IsolatedProxy } from "../lib/proxy_process/parent.ts";
import { LocationMap, REUSE_CONNECTION } from "../lib/flight/locations.ts";
import { startRealServer } from "./fixtures/real_server.ts";
import { pythonJson } from "./fixtures/python.ts";
import { REAL_CHANNEL_LIST } from "./fixtures/real_client.ts";

const NOW = 1_400_000_000_000_000_000n;
// Beyond a double's 53 bits: a JSON.parse round trip would change its last digits.
const START = "1300000000123456789";
const END = "1300000002123456789";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON text written as it is. */
class Raw {
  constructor(readonly text: string) {}
}

/** A ticket as arrakis 0.21's `create_command` writes it (Python's json.dumps). */
function ticket(args: Record<string, unknown>, extra: Record<string, unknown> = {}): Uint8Array {
  const fields = Object.entries({
    channels: ["H1:A", "H1:B", "H1:C", "H1:D", "H1:E"],
    start: new Raw(START),
    end: new Raw(END),
    replay_start: null,
    replay_end: null,
    replay_id: null,
    ...args,
  }).map(([key, value]) =>
    `"${key}": ${value instanceof Raw ? value.text : JSON.stringify(value)}`
  );
  const rest = Object.entries({ version: "0.5.0", ...extra }).map(([key, value]) =>
    `, "${key}": ${JSON.stringify(value)}`
  );
  return encoder.encode(`{"request": "Stream", "args": {${fields.join(", ")}}${rest.join("")}}`);
}

const field = (number: number, payload: Uint8Array) => concatBytes(encodeLenField(number, payload));
const location = (uri: string) => field(2, field(1, encoder.encode(uri)));
const endpoint = (ticketBytes: Uint8Array, ...uris: string[]) =>
  field(3, concatBytes([field(1, field(1, ticketBytes)), ...uris.map(location)]));
const SCHEMA = field(1, encoder.encode("schema bytes"));
const DESCRIPTOR = field(2, field(2, encoder.encode("command")));

/** The endpoints of an encoded FlightInfo: each ticket's JSON and its location URIs. */
function endpoints(info: Uint8Array) {
  return [...readFields(info)].filter((f) => f.number === 3).map((f) => {
    const fields = [...readFields(info, f.valueStart, f.end)];
    const ticketField = fields.find((e) => e.number === 1)!;
    const inner = [...readFields(info, ticketField.valueStart, ticketField.end)][0];
    return {
      ticket: decoder.decode(info.subarray(inner.valueStart, inner.end)),
      locations: fields.filter((e) => e.number === 2).map((e) => {
        const uri = [...readFields(info, e.valueStart, e.end)][0];
        return decoder.decode(info.subarray(uri.valueStart, uri.end));
      }),
    };
  });
}

Deno.test("a bounded past Stream: its channels, and tickets for parts with every other value as written", () => {
  const stream = parseBoundedStream(ticket({}), NOW);
  assert(typeof stream !== "string", String(stream));
  assertEquals(stream.channels, ["H1:A", "H1:B", "H1:C", "H1:D", "H1:E"]);
  const part = decoder.decode(stream.ticketFor(["H1:B", "H1:C"]));
  assertEquals(
    part,
    `{"request":"Stream","args":{"channels":["H1:B","H1:C"],"start":${START},"end":${END},` +
      `"replay_start":null,"replay_end":null,"replay_id":null},"version":"0.5.0"}`,
  );
  // Without the replay keys too (the server's own tickets may leave them out).
  const bare = parseBoundedStream(
    encoder.encode(
      `{"request": "Stream", "args": {"channels": ["a", "b"], "start": 1, "end": 2}, "version": "0.5.0"}`,
    ),
    NOW,
  );
  assert(typeof bare !== "string", String(bare));
});

Deno.test("anything but exactly a bounded past Stream of known shape stays whole, with the reason", () => {
  const refusals: [Uint8Array, string][] = [
    [encoder.encode("\xff"), "not JSON"],
    [new Uint8Array([0xff, 0xfe]), "not UTF-8"],
    [encoder.encode("[1, 2]"), "not a JSON object"],
    [encoder.encode(`{"request": "Count", "args": {}}`), "not a Stream request"],
    [ticket({}, { extra: 1 }), 'unknown field "extra"'],
    [ticket({ stride: 5 }), 'unknown argument "stride"'],
    [ticket({}, { version: "0.6.0" }), 'schema version "0.6.0"'],
    [
      encoder.encode(
        `{"request": "Stream", "args": {"channels": ["a", "b"], "start": 1, "end": 2}}`,
      ),
      "schema version undefined",
    ],
    [ticket({ start: null }), "no integer start (live)"],
    [ticket({ end: null }), "no integer end (live)"],
    [ticket({ start: 1.5 }), "no integer start"],
    [ticket({ end: new Raw("1.3e18") }), "no integer end"],
    [ticket({ end: new Raw("1300000002000000000.0") }), "no integer end"],
    [ticket({ end: END }), "no integer end"],
    [ticket({ start: new Raw(END), end: new Raw(START) }), "empty span"],
    [ticket({ replay_id: "O4" }), "a replay"],
    [ticket({ replay_start: 5, replay_end: 6 }), "a replay"],
    [ticket({ channels: ["H1:A"] }), "fewer than two channels"],
    [ticket({ channels: ["H1:A", "H1:A"] }), "a channel named twice"],
    [ticket({ channels: "H1:A,H1:B" }), "channels are not a list"],
    [ticket({ channels: ["H1:A", 7] }), "channels are not a list"],
  ];
  for (const [bytes, reason] of refusals) {
    const result = parseBoundedStream(bytes, NOW);
    assert(typeof result === "string", `${decoder.decode(bytes)} was accepted`);
    assertStringIncludes(result, reason);
  }
  // An end after now is a live request.
  const live = encoder.encode(
    `{"request": "Stream", "args": {"channels": ["a", "b"], "start": 1, "end": ${
      NOW + 1n
    }}, "version": "0.5.0"}`,
  );
  assertEquals(parseBoundedStream(live, NOW), "ends in the future (live)");
});

Deno.test("channels are parted into contiguous runs as even as possible", () => {
  assertEquals(partition([1, 2, 3, 4, 5], 4), [[1, 2], [3], [4], [5]]);
  assertEquals(partition([1, 2, 3, 4, 5, 6, 7, 8], 4), [[1, 2], [3, 4], [5, 6], [7, 8]]);
  assertEquals(partition([1, 2, 3], 8), [[1], [2], [3]]);
});

Deno.test("a FlightInfo: each bounded Stream endpoint becomes K with its locations, the rest is copied", () => {
  const info = concatBytes([
    SCHEMA,
    DESCRIPTOR,
    endpoint(ticket({}), "grpc://data-a:40001", "grpc://data-b:40001"),
    endpoint(ticket({ channels: ["L1:X", "L1:Y"] }), "arrow-flight-reuse-connection://?"),
    endpoint(ticket({ end: null }), "grpc://data-c:40001"),
    field(7, encoder.encode("app metadata")),
  ]);
  const out = splitStreamEndpoints(info, 4, { nowNs: NOW });
  const split = endpoints(out);
  assertEquals(split.map((e) => JSON.parse(e.ticket).args.channels), [
    ["H1:A", "H1:B"],
    ["H1:C"],
    ["H1:D"],
    ["H1:E"],
    ["L1:X"],
    ["L1:Y"],
    ["H1:A", "H1:B", "H1:C", "H1:D", "H1:E"],
  ]);
  assertEquals(split.map((e) => e.locations), [
    ...Array(4).fill(["grpc://data-a:40001", "grpc://data-b:40001"]),
    ...Array(2).fill(["arrow-flight-reuse-connection://?"]),
    ["grpc://data-c:40001"],
  ]);
  // The live endpoint, byte for byte; schema, descriptor and app metadata too.
  assertEquals(split[6].ticket, decoder.decode(ticket({ end: null })));
  const others = (bytes: Uint8Array) =>
    [...readFields(bytes)].filter((f) => f.number !== 3).map((f) => bytes.slice(f.start, f.end));
  assertEquals(others(out), others(info));
});

Deno.test("a FlightInfo with nothing to split comes back as the same buffer", () => {
  const reasons: string[] = [];
  const refused = (reason: string) => reasons.push(reason);
  const cases = [
    // Kafka: the client reads those channels from the broker.
    concatBytes([endpoint(ticket({}), "kafka://broker:9092", "grpc://data-a:40001")]),
    // An endpoint field this module does not know (expiration time).
    concatBytes([
      field(
        3,
        concatBytes([
          field(1, field(1, ticket({}))),
          location("grpc://a:1"),
          field(3, new Uint8Array()),
        ]),
      ),
    ]),
    // Ordered: the order of the endpoints means something.
    concatBytes([endpoint(ticket({}), "grpc://a:1"), new Uint8Array([6 * 8, 1])]),
    // Not Stream tickets at all.
    concatBytes([endpoint(encoder.encode("opaque"), "grpc://a:1")]),
  ];
  for (const info of cases) {
    assertStrictEquals(splitStreamEndpoints(info, 4, { nowNs: NOW, refused }), info);
  }
  assertEquals(reasons, [
    "its endpoint has a field or location other than a ticket and gRPC locations",
    "its endpoint has a field or location other than a ticket and gRPC locations",
    "the FlightInfo is ordered",
  ]);
  const one = concatBytes([endpoint(ticket({}), "grpc://a:1")]);
  assertStrictEquals(splitStreamEndpoints(one, 1, { nowNs: NOW }), one);
  // Malformed bytes pass on to the location rewriter, which reports them.
  const broken = new Uint8Array([0x1a, 0x50, 1]);
  assertStrictEquals(streamSplitter(4, () => {})(broken), broken);
});

const CHANNEL_FILES = ["H1", "L1"].map((site) =>
  new URL(`./fixtures/real_arrakis/${site}_channels.toml`, import.meta.url).pathname
);
const SPLIT_FETCH = new URL("./fixtures/py/split_fetch.py", import.meta.url).pathname;

interface SplitFetch {
  same: boolean;
  channels: string[];
  samples: number;
  directEndpoints: string[][];
  proxyEndpoints: string[][];
}

Deno.test("the real client through a proxy that splits in 4: the same arrays, over 4 DoGets on 4 connections", async () => {
  await using server = await startRealServer({ backend: ["mock", ...CHANNEL_FILES] });
  const netloc = server.url.replace(/^grpc:\/\//, "");
  // The proxy's own child process, as a run starts it (the option crosses its pipe).
  await using proxy = await IsolatedProxy.start({
    backend: server.url,
    listen: "127.0.0.1:0",
    // Endpoints are redeemed at the server itself, as through the proxy's reuse forward.
    locations: new LocationMap([[REUSE_CONNECTION, netloc]]),
    splitStreams: 4,
  });
  const streamLines = async () =>
    (await server.log()).split("\n").filter((line) => line.includes("request=Stream "));
  const before = (await streamLines()).length;
  const result = await pythonJson<SplitFetch>([
    SPLIT_FETCH,
    server.url,
    proxy.url,
    "1300000000",
    "3",
    ...REAL_CHANNEL_LIST,
  ]);
  assert(result.same, `the fetch through the splitting proxy differs: ${JSON.stringify(result)}`);
  assertEquals(result.channels.toSorted(), REAL_CHANNEL_LIST.toSorted());
  assert(result.samples > 0);
  assertEquals(result.directEndpoints.length, 1);
  assertEquals(result.proxyEndpoints.length, 4);
  assertEquals(result.proxyEndpoints.flat().toSorted(), result.directEndpoints[0].toSorted());
  // The server's DoGets: one for the direct fetch, then one per part, each from its own connection.
  const lines = (await streamLines()).slice(before);
  assertEquals(lines.length, 5, lines.join("\n"));
  const peers = new Set(lines.slice(1).map((line) => /peer=(\S+)/.exec(line)?.[1]));
  assertEquals(peers.size, 4, lines.join("\n"));
});
