/**
 * The grpc-js Flight proxy's Kafka modes with the real peers, on loopback: a
 * real broker, a real `arrakis-server` with the Kafka backend whose scope map
 * sends Stream readers to `kafka://localhost:PORT`, the real client and the
 * real `arrakis.Publisher` talking to the proxy. A resolver stands where the
 * SSH layer's Kafka listeners will: it answers a second listener of the same
 * broker (`FORWARD`), so a client that reads or produces there can only have
 * learnt of it from the proxy.
 *
 * One broker (one JVM) for the file.
 */
import { assert, assertEquals } from "./assert.ts";
import { type KafkaBroker, startKafkaBroker } from "./fixtures/kafka_broker.ts";
import { type RealServer, startRealServer } from "./fixtures/real_server.ts";
import { startKafkaPublisher } from "./fixtures/kafka_publisher.ts";
import {
  KAFKA_CHANNELS,
  KAFKA_PUBLISHER_ID,
  kafkaBackendArgs,
  kafkaPublisherConfig,
} from "./fixtures/real_kafka.ts";
import {
  checkKafkaBlocks,
  type KafkaClientBlock,
  REAL_KAFKA_CLIENT,
} from "./fixtures/real_kafka_client.ts";
import { lastJson } from "./fixtures/real_client.ts";
import { pythonEnv, requirePython } from "./fixtures/python.ts";
import { FlightProxy } from "../lib/flight/proxy.ts";
import {
  type KafkaAddress,
  KafkaLocations,
  type KafkaMode,
} from "../lib/flight/kafka_locations.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { silentLogger } from "../lib/log.ts";
import { delay } from "../lib/async.ts";

const CHANNELS = KAFKA_CHANNELS.map((channel) => channel.name);

/** The server's Stream DoGets (its relay of data), as opposed to `info:Stream` planning. */
async function streamDoGets(server: RealServer): Promise<number> {
  return (await server.log()).split("\n").filter((line) => / request=Stream peer=/.test(line))
    .length;
}

/** A proxy in `mode` in front of `server`, whose resolver answers the broker's FORWARD listener. */
async function proxyFor(server: RealServer, mode: KafkaMode, forward: KafkaAddress | undefined) {
  const asked: KafkaAddress[] = [];
  const warnings: string[] = [];
  const proxy = await FlightProxy.start({
    backend: server.url,
    listen: "127.0.0.1:0",
    logger: { ...silentLogger, warn: (line) => warnings.push(line) },
    kafka: new KafkaLocations({
      mode,
      resolver: (remote) => (asked.push(remote), Promise.resolve(forward)),
      warn: (line) => warnings.push(line),
    }),
  });
  return { proxy, asked, warnings };
}

