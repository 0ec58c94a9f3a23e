/**
 * Whether a connection really reaches a Kafka broker: one ApiVersions round
 * trip. `ssh -O forward` succeeds even when the login host cannot reach the
 * target, so only an answer through the forward says the broker is there.
 *
 * @example
 * ```ts
 * import { probeKafka } from "./probe.ts";
 *
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: 40001 });
 * const { apis } = await probeKafka(conn);
 * console.log(`Metadata up to v${apis.get(3)?.max}`);
 * ```
 *
 * @module
 */
import { withTimeout } from "../async.ts";
import { ApiKey } from "./apis.ts";
import { KafkaProtocolError, KafkaReader, KafkaWriter } from "./codec.ts";
import { ConnReader, writeAll } from "./conn_reader.ts";

/** Options of {@link probeKafka}. */
export interface ProbeKafkaOptions {
  /** Give up after this long. @default {5000} */
  timeoutMs?: number;
}

/** What a broker answered. */
export interface KafkaProbeResult {
  /** Each API key the broker serves, with its version range. */
  apis: Map<number, { min: number; max: number }>;
}

const CORRELATION_ID = 0x61726b; // arbitrary; checked in the answer
const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * Sends ApiVersions v0 (which every broker answers) on `conn` and reads the
 * answer; throws an error saying what went wrong (closed, timed out, not
 * Kafka). Leaves `conn` open: the caller owns it.
 */
export async function probeKafka(
  conn: Deno.Conn,
  options: ProbeKafkaOptions = {},
): Promise<KafkaProbeResult> {
  const { timeoutMs = 5000 } = options;
  const body = new KafkaWriter().int16(ApiKey.API_VERSIONS).int16(0).int32(CORRELATION_ID)
    .string("arrakis-proxy").finish();
  const request = new KafkaWriter().int32(body.length).raw(body).finish();
  return await withTimeout(roundTrip(conn, request), timeoutMs, "Kafka ApiVersions probe");
}

async function roundTrip(conn: Deno.Conn, request: Uint8Array): Promise<KafkaProbeResult> {
  await writeAll(conn, request);
  const reader = new ConnReader(conn, 8, "broker");
  if (!await reader.ensure(4)) {
    throw new Error("the broker closed the connection without answering ApiVersions");
  }
  const size = new KafkaReader(reader.peek()).int32();
  if (size < 6 || size > MAX_ANSWER_BYTES) {
    throw new KafkaProtocolError(`not a Kafka ApiVersions answer (frame of ${size} bytes)`);
  }
  reader.consume(4);
  const answer = new KafkaReader(await reader.take(size));
  if (answer.int32() !== CORRELATION_ID) {
    throw new KafkaProtocolError("not a Kafka ApiVersions answer (wrong correlation id)");
  }
  const errorCode = answer.int16();
  if (errorCode !== 0) throw new KafkaProtocolError(`ApiVersions answered error ${errorCode}`);
  const apis = new Map<number, { min: number; max: number }>();
  const count = answer.arrayLength(false, 6) ?? 0;
  for (let i = 0; i < count; i++) {
    const key = answer.int16();
    apis.set(key, { min: answer.int16(), max: answer.int16() });
  }
  return { apis };
}
