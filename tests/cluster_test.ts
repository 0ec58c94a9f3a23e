/**
 * The cluster fixture end to end through the SSH layer: the login host says
 * where Arrakis is, and the info and data servers answer Flight calls
 * through forwards to names that exist only inside the namespace.
 * Needs root; run with `deno test -A tests/cluster_test.ts`.
 */

import { SshConnection } from "../lib/ssh/connection.ts";
import { resolveRemoteServer } from "../lib/ssh/remote_server.ts";
import { assertEquals, assertNotEquals } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { arrakisCommand, endpointLocations, FlightTestClient } from "./fixtures/flight_client.ts";

Deno.test("cluster: find the server over ssh and reach every server through forwards", async () => {
  await using cluster = await startCluster();
  await using conn = await SshConnection.connect({
    host: cluster.sshHost,
    sshConfig: cluster.sshConfigPath,
    interactive: false,
  });
  const server = await resolveRemoteServer(conn);
  assertEquals(server, { url: "grpc://info:31206", host: "info", port: 31206 });

  const info = await conn.forward(server.host, server.port);
  // Same port on two hosts: two forwards.
  const dataA = await conn.forward("data-a", 40001);
  const dataB = await conn.forward("data-b", 40001);
  assertNotEquals(dataA.port, dataB.port);

  using client = FlightTestClient.connect(`grpc://127.0.0.1:${info.port}`);
  const count = await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
  assertEquals(endpointLocations(count).flat().sort(), [
    "grpc://data-a:40001",
    "grpc://data-b:40001",
  ]);
  for (const local of [dataA, dataB]) {
    using data = FlightTestClient.connect(`grpc://127.0.0.1:${local.port}`);
    await data.listActions();
  }

  const added = await cluster.addDataServer("data-c");
  assertEquals(added, {
    name: "data-c",
    host: "127.0.0.14",
    port: 40001,
    advertise: "data-c:40001",
  });
  const dataC = await conn.forward("data-c", 40001);
  using data = FlightTestClient.connect(`grpc://127.0.0.1:${dataC.port}`);
  await data.listActions();
  const after = await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
  assertEquals(endpointLocations(after).flat().includes("grpc://data-c:40001"), true);
});
