/**
 * FlightProxy in front of the mock Arrakis deployment on loopback. The data
 * servers advertise host names that do not resolve (`data-a.cluster:40001`), so
 * anything that reaches them went through a rewritten location.
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import {
  expectedTable,
  type MockDeployment,
  startMockDeployment,
} from "./fixtures/mock_arrakis.ts";
import {
  arrakisCommand,
  endpointLocations,
  type FlightInfo,
  FlightTestClient,
} from "./fixtures/flight_client.ts";
import { FlightProxy } from "../lib/flight/proxy.ts";
import { LocationMap, REUSE_CONNECTION } from "../lib/flight/locations.ts";
import { flightType } from "../lib/flight/proto.ts";
import { concatBytes, encodeVarint } from "../lib/flight/wire.ts";
import { tableToFlightData } from "../lib/flight/arrow_ipc.ts";
import { tableFromArrays } from "apache-arrow";
import { encodeHeaderBlock } from "../lib/http2/hpack.ts";
import {
  CLIENT_PREFACE,
  Flag,
  FRAME_HEADER_SIZE,
  FrameType,
  writeFrameHeader,
} from "../lib/http2/frames.ts";

const ADVERTISED = { "data-a": "data-a.cluster:40001", "data-b": "data-b.cluster:40001" };

interface Setup extends AsyncDisposable {
  deployment: MockDeployment;
  proxy: FlightProxy;
  client: FlightTestClient;
  /** What a location must become: advertised → local. */
  local: (advertised: string) => string;
}

/**
 * The mock deployment plus a proxy whose map stands in for SSH forwards: it maps
 * each advertised name to the server's real loopback address.
 */
async function setup(
  options: { resolver?: ConstructorParameters<typeof LocationMap>[1] } = {},
): Promise<Setup> {
  const deployment = await startMockDeployment({
    data: [
      { name: "data-a", advertise: ADVERTISED["data-a"] },
      { name: "data-b", advertise: ADVERTISED["data-b"] },
    ],
  });
  const map = new LocationMap(
    deployment.data.map((server) => [server.advertise, server.address]),
    options.resolver,
  );
  const proxy = await FlightProxy.start({
    backend: deployment.infoUrl,
    listen: "127.0.0.1:0",
    locations: map,
  });
  const client = FlightTestClient.connect(proxy.url);
  return {
    deployment,
    proxy,
    client,
    local: (advertised) => map.local(advertised) ?? `unmapped:${advertised}`,
    async [Symbol.asyncDispose]() {
      client.close();
      await proxy.close();
      await deployment.close();
    },
  };
}

const grpcUri = (netloc: string) => `grpc://${netloc}`;
const ticketText = (info: FlightInfo, i: number) =>
  new TextDecoder().decode(info.endpoint[i].ticket!.ticket);

Deno.test("GetFlightInfo: every data-server location points at its local forward", async () => {
  await using s = await setup();
  const info = await s.client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
  assertEquals(endpointLocations(info), [
    [grpcUri(s.deployment.data[0].address)],
    [grpcUri(s.deployment.data[1].address)],
  ]);
});

Deno.test("DoGet on each rewritten location reaches that server and its Arrow data decodes", async () => {
  await using s = await setup();
  const info = await s.client.getFlightInfo(arrakisCommand("Find", { pattern: ".*" }));
  for (const [i, endpoint] of info.endpoint.entries()) {
    using data = FlightTestClient.connect(endpoint.location[0].uri);
    const { table } = await data.doGet(endpoint.ticket!.ticket);
    const name = s.deployment.data[i].name;
    assertEquals(table.schema.metadata.get("server"), name);
    const args = JSON.parse(ticketText(info, i)).args;
    assertEquals(
      table.toArray().map((r) => r.toJSON()),
      expectedTable(args, name).toArray().map((r) => r.toJSON()),
    );
  }
});

