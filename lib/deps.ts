/**
 * The project's npm dependencies, pinned in one place.
 *
 * Library modules import them from here as full `npm:` specifiers rather than
 * through deno.json's import map: a user who runs `deno run -A <url>/main.ts`
 * has no deno.json, and a remote module's bare specifiers would not resolve.
 * Keep the versions equal to deno.json's `imports` (a test checks it).
 *
 * @example
 * ```ts
 * import { grpc } from "./deps.ts";
 *
 * const credentials = grpc.credentials.createInsecure();
 * ```
 *
 * @module
 */
export * as grpc from "npm:@grpc/grpc-js@1.14.7";
export { default as protobuf } from "npm:protobufjs@7.6.6";
export { fromJSON, type PackageDefinition } from "npm:@grpc/proto-loader@0.8.1";
export {
  Message,
  type RecordBatch,
  RecordBatchStreamWriter,
  type Schema,
  Table,
  tableFromIPC,
  tableToIPC,
} from "npm:apache-arrow@21.2.0";
