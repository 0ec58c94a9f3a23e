import { assert, assertEquals, assertRejects, assertStrictEquals, assertThrows } from "./assert.ts";
import {
  collectLocations,
  EndpointUnavailableError,
  LocationRewriter,
  rewriteLocations,
  Shapes,
} from "../lib/flight/rewrite.ts";
import { LocationMap, REUSE_CONNECTION } from "../lib/flight/locations.ts";
import { concatBytes, encodeVarint, WireError } from "../lib/flight/wire.ts";
import { flightType } from "../lib/flight/proto.ts";

// A tiny protobuf writer, so tests can put fields our .proto does not know anywhere.
const text = new TextEncoder();
const len = (n: number, payload: Uint8Array | string) => {
  const bytes = typeof payload === "string" ? text.encode(payload) : payload;
  return concatBytes([encodeVarint(n * 8 + 2), encodeVarint(bytes.length), bytes]);
};
const varint = (n: number, v: number) => concatBytes([encodeVarint(n * 8), encodeVarint(v)]);
const fixed32 = (n: number, v: number) => {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, v, true);
  return concatBytes([encodeVarint(n * 8 + 5), value]);
};
const msg = (...parts: Uint8Array[]) => concatBytes(parts);

/** A FlightInfo from a "newer server": unknown fields at every level, all kinds of locations. */
function futureInfo(uri: (remote: string) => string): Uint8Array {
  const location = (u: string) => msg(len(1, u), varint(15, 7), len(16, "future-location"));
  const endpoint = (...uris: string[]) =>
    msg(
      len(1, len(1, "ticket-bytes")),
      ...uris.map((u) => len(2, location(u))),
      len(3, msg(varint(1, 1700000000), varint(2, 5))),
      len(4, "endpoint-app-metadata"),
      fixed32(21, 0xdeadbeef),
      len(22, "future-endpoint"),
    );
  return msg(
    len(1, "schema-bytes"),
    len(2, msg(varint(1, 2), len(2, '{"request":"Stream"}'))),
    len(3, endpoint(uri("grpc://data-a:40001"), uri("grpc+tcp://data-b:40001"))),
    varint(99, 12345),
    len(3, endpoint(REUSE_CONNECTION)),
    len(3, endpoint()),
    len(3, endpoint("not a uri")),
    varint(4, 100),
    varint(5, 4096),
    varint(6, 1),
    len(7, "info-app-metadata"),
    len(100, "future-info"),
  );
}

const local: Record<string, string> = {
  "grpc://data-a:40001": "grpc://127.0.0.1:41001",
  "grpc+tcp://data-b:40001": "grpc+tcp://127.0.0.1:41002",
};

Deno.test("rewrite keeps every byte it was not asked to change, unknown fields included", async () => {
  const map = new LocationMap([["data-a:40001", "127.0.0.1:41001"], [
    "data-b:40001",
    "127.0.0.1:41002",
  ]]);
  const warnings: string[] = [];
  const rewriter = new LocationRewriter(map, (w) => warnings.push(w));
  const out = await rewriter.toLocal(futureInfo((u) => u), Shapes.FlightInfo);
  assertEquals(out, futureInfo((u) => local[u] ?? u));
  assertEquals(warnings.length, 1, "one warning for the unparseable URI");
  assert(warnings[0].includes("not a uri"));
});

Deno.test("rewritten FlightInfo still decodes with the published schema", async () => {
  const map = new LocationMap([["data-a:40001", "127.0.0.1:41001"]]);
  const bytes = flightType("FlightInfo").encode({
    endpoint: [{ location: [{ uri: "grpc://data-a:40001/some/path?x=1" }] }],
    total_records: 5,
  }).finish();
  const out = await new LocationRewriter(map).toLocal(bytes, Shapes.FlightInfo);
  // deno-lint-ignore no-explicit-any
  const info = flightType("FlightInfo").decode(out) as any;
  assertEquals(info.endpoint[0].location[0].uri, "grpc://127.0.0.1:41001/some/path?x=1");
  assertEquals(Number(info.total_records), 5);
});

Deno.test("a message with nothing to rewrite comes back as the same buffer", () => {
  const bytes = futureInfo((u) => u);
  assertStrictEquals(rewriteLocations(bytes, Shapes.FlightInfo, () => undefined), bytes);
});

