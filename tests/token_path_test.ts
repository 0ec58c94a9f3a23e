/**
 * The token-carrying data path over real OpenSSH: a proxy run with a token
 * (`authorization`) in front of two real pyarrow Flight servers in a network
 * namespace (an info server whose endpoint names a data server), each recording
 * the authorization header it receives; pyarrow's client follows the location
 * as the arrakis client does. Forwards and relays are Unix sockets another
 * account cannot reach.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import type { Logger } from "../lib/log.ts";
import { createNetns } from "./fixtures/netns.ts";
import { startSshd } from "./fixtures/sshd.ts";
import { pythonEnv, pythonJson, requirePython } from "./fixtures/python.ts";
import { otherUser } from "./fixtures/other_user.ts";
import { sshProxy } from "../lib/ssh_proxy.ts";
import { stopChild } from "../lib/process.ts";
import { waitFor } from "./fixtures/processes.ts";
import type { Netns } from "./fixtures/netns.ts";

const SCRIPT = new URL("./fixtures/py/auth_recorder.py", import.meta.url).pathname;
const INFO = { name: "recorder-info", host: "127.0.0.41", port: 41000 };
const DATA = { name: "recorder-data", host: "127.0.0.42", port: 41001 };

type Follow = { location: string; rows: number; seen: (string | null)[] };

async function recorder(netns: Netns, at: typeof INFO, location: string) {
  const child = netns.spawn(
    [requirePython().python, SCRIPT, "serve", at.host, String(at.port), location],
    { env: await pythonEnv(), stdin: "piped", stdout: "null", stderr: "inherit" },
  );
  await waitFor(
    async () =>
      (await netns.exec(["bash", "-c", `exec 3<>/dev/tcp/${at.host}/${at.port}`])).code === 0,
    20_000,
    `${at.name} to listen`,
  );
  return {
    [Symbol.asyncDispose]: () =>
      stopChild(child, { ask: () => child.stdin.close() }).then(() => {}),
  };
}

const TCP_CLIENT = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n")
s.settimeout(5)
print(repr(s.recv(100)))
`;

function recordingLogger(lines: string[]): Logger {
  const push = (line: string) => lines.push(line);
  return { level: "verbose", debug: push, info: push, warn: push, progress() {} };
}

const UNIX_CLIENT = `
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print("connected")
    except OSError as e:
        print(type(e).__name__)
`;

Deno.test("data-server calls carry the token through a relay; explicit tokens pass; other users are kept out", async () => {
  const lines: string[] = [];
  await using netns = await createNetns();
  await netns.addHosts({ [INFO.name]: INFO.host, [DATA.name]: DATA.host });
  await using sshd = await startSshd({ netns });
  const dataUrl = `grpc://${DATA.name}:${DATA.port}`;
  await using _info = await recorder(netns, INFO, dataUrl);
  await using _data = await recorder(netns, DATA, dataUrl);
  await using proxy = await sshProxy(sshd.hostAlias, {
    sshConfig: sshd.sshConfigPath,
    server: `grpc://${INFO.name}:${INFO.port}`,
    listen: "127.0.0.1:0",
    interactive: false,
    authorization: () => "Bearer from-the-proxy",
    logger: recordingLogger(lines),
  });

  const bare = await pythonJson<Follow>([SCRIPT, "follow", proxy.url, "-"]);
  assertMatch(bare.location, /^grpc\+unix:\/\/\/.+\.h2$/);
  assertEquals(bare.rows, 1000);
  // The DoGet and the action, both at the data server through the relay.
  assertEquals(bare.seen, ["Bearer from-the-proxy", "Bearer from-the-proxy"]);

  const own = await pythonJson<Follow>([SCRIPT, "follow", proxy.url, "mine"]);
  assertEquals(own.seen.slice(2), ["Bearer mine", "Bearer mine"]);

  // Every forward and relay is a Unix socket in a private directory.
  const sockets = proxy.forwards.map((forward) => forward.local);
  sockets.push(bare.location.slice("grpc+unix://".length));
  assert(sockets.every((path) => path.startsWith("/")), sockets.join(" "));
  await using other = await otherUser();
  const tried = await other.python(UNIX_CLIENT, ...sockets);
  assertEquals(tried.stdout.trim().split("\n"), sockets.map(() => "PermissionError"), tried.stderr);

  // At the proxy's own port: refused with one line, and the owner still gets through.
  const port = new URL(proxy.url.replace("grpc:", "http:")).port;
  const refused = await other.python(TCP_CLIENT, port);
  assertEquals(refused.stdout.trim(), "b''", refused.stderr);
  const refusals = lines.filter((line) => line.includes("refused a connection"));
  assertEquals(refusals.length, 1);
  assertStringIncludes(refusals[0], `uid ${other.uid}`);
  assertEquals((await pythonJson<Follow>([SCRIPT, "follow", proxy.url, "-"])).rows, 1000);
  assert(!lines.some((line) => line.includes("from-the-proxy")), "the token reached the log");
});
