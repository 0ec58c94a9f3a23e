/**
 * Start-up discovery through the real command against the real info server in
 * the namespace: every data server forwarded before the ready line when the
 * server lists them; when it will not, one warning, and forwards on demand.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { clusterArgs, forwardTargets, startProxy } from "./fixtures/proxy_cli.ts";
import { pythonJson } from "./fixtures/python.ts";
import { REAL_CHANNELS } from "./fixtures/real_arrakis.ts";

const TOKEN = "s3cret-reader-token";

/** A Stream of one H1 and one L1 channel, fetched with pyarrow: rows per endpoint. */
const FETCH = `
import json, sys, pyarrow.flight as fl
headers = [(b"authorization", b"Bearer ${TOKEN}")]
options = fl.FlightCallOptions(headers=headers)
client = fl.connect(sys.argv[1])
command = {"request": "Stream", "args": {"channels": ${
  JSON.stringify([REAL_CHANNELS.H1[0], REAL_CHANNELS.L1[0]])
}, "start": 1400000000000000000, "end": 1400000001000000000}}
info = client.get_flight_info(fl.FlightDescriptor.for_command(json.dumps(command)), options)
out = []
for endpoint in info.endpoints:
    uri = endpoint.locations[0].uri.decode()
    with fl.connect(uri) as data:
        out.append([uri, data.do_get(endpoint.ticket, options).read_all().num_rows])
print(json.dumps(out))
`;

Deno.test("the real info server's data servers are forwarded before the ready line", async () => {
  await using cluster = await startCluster({ deployment: "real-info" });
  await using proxy = await startProxy(["-v", ...clusterArgs(cluster)]);
  // No client has asked anything yet: these forwards come from discovery.
  assertEquals(forwardTargets(proxy.stderr()), ["data-a:40001", "data-b:40001", "info:31206"]);
  assertStringIncludes(proxy.stderr(), "2 data server(s) listed by the server's scope-map action");
  assertEquals(proxy.stderr().includes("warning"), false, proxy.stderr());
});

Deno.test("a protected server and no token: one warning, the proxy serves, data servers forwarded on demand", async () => {
  await using cluster = await startCluster({
    deployment: "real-info",
    // Reads need a token (server-info says so); the proxy finds none, so it lists nothing.
    infoServerArgs: ["--auth", "full", "--static-token", `reader=${TOKEN}`],
  });
  const runtime = await Deno.makeTempDir({ prefix: "arrakis-no-token-" });
  await using proxy = await startProxy(clusterArgs(cluster), { env: { XDG_RUNTIME_DIR: runtime } });
  // It holds the server the proxy remembers for this destination by now.
  await Deno.remove(runtime, { recursive: true });
  const warnings = proxy.stderr().split("\n").filter((line) => line.includes("warning"));
  assertEquals(warnings.length, 1, proxy.stderr());
  assertMatch(
    warnings[0],
    /the server needs a token for reads and none fits: none for audience https:\/\/info \(looked at .+\); get one with htgettoken/,
  );
  assertStringIncludes(proxy.stderr(), "data servers will be forwarded when first seen");
  assertEquals(forwardTargets(proxy.stderr()), ["info:31206"]);

  // A client with the token: its header passes through, the locations are new.
  const fetched = await pythonJson<[string, number][]>(["-c", FETCH, proxy.url]);
  assertEquals(fetched.length, 2);
  for (const [uri, rows] of fetched) {
    // A private socket: the forward's header relay (reads need a token; this client has its own).
    assertMatch(uri, /^grpc\+unix:\/\/\/.+\.h2$/);
    assertEquals(rows > 0, true);
  }
  assertEquals(forwardTargets(proxy.stderr()), ["data-a:40001", "data-b:40001", "info:31206"]);
});
