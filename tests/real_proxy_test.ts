/**
 * What the real `arrakis-server` does, carried faithfully by the Flight proxy,
 * seen by pyarrow's C++ client (the one the real `arrakis` client uses).
 *
 * A real information server routes by a scope map to three real mock-backend
 * data servers named `data-a`, `data-b` (replicas: one endpoint, two locations)
 * and `data-c`, whose channels also have a Kafka direct-read URL (`kafka://`
 * locations first, as the real server orders them). The names resolve nowhere:
 * the proxy's map stands in for the SSH forwards, so data reached through the
 * proxy went through rewritten locations. The same calls without the proxy (the
 * client redirected by hand) give the reference.
 */
import { assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import { FlightProxy } from "../lib/flight/proxy.ts";
import { LocationMap } from "../lib/flight/locations.ts";
import { type RealServer, startRealServer } from "./fixtures/real_server.ts";
import { pythonJson } from "./fixtures/python.ts";
import { arrakisJson } from "../lib/flight/discovery.ts";

const CALLS = new URL("./fixtures/py/flight_calls.py", import.meta.url).pathname;

/** Deterministic channels (a `func` of t), so replicas and runs give identical arrays. */
const channels = (domain: string, publisher: string) => `
["common"]
publisher = "${publisher}"
sample_rate = 256
data_type = "float64"
stride = 62_500_000
max_latency = 1_000_000_000

["${domain}:GDS-TEST_SIN"]
func = "sin(t)"

["${domain}:GDS-TEST_RAMP"]
sample_rate = 1024
func = "3*t + 1"
`;

const SCOPE_MAP = `
grpc://data-a:40001:
  scopes:
    H1:
      - all: true
  retention:
    oldest: 100000000000
grpc://data-b:40001:
  scopes:
    H1:
      - all: true
  retention:
    oldest: 100000000000
grpc://data-c:40001:
  scopes:
    L1:
      - publisher: FAKE_L1
        subsystems: [GDS]
        direct_read: kafka://broker-1:9092,broker-2:9092
  retention:
    oldest: 100000000000
`;

const STREAM = arrakisJson({
  request: "Stream",
  args: {
    channels: ["H1:GDS-TEST_SIN", "H1:GDS-TEST_RAMP", "L1:GDS-TEST_SIN"],
    start: 1_400_000_000_000_000_000n,
    end: 1_400_000_004_000_000_000n,
  },
});

async function dataServer(domain: string): Promise<RealServer> {
  const dir = await Deno.makeTempDir({ prefix: "arrakis-channels-" });
  const file = `${dir}/${domain}.toml`;
  await Deno.writeTextFile(file, channels(domain, `FAKE_${domain}`));
  const server = await startRealServer({ backend: ["mock", file] });
  return {
    ...server,
    [Symbol.asyncDispose]: async () => {
      await server[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

// deno-lint-ignore no-explicit-any
function flightCalls(url: string, redirects: Record<string, string> = {}): Promise<any> {
  return pythonJson([CALLS, url, STREAM, JSON.stringify(redirects)]);
}

const netloc = (url: string) => url.replace("grpc://", "");

Deno.test("the real server through the proxy: every location, descriptor, action and refusal", async (t) => {
  await using a = await dataServer("H1");
  await using b = await dataServer("H1");
  await using c = await dataServer("L1");
  await using info = await startRealServer({ scopeMap: SCOPE_MAP });
  const forwards: Record<string, RealServer> = { "data-a": a, "data-b": b, "data-c": c };
  const locations = new LocationMap(
    Object.entries(forwards).map(([name, server]) => [`${name}:40001`, netloc(server.url)]),
  );
  const notes: string[] = [];
  const proxy = await FlightProxy.start({
    backend: info.url,
    listen: "127.0.0.1:0",
    locations,
    logger: {
      level: "verbose",
      debug: (m) => notes.push(m),
      info() {},
      warn: (m) => notes.push(`warn ${m}`),
      progress() {},
    },
  });
  let direct, proxied;
  try {
    direct = await flightCalls(
      info.url,
      Object.fromEntries(
        Object.entries(forwards).map(([name, server]) => [`grpc://${name}:40001`, server.url]),
      ),
    );
    proxied = await flightCalls(proxy.url);
  } finally {
    await proxy.close(); // before the servers go: no GOAWAY reaches a live proxy
  }

  await t.step("the server's own answer, as the reference", () => {
    assertEquals(direct.locations, [
      ["grpc://data-a:40001", "grpc://data-b:40001"],
      ["kafka://broker-1:9092", "kafka://broker-2:9092", "grpc://data-c:40001"],
    ]);
    assertEquals(direct.descriptor.type, "PATH");
  });

  await t.step("every gRPC location of every endpoint points at its forward", () => {
    assertEquals(proxied.locations, [
      [a.url, b.url],
      ["kafka://broker-1:9092", "kafka://broker-2:9092", c.url],
    ]);
  });

  await t.step("kafka:// passes unchanged, with one verbose note each and no warning", () => {
    assertEquals(notes.filter((n) => n.includes("kafka://")).length, 2);
    assertEquals(notes.filter((n) => n.startsWith("warn")), []);
  });

  await t.step("the PATH descriptor comes back unchanged", () => {
    assertEquals(proxied.descriptor, direct.descriptor);
    assertEquals(proxied.descriptor.path.length, 1);
  });

  await t.step("DoGet on every replica: the same Arrow data as without the proxy", () => {
    assertEquals(direct.data.length, 3);
    for (const result of direct.data) assertMatch(JSON.stringify(result), /"rows":\d+/);
    assertNotEquals(direct.data[0].rows, 0);
    assertEquals(direct.data[0], direct.data[1], "replicas serve identical arrays");
    assertEquals(proxied.data, direct.data);
  });

  await t.step("ListActions and DoAction (scope-map, server-info) pass through", () => {
    assertEquals(proxied.actions, ["replays", "scope-map", "server-info"]);
    assertEquals(proxied.action_bodies, direct.action_bodies);
  });

  await t.step("the info server's DoGet and DoExchange refusals reach the client unchanged", () => {
    assertMatch(direct.info_do_get.message, /DoGet requests unavailable from this server/);
    assertEquals(proxied.info_do_get, direct.info_do_get);
    assertMatch(direct.info_do_exchange.message, /DoExchange requests unavailable/);
    assertEquals(proxied.info_do_exchange, direct.info_do_exchange);
  });
});