Deno.test("locations are collected from every endpoint and replica, in order", () => {
  assertEquals(collectLocations(futureInfo((u) => u), Shapes.FlightInfo), [
    "grpc://data-a:40001",
    "grpc+tcp://data-b:40001",
    REUSE_CONNECTION,
    "not a uri",
  ]);
});

Deno.test("PollInfo, CancelFlightInfoRequest and RenewFlightEndpointRequest are reached", async () => {
  const map = new LocationMap([
    ["data-a:40001", "127.0.0.1:41001"],
    ["data-b:40001", "127.0.0.1:41002"],
  ]);
  const rewriter = new LocationRewriter(map);
  const info = futureInfo((u) => u);
  const poll = msg(len(1, info), len(2, "descriptor"), varint(99, 1));
  const expected = futureInfo((u) => local[u] ?? u);
  assertEquals(
    await rewriter.toLocal(poll, Shapes.PollInfo),
    msg(len(1, expected), len(2, "descriptor"), varint(99, 1)),
  );
  const renew = flightType("RenewFlightEndpointRequest").encode({
    endpoint: { location: [{ uri: "grpc://127.0.0.1:41001" }] },
  }).finish();
  const back = flightType("RenewFlightEndpointRequest").decode(
    rewriter.toRemote(renew, Shapes.RenewFlightEndpointRequest),
  ) as unknown as { endpoint: { location: { uri: string }[] } };
  assertEquals(back.endpoint.location[0].uri, "grpc://data-a:40001");
});

Deno.test("unknown endpoints go to the resolver once, however many ask at once", async () => {
  let calls = 0;
  const map = new LocationMap([], async (remote) => {
    calls++;
    await new Promise((r) => setTimeout(r, 20));
    return `127.0.0.1:${50000 + remote.port % 1000}`;
  });
  const rewriter = new LocationRewriter(map);
  const bytes = flightType("FlightInfo").encode({
    endpoint: [{ location: [{ uri: "grpc://data-c:40001" }] }],
  }).finish();
  const outs = await Promise.all(
    Array.from({ length: 10 }, () => rewriter.toLocal(bytes, Shapes.FlightInfo)),
  );
  assertEquals(calls, 1);
  for (const out of outs) {
    assertEquals(collectLocations(out, Shapes.FlightInfo), ["grpc://127.0.0.1:50001"]);
  }
});

Deno.test("a failed resolution names the endpoint and is retried later", async () => {
  let fail = true;
  const map = new LocationMap([], () => {
    if (fail) return Promise.reject(new Error("forward refused"));
    return Promise.resolve("127.0.0.1:50002");
  });
  const rewriter = new LocationRewriter(map);
  const bytes = flightType("FlightInfo").encode({
    endpoint: [{ location: [{ uri: "grpc://data-d:40002" }] }],
  }).finish();
  const error = await assertRejects(
    () => rewriter.toLocal(bytes, Shapes.FlightInfo),
    EndpointUnavailableError,
  );
  assert(error.message.includes("data-d:40002"), error.message);
  assert(error.message.includes("forward refused"), error.message);
  fail = false;
  const out = await rewriter.toLocal(bytes, Shapes.FlightInfo);
  assertEquals(collectLocations(out, Shapes.FlightInfo), ["grpc://127.0.0.1:50002"]);
});

Deno.test("malformed bytes raise WireError instead of passing garbage on", () => {
  assertThrows(
    () => rewriteLocations(Uint8Array.of(0x1a, 0x10, 0x01), Shapes.FlightInfo, () => "x"),
    WireError,
  );
  assertThrows(() => collectLocations(Uint8Array.of(0x1a), Shapes.FlightInfo), WireError);
  assertThrows(() => collectLocations(Uint8Array.of(0x1f, 0x00), Shapes.FlightInfo), WireError);
});

Deno.test("without a resolver, unknown endpoints pass unchanged (a static map, like netloc_map)", async () => {
  const map = new LocationMap([["data-a:40001", "127.0.0.1:41001"]]);
  const bytes = flightType("FlightInfo").encode({
    endpoint: [{ location: [{ uri: "grpc://data-a:40001" }, { uri: "grpc://elsewhere:1" }] }],
  }).finish();
  const out = await new LocationRewriter(map).toLocal(bytes, Shapes.FlightInfo);
  assertEquals(collectLocations(out, Shapes.FlightInfo), [
    "grpc://127.0.0.1:41001",
    "grpc://elsewhere:1",
  ]);
});

