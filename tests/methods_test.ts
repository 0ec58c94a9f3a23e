import { assertEquals } from "./assert.ts";
import { FLIGHT_METHODS, methodPath } from "../lib/flight/methods.ts";
import { FLIGHT_SERVICE, flightPackageDefinition } from "../lib/flight/proto.ts";

Deno.test("the static method table matches proto/flight.proto", () => {
  const service = flightPackageDefinition[FLIGHT_SERVICE] as Record<
    string,
    { path: string; requestStream: boolean; responseStream: boolean }
  >;
  assertEquals(Object.keys(FLIGHT_METHODS).sort(), Object.keys(service).sort());
  for (const [name, kinds] of Object.entries(FLIGHT_METHODS)) {
    const { path, requestStream, responseStream } = service[name];
    assertEquals(
      { path: methodPath(name as keyof typeof FLIGHT_METHODS), ...kinds },
      { path, requestStream, responseStream },
      name,
    );
  }
});