Deno.test("Stream: replicas rewritten; reuse-connection and empty lists untouched and redeemable", async () => {
  await using s = await setup();
  const info = await s.client.getFlightInfo(
    arrakisCommand("Stream", { channels: ["X1:A"], start: null, end: null }),
  );
  assertEquals(endpointLocations(info), [
    [grpcUri(s.deployment.data[0].address), grpcUri(s.deployment.data[1].address)],
    [REUSE_CONNECTION],
    [],
  ]);
  // Reuse-connection and empty endpoints are redeemed on the proxy itself.
  for (const i of [1, 2]) {
    const { table } = await s.client.doGet(info.endpoint[i].ticket!.ticket);
    assertEquals(table.schema.metadata.get("server"), "info");
    assert(table.numRows > 0);
  }
  // The endpoint's other fields are unchanged.
  assert(info.endpoint[0].expiration_time, "expiration_time kept");
  assert(info.endpoint[0].app_metadata.length > 0, "app_metadata kept");
});

Deno.test("ListFlights and PollFlightInfo: every message rewritten", async () => {
  await using s = await setup();
  const flights = await s.client.listFlights();
  assert(flights.length >= 2);
  const all = flights.flatMap((f) => endpointLocations(f).flat());
  assert(all.length > 0);
  for (const uri of all) assert(!uri.includes(".cluster"), `not rewritten: ${uri}`);
  const poll = await s.client.pollFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
  assertEquals(endpointLocations(poll.info!), [
    [grpcUri(s.deployment.data[0].address)],
    [grpcUri(s.deployment.data[1].address)],
  ]);
});

// A FlightInfo as a newer server might send it: unknown fields at each level.
const text = new TextEncoder();
const len = (n: number, p: Uint8Array | string) => {
  const bytes = typeof p === "string" ? text.encode(p) : p;
  return concatBytes([encodeVarint(n * 8 + 2), encodeVarint(bytes.length), bytes]);
};
const varint = (n: number, v: number) => concatBytes([encodeVarint(n * 8), encodeVarint(v)]);
const futureInfo = (uri: string) =>
  concatBytes([
    len(1, "schema"),
    len(
      3,
      concatBytes([
        len(1, len(1, "t")),
        len(2, concatBytes([len(1, uri), varint(9, 1)])),
        len(50, "ep"),
      ]),
    ),
    varint(77, 42),
    len(8, "info-level-future-field"),
  ]);

Deno.test("fields unknown to our .proto survive the proxy byte for byte", async () => {
  await using s = await setup();
  const sent = futureInfo(`grpc://${ADVERTISED["data-b"]}`);
  const received = await s.client.getFlightInfoBytes(
    arrakisCommand("Raw", { base64: btoa(String.fromCharCode(...sent)) }),
  );
  assertEquals(received, futureInfo(grpcUri(s.deployment.data[1].address)));
});

Deno.test("an unknown endpoint is forwarded on demand, once for concurrent requests", async () => {
  let resolutions = 0;
  let target = "";
  await using s = await setup({
    resolver: async (remote) => {
      resolutions++;
      await new Promise((r) => setTimeout(r, 50));
      assertEquals(remote.netloc, "data-c.cluster:40001");
      return target;
    },
  });
  const late = await s.deployment.addDataServer({
    name: "data-c",
    advertise: "data-c.cluster:40001",
  });
  target = late.address;
  const infos = await Promise.all(
    Array.from({ length: 8 }, () => s.client.getFlightInfo(arrakisCommand("Count", {}))),
  );
  assertEquals(resolutions, 1);
  for (const info of infos) assertEquals(endpointLocations(info)[2], [grpcUri(late.address)]);
  using data = FlightTestClient.connect(grpcUri(late.address));
  const { table } = await data.doGet(infos[0].endpoint[2].ticket!.ticket);
  assertEquals(table.schema.metadata.get("server"), "data-c");
});

