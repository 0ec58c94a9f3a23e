/**
 * The real `arrakis.Publisher` through the grpc-js Flight proxy in the
 * `forward` Kafka mode, on loopback: a real broker, a real `arrakis-server`
 * with the Kafka backend (`--kafka-url localhost:PORT`), and a resolver that
 * stands where the SSH layer's Kafka listeners will: it answers a second
 * listener of the same broker. The Publisher must produce to that listener
 * only, which it can know of only from the rewritten Publish answer.
 */
import { assert, assertEquals } from "./assert.ts";
import { startKafkaBroker } from "./fixtures/kafka_broker.ts";
import { startRealServer } from "./fixtures/real_server.ts";
import { startKafkaPublisher } from "./fixtures/kafka_publisher.ts";
import { kafkaBackendArgs, kafkaPublisherConfig } from "./fixtures/real_kafka.ts";
import { FlightProxy } from "../lib/flight/proxy.ts";
import { type KafkaAddress, KafkaLocations } from "../lib/flight/kafka_locations.ts";
import { getFreePort } from "../lib/ssh/free_port.ts";
import { silentLogger } from "../lib/log.ts";

Deno.test("arrakis.Publisher through the proxy produces to the listener the proxy names", async (t) => {
  const forwardPort = getFreePort();
  await using broker = await startKafkaBroker({
    listeners: [{ name: "FORWARD", port: forwardPort, advertised: `127.0.0.1:${forwardPort}` }],
  });
  const dir = await Deno.makeTempDir({ prefix: "arrakis-publish-proxy-" });
  await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
  await Deno.writeTextFile(`${dir}/publisher.toml`, kafkaPublisherConfig());
  const backend = kafkaBackendArgs(`${dir}/publisher.toml`);
  backend[backend.indexOf("--kafka-url") + 1] = `localhost:${broker.port}`;
  await using server = await startRealServer({ backend });
  const asked: KafkaAddress[] = [];
  const warnings: string[] = [];
  await using proxy = await FlightProxy.start({
    backend: server.url,
    listen: "127.0.0.1:0",
    logger: { ...silentLogger, warn: (line) => warnings.push(line) },
    kafka: new KafkaLocations({
      resolver: (remote) => {
        asked.push(remote);
        return Promise.resolve({ host: "127.0.0.1", port: forwardPort });
      },
    }),
  });

  await t.step("it delivers blocks, to the forwarded listener only", async () => {
    await using publisher = await startKafkaPublisher(undefined, { url: proxy.url });
    await publisher.waitForBlocks(4);
    const mine = (port: number) =>
      broker.connections(port).then((all) => all.filter((c) => c.pids.includes(publisher.pid)));
    assert((await mine(forwardPort)).length > 0, "no producer connection on the forwarded port");
    assertEquals(await mine(broker.port), [], "the producer reached the broker's own listener");
    assertEquals(asked, [{ host: "localhost", port: broker.port }]);
    assertEquals(warnings, []);
  });
});