Deno.test("kafka:// and other transports pass unchanged: noted once, never forwarded", async () => {
  const asked: string[] = [];
  const map = new LocationMap([], (remote) => {
    asked.push(remote.netloc);
    return Promise.resolve("127.0.0.1:41009");
  });
  const warnings: string[] = [];
  const notes: string[] = [];
  const rewriter = new LocationRewriter(map, (w) => warnings.push(w), (n) => notes.push(n));
  const bytes = flightType("FlightInfo").encode({
    endpoint: [
      { location: [{ uri: "kafka://broker-1:9092" }, { uri: "grpc://data-a:40001" }] },
      { location: [{ uri: "kafka://broker-1:9092,broker-2:9092" }] },
    ],
  }).finish();
  for (let i = 0; i < 2; i++) {
    const out = await rewriter.toLocal(bytes, Shapes.FlightInfo);
    assertEquals(collectLocations(out, Shapes.FlightInfo), [
      "kafka://broker-1:9092",
      "grpc://127.0.0.1:41009",
      "kafka://broker-1:9092,broker-2:9092",
    ]);
  }
  assertEquals(asked, ["data-a:40001"], "only the gRPC location is forwarded");
  assertEquals(warnings, []);
  const passed = notes.filter((note) => note.includes("passed on unchanged"));
  assertEquals(passed.length, 2, "one note per URI, however often it is seen");
  assert(passed[0].includes("kafka://broker-1:9092") && passed[0].includes("not a gRPC location"));
  assertEquals(notes.filter((note) => note.includes("→")), [
    "location grpc://data-a:40001 → grpc://127.0.0.1:41009",
  ]);
});

Deno.test("reuse-connection goes to the info server's own forward, and comes back as it was", async () => {
  const map = new LocationMap([
    ["info:31206", "127.0.0.1:41000"],
    [REUSE_CONNECTION, "127.0.0.1:41100"],
    ["data-a:40001", "127.0.0.1:41001"],
  ]);
  const notes: string[] = [];
  const rewriter = new LocationRewriter(map, () => {}, (note) => notes.push(note));
  const info = flightType("FlightInfo").encode({
    endpoint: [
      { location: [{ uri: REUSE_CONNECTION }] },
      { location: [{ uri: "grpc://info:31206" }, { uri: "grpc://data-a:40001" }] },
    ],
  }).finish();
  const local = await rewriter.toLocal(info, Shapes.FlightInfo);
  assertEquals(collectLocations(local, Shapes.FlightInfo), [
    "grpc://127.0.0.1:41100",
    "grpc://127.0.0.1:41000",
    "grpc://127.0.0.1:41001",
  ]);
  assert(
    notes.some((n) =>
      n === `location ${REUSE_CONNECTION} → grpc://127.0.0.1:41100 (the info server)`
    ),
  );
  // CancelFlightInfo carries the FlightInfo back: the server sees its own locations.
  const cancel = flightType("CancelFlightInfoRequest").encode({
    info: flightType("FlightInfo").decode(local),
  }).finish();
  const back = rewriter.toRemote(cancel, Shapes.CancelFlightInfoRequest);
  assertEquals(collectLocations(back, Shapes.CancelFlightInfoRequest), [
    REUSE_CONNECTION,
    "grpc://info:31206",
    "grpc://data-a:40001",
  ]);
  // Without that forward (--reuse-through-proxy) it passes unchanged: redeemed at the proxy.
  const old = new LocationRewriter(new LocationMap([["data-a:40001", "127.0.0.1:41001"]]));
  assertEquals(
    collectLocations(await old.toLocal(info, Shapes.FlightInfo), Shapes.FlightInfo)[0],
    REUSE_CONNECTION,
  );
});

