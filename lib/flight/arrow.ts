/**
 * apache-arrow, pinned (see `grpc.ts` for why a full `npm:` specifier). Only the
 * proxy child and data clients load it.
 *
 * @example
 * ```ts
 * import { tableFromIPC } from "./arrow.ts";
 *
 * declare const ipcStream: Uint8Array;
 * tableFromIPC(ipcStream).numRows;
 * ```
 *
 * @module
 */
export * from "npm:apache-arrow@21.2.0";
