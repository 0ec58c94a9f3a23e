/**
 * `arrakis.Publisher` through the proxy: before producing, it redeems the
 * endpoint of a Publish request (a DoGet whose ticket is the JSON command
 * `{"request": "Publish", …}`) and reads its Kafka producer settings from the
 * answer, an Arrow stream of one column `properties: map<string, string>`
 * (arrakis-server `_publish`): `{"bootstrap.servers": <the Kafka backend's
 * --kafka-url, verbatim>}`. Producing through the proxy means giving it the
 * brokers' local listeners there instead; every other property, the schema
 * and the rows stay as they were (publish_batch.ts re-encodes the batch).
 *
 * @example
 * ```ts
 * import { isPublishDoGet, publishDoGetTransform } from "./publish_answer.ts";
 * import { KafkaLocations } from "./kafka_locations.ts";
 *
 * declare const request: Uint8Array;
 * const kafka = new KafkaLocations({ resolver: () => Promise.resolve({ host: "127.0.0.1", port: 39092 }) });
 * const transform = isPublishDoGet(request) ? publishDoGetTransform(kafka) : undefined;
 * ```
 *
 * @module
 */
import type { FlightData } from "./arrow_ipc.ts";
import { UserError } from "../errors.ts";
import { type KafkaLocations, parseKafkaLocation } from "./kafka_locations.ts";
import { concatBytes, encodeLenField, readFields, WireType } from "./wire.ts";
import { REUSE_CONNECTION } from "./locations.ts";
import { collectLocations, Shapes } from "./rewrite.ts";

/** The producer setting that names the brokers. */
export const BOOTSTRAP_SERVERS = "bootstrap.servers";

/** The Publish answer cannot be given to a client through the proxy (one line). */
export class PublishAnswerError extends UserError {
  constructor(message: string) {
    super(`arrakis.Publisher through the proxy: ${message}`);
    this.name = "PublishAnswerError";
  }
}

/** Whether a DoGet ticket is an Arrakis Publish command. */
export function isPublishTicket(ticket: Uint8Array): boolean {
  // Cheap test first: every ticket of a Stream would otherwise be parsed.
  if (ticket.length > 65536 || ticket[0] !== 0x7b) return false;
  try {
    const command = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(ticket));
    return command?.request === "Publish";
  } catch {
    return false;
  }
}

/**
 * A `rewrite` for `rewritePublishAnswer` (publish_batch.ts): each `host:port` of a
 * bootstrap list becomes its broker's local listener; a broker that cannot be
 * forwarded refuses the whole answer (a Publisher must reach every broker its
 * partitions lead on).
 */
export function bootstrapThroughListeners(
  kafka: KafkaLocations,
): (servers: string) => Promise<string> {
  return async (servers) => {
    const local: string[] = [];
    for (const server of servers.split(",").map((entry) => entry.trim())) {
      const broker = parseKafkaLocation(`kafka://${server.replace(/^kafka:\/\//i, "")}`);
      if (broker === undefined) {
        throw new PublishAnswerError(`cannot forward bootstrap server ${JSON.stringify(server)}`);
      }
      const uri = await kafka.resolve(broker);
      if (uri === undefined) {
        throw new PublishAnswerError(`Kafka broker ${broker.netloc} cannot be forwarded`);
      }
      local.push(uri.replace(/^kafka:\/\//, ""));
    }
    return local.join(",");
  };
}

/** The bytes of the first length-delimited field `number` of a message, if any. */
function lenField(message: Uint8Array, number: number): Uint8Array | undefined {
  for (const field of readFields(message)) {
    if (field.number === number && field.wireType === WireType.LEN) {
      return message.subarray(field.valueStart, field.end);
    }
  }
  return undefined;
}

/** Whether a DoGet request (a `Ticket`) redeems a Publish command. */
export function isPublishDoGet(request: Uint8Array): boolean {
  try {
    const ticket = lenField(request, 1);
    return ticket !== undefined && isPublishTicket(ticket);
  } catch {
    return false;
  }
}

/**
 * Checks the FlightInfo of a Publish request (its descriptor's command says
 * so): `true` when it is one and every endpoint is redeemed on the connection
 * that asked (reuse-connection, or no location), so that its DoGet comes
 * through the proxy and {@link publishDoGetTransform} can rewrite it; such an
 * answer must be passed on unchanged. A Publish endpoint elsewhere (the
 * publisher's own data server) would be redeemed outside the proxy: refused
 * with a {@link PublishAnswerError}. `false` for any other FlightInfo.
 */
export function checkPublishFlightInfo(info: Uint8Array): boolean {
  let command: Uint8Array | undefined;
  try {
    const descriptor = lenField(info, 2);
    // arrakis-server answers with a PATH descriptor whose one path is the command.
    command = descriptor && (lenField(descriptor, 2) ?? lenField(descriptor, 3));
  } catch {
    return false;
  }
  if (command === undefined || !isPublishTicket(command)) return false;
  const elsewhere = collectLocations(info, Shapes.FlightInfo).filter((uri) =>
    uri !== REUSE_CONNECTION && !uri.startsWith("arrow-flight-reuse-connection:")
  );
  if (elsewhere.length > 0) {
    throw new PublishAnswerError(
      `the Publish endpoint is served by ${elsewhere.join(", ")}, which the proxy only ` +
        `forwards: it cannot give the Publisher its brokers' local listeners (use --kafka direct ` +
        `where the brokers are reachable)`,
    );
  }
  return true;
}

/**
 * The DoGet response transform of a Publish ticket, one call per FlightData
 * message: the schema passes as it is and is kept; the record batch gets its
 * `bootstrap.servers` rewritten by {@link bootstrapThroughListeners}. A
 * message with fields other than header and body (app_metadata) is refused.
 */
export function publishDoGetTransform(
  kafka: KafkaLocations,
): (message: Uint8Array) => Promise<Uint8Array> {
  let schema: FlightData | undefined;
  const rewrite = bootstrapThroughListeners(kafka);
  return async (message) => {
    let header: Uint8Array | undefined;
    let body: Uint8Array = new Uint8Array();
    for (const field of readFields(message)) {
      const value = message.subarray(field.valueStart, field.end);
      if (field.number === 2 && field.wireType === WireType.LEN) header = value;
      else if (field.number === 1000 && field.wireType === WireType.LEN) body = value;
      else if (field.number !== 1) {
        throw new PublishAnswerError(`the Publish answer carries field ${field.number}`);
      }
    }
    if (header === undefined) {
      throw new PublishAnswerError("a Publish answer message has no header");
    }
    if (schema === undefined) {
      schema = { data_header: header, data_body: body };
      return message;
    }
    // apache-arrow only once a Publisher shows up: the proxy does not load it otherwise.
    const { rewritePublishAnswer } = await import("./publish_batch.ts");
    const [, batch, ...more] = await rewritePublishAnswer(
      [schema, { data_header: header, data_body: body }],
      rewrite,
    );
    if (batch === undefined || more.length > 0) {
      throw new PublishAnswerError("the Publish answer is not one record batch per message");
    }
    return concatBytes([
      ...encodeLenField(2, batch.data_header),
      ...encodeLenField(1000, batch.data_body),
    ]);
  };
}
