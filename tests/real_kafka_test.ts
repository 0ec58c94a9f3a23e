/**
 * The `real-kafka` deployment without the proxy, all inside one namespace: a
 * real Kafka broker, `arrakis-server` with the Kafka backend and a
 * `direct_read` scope map, the real `arrakis.Publisher` producing live blocks,
 * and the real client reading them. This is the baseline the proxied runs must
 * match: Stream endpoints lead with `kafka://kafka:9092`, and the client reads
 * live and past data from the broker itself (its own connection to the broker,
 * no Stream DoGet on the server), with the values that were published.
 *
 * One broker (one JVM) for the whole file. Needs root, the pinned Python peers
 * (`bash .ci/python-venv`) and the broker's jars (`bash .ci/kafka-jars`).
 */
import { assert, assertEquals } from "./assert.ts";
import { createNetns, type Netns } from "./fixtures/netns.ts";
import { pythonEnv, requirePython } from "./fixtures/python.ts";
import { startRealArrakis } from "./fixtures/real_arrakis.ts";
import { KAFKA_BROKER, KAFKA_CHANNELS, KAFKA_STRIDE_NS } from "./fixtures/real_kafka.ts";
import { startKafkaPublisher } from "./fixtures/kafka_publisher.ts";
import {
  checkKafkaBlocks,
  type KafkaClientBlock,
  REAL_KAFKA_CLIENT,
} from "./fixtures/real_kafka_client.ts";
import { lastJson } from "./fixtures/real_client.ts";
import { delay } from "../lib/async.ts";

const INFO = { name: "info", host: "127.0.0.11", port: 31206 };
const CHANNELS = KAFKA_CHANNELS.map((channel) => channel.name);

/** Starts the real client inside the namespace, as a user there would run it. */
function spawnClient(netns: Netns, args: string[], env: Record<string, string>) {
  return netns.spawn([requirePython().python, REAL_KAFKA_CLIENT, ...args], {
    env: { ...env, ARRAKIS_SERVER: `grpc://${INFO.name}:${INFO.port}`, HOME: "/nonexistent" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function finish(child: Deno.ChildProcess): Promise<Record<string, unknown>> {
  const output = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert(output.success, `the client failed:\n${decode(output.stderr)}`);
  return lastJson(decode(output.stdout), decode(output.stderr));
}

/** The server's Stream DoGets (its relay of data): `request=Stream`, not the `info:Stream` planning. */
function streamDoGets(log: string): string[] {
  return log.split("\n").filter((line) => / request=Stream peer=/.test(line));
}

Deno.test("real-kafka: the real client reads published blocks from Kafka itself", async (t) => {
  await using netns = await createNetns();
  await netns.addHosts({ [INFO.name]: INFO.host });
  await using real = await startRealArrakis(netns, "real-kafka", { info: INFO, data: [] });
  const broker = real.kafka!;
  await using publisher = await startKafkaPublisher(netns);
  const env = await pythonEnv();
  try {
    await t.step("Stream endpoints lead with the broker, then the Flight fallback", async () => {
      const seen = await finish(spawnClient(netns, ["flight-info", ...CHANNELS], env));
      assertEquals(seen.locations, [[
        `kafka://${KAFKA_BROKER.name}:${KAFKA_BROKER.port}`,
        "arrow-flight-reuse-connection://?",
      ]]);
    });

    await t.step("a live stream: the client's own connection to the broker", async () => {
      const first = await publisher.waitForBlocks(publisher.published.length + 1);
      const client = spawnClient(netns, ["stream", "12", ...CHANNELS], env);
      const result = finish(client);
      let connected = false;
      let exited = false;
      client.status.then(() => exited = true);
      while (!connected && !exited) {
        connected = (await broker.connections()).some((c) => c.pids.includes(client.pid));
        await delay(50);
      }
      const blocks = (await result).blocks as KafkaClientBlock[];
      assert(connected, "the client never had a connection of its own to the broker");
      assert(blocks.length === 12, `${blocks.length} blocks`);
      assert(BigInt(blocks[0].time_ns) >= first - KAFKA_STRIDE_NS * 8n, "an old block");
      checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      assertEquals(streamDoGets(real.log()), [], "the server relayed the stream");
    });

    await t.step("past data: arrakis.fetch reads the published interval from Kafka", async () => {
      const already = publisher.published.length;
      await publisher.waitForBlocks(already + 6);
      const start = publisher.published[already];
      const end = start + 4n * KAFKA_STRIDE_NS;
      const seconds = (ns: bigint) =>
        `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`;
      const result = await finish(
        spawnClient(netns, ["fetch", seconds(start), seconds(end), ...CHANNELS], env),
      );
      const blocks = result.blocks as KafkaClientBlock[];
      // The client takes GPS seconds as a double: its start is within a microsecond of ours.
      assertEquals(blocks.length, 1);
      const offset = BigInt(blocks[0].time_ns) - start;
      assert(
        offset > -1000n && offset < 1000n,
        `the fetch of ${seconds(start)}..${seconds(end)} starts ${offset} ns off: ${
          JSON.stringify(blocks.map((b) => [b.time_ns, Object.values(b.data).map((d) => d.length)]))
        }`,
      );
      const samples = checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      const expected = KAFKA_CHANNELS.reduce((sum, channel) => sum + channel.rate, 0);
      assertEquals(samples, expected, "one second of every channel");
      assertEquals(streamDoGets(real.log()), [], "the server relayed the fetch");
    });
  } catch (error) {
    console.error(`server log:\n${real.log()}\npublisher:\n${publisher.log()}`);
    throw error;
  }
});