/** The real client streaming N live blocks from `url`, and whether it had a connection of its own on `port`. */
async function streamThrough(url: string, broker: KafkaBroker, port: number) {
  const child = new Deno.Command(requirePython().python, {
    args: [REAL_KAFKA_CLIENT, "stream", "8", ...CHANNELS],
    env: { ...await pythonEnv(), ARRAKIS_SERVER: url, HOME: "/nonexistent" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const output = child.output().finally(() => exited = true);
  let connected = false;
  while (!connected && !exited) {
    connected = (await broker.connections(port)).some((c) => c.pids.includes(child.pid));
    await delay(50);
  }
  const result = await output;
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert(result.success, `the client failed:\n${decode(result.stderr)}`);
  const blocks = lastJson(decode(result.stdout)).blocks as KafkaClientBlock[];
  return { blocks, connected };
}

Deno.test("the proxy's Kafka modes with the real client, server, Publisher and broker", async (t) => {
  const forwardPort = getFreePort();
  const FORWARD = { host: "127.0.0.1", port: forwardPort };
  await using broker = await startKafkaBroker({
    listeners: [{ name: "FORWARD", port: forwardPort, advertised: `127.0.0.1:${forwardPort}` }],
  });
  const dir = await Deno.makeTempDir({ prefix: "arrakis-kafka-proxy-" });
  await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
  await Deno.writeTextFile(`${dir}/publisher.toml`, kafkaPublisherConfig());
  const backend = kafkaBackendArgs(`${dir}/publisher.toml`);
  backend[backend.indexOf("--kafka-url") + 1] = `localhost:${broker.port}`;
  const serverPort = getFreePort();
  await using server = await startRealServer({
    backend,
    port: serverPort,
    scopeMap: [
      `grpc://127.0.0.1:${serverPort}:`,
      "  scopes:",
      "    K1:",
      `      - publisher: ${KAFKA_PUBLISHER_ID}`,
      "        subsystems: [TEST]",
      `        direct_read: kafka://localhost:${broker.port}`,
      "  retention:",
      "    oldest: 900",
      `  allowed_publishers: [${KAFKA_PUBLISHER_ID}]`,
      "",
    ].join("\n"),
  });

  await t.step("Publisher (forward): produces to the listener the proxy names, only", async () => {
    const { proxy, asked, warnings } = await proxyFor(server, "forward", FORWARD);
    await using _proxy = proxy;
    await using publisher = await startKafkaPublisher(undefined, { url: proxy.url });
    await publisher.waitForBlocks(4);
    const mine = (port: number) =>
      broker.connections(port).then((all) => all.filter((c) => c.pids.includes(publisher.pid)));
    assert((await mine(forwardPort)).length > 0, "no producer connection on the forwarded port");
    assertEquals(await mine(broker.port), [], "the producer reached the broker's own listener");
    assertEquals(asked, [{ host: "localhost", port: broker.port }]);
    assertEquals(warnings, []);
  });

  // The live streams below read what this Publisher (straight at the server) publishes.
  await using publisher = await startKafkaPublisher(undefined, { url: server.url });
  await publisher.waitForBlocks(2);

  await t.step("stream (forward): the client reads from the listener the proxy names", async () => {
    const { proxy, asked } = await proxyFor(server, "forward", FORWARD);
    await using _proxy = proxy;
    const relayed = await streamDoGets(server);
    const { blocks, connected } = await streamThrough(proxy.url, broker, forwardPort);
    assert(connected, "the client had no connection of its own on the forwarded listener");
    checkKafkaBlocks(blocks, KAFKA_CHANNELS);
    assertEquals(await streamDoGets(server), relayed, "the server relayed the stream");
    assertEquals(asked, [{ host: "localhost", port: broker.port }]);
  });

  await t.step(
    "stream (forward, broker not forwardable): through the server, one line",
    async () => {
      const { proxy, warnings } = await proxyFor(server, "forward", undefined);
      await using _proxy = proxy;
      const relayed = await streamDoGets(server);
      const { blocks, connected } = await streamThrough(proxy.url, broker, broker.port);
      checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      assert(!connected, "the client read from the broker itself");
      assert(await streamDoGets(server) > relayed, "the server did not relay the stream");
      assertEquals(warnings.length, 1, warnings.join("\n"));
    },
  );

  await t.step("stream (flight): through the server, no broker asked for", async () => {
    const { proxy, asked, warnings } = await proxyFor(server, "flight", FORWARD);
    await using _proxy = proxy;
    const relayed = await streamDoGets(server);
    const { blocks, connected } = await streamThrough(proxy.url, broker, broker.port);
    checkKafkaBlocks(blocks, KAFKA_CHANNELS);
    assert(!connected, "the client read from the broker itself");
    assert(await streamDoGets(server) > relayed, "the server did not relay the stream");
    assertEquals([asked, warnings], [[], []]);
  });

  await t.step("stream (direct): the client reads from the broker the server names", async () => {
    const { proxy, asked } = await proxyFor(server, "direct", FORWARD);
    await using _proxy = proxy;
    const { blocks, connected } = await streamThrough(proxy.url, broker, broker.port);
    assert(connected, "the client had no connection of its own to the broker");
    checkKafkaBlocks(blocks, KAFKA_CHANNELS);
    assertEquals(asked, []);
  });
});
