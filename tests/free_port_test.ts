import { getFreePort, isAddressFree } from "../lib/net/free_port.ts";
import { assert, assertEquals } from "./assert.ts";

Deno.test("getFreePort returns a loopback port that can be bound", () => {
  const port = getFreePort();
  assert(port >= 1 && port <= 65535);
  using _listener = Deno.listen({ hostname: "127.0.0.1", port });
});

Deno.test("a held port is not free", () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assertEquals(isAddressFree("127.0.0.1", held.addr.port), false);
});

Deno.test("a free port is free", () => {
  assertEquals(isAddressFree("127.0.0.1", getFreePort()), true);
});
