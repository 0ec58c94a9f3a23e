/**
 * Only the user: the kernel's record of who owns a loopback TCP peer, and the
 * guarded client port, against a second real account on this machine.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { CLIENT_PREFACE } from "../lib/http2/frames.ts";
import { findSocketUid, peerUid, procNetKeys } from "../lib/net/peer_uid.ts";
import { serveGuardedForward } from "../lib/net/guarded_forward.ts";
import { makeControlDir } from "../lib/ssh/control_dir.ts";
import { pipeConnections } from "../lib/net/pipe.ts";
import { otherUser } from "./fixtures/other_user.ts";
import type { Logger } from "../lib/log.ts";

Deno.test("addresses as /proc/net/tcp and tcp6 print them (little-endian words)", () => {
  assertEquals(procNetKeys({ hostname: "127.0.0.1", port: 31206 }), {
    tcp: "0100007F:79E6",
    tcp6: "0000000000000000FFFF00000100007F:79E6",
  });
  assertEquals(procNetKeys({ hostname: "::ffff:127.0.0.1", port: 1 }).tcp, "0100007F:0001");
  assertEquals(procNetKeys({ hostname: "::1", port: 1 }), {
    tcp: undefined,
    tcp6: "00000000000000000000000001000000:0001",
  });
  const table =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n" +
    "   0: 0100007F:9DC6 0100007F:79E6 01 00000000:00000000 00:00000000 00000000  1001        0 4242 1\n";
  assertEquals(findSocketUid(table, "0100007F:9DC6", "0100007F:79E6"), 1001);
  assertEquals(findSocketUid(table, "0100007F:79E6", "0100007F:9DC6"), undefined);
});

Deno.test("the peer of a connection from this process is our uid, on IPv4 and IPv6", async () => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    using listener = Deno.listen({ hostname, port: 0 });
    using client = await Deno.connect({ hostname, port: listener.addr.port });
    using accepted = await listener.accept();
    assertEquals(await peerUid(accepted), Deno.uid(), hostname);
    assert(client);
  }
});

function recordingLogger(lines: string[]): Logger {
  const push = (line: string) => lines.push(line);
  return { level: "normal", debug() {}, info: push, warn: push, progress() {} };
}

// As the other user: connect, send, print what came back (or the error).
const TCP_CLIENT = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello")
s.settimeout(5)
print(repr(s.recv(100)))
`;
const UNIX_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print(type(e).__name__)
`;

Deno.test("the guarded port refuses another user with one line; the owner gets through", async () => {
  await using other = await otherUser();
  const dir = await makeControlDir();
  await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
  // An echo server on a Unix socket in the private directory stands for the gRPC server.
  const echo = Deno.listen({ transport: "unix", path: `${dir}/echo` });
  const echoing = (async () => {
    for await (const conn of echo) pipeConnections(conn, conn);
  })().catch(() => {});
  const lines: string[] = [];
  await using port = serveGuardedForward(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    dial: () => Deno.connect({ transport: "unix", path: `${dir}/echo` }),
    logger: recordingLogger(lines),
  });

  const refused = await other.python(TCP_CLIENT, String(port.addr.port));
  assertEquals(refused.stdout.trim(), "b''", refused.stderr);
  assertEquals(lines.length, 1);
  assertStringIncludes(lines[0], `uid ${other.uid}, not this proxy's user (uid ${Deno.uid()})`);

  // The port speaks HTTP/2 (it relays frames): the client preface and an empty SETTINGS.
  using mine = await Deno.connect({ hostname: "127.0.0.1", port: port.addr.port });
  const hello = new Uint8Array([...CLIENT_PREFACE, 0, 0, 0, 4, 0, 0, 0, 0, 0]);
  await mine.write(hello);
  const answer = new Uint8Array(hello.length);
  let got = 0;
  while (got < answer.length) {
    const n = await mine.read(answer.subarray(got));
    if (n === null) break;
    got += n;
  }
  assertEquals(answer.subarray(0, got), hello);
  assertEquals(lines.length, 1);

  // Nor can the other user reach the socket behind the port.
  assertEquals((await other.python(UNIX_CLIENT, `${dir}/echo`)).stdout.trim(), "PermissionError");
  mine.close();
  echo.close();
  await echoing;
});
