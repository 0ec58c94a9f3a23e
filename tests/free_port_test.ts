import { UserError } from "../lib/errors.ts";
import { assertAddressFree, getFreePort, isAddressFree } from "../lib/ssh/free_port.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

Deno.test("getFreePort returns a loopback port that can be bound", () => {
  const port = getFreePort();
  assert(port >= 1 && port <= 65535);
  using _listener = Deno.listen({ hostname: "127.0.0.1", port });
});

Deno.test("a held port is not free, and assertAddressFree says so in one line", () => {
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  assertEquals(isAddressFree("127.0.0.1", held.addr.port), false);
  const error = assertThrows(() => assertAddressFree("127.0.0.1", held.addr.port), UserError);
  assertEquals(error.message, `address 127.0.0.1:${held.addr.port} is already in use`);
});

Deno.test("a free port is free", () => {
  assertEquals(isAddressFree("127.0.0.1", getFreePort()), true);
  assertAddressFree("127.0.0.1", getFreePort());
});
