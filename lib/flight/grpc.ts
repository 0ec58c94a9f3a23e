/**
 * grpc-js, pinned. Flight modules import it from here as a full `npm:` specifier
 * rather than through deno.json's import map: a user who runs
 * `deno run -A <url>/main.ts` has no deno.json, and a remote module's bare
 * specifiers would not resolve. Only the proxy child loads it: the parent
 * process (ssh, the command line) never imports this module.
 *
 * @example
 * ```ts
 * import { grpc } from "./grpc.ts";
 *
 * const credentials = grpc.credentials.createInsecure();
 * ```
 *
 * @module
 */
export * as grpc from "npm:@grpc/grpc-js@1.14.7";
