/**
 * Arrakis server URL validation (pure), and finding ARRAKIS_SERVER on a real
 * sshd: plain session, login-shell fallback, and unset.
 * Needs root for the sshd part; run with `deno test -A tests/remote_server_test.ts`.
 */

import { UserError } from "../lib/errors.ts";
import { SshConnection } from "../lib/ssh/connection.ts";
import { resolveRemoteServer } from "../lib/ssh/remote_server.ts";
import { parseServerUrl } from "../lib/netloc.ts";
import { assertEquals, assertMatch, assertRejects, assertThrows } from "./assert.ts";
import { createNetns } from "./fixtures/netns.ts";
import { type SshdOptions, startSshd } from "./fixtures/sshd.ts";

Deno.test("parseServerUrl accepts grpc, grpc+tcp and bare host:port", () => {
  assertEquals(parseServerUrl("grpc://info:31206"), {
    url: "grpc://info:31206",
    host: "info",
    port: 31206,
  });
  assertEquals(parseServerUrl("grpc+tcp://data-a.cluster.example:40001/"), {
    url: "grpc://data-a.cluster.example:40001",
    host: "data-a.cluster.example",
    port: 40001,
  });
  assertEquals(parseServerUrl("GRPC://10.1.2.3:1"), {
    url: "grpc://10.1.2.3:1",
    host: "10.1.2.3",
    port: 1,
  });
  assertEquals(parseServerUrl("info:31206"), {
    url: "grpc://info:31206",
    host: "info",
    port: 31206,
  });
  assertEquals(parseServerUrl("grpc://[fd00::7]:65535"), {
    url: "grpc://[fd00::7]:65535",
    host: "fd00::7",
    port: 65535,
  });
});

Deno.test("parseServerUrl reads the unspecified address as the login host's loopback", () => {
  assertEquals(parseServerUrl("grpc://0.0.0.0:31206"), {
    url: "grpc://127.0.0.1:31206",
    host: "127.0.0.1",
    port: 31206,
  });
  assertEquals(parseServerUrl("grpc://[::]:31206").host, "::1");
});

Deno.test("parseServerUrl refuses anything but host:port", () => {
  const bad = [
    "",
    "info",
    "grpc://info",
    "grpc://info:",
    "grpc://info:0",
    "grpc://info:65536",
    "grpc://info:31206x",
    "grpc://info:+80",
    "grpc+tls://info:31206",
    "http://info:31206",
    "grpc+unix:///tmp/sock",
    "grpc://user@info:31206",
    "grpc://info:31206/path",
    "grpc://info:31206?q=1",
    "grpc://info:31206#frag",
    "grpc://-oProxyCommand=x:31206",
    "grpc://in fo:31206",
    "grpc://info\n:31206",
    "grpc://::1:31206",
    "grpc://[info]:31206",
    "grpc://[::1]31206",
    "grpc://300.1.1.1:31206",
    "grpc://1.2.3:31206",
    "grpc://a_b..c:31206",
    " grpc://info:31206",
  ];
  for (const text of bad) {
    const error = assertThrows(() => parseServerUrl(text, "test"), UserError);
    assertMatch(error.message, /^invalid Arrakis server ".*" from test: /s, text);
  }
});

/** A connection to a fresh sshd in a fresh namespace. */
async function connectTo(options: Omit<SshdOptions, "netns">) {
  const ns = await createNetns();
  const sshd = await startSshd({ ...options, netns: ns }).catch(async (error) => {
    await ns[Symbol.asyncDispose]();
    throw error;
  });
  const conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  }).catch(async (error) => {
    await sshd[Symbol.asyncDispose]();
    await ns[Symbol.asyncDispose]();
    throw error;
  });
  return {
    conn,
    async [Symbol.asyncDispose]() {
      await conn.close();
      await sshd[Symbol.asyncDispose]();
      await ns[Symbol.asyncDispose]();
    },
  };
}

Deno.test("resolveRemoteServer reads ARRAKIS_SERVER from the session environment", async () => {
  await using remote = await connectTo({ env: { ARRAKIS_SERVER: "grpc://info:31206" } });
  assertEquals(await resolveRemoteServer(remote.conn), {
    url: "grpc://info:31206",
    host: "info",
    port: 31206,
  });
  // --server wins and is validated the same way.
  assertEquals((await resolveRemoteServer(remote.conn, "other:1")).url, "grpc://other:1");
  const error = await assertRejects(() => resolveRemoteServer(remote.conn, "other"), UserError);
  assertMatch(error.message, /from --server: missing :port$/);
});

Deno.test("resolveRemoteServer falls back to a login shell once", async () => {
  await using remote = await connectTo({
    loginProfileEnv: { ARRAKIS_SERVER: "grpc+tcp://info:31206" },
  });
  // Not in a plain session: the profile is read by login shells only.
  assertEquals((await remote.conn.exec(["printenv", "ARRAKIS_SERVER"])).code, 1);
  assertEquals((await resolveRemoteServer(remote.conn)).url, "grpc://info:31206");
});

Deno.test("resolveRemoteServer says what to do when ARRAKIS_SERVER is unset", async () => {
  await using remote = await connectTo({});
  const error = await assertRejects(() => resolveRemoteServer(remote.conn), UserError);
  assertEquals(
    error.message,
    "remote ARRAKIS_SERVER is not set on arrakis-test; pass --server URL",
  );
});

Deno.test("resolveRemoteServer refuses a hostile remote value", async () => {
  await using remote = await connectTo({
    env: { ARRAKIS_SERVER: "grpc://-oProxyCommand=x:22" },
  });
  const error = await assertRejects(() => resolveRemoteServer(remote.conn), UserError);
  assertMatch(
    error.message,
    / from remote ARRAKIS_SERVER on arrakis-test: -oProxyCommand=x is not a host name$/,
  );
});
