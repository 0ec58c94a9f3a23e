/**
 * protobufjs and @grpc/proto-loader, pinned (see `grpc.ts` for why a full `npm:`
 * specifier): what `proto.ts` needs to load `flight.proto`.
 *
 * @example
 * ```ts
 * import { protobuf } from "./protobuf.ts";
 *
 * const root = new protobuf.Root();
 * ```
 *
 * @module
 */
export { default as protobuf } from "npm:protobufjs@7.6.6";
export { fromJSON, type PackageDefinition } from "npm:@grpc/proto-loader@0.8.1";
