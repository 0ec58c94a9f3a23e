/**
 * Start-up discovery against the real `arrakis-server` (on loopback: discovery
 * only reads names, it never dials them) and against the grpc-js mock, which
 * has no `scope-map` action and so exercises the Count fallback.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { arrakisJson, discoverEndpoints, scopeMapUrls } from "../lib/flight/discovery.ts";
import { startMockDeployment } from "./fixtures/mock_arrakis.ts";
import { startRealServer } from "./fixtures/real_server.ts";

const SCOPE_MAP = `
grpc://data-a:40001:
  scopes:
    H1:
      - all: true
  retention:
    oldest: 100000000000
grpc://Data-B:40001:
  scopes:
    L1:
      - all: true
  retention:
    oldest: 100000000000
`;

Deno.test("an info-only server: its scope-map action lists the data servers", async () => {
  await using info = await startRealServer({ scopeMap: SCOPE_MAP });
  const found = await discoverEndpoints(info.url);
  assertEquals(found.method, "scope-map");
  assertEquals(found.endpoints.map((e) => e.netloc).sort(), ["data-a:40001", "data-b:40001"]);
  assertEquals(found.ignored, []);
});

Deno.test("a self-serving server: the scope map names only itself, nothing to forward", async () => {
  await using server = await startRealServer({ backend: ["mock"] });
  const found = await discoverEndpoints(server.url);
  assertEquals(found.method, "scope-map");
  assertEquals(found.endpoints, []);
});

Deno.test("a server without the scope-map action: the Count over every channel", async () => {
  await using deployment = await startMockDeployment();
  const found = await discoverEndpoints(deployment.infoUrl);
  assertEquals(found.method, "count");
  assertEquals(
    found.endpoints.map((e) => e.netloc).sort(),
    deployment.data.map((server) => server.advertise).sort(),
  );
});

Deno.test("a server that answers neither: one error naming both questions", async () => {
  // Reads need a token here, so the scope map and the Count are both refused.
  await using info = await startRealServer({
    scopeMap: SCOPE_MAP,
    args: ["--auth", "full", "--static-token", "someone=secret"],
  });
  const error = await assertRejects(() => discoverEndpoints(info.url));
  assert(/^scope-map action: .+; Count: .+/.test((error as Error).message), String(error));
});

Deno.test("scope maps are validated, not trusted", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  assertEquals(scopeMapUrls(bytes('{"endpoints": {"grpc://a:1": {}, "kafka://k:9092": {}}}')), [
    "grpc://a:1",
    "kafka://k:9092",
  ]);
  for (const hostile of ["", "null", "[]", '{"endpoints": []}', '{"endpoints": "x"}', "\xff"]) {
    assertThrows(() => scopeMapUrls(bytes(hostile)), Error, "scope map");
  }
  assertThrows(() => scopeMapUrls(new Uint8Array([0xff, 0xfe])), Error, "not JSON");
});

Deno.test("commands carry GPS nanoseconds as exact integers", () => {
  const start = 1_400_000_000_123_456_789n; // beyond a double's precision
  assertEquals(
    arrakisJson({ request: "Stream", args: { channels: ["H1:A"], start, end: null } }),
    '{"request":"Stream","args":{"channels":["H1:A"],"start":1400000000123456789,"end":null}}',
  );
});
