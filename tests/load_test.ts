/**
 * Load and soak through the real `arrakis-proxy` command against the namespace
 * cluster (loopback and the test's own namespace only; every run is bounded):
 *
 * - 1,000 concurrent GetFlightInfo through the proxy;
 * - 20 concurrent 256 MiB DoGets through rewritten locations (data-server
 *   forwards over SSH) and 20 through the proxy (reuse-connection endpoints),
 *   row counts checked;
 * - 100,000 sequential GetFlightInfo: the proxy's resident memory grows by less
 *   than 20 MB and its open file descriptors do not grow.
 *
 * Figures are printed (console.log) so they can be quoted; timings are not asserted.
 * Needs root; run with `deno test -A tests/load_test.ts`.
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { Message } from "apache-arrow";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";
import { startProxy } from "./fixtures/proxy_cli.ts";
import { arrakisDescriptor, COUNT_ALL_COMMAND } from "../lib/flight/discovery.ts";
import { readFields, WireType } from "../lib/flight/wire.ts";
import { FLIGHT_SERVICE } from "../lib/flight/proto.ts";
import { PROXY_CHILD_FLAG } from "../lib/proxy_process/protocol.ts";
import { descendants } from "./fixtures/processes.ts";

const MiB = 1 << 20;
const CONCURRENT_INFOS = 1_000;
const CONCURRENT_DOGETS = 20;
// One Int64 time column and one Float64 channel per endpoint: 16 bytes a row.
const ROWS_PER_BATCH = 262_144; // 4 MiB batches
const BATCHES = 64; // 256 MiB per DoGet
const SEQUENTIAL_INFOS = 100_000;
// The child's heap settles after 10,000-20,000 calls (RSS ~70 → ~200 MiB, then flat: measured in
// steps of 10,000 up to 80,000); growth is judged from there.
const WARM_UP_INFOS = 20_000;

const pass = (bytes: Buffer) => bytes;

function startCli(cluster: Cluster) {
  return startProxy(["-l", "127.0.0.1:0", "-F", cluster.sshConfigPath, cluster.sshHost]);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

/** A raw unary GetFlightInfo; resolves to the encoded FlightInfo. */
function rawGetFlightInfo(client: grpc.Client, descriptor: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      `/${FLIGHT_SERVICE}/GetFlightInfo`,
      pass,
      pass,
      descriptor,
      new grpc.Metadata(),
      { deadline: Date.now() + 60_000 },
      (error, value) => error ? reject(error) : resolve(value!),
    )
  );
}

/**
 * Streams a DoGet without keeping the data and counts its rows from each
 * message's Arrow header (RecordBatch.length).
 */
function countDoGetRows(url: string, ticket: Uint8Array): Promise<{ rows: number; bytes: number }> {
  const client = FlightTestClient.connect(url);
  const request = Buffer.concat([Buffer.from([0x0a]), varint(ticket.length), ticket]);
  const call = client.client.makeServerStreamRequest(
    `/${FLIGHT_SERVICE}/DoGet`,
    pass,
    pass,
    request,
  );
  let rows = 0;
  let bytes = 0;
  call.on("data", (data: Buffer) => {
    bytes += data.length;
    for (const field of readFields(data)) {
      if (field.number !== 2 || field.wireType !== WireType.LEN) continue; // data_header
      const message = Message.decode(data.subarray(field.valueStart, field.end));
      if (message.isRecordBatch()) rows += Number(message.header().length);
    }
  });
  return new Promise<{ rows: number; bytes: number }>((resolve, reject) => {
    call.on("error", reject);
    call.on("end", () => resolve({ rows, bytes }));
  }).finally(() => client.close());
}

function varint(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

/** The proxy's gRPC child (see lib/isolated_proxy.ts) under the command's process. */
function proxyChild(pid: number): number {
  const [child] = descendants(pid).filter((candidate) => {
    try {
      return Deno.readTextFileSync(`/proc/${candidate}/cmdline`).includes(PROXY_CHILD_FLAG);
    } catch {
      return false;
    }
  });
  assert(child, "the proxy child process runs");
  return child;
}

/** VmRSS in bytes and the number of open descriptors of `pid`. */
function usage(pid: number): { rss: number; fds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  return { rss: kib * 1024, fds: [...Deno.readDirSync(`/proc/${pid}/fd`)].length };
}

Deno.test("1,000 concurrent GetFlightInfo through the proxy", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  using client = FlightTestClient.connect(proxy.url);
  await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" })); // connect first
  const start = performance.now();
  const infos = await Promise.all(
    Array.from(
      { length: CONCURRENT_INFOS },
      () => client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }), { timeout: 60_000 }),
    ),
  );
  const ms = performance.now() - start;
  console.log(
    `${CONCURRENT_INFOS} concurrent GetFlightInfo: ${ms.toFixed(0)} ms ` +
      `(${(CONCURRENT_INFOS / ms * 1000).toFixed(0)} calls/s)`,
  );
  for (const info of infos) {
    const locations = client.locations(info).flat();
    assertEquals(locations.length, 2);
    for (const uri of locations) assert(uri.startsWith("grpc://127.0.0.1:"), uri);
  }
});

