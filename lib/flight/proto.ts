/**
 * The Arrow Flight protocol definition, loaded from `proto/flight.proto`.
 *
 * The .proto is imported as text so it travels with the module graph: it loads the
 * same way from a local checkout, from an http(s) URL and inside a `deno compile`
 * binary, with no filesystem path beside the module.
 *
 * @module
 */
import flightProtoText from "../../proto/flight.proto" with { type: "text" };
import { fromJSON, type PackageDefinition, protobuf } from "./protobuf.ts";

export { FLIGHT_SERVICE, type FlightMethod } from "./methods.ts";

function buildRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // flight.proto imports google/protobuf/timestamp.proto; protobufjs ships it.
  const timestamp = protobuf.common.get("google/protobuf/timestamp.proto");
  if (timestamp?.nested) root.addJSON(timestamp.nested);
  protobuf.parse(flightProtoText, root, { keepCase: true });
  root.resolveAll();
  return root;
}

/** The parsed protocol, for encoding and decoding typed messages (tests, tools). */
export const flightRoot: protobuf.Root = buildRoot();

/** Look up a Flight message type by its short name, e.g. `"FlightInfo"`. */
export function flightType(name: string): protobuf.Type {
  return flightRoot.lookupType(`arrow.flight.protocol.${name}`);
}

/**
 * The grpc-js package definition: field names as in the .proto, bytes as Buffers,
 * 64-bit integers as strings, enums as names.
 */
export const flightPackageDefinition: PackageDefinition = fromJSON(flightRoot.toJSON(), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
