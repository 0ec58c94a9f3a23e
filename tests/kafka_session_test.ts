/**
 * The parent's Kafka session without SSH or a broker: what reaches ssh (a
 * broker address from the remote side is checked first), and what a broker
 * that does not answer becomes (no listener, the reason kept, asked once by
 * concurrent callers). A broker that answers is the end-to-end test's
 * (`real_kafka_proxy_test.ts`, a real broker through real OpenSSH).
 */
import { assertEquals, assertRejects } from "./assert.ts";
import { KafkaSession } from "../lib/session/kafka.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { silentLogger } from "../lib/log.ts";

/** A session whose "SSH forward" is a local port nothing listens on; records what it was asked. */
function sessionWithDeadForward() {
  const asked: string[] = [];
  const port = getFreePort();
  const session = new KafkaSession({
    ssh: {
      forward: (host: string, remotePort: number, options: { key?: string } = {}) => {
        asked.push(`${host}:${remotePort} ${options.key}`);
        return Promise.resolve({ host: "127.0.0.1", port });
      },
    },
    logger: silentLogger,
    probeTimeoutMs: 2000,
  });
  return { session, asked };
}

Deno.test("a broker address that could reach ssh as an option is refused before it does", async () => {
  const { session, asked } = sessionWithDeadForward();
  await using _session = session;
  for (const host of ["-oProxyCommand=touch /tmp/x", "kafka 9092", ""]) {
    await assertRejects(() => session.resolve({ host, port: 9092 }), Error, "invalid Kafka broker");
  }
  await assertRejects(() => session.resolve({ host: "kafka", port: 0 }), Error, "invalid");
  assertEquals(asked, []);
});

Deno.test("a broker that does not answer ApiVersions gets no listener, asked once at a time", async () => {
  const { session, asked } = sessionWithDeadForward();
  await using _session = session;
  const answers = await Promise.all([
    session.resolve({ host: "Kafka", port: 9092 }),
    session.resolve({ host: "kafka", port: 9092 }),
  ]);
  assertEquals(answers, [undefined, undefined]);
  // One forward for both asks, keyed apart from a Flight forward to the same place.
  assertEquals(asked, ["Kafka:9092 kafka kafka:9092"]);
  assertEquals(session.brokers, []);
  assertEquals(session.refused.map((refusal) => refusal.remote), ["kafka:9092"]);
  // Not remembered as final: a later ask tries again.
  assertEquals(await session.resolve({ host: "kafka", port: 9092 }), undefined);
  assertEquals(asked.length, 2);
});