Deno.test("20 concurrent 256 MiB DoGets over data-server forwards, the reuse forward and the proxy", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  using client = FlightTestClient.connect(proxy.url);
  const info = await client.getFlightInfo(arrakisCommand("Stream", {
    channels: ["X1:LOAD-A", "X1:LOAD-B", "X1:LOAD-C"],
    rows_per_batch: ROWS_PER_BATCH,
    batches: BATCHES,
  }));
  // Endpoint 0: replicas on data-a and data-b; endpoint 1: reuse-connection, rewritten
  // to the info server's second forward (its ticket is as good at the proxy's URL).
  const [overSsh, reuse] = info.endpoint;
  const replicas = overSsh.location.map((location) => location.uri);
  assertEquals(replicas.length, 2);
  const [reuseForward] = reuse.location.map((location) => location.uri);
  assertMatch(reuseForward, /^grpc\+unix:\/\/\/\S+\/f-[0-9a-f]{8}$/);
  const expectedRows = ROWS_PER_BATCH * BATCHES;

  for (
    const [label, urlFor, ticket] of [
      ["data-server forwards", (i: number) => replicas[i % 2], overSsh.ticket!.ticket],
      ["the info server's reuse forward", () => reuseForward, reuse.ticket!.ticket],
      ["the proxy (as with --reuse-through-proxy)", () => proxy.url, reuse.ticket!.ticket],
    ] as const
  ) {
    const start = performance.now();
    const results = await Promise.all(
      Array.from({ length: CONCURRENT_DOGETS }, (_, i) => countDoGetRows(urlFor(i), ticket)),
    );
    const ms = performance.now() - start;
    const bytes = results.reduce((sum, result) => sum + result.bytes, 0);
    console.log(
      `${CONCURRENT_DOGETS} concurrent DoGets through ${label}: ` +
        `${(bytes / MiB).toFixed(0)} MiB in ${seconds(ms)} s ` +
        `(${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s)`,
    );
    for (const result of results) {
      assertEquals(result.rows, expectedRows);
      assert(result.bytes >= 256 * MiB, `${result.bytes} bytes`);
    }
  }
});

Deno.test("100,000 sequential GetFlightInfo: no memory or descriptor growth", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  using client = FlightTestClient.connect(proxy.url);
  const descriptor = Buffer.from(arrakisDescriptor(COUNT_ALL_COMMAND));
  for (let i = 0; i < WARM_UP_INFOS; i++) await rawGetFlightInfo(client.client, descriptor);
  // Both processes: the gRPC child does the work, the parent holds SSH and the map.
  const processes = { "proxy child": proxyChild(proxy.child.pid), "parent": proxy.child.pid };
  const before = Object.fromEntries(Object.entries(processes).map(([k, pid]) => [k, usage(pid)]));
  const start = performance.now();
  for (let i = 0; i < SEQUENTIAL_INFOS; i++) await rawGetFlightInfo(client.client, descriptor);
  const ms = performance.now() - start;
  console.log(
    `${SEQUENTIAL_INFOS} sequential GetFlightInfo: ${seconds(ms)} s ` +
      `(${(ms * 1000 / SEQUENTIAL_INFOS).toFixed(0)} µs each)`,
  );
  for (const [name, pid] of Object.entries(processes)) {
    const after = usage(pid);
    const growth = after.rss - before[name].rss;
    console.log(
      `  ${name}: VmRSS ${(before[name].rss / MiB).toFixed(1)} → ${
        (after.rss / MiB).toFixed(1)
      } MiB ` +
        `(${growth >= 0 ? "+" : ""}${(growth / MiB).toFixed(1)} MiB), ` +
        `fds ${before[name].fds} → ${after.fds}`,
    );
    assert(growth < 20_000_000, `${name}: resident memory grew by ${growth} bytes`);
    assert(after.fds <= before[name].fds, `${name}: open descriptors grew to ${after.fds}`);
  }
});
