/**
 * The Kafka broker listener (lib/kafka) with a real broker and the real client:
 * one KRaft broker inside a network namespace, advertised under a name that
 * resolves only there, and confluent-kafka (librdkafka, as the arrakis client
 * uses) outside it, bootstrapping from the listener. The client can reach the
 * broker only if the listener rewrites every address it is given.
 *
 * The client runs with a resolver that asks 127.0.0.1 only, so a name that
 * slips through is refused locally rather than asked of the machine's DNS.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { delay } from "../lib/async.ts";
import { stderrLogger } from "../lib/log.ts";
import { KafkaReader, KafkaWriter } from "../lib/kafka/codec.ts";
import { ConnReader, writeAll } from "../lib/kafka/conn_reader.ts";
import { type KafkaBrokerListener, serveKafkaBroker } from "../lib/kafka/broker_listener.ts";
import { probeKafka } from "../lib/kafka/probe.ts";
import type { BrokerAddressMapper, KafkaBroker } from "../lib/kafka/rewrite.ts";
import { createNetns } from "./fixtures/netns.ts";
import { startKafkaBroker } from "./fixtures/kafka_broker.ts";
import { requirePython } from "./fixtures/python.ts";
import { waitFor } from "./fixtures/processes.ts";
import { metadataRequest, request } from "./fixtures/capture_kafka_answers.ts";

const ADVERTISED = "kafka-a.cluster.internal";
const CLIENT = new URL("./fixtures/py/kafka_client.py", import.meta.url).pathname;

/** Log lines, as the proxy would print them. */
function recordingLogger() {
  const lines: string[] = [];
  const logger = stderrLogger("verbose", {
    terminal: false,
    write: (text) => lines.push(...text.split("\n").filter(Boolean)),
  });
  return { logger, lines, warnings: () => lines.filter((line) => line.includes("warning:")) };
}

/** argv that runs `argv` with /etc/resolv.conf naming 127.0.0.1 only (a private mount). */
async function offlineResolver(argv: string[]): Promise<string[]> {
  const resolv = await Deno.makeTempFile({ prefix: "arrakis-resolv-" });
  await Deno.writeTextFile(resolv, "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n");
  const script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"';
  return ["unshare", "--mount", "--", "sh", "-c", script, resolv, ...argv];
}