Deno.test("a failed resolution answers UNAVAILABLE naming the endpoint; the proxy keeps serving", async () => {
  await using s = await setup({ resolver: () => Promise.reject(new Error("ssh said no")) });
  await s.deployment.addDataServer({ name: "data-c", advertise: "data-c.cluster:40001" });
  const error = await assertRejects(() => s.client.getFlightInfo(arrakisCommand("Count", {})));
  assertEquals((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  assertStringIncludes((error as grpc.ServiceError).details, "data-c.cluster:40001");
  assertStringIncludes((error as grpc.ServiceError).details, "ssh said no");
  const actions = await s.client.listActions();
  assert(actions.length > 0);
});

Deno.test("request metadata, response headers and trailers pass unchanged", async () => {
  await using s = await setup();
  const result = await s.client.doAction("headers", "", {
    metadata: { "x-user": "alice", "x-trace-bin": Uint8Array.of(1, 2, 3) },
  });
  const seen = JSON.parse(new TextDecoder().decode(result[0].body));
  assertEquals(seen["x-user"], "alice");
  assertEquals(result.headers.get("x-echo-x-user"), ["alice"]);
  assertEquals(result.trailers.get("x-trailer"), ["yes"]);
});

Deno.test("an error keeps its status code, message and trailers", async () => {
  await using s = await setup();
  const error = await assertRejects(() => s.client.doAction("error")) as grpc.ServiceError;
  assertEquals(error.code, grpc.status.PERMISSION_DENIED);
  assertEquals(error.details, "denied by mock");
  assertEquals(error.metadata.get("x-arrakis-detail"), ["mock-detail"]);
  assertEquals(error.metadata.get("x-arrakis-trace-bin").length, 1);
});

Deno.test("the client's deadline reaches the server", async () => {
  await using s = await setup();
  const none = await s.client.doAction("deadline");
  assertEquals(new TextDecoder().decode(none[0].body), "none");
  const timed = await s.client.doAction("deadline", "", { timeout: 5000 });
  const remaining = Number(new TextDecoder().decode(timed[0].body));
  assert(remaining > 0 && remaining <= 5000, `remaining ${remaining}`);
  const error = await assertRejects(() => s.client.doAction("slow", "3000", { timeout: 300 }));
  assertEquals((error as grpc.ServiceError).code, grpc.status.DEADLINE_EXCEEDED);
});

Deno.test("a client cancel cancels the backend call", async () => {
  await using s = await setup();
  const call = s.client.client.makeServerStreamRequest(
    "/arrow.flight.protocol.FlightService/DoAction",
    (b: Uint8Array) => Buffer.from(b),
    (b: Buffer) => b,
    flightType("Action").encode({ type: "slow", body: text.encode("5000") }).finish(),
  );
  call.on("error", () => {});
  await new Promise((r) => setTimeout(r, 300));
  call.cancel();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    if (s.deployment.info.calls.some((c) => c.method === "DoAction" && c.cancelled)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the backend never saw the cancel");
});

Deno.test("64 MiB+ messages pass both ways", async () => {
  await using s = await setup();
  // One batch of 4.5M rows: time (8 B) + one Float64 channel (8 B) = 72 MB.
  const ticket = text.encode(JSON.stringify({
    request: "Stream",
    args: { channels: ["X1:BIG"], rows_per_batch: 4_500_000, batches: 1 },
  }));
  const { table, messages } = await s.client.doGet(ticket);
  assertEquals(table.numRows, 4_500_000);
  assert(messages.some((m) => m.data_body.length > 64 * 1024 * 1024), "one message over 64 MiB");

  const big = tableFromArrays({ x: new Float64Array(9_000_000).map((_, i) => i) });
  const results = await s.client.doPut(tableToFlightData(big));
  assert(results.length > 0);
  assertEquals(s.deployment.info.lastPut?.numRows, 9_000_000);
  assertEquals(s.deployment.info.lastPut?.getChild("x")?.get(8_999_999), 8_999_999);
});

Deno.test("DoPut, DoExchange, Handshake, ListActions and GetSchema pass through", async () => {
  await using s = await setup();
  const table = tableFromArrays({ a: Int32Array.from([1, 2, 3]) });
  const put = await s.client.doPut(tableToFlightData(table));
  assert(put.length >= 1);
  assertEquals(
    s.deployment.info.lastPut?.toArray().map((r) => r.toJSON()),
    table.toArray().map((r) => r.toJSON()),
  );
  const messages = tableToFlightData(table);
  const echoed = await s.client.doExchange(messages);
  assertEquals(
    echoed.map((m) => new Uint8Array(m.data_body)),
    messages.map((m) => new Uint8Array(m.data_body)),
  );
  const hs = await s.client.handshake([text.encode("hello"), text.encode("again")]);
  assertEquals(hs.map((r) => new TextDecoder().decode(r.payload)), ["hello", "again"]);
  const actions = await s.client.listActions();
  assert(actions.some((a) => a.type === "CancelFlightInfo"));
  const schema = await s.client.getSchema(arrakisCommand("Describe", { channels: ["X1:A"] }));
  assert(schema.schema.length > 0);
});

Deno.test("CancelFlightInfo and RenewFlightEndpoint: locations go back remote, come back local", async () => {
  await using s = await setup();
  const info = await s.client.getFlightInfo(arrakisCommand("Count", {}));
  const cancelBody = flightType("CancelFlightInfoRequest").encode({ info: toProto(info) }).finish();
  await s.client.doAction("CancelFlightInfo", cancelBody);
  const renewBody = flightType("RenewFlightEndpointRequest").encode({
    endpoint: toProto(info).endpoint[1],
  }).finish();
  const renewed = await s.client.doAction("RenewFlightEndpoint", renewBody);
  assertEquals(s.deployment.info.seenLocations, [
    grpcUri(ADVERTISED["data-a"]),
    grpcUri(ADVERTISED["data-b"]),
    grpcUri(ADVERTISED["data-b"]),
  ]);
  const endpoint = flightType("FlightEndpoint").decode(renewed[0].body) as unknown as {
    location: { uri: string }[];
  };
  assertEquals(endpoint.location.map((l) => l.uri), [grpcUri(s.deployment.data[1].address)]);
});

// protobufjs wants camel-case-free plain objects; the decoded FlightInfo already is one.
function toProto(info: FlightInfo) {
  return info as unknown as { endpoint: unknown[] };
}

Deno.test("backend unreachable: UNAVAILABLE within seconds, and the proxy keeps serving", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  await using proxy = await FlightProxy.start({
    backend: `grpc://127.0.0.1:${port}`,
    listen: "127.0.0.1:0",
  });
  using client = FlightTestClient.connect(proxy.url);
  for (let i = 0; i < 2; i++) {
    const started = Date.now();
    const error = await assertRejects(() => client.getFlightInfo(arrakisCommand("Count", {})));
    assertEquals((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    assert(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  }
});

Deno.test("setUnavailable answers every call at once with the reason", async () => {
  await using s = await setup();
  s.proxy.setUnavailable("SSH connection to login lost, reconnecting");
  const error = await assertRejects(() => s.client.getFlightInfo(arrakisCommand("Count", {})));
  assertEquals((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
  assertMatch((error as grpc.ServiceError).details, /SSH connection to login lost/);
  s.proxy.setUnavailable(undefined);
  await s.client.getFlightInfo(arrakisCommand("Count", {}));
});

Deno.test("backpressure: a client that stops reading stops the backend too", async () => {
  // A raw backend that streams 1 MiB messages as fast as its client accepts them.
  const total = 256;
  let written = 0;
  const server = new grpc.Server({ "grpc.max_send_message_length": -1 });
  const pass = (b: Buffer) => b;
  server.addService({
    DoGet: {
      path: "/arrow.flight.protocol.FlightService/DoGet",
      requestStream: false,
      responseStream: true,
      requestSerialize: pass,
      requestDeserialize: pass,
      responseSerialize: pass,
      responseDeserialize: pass,
    },
  }, {
    DoGet: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const chunk = Buffer.alloc(1 << 20, 7);
      let cancelled = false;
      call.on("cancelled", () => cancelled = true);
      for (let i = 0; i < total && !cancelled; i++) {
        written++;
        if (!call.write(chunk)) {
          await new Promise((r) => {
            call.once("drain", r);
            call.once("cancelled", r);
          });
        }
      }
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (e, p) => e ? reject(e) : resolve(p),
    )
  );
  try {
    await using proxy = await FlightProxy.start({
      backend: `grpc://127.0.0.1:${port}`,
      listen: "127.0.0.1:0",
    });
    const client = new grpc.Client(proxy.address, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      "/arrow.flight.protocol.FlightService/DoGet",
      pass,
      pass,
      Buffer.alloc(0),
    );
    call.on("error", () => {});
    await new Promise((r) => call.once("data", r));
    call.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const whilePaused = written;
    call.cancel();
    client.close();
    assert(
      whilePaused < total / 2,
      `backend wrote ${whilePaused} of ${total} MiB while the client read 1`,
    );
  } finally {
    server.forceShutdown();
  }
});

Deno.test("a unary answer leaves the proxy in one write: headers, message and trailers", async () => {
  await using s = await setup();
  const frame = (type: number, flags: number, stream: number, payload: Uint8Array) => {
    const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
    writeFrameHeader(out, 0, payload.length, type, flags, stream);
    out.set(payload, FRAME_HEADER_SIZE);
    return out;
  };
  const cmd = new TextEncoder().encode(
    JSON.stringify({ request: "Count", args: { pattern: ".*" } }),
  );
  const descriptor = concatBytes([Uint8Array.of(0x08, 2, 0x12), encodeVarint(cmd.length), cmd]);
  const message = new Uint8Array(5 + descriptor.length);
  new DataView(message.buffer).setUint32(1, descriptor.length);
  message.set(descriptor, 5);
  const headers = encodeHeaderBlock([
    { name: ":method", value: "POST" },
    { name: ":scheme", value: "http" },
    { name: ":path", value: "/arrow.flight.protocol.FlightService/GetFlightInfo" },
    { name: ":authority", value: s.proxy.address },
    { name: "content-type", value: "application/grpc" },
    { name: "te", value: "trailers" },
  ]);
  const request = concatBytes([
    CLIENT_PREFACE,
    frame(4, 0, 0, new Uint8Array(0)), // SETTINGS, empty
    frame(FrameType.HEADERS, Flag.END_HEADERS, 1, headers),
    frame(FrameType.DATA, Flag.END_STREAM, 1, message),
  ]);
  // The client in its own process: one in this one reads only when the proxy's code yields.
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", RAW_CLIENT, s.proxy.address, btoa(String.fromCharCode(...request))],
    stdout: "piped",
  }).output();
  const reads: number[][] = JSON.parse(new TextDecoder().decode(output.stdout));
  assertEquals(reads, [[FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]]);
});

/**
 * The raw scripts' reading: `readMore()` appends one read of `conn` to
 * `pending` and answers its byte count (null at the end).
 */
const READ_MORE = `
const buffer = new Uint8Array(65536);
let pending = new Uint8Array(0);
const readMore = async () => {
  const n = await conn.read(buffer);
  if (n === null) return null;
  const joined = new Uint8Array(pending.length + n);
  joined.set(pending);
  joined.set(buffer.subarray(0, n), pending.length);
  pending = joined;
  return n;
};
`;

/**
 * Sends `atob(argv[1])` to `argv[0]` (host:port) and prints, per read, the
 * types of the stream-1 frames it held, until stream 1's trailers.
 */
const RAW_CLIENT = `
const [hostname, port] = Deno.args[0].split(":");
const conn = await Deno.connect({ hostname, port: Number(port) });
await conn.write(Uint8Array.from(atob(Deno.args[1]), (c) => c.charCodeAt(0)));
const reads = [];
${READ_MORE}for (let done = false; !done;) {
  const n = await readMore();
  if (n === null) break;
  const types = [];
  while (pending.length >= 9) {
    const length = (pending[0] << 16) | (pending[1] << 8) | pending[2];
    if (pending.length < 9 + length) break;
    const stream = new DataView(pending.buffer, pending.byteOffset + 5, 4).getUint32(0);
    if (stream === 1) {
      types.push(pending[3]);
      if (pending[3] === 1 && pending[4] & 1) done = true;
    }
    pending = pending.subarray(9 + length);
  }
  if (types.length > 0) reads.push(types);
}
console.log(JSON.stringify(reads));
`;

Deno.test("a unary request leaves the proxy for the backend in one write: headers and message", async () => {
  const CALLS = 5;
  // A bare HTTP/2 server in its own process that answers every request trailers-only
  // and says, per read, which frame types of which stream it held.
  const answer = encodeHeaderBlock([
    { name: ":status", value: "200" },
    { name: "content-type", value: "application/grpc" },
    { name: "grpc-status", value: "14" },
  ]);
  const server = new Deno.Command(Deno.execPath(), {
    args: ["eval", RAW_SERVER, btoa(String.fromCharCode(...answer)), String(CALLS)],
    stdout: "piped",
  }).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const port = Number((await lines.read()).value);
  const proxy = await FlightProxy.start({ backend: `127.0.0.1:${port}`, listen: "127.0.0.1:0" });
  const client = FlightTestClient.connect(proxy.url);
  try {
    for (let i = 0; i < CALLS; i++) {
      await client.getFlightInfo(arrakisCommand("Count")).catch(() => undefined);
    }
  } finally {
    client.close();
    await proxy.close();
  }
  let text = "";
  for (let chunk = await lines.read(); !chunk.done; chunk = await lines.read()) text += chunk.value;
  await server.status;
  const reads: [number, number[]][] = JSON.parse(text);
  // The calls after the first, on an open connection: streams 3, 5, …
  const later = reads.filter(([stream]) => stream > 1);
  assertEquals(later.length, CALLS - 1);
  for (const [, types] of later) assertEquals(types, [FrameType.HEADERS, FrameType.DATA]);
});

/**
 * Listens on a free port (printed on the first line), answers SETTINGS, and each
 * request (its END_STREAM) with HEADERS `atob(argv[0])` ending the stream;
 * after `argv[1]` requests prints, per read and stream, the frame types it held.
 */
const RAW_SERVER = `
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
const conn = await listener.accept();
const answer = Uint8Array.from(atob(Deno.args[0]), (c) => c.charCodeAt(0));
const frame = (type, flags, stream, payload) => {
  const out = new Uint8Array(9 + payload.length);
  out.set([payload.length >> 16, (payload.length >> 8) & 255, payload.length & 255, type, flags]);
  new DataView(out.buffer).setUint32(5, stream);
  out.set(payload, 9);
  return out;
};
await conn.write(frame(4, 0, 0, new Uint8Array(0)));
const reads = [];
${READ_MORE}let prefaceLeft = 24;
let answered = 0;
while (answered < Number(Deno.args[1])) {
  const n = await readMore();
  if (n === null) break;
  const skip = Math.min(prefaceLeft, pending.length);
  pending = pending.subarray(skip);
  prefaceLeft -= skip;
  const byStream = new Map();
  while (pending.length >= 9) {
    const length = (pending[0] << 16) | (pending[1] << 8) | pending[2];
    if (pending.length < 9 + length) break;
    const [type, flags] = [pending[3], pending[4]];
    const stream = new DataView(pending.buffer, pending.byteOffset + 5, 4).getUint32(0);
    if (type === 4 && !(flags & 1)) await conn.write(frame(4, 1, 0, new Uint8Array(0)));
    if (stream > 0) {
      byStream.set(stream, [...(byStream.get(stream) ?? []), type]);
      if (flags & 1 && (type === 0 || type === 1)) {
        await conn.write(frame(1, 5, stream, answer));
        answered++;
      }
    }
    pending = pending.subarray(9 + length);
  }
  for (const entry of byStream) reads.push(entry);
}
console.log(JSON.stringify(reads));
conn.close();
listener.close();
`;
