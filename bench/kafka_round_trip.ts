/**
 * Single Kafka round trips through several paths to one broker, alternated on
 * one persistent connection a path: ApiVersions (a small answer, rewritten by
 * the forward path's listener) and Fetch of the first `fetchBytes` of a data
 * topic (passed through). What a path adds to each answer, free of the client's
 * decoding and start-up that dominate the end-to-end figures of `kafka.ts`.
 *
 * @example
 * ```ts
 * import { kafkaRoundTrips } from "./kafka_round_trip.ts";
 *
 * const times = await kafkaRoundTrips(["127.0.0.1:40001", "127.0.0.1:40002"], { rounds: 200 });
 * console.log(times["127.0.0.1:40002"].fetchMs);
 * ```
 *
 * @module
 */
import { KafkaReader, KafkaWriter } from "../lib/kafka/codec.ts";
import { ConnReader, writeAll } from "../lib/kafka/conn_reader.ts";
import { parseNetloc } from "../lib/netloc.ts";

/** Options of {@link kafkaRoundTrips}. */
export interface KafkaRoundTripOptions {
  /** Round trips of each kind a path. @default {200} */
  rounds?: number;
  /** Bytes a Fetch asks for (one partition, from offset 0). @default {256 KiB, one live block} */
  fetchBytes?: number;
}

/** Milliseconds of each round trip of one path, in round order. */
export interface KafkaRoundTripTimes {
  /** ApiVersions v0. */
  apiVersionsMs: number[];
  /** Fetch v4. */
  fetchMs: number[];
}

/** One path's connection and the correlation ids it has used. */
class RawKafka {
  #correlationId = 0;
  readonly #reader: ConnReader;
  constructor(readonly conn: Deno.Conn) {
    this.#reader = new ConnReader(conn, 16 * 1024 * 1024, "broker");
  }

  /** Sends one request and reads its answer's body (after the correlation id). */
  async ask(apiKey: number, version: number, body: Uint8Array): Promise<KafkaReader> {
    const request = new KafkaWriter().int16(apiKey).int16(version).int32(++this.#correlationId)
      .string("arrakis-bench").raw(body).finish();
    await writeAll(this.conn, new KafkaWriter().int32(request.length).raw(request).finish());
    if (!await this.#reader.ensure(4)) throw new Error("the broker closed the connection");
    const size = new KafkaReader(this.#reader.peek()).int32();
    this.#reader.consume(4);
    const answer = new KafkaReader(await this.#reader.take(size));
    if (answer.int32() !== this.#correlationId) throw new Error("answer to another request");
    return answer;
  }
}

async function dial(address: string): Promise<Deno.Conn> {
  if (address.startsWith("/")) return await Deno.connect({ transport: "unix", path: address });
  const netloc = parseNetloc(address);
  if (!netloc) throw new Error(`not host:port: ${address}`);
  const { host, port } = netloc;
  const conn = await Deno.connect({ hostname: host, port });
  conn.setNoDelay(true);
  return conn;
}

/** The first topic a Metadata v1 answer names that is neither internal nor arrakis metadata. */
async function dataTopic(kafka: RawKafka): Promise<string> {
  const answer = await kafka.ask(3, 1, new KafkaWriter().int32(-1).finish());
  for (let brokers = answer.int32(); brokers > 0; brokers--) {
    answer.int32();
    answer.string();
    answer.int32();
    answer.string(true);
  }
  answer.int32(); // controller id
  for (let topics = answer.int32(); topics > 0; topics--) {
    answer.int16();
    const name = answer.string();
    answer.skip(1); // is_internal: internal topics are the "__" ones
    for (let partitions = answer.int32(); partitions > 0; partitions--) {
      answer.skip(10);
      answer.skip(4 * answer.int32()); // replicas
      answer.skip(4 * answer.int32()); // in-sync replicas
    }
    if (!name.startsWith("__") && !name.includes("metadata")) return name;
  }
  throw new Error("the broker holds no data topic");
}

/**
 * Round trips through each of `addresses` (`host:port`, or a Unix socket's
 * path), alternated, the order rotated each round; keyed by address.
 */
export async function kafkaRoundTrips(
  addresses: string[],
  options: KafkaRoundTripOptions = {},
): Promise<Record<string, KafkaRoundTripTimes>> {
  const { rounds = 200, fetchBytes = 256 * 1024 } = options;
  const paths = await Promise.all(
    addresses.map(async (address) => new RawKafka(await dial(address))),
  );
  try {
    const topic = await dataTopic(paths[0]);
    // Fetch v4: replica -1, no wait, 1 byte at least, one partition from offset 0.
    const fetch = new KafkaWriter().int32(-1).int32(0).int32(1).int32(fetchBytes)
      .raw(new Uint8Array(1)).int32(1).string(topic).int32(1).int32(0).raw(new Uint8Array(8))
      .int32(fetchBytes).finish();
    const times: Record<string, KafkaRoundTripTimes> = {};
    for (const address of addresses) times[address] = { apiVersionsMs: [], fetchMs: [] };
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < paths.length; k++) {
        const i = (k + round) % paths.length;
        const into = times[addresses[i]];
        let started = performance.now();
        await paths[i].ask(18, 0, new Uint8Array(0));
        into.apiVersionsMs.push(performance.now() - started);
        started = performance.now();
        await paths[i].ask(1, 4, fetch);
        into.fetchMs.push(performance.now() - started);
      }
    }
    return times;
  } finally {
    for (const { conn } of paths) conn.close();
  }
}
