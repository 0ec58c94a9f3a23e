/**
 * The Flight service's RPCs as a static table: name, path and streaming kinds.
 * The proxy passes raw bytes, so this is all it needs of the protocol; no
 * `.proto` is parsed in the process that serves (see `proto.ts` for that).
 *
 * @module
 */

/** Fully qualified name of the Flight gRPC service. */
export const FLIGHT_SERVICE = "arrow.flight.protocol.FlightService";

/** Each Flight RPC's streaming kinds, as `proto/flight.proto` declares them. */
export const FLIGHT_METHODS = {
  Handshake: { requestStream: true, responseStream: true },
  ListFlights: { requestStream: false, responseStream: true },
  GetFlightInfo: { requestStream: false, responseStream: false },
  PollFlightInfo: { requestStream: false, responseStream: false },
  GetSchema: { requestStream: false, responseStream: false },
  DoGet: { requestStream: false, responseStream: true },
  DoPut: { requestStream: true, responseStream: true },
  DoExchange: { requestStream: true, responseStream: true },
  DoAction: { requestStream: false, responseStream: true },
  ListActions: { requestStream: false, responseStream: true },
} as const satisfies Record<string, { requestStream: boolean; responseStream: boolean }>;

/** One Flight RPC name. */
export type FlightMethod = keyof typeof FLIGHT_METHODS;

/**
 * The gRPC path of a Flight RPC.
 *
 * @example
 * ```ts
 * methodPath("DoGet"); // "/arrow.flight.protocol.FlightService/DoGet"
 * ```
 */
export function methodPath(method: FlightMethod): string {
  return `/${FLIGHT_SERVICE}/${method}`;
}
