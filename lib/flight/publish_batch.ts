/**
 * Re-encodes the record batch of a Publish answer (publish_answer.ts) with
 * apache-arrow, its `bootstrap.servers` replaced; kept apart so that the
 * proxy loads apache-arrow only when a Publisher comes.
 *
 * @module
 */
import { type FlightData, flightDataToTable, tableToFlightData } from "./arrow_ipc.ts";
import { makeData, Map_, RecordBatch, Struct, Table, Utf8, vectorFromArray } from "./arrow.ts";
import { BOOTSTRAP_SERVERS, PublishAnswerError } from "./publish_answer.ts";

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
