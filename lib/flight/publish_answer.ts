/**
 * `arrakis.Publisher` through the proxy: before producing, it redeems the
 * endpoint of a Publish request (a DoGet whose ticket is the JSON command
 * `{"request": "Publish", …}`) and reads its Kafka producer settings from the
 * answer, an Arrow stream of one column `properties: map<string, string>`
 * (arrakis-server `_publish`): `{"bootstrap.servers": <the Kafka backend's
 * --kafka-url, verbatim>}`. Producing through the proxy means giving it the
 * brokers' local listeners there instead; every other property, the schema
 * and the rows stay as they were.
 *
 * @example
 * ```ts
 * import { isPublishTicket, rewritePublishAnswer } from "./publish_answer.ts";
 * import type { FlightData } from "./arrow_ipc.ts";
 *
 * declare const ticket: Uint8Array, answer: FlightData[];
 * if (isPublishTicket(ticket)) {
 *   await rewritePublishAnswer(answer, (servers) => Promise.resolve(servers));
 * }
 * ```
 *
 * @module
 */
import { type FlightData, flightDataToTable, tableToFlightData } from "./arrow_ipc.ts";
import { makeData, Map_, RecordBatch, Struct, Table, Utf8, vectorFromArray } from "./arrow.ts";
import { UserError } from "../errors.ts";
import { type KafkaLocations, parseKafkaLocation } from "./kafka_locations.ts";

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
 * The Publish answer with `bootstrap.servers` in every row replaced by what
 * `rewrite` makes of it. Anything but one `properties: map<string, string>`
 * column (or app_metadata beside the data) is refused with a
 * {@link PublishAnswerError}, never changed.
 */
export async function rewritePublishAnswer(
  messages: FlightData[],
  rewrite: (servers: string) => Promise<string>,
): Promise<FlightData[]> {
  if (messages.some((message) => (message.app_metadata?.length ?? 0) > 0)) {
    throw new PublishAnswerError("the Publish answer carries app_metadata the proxy cannot keep");
  }
  let table: Table;
  try {
    table = flightDataToTable(messages);
  } catch (error) {
    throw new PublishAnswerError(`the Publish answer is not an Arrow stream: ${error}`);
  }
  const [field, ...more] = table.schema.fields;
  const type = field?.type;
  if (
    field?.name !== "properties" || more.length > 0 || !(type instanceof Map_) ||
    !(type.keyType instanceof Utf8) || !(type.valueType instanceof Utf8)
  ) {
    throw new PublishAnswerError(
      `unexpected Publish answer schema ${table.schema.fields.map(String).join(", ")}`,
    );
  }
  const column = table.getChild("properties")!;
  const rows: Map<string, string | null>[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row = column.get(i);
    if (row === null) {
      throw new PublishAnswerError("the Publish answer has a row without properties");
    }
    const entries = new Map<string, string | null>();
    for (const [key, value] of row as Iterable<[string, string | null]>) {
      entries.set(key, key === BOOTSTRAP_SERVERS && value !== null ? await rewrite(value) : value);
    }
    rows.push(entries);
  }
  const properties = vectorFromArray(rows, type);
  const batch = new RecordBatch(
    table.schema,
    makeData({
      type: new Struct(table.schema.fields),
      length: rows.length,
      nullCount: 0,
      children: [properties.data[0]],
    }),
  );
  return tableToFlightData(new Table(table.schema, [batch]));
}

/**
 * A `rewrite` for {@link rewritePublishAnswer}: each `host:port` of a
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
