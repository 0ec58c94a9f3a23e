/**
 * Property tests: random FlightInfos (with fields from "newer servers") and
 * random corruptions of them. The rewriter must never throw anything but a
 * WireError, and must never change a byte it was not asked to change.
 */
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, assertStrictEquals } from "./assert.ts";
import { LocationMap } from "../lib/flight/locations.ts";
import { LocationRewriter, rewriteLocations, Shapes } from "../lib/flight/rewrite.ts";
import { concatBytes, encodeVarint, WireError } from "../lib/flight/wire.ts";
import { FlightProxy } from "../lib/flight/proxy.ts";
import { startMockDeployment } from "./fixtures/mock_arrakis.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";
import { random } from "./fixtures/prng.ts";

const text = new TextEncoder();
const field = (n: number, wire: number, payload: Uint8Array) =>
  wire === 2
    ? concatBytes([encodeVarint(n * 8 + 2), encodeVarint(payload.length), payload])
    : concatBytes([encodeVarint(n * 8 + wire), payload]);

function generator(rand: () => number) {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(items: readonly T[]) => items[int(items.length)];
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const unknown = () => {
    const n = 8 + int(500);
    switch (int(4)) {
      case 0:
        return field(n, 0, encodeVarint(int(1e9)));
      case 1:
        return field(n, 1, bytes(8));
      case 2:
        return field(n, 5, bytes(4));
      default:
        return field(n, 2, bytes(int(20)));
    }
  };
  const hosts = ["data-a:40001", "data-b:40001", "data-c:40002", "[fd00::1]:40003", "other:1"];
  const uri = () =>
    pick([
      () =>
        `${pick(["grpc", "grpc+tcp", "grpc+tls"])}://${pick(hosts)}${pick(["", "/", "/p?q=1"])}`,
      () => "arrow-flight-reuse-connection://?",
      () => "grpc+unix:///tmp/socket",
      () => "",
      () => "garbage \u00e9 uri",
    ])();
  const sprinkle = (parts: Uint8Array[]) => {
    const out = [...parts];
    for (let i = int(3); i > 0; i--) out.splice(int(out.length + 1), 0, unknown());
    return concatBytes(out);
  };
  const location = () => sprinkle([field(1, 2, text.encode(uri()))]);
  const endpoint = () =>
    sprinkle([
      field(1, 2, field(1, 2, bytes(int(30)))),
      ...Array.from({ length: int(4) }, () => field(2, 2, location())),
      field(4, 2, bytes(int(10))),
    ]);
  const info = () =>
    sprinkle([
      field(1, 2, bytes(int(40))),
      ...Array.from({ length: int(6) }, () => field(3, 2, endpoint())),
      field(4, 0, encodeVarint(int(1e6))),
      field(7, 2, bytes(int(10))),
    ]);
  const mutate = (input: Uint8Array) => {
    const out = Array.from(input);
    for (let i = 1 + int(4); i > 0; i--) {
      const at = int(out.length + 1);
      switch (int(3)) {
        case 0:
          out[at] = int(256);
          break;
        case 1:
          out.splice(at, 1);
          break;
        default:
          out.splice(at, 0, int(256));
      }
    }
    return Uint8Array.from(out.slice(0, int(4) === 0 ? int(out.length + 1) : out.length));
  };
  return { info, mutate };
}

const MAP: [string, string][] = [
  ["data-a:40001", "127.0.0.1:41001"],
  ["data-b:40001", "127.0.0.1:41002"],
  ["data-c:40002", "127.0.0.1:41003"],
  ["[fd00::1]:40003", "127.0.0.1:41004"],
  ["other:1", "127.0.0.1:41005"],
];

Deno.test("random FlightInfos: local then back to remote gives the very same bytes", async () => {
  const gen = generator(random(20261125));
  const rewriter = new LocationRewriter(new LocationMap(MAP));
  for (let i = 0; i < 2000; i++) {
    const original = gen.info();
    const local = await rewriter.toLocal(original, Shapes.FlightInfo);
    assertEquals(rewriter.toRemote(local, Shapes.FlightInfo), original, `case ${i}`);
    // Identity replacement must not even copy.
    assertStrictEquals(rewriteLocations(original, Shapes.FlightInfo, () => undefined), original);
  }
});

Deno.test("mutated and random bytes: the rewriter returns bytes or throws WireError, nothing else", async () => {
  const rand = random(42);
  const gen = generator(rand);
  const rewriter = new LocationRewriter(new LocationMap(MAP, () => Promise.resolve("127.0.0.1:1")));
  let rejected = 0;
  for (let i = 0; i < 5000; i++) {
    const input = i % 5 === 0
      ? Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))
      : gen.mutate(gen.info());
    try {
      const out = await rewriter.toLocal(input, Shapes.FlightInfo);
      assert(out instanceof Uint8Array);
    } catch (error) {
      if (!(error instanceof WireError)) throw new Error(`case ${i}: ${error}`, { cause: error });
      rejected++;
    }
  }
  assert(rejected > 0, "some corruptions must be detected");
});

Deno.test("malformed FlightInfo from the server: INTERNAL to that client, the proxy keeps serving", async () => {
  await using deployment = await startMockDeployment({});
  await using proxy = await FlightProxy.start({
    backend: deployment.infoUrl,
    listen: "127.0.0.1:0",
  });
  using client = FlightTestClient.connect(proxy.url);
  // Field 3 (endpoint) claims 16 bytes but only one follows.
  const garbage = btoa(String.fromCharCode(0x1a, 0x10, 0x01));
  const error = await client.getFlightInfo(arrakisCommand("Raw", { base64: garbage })).then(
    () => undefined,
    (e) => e as grpc.ServiceError,
  );
  assertEquals(error?.code, grpc.status.INTERNAL);
  const info = await client.getFlightInfo(arrakisCommand("Count", {}));
  assertEquals(info.endpoint.length, 2);
});