/** Runs the confluent-kafka client script; resolves with its exit code and output. */
async function kafkaClient(args: string[], onLine?: (line: string) => void) {
  const [program, ...rest] = await offlineResolver([requirePython().python, CLIENT, ...args]);
  const child = new Deno.Command(program, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdoutLines: string[] = [];
  const readStdout = (async () => {
    let pending = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        stdoutLines.push(line);
        onLine?.(line);
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  const status = await child.status;
  await readStdout;
  return { code: status.code, stdout: stdoutLines, stderr: await stderr };
}

/** Reads until the peer closes; true if it did within `ms` (then `conn` is closed). */
async function closedByPeer(conn: Deno.Conn, ms = 10_000): Promise<boolean> {
  const buffer = new Uint8Array(65536);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, ms);
  try {
    while (await conn.read(buffer) !== null) { /* drain */ }
  } catch { /* reset by the peer, or closed by the timer */ }
  clearTimeout(timer);
  return !timedOut;
}

/** One answer frame read from `conn` (size prefix removed). */
async function readAnswer(reader: ConnReader): Promise<Uint8Array> {
  assert(await reader.ensure(4), "connection closed before an answer");
  const size = new KafkaReader(reader.peek()).int32();
  reader.consume(4);
  return await reader.take(size);
}

/** A request frame with a v1 header and no body. */
function bareRequest(key: number, version: number): Uint8Array {
  return request(key, version, false, new KafkaWriter());
}

Deno.test("Kafka listener: the real client through a real broker it cannot reach by name", async (t) => {
  await using netns = await createNetns();
  await netns.addHosts({ [ADVERTISED]: netns.nsAddress });
  await using broker = await startKafkaBroker({ netns, advertisedHost: ADVERTISED });
  const dialBroker = () => Deno.connect({ hostname: broker.reach, port: broker.port });
  const { logger, lines, warnings } = recordingLogger();
  const mapped: KafkaBroker[] = [];
  const toListener = (of: () => KafkaBrokerListener): BrokerAddressMapper => (b) => {
    mapped.push(b);
    return Promise.resolve({ host: "127.0.0.1", port: of().address.port });
  };
  const listener: KafkaBrokerListener = serveKafkaBroker({
    name: broker.bootstrap,
    logger,
    dialUpstream: dialBroker,
    mapBroker: toListener(() => listener),
  });
  await using _listener = listener;
  const bootstrap = `127.0.0.1:${listener.address.port}`;

  await t.step("produce and consume through the listener, every byte back", async () => {
    const run = await kafkaClient([
      "roundtrip",
      "--bootstrap",
      bootstrap,
      "--topic",
      "arrakis-roundtrip",
      "--count",
      "500",
      "--size",
      "300",
    ]);
    assertEquals(run.code, 0, run.stderr);
    assertEquals(JSON.parse(run.stdout.at(-1)!).received, 500);
    assert(mapped.some((b) => b.host === ADVERTISED && b.port === broker.port && b.nodeId === 1));
    const stats = listener.stats();
    assert(stats.bytesDown > 500 * 300 && stats.bytesUp > 500 * 300, JSON.stringify(stats));
    // The broker saw only the listener's connections, from outside the namespace.
    for (const { peer } of await broker.connections()) {
      assert(peer.startsWith(`${netns.hostAddress}:`), peer);
    }
  });

  await t.step("librdkafka negotiates the versions the listener caps", () => {
    const negotiated = Object.keys(listener.stats().requests);
    for (const expected of ["ApiVersions v3", "Metadata v13", "Fetch v15", "Produce v9"]) {
      assert(negotiated.includes(expected), `${expected} not in ${negotiated}`);
    }
    for (const name of negotiated) {
      assert(!/^(Fetch v1[6-9]|Produce v1\d|DescribeCluster)/.test(name), name);
    }
  });

  await t.step(
    "a broker learned from Metadata gets a listener of its own, opened on demand",
    async () => {
      // As the session does: the first answer naming a broker opens its forward and listener.
      let learned: Promise<KafkaBrokerListener> | undefined;
      const opened: string[] = [];
      const openLearned = async (b: KafkaBroker) => {
        opened.push(`${b.host}:${b.port}`);
        await delay(200); // an ssh -O forward takes a while
        return serveKafkaBroker({ dialUpstream: dialBroker, mapBroker: (b) => onDemand(b) });
      };
      const onDemand: BrokerAddressMapper = async (b) => {
        learned ??= openLearned(b);
        return { host: "127.0.0.1", port: (await learned).address.port };
      };
      await using seed = serveKafkaBroker({ dialUpstream: dialBroker, mapBroker: onDemand });
      try {
        const run = await kafkaClient([
          "roundtrip",
          "--bootstrap",
          `127.0.0.1:${seed.address.port}`,
          "--topic",
          "arrakis-learned",
          "--count",
          "50",
        ]);
        assertEquals(run.code, 0, run.stderr);
        assertEquals(opened, [`${ADVERTISED}:${broker.port}`]);
        const data = Object.keys((await learned!).stats().requests);
        assert(data.includes("Produce v9") && data.includes("Fetch v15"), `${data}`);
        const bootstrapOnly = Object.keys(seed.stats().requests);
        assert(!bootstrapOnly.some((name) => /^(Produce|Fetch) /.test(name)), `${bootstrapOnly}`);
      } finally {
        await (await learned)?.close();
      }
    },
  );

  await t.step(
    "without the rewriting the same client fails: the advertised name is unreachable",
    async () => {
      await using bare = serveKafkaBroker({
        dialUpstream: dialBroker,
        mapBroker: (b) => Promise.resolve({ host: b.host, port: b.port }),
      });
      const run = await kafkaClient([
        "roundtrip",
        "--bootstrap",
        `127.0.0.1:${bare.address.port}`,
        "--topic",
        "arrakis-roundtrip",
        "--count",
        "1",
        "--timeout",
        "8",
      ]);
      assertEquals(run.code, 1, run.stderr);
      assertStringIncludes(run.stderr, `Failed to resolve '${ADVERTISED}:${broker.port}'`);
    },
  );

  await t.step("a hostile or unknown frame closes only its connection, with one line", async () => {
    await using kept = await Deno.connect({ hostname: "127.0.0.1", port: listener.address.port });
    assertEquals((await probeKafka(kept)).apis.get(1)?.max, 15);
    const hostile: [string, Uint8Array, string][] = [
      ["negative size", new Uint8Array([0xff, 0xff, 0xff, 0xff]), "request frame of -1 bytes"],
      ["HTTP", new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), "ApiKey 12064"],
      [
        "DescribeCluster",
        bareRequest(60, 0),
        "DescribeCluster v0, an API this proxy does not relay",
      ],
      ["Fetch v16", bareRequest(1, 16), "Fetch v16, above the v15 this proxy relays"],
      ["Metadata v14", bareRequest(3, 14), "Metadata v14, above the v13 this proxy relays"],
      ["SaslHandshake v0", bareRequest(17, 0), "SaslHandshake v0; this proxy relays v1+"],
      [
        "truncated",
        new Uint8Array([0, 0, 0, 100, 0, 3, 0, 12, 0]),
        "client closed the connection inside a frame",
      ],
    ];
    for (const [what, bytes, line] of hostile) {
      const before = warnings().length;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.address.port });
      await writeAll(conn, bytes);
      if (what === "truncated") await conn.closeWrite();
      assert(await closedByPeer(conn), `${what}: still open`);
      try {
        conn.close();
      } catch { /* closed */ }
      await waitFor(() => warnings().length > before, 5000, `${what}: its line`);
      const added = warnings().slice(before);
      assertEquals(added.length, 1, added.join("\n"));
      assertStringIncludes(added[0], line);
    }
    // The connection opened before them still works, and so do new ones.
    assertEquals((await probeKafka(kept)).apis.get(3)?.max, 13);
    const run = await kafkaClient([
      "roundtrip",
      "--bootstrap",
      bootstrap,
      "--topic",
      "arrakis-after-hostile",
      "--count",
      "10",
    ]);
    assertEquals(run.code, 0, run.stderr);
  });

  await t.step(
    "ApiVersions above v4 is answered as a v4 broker would (UNSUPPORTED_VERSION)",
    async () => {
      await using conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.address.port });
      const reader = new ConnReader(conn);
      await writeAll(conn, bareRequest(18, 9));
      const answer = new KafkaReader(await readAnswer(reader));
      answer.int32();
      assertEquals(
        [answer.int16(), answer.int32(), answer.int16(), answer.int16(), answer.int16()],
        [
          35,
          1,
          18,
          0,
          4,
        ],
      );
      // The connection goes on: a Metadata request gets its (rewritten) answer.
      await writeAll(conn, metadataRequest(12));
      const metadata = await readAnswer(reader);
      assert(!new TextDecoder().decode(metadata).includes(ADVERTISED));
    },
  );

  await t.step(
    "an answer to rewrite that is larger than what may be held closes that connection",
    async () => {
      const small = recordingLogger();
      await using limited = serveKafkaBroker({
        logger: small.logger,
        dialUpstream: dialBroker,
        mapBroker: toListener(() => listener),
        maxHeldBytes: 32,
      });
      await using conn = await Deno.connect({ hostname: "127.0.0.1", port: limited.address.port });
      await writeAll(conn, metadataRequest(12));
      assert(await closedByPeer(conn));
      await waitFor(() => small.warnings().length > 0, 5000, "its line");
      assertMatch(small.warnings()[0], /Metadata v12 answer of \d+ bytes: .* 32 bytes held/);
    },
  );

  await t.step(
    "a broker restarting mid-stream: the client carries on through the same listener",
    async () => {
      const port = listener.address.port;
      let seen = -1;
      const run = kafkaClient([
        "pingpong",
        "--bootstrap",
        bootstrap,
        "--topic",
        "arrakis-restart",
        "--count",
        "30",
        "--timeout",
        "120",
      ], (line) => seen = Number(line.split(" ")[1]));
      await waitFor(() => seen >= 5, 60_000, "the first messages");
      await broker.stop();
      await broker.start();
      const result = await run;
      assertEquals(result.code, 0, result.stderr);
      assertEquals(seen, 29);
      assertEquals(listener.address.port, port);
      assert(
        lines.some((line) => line.includes("reachable again")) ||
          listener.stats().dialFailures === 0,
      );
    },
  );

  await t.step("a Fetch answer of tens of MiB streams through with bounded memory", async () => {
    const before = listener.stats().largestAnswer;
    const baseline = Deno.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => {
      const now = Deno.memoryUsage();
      peak = Math.max(peak, now.heapUsed + now.external - baseline.heapUsed - baseline.external);
    }, 10);
    const run = await kafkaClient([
      "roundtrip",
      "--bootstrap",
      bootstrap,
      "--topic",
      "arrakis-large",
      "--count",
      "40",
      "--size",
      "900000",
      "--timeout",
      "120",
      "--set",
      "fetch.max.bytes=60000000",
      "--set",
      "max.partition.fetch.bytes=60000000",
      "--set",
      "receive.message.max.bytes=70000000",
    ]);
    clearInterval(sampler);
    assertEquals(run.code, 0, run.stderr);
    const largest = listener.stats().largestAnswer;
    assert(largest > 30_000_000 && largest > before, `largest answer ${largest} bytes`);
    // A held answer would show here as its whole size.
    assert(peak < 16 * 1024 * 1024, `memory grew by ${peak} bytes while ${largest} crossed`);
  });
});