Deno.test("clients on other machines get forwards named by the host they dialled", async () => {
  const map = new LocationMap([
    [REUSE_CONNECTION, "0.0.0.0:41100"],
    ["data-a:40001", "0.0.0.0:41001"],
  ]);
  const rewriter = new LocationRewriter(map);
  const info = flightType("FlightInfo").encode({
    endpoint: [{ location: [{ uri: REUSE_CONNECTION }, { uri: "grpc://data-a:40001" }] }],
  }).finish();
  const local = await rewriter.toLocal(info, Shapes.FlightInfo, "analysis-7.example.org");
  assertEquals(collectLocations(local, Shapes.FlightInfo), [
    "grpc://analysis-7.example.org:41100",
    "grpc://analysis-7.example.org:41001",
  ]);
  const renew = flightType("RenewFlightEndpointRequest").encode({
    endpoint: flightType("FlightInfo").decode(local).toJSON().endpoint[0],
  }).finish();
  assertEquals(
    collectLocations(
      rewriter.toRemote(renew, Shapes.RenewFlightEndpointRequest, "ANALYSIS-7.example.org"),
      Shapes.RenewFlightEndpointRequest,
    ),
    [REUSE_CONNECTION, "grpc://data-a:40001"],
  );
});

Deno.test("an endpoint with no location gets the info server's reuse forward; others keep theirs", async () => {
  const map = new LocationMap([
    [REUSE_CONNECTION, "127.0.0.1:41100"],
    ["data-a:40001", "127.0.0.1:41001"],
  ]);
  const rewriter = new LocationRewriter(map);
  // An endpoint with unknown fields and no location, one with a location, and one empty.
  const info = msg(
    len(3, msg(len(1, len(1, "t1")), len(4, "meta"), varint(30, 5))),
    len(3, endpointWith("grpc://data-a:40001")),
    len(3, new Uint8Array()),
    len(100, "future-info"),
  );
  const out = await rewriter.toLocal(info, Shapes.FlightInfo);
  const decoded = flightType("FlightInfo").decode(out).toJSON();
  assertEquals(
    decoded.endpoint.map((e: { location?: { uri: string }[] }) => e.location?.map((l) => l.uri)),
    [["grpc://127.0.0.1:41100"], ["grpc://127.0.0.1:41001"], ["grpc://127.0.0.1:41100"]],
  );
  // Everything else is byte for byte: the same message with those locations added by hand.
  assertEquals(
    out,
    msg(
      len(
        3,
        msg(
          len(1, len(1, "t1")),
          len(4, "meta"),
          varint(30, 5),
          len(2, len(1, "grpc://127.0.0.1:41100")),
        ),
      ),
      len(3, endpointWith("grpc://127.0.0.1:41001")),
      len(3, len(2, len(1, "grpc://127.0.0.1:41100"))),
      len(100, "future-info"),
    ),
  );
  // PollInfo's FlightInfo too; without the reuse forward, nothing is added.
  const poll = msg(len(1, info));
  assertEquals(
    collectLocations(await rewriter.toLocal(poll, Shapes.PollInfo), Shapes.PollInfo).length,
    3,
  );
  const bare = new LocationRewriter(new LocationMap([["data-a:40001", "127.0.0.1:41001"]]));
  assertEquals(collectLocations(await bare.toLocal(info, Shapes.FlightInfo), Shapes.FlightInfo), [
    "grpc://127.0.0.1:41001",
  ]);
});

function endpointWith(uri: string): Uint8Array {
  return msg(len(1, len(1, "t2")), len(2, len(1, uri)));
}

Deno.test("forwards on Unix sockets are named grpc+unix:///path, and map back", async () => {
  const map = new LocationMap([
    ["data-a:40001", "/tmp/arrakis-x/f-1a2b3c4d.h2"],
    [REUSE_CONNECTION, "/tmp/arrakis-x/f-99999999"],
  ]);
  const rewriter = new LocationRewriter(map);
  const info = len(
    3,
    msg(len(2, len(1, "grpc://data-a:40001/")), len(2, len(1, REUSE_CONNECTION))),
  );
  const out = await rewriter.toLocal(info, Shapes.FlightInfo);
  assertEquals(collectLocations(out, Shapes.FlightInfo), [
    "grpc+unix:///tmp/arrakis-x/f-1a2b3c4d.h2",
    "grpc+unix:///tmp/arrakis-x/f-99999999",
  ]);
  const back = rewriter.toRemote(out, Shapes.FlightInfo);
  assertEquals(collectLocations(back, Shapes.FlightInfo), [
    "grpc://data-a:40001",
    REUSE_CONNECTION,
  ]);
  // A socket that is not one of ours passes as it is.
  const other = endpointWith("grpc+unix:///elsewhere/sock");
  assertStrictEquals(rewriter.toRemote(other, Shapes.FlightEndpoint), other);
});