Deno.test("Kafka listener: a broker that answers garbage closes only that connection", async (t) => {
  // A hostile upstream: reads one request, answers `answer(correlationId)`.
  const serve = (answer: (correlationId: number) => Uint8Array) => {
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conns: Deno.Conn[] = [];
    (async () => {
      for await (const conn of server) {
        conns.push(conn);
        const reader = new ConnReader(conn);
        readAnswer(reader).then((frame) => {
          const correlationId = new KafkaReader(frame, 4).int32();
          return writeAll(conn, answer(correlationId));
        }).catch(() => undefined);
      }
    })().catch(() => undefined);
    return {
      port: server.addr.port,
      [Symbol.dispose]() {
        server.close();
        for (const conn of conns) {
          try {
            conn.close();
          } catch { /* the relay's close reached it */ }
        }
      },
    };
  };
  const cases: [string, (id: number) => Uint8Array, string][] = [
    [
      "a truncated Metadata answer",
      (id) =>
        new KafkaWriter().int32(12).int32(id).raw(new Uint8Array([0, 0, 0, 0, 0, 5, 0, 0]))
          .finish(),
      "malformed Metadata v12 answer",
    ],
    [
      "a wrong correlation id",
      (id) => new KafkaWriter().int32(8).int32(id + 1).int32(0).finish(),
      `expected`,
    ],
    [
      "a negative frame size",
      () => new KafkaWriter().int32(-8).int32(0).finish(),
      "answer frame of -8 bytes",
    ],
  ];
  for (const [what, answer, line] of cases) {
    await t.step(what, async () => {
      using server = serve(answer);
      const { logger, warnings } = recordingLogger();
      await using listener = serveKafkaBroker({
        logger,
        dialUpstream: () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
        mapBroker: () => Promise.resolve({ host: "127.0.0.1", port: 1 }),
      });
      await using conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.address.port });
      await writeAll(conn, metadataRequest(12));
      assert(await closedByPeer(conn), "still open");
      await waitFor(() => warnings().length > 0, 5000, "its line");
      assertEquals(warnings().length, 1);
      assertStringIncludes(warnings()[0], line);
      assertEquals(listener.stats().protocolErrors, 1);
    });
  }
});
