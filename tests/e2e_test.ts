/**
 * End to end over real OpenSSH: the real command against a cluster in a network
 * namespace whose host names (`info`, `data-a`, `data-b`) resolve only inside it,
 * so nothing works unless the proxy's forwards do. Needs root; without it the
 * fixtures fail with the reason.
 */
import { dirname } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { proxyCommand, runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { shellQuote, startTerminal } from "./fixtures/terminal.ts";
import {
  arrakisCommand,
  endpointLocations,
  FlightTestClient,
  streamRowsVia,
} from "./fixtures/flight_client.ts";
import { expectedTable } from "./fixtures/mock_arrakis.ts";
import { descendants, findProcesses, isAlive, waitFor } from "./fixtures/processes.ts";
import { PROXY_CHILD_FLAG } from "../lib/proxy_process/protocol.ts";

const CLIENT = new URL("./fixtures/arrakis_client.ts", import.meta.url).pathname;
const rows = (table: { toArray(): { toJSON(): unknown }[] }) =>
  table.toArray().map((r) => r.toJSON());

/** The proxy's gRPC child processes under the command's process. */
function proxyChildren(pid: number): number[] {
  return descendants(pid).filter((child) => {
    try {
      return Deno.readTextFileSync(`/proc/${child}/cmdline`).includes(PROXY_CHILD_FLAG);
    } catch {
      return false;
    }
  });
}

function sshArgs(cluster: Cluster): string[] {
  return ["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost];
}

/** `127.0.0.1:PORT → data-a:40001` lines on stderr, as a map remote → local. */
function forwardsFrom(stderr: string): Map<string, string> {
  const forwards = new Map<string, string>();
  for (const [, local, remote] of stderr.matchAll(/forwarding (\S+) → (\S+)/g)) {
    forwards.set(remote, local);
  }
  return forwards;
}

Deno.test("arrakis-proxy over real OpenSSH", async (t) => {
  await using cluster = await startCluster();
  await using proxy = await startProxy(["-v", ...sshArgs(cluster)]);
  using client = FlightTestClient.connect(proxy.url);

  await t.step("stdout is the export line alone; stderr names host, server and forwards", () => {
    assertMatch(proxy.stdout(), /^export ARRAKIS_SERVER=grpc:\/\/localhost:\d+\n$/);
    assertStringIncludes(proxy.stderr(), "connecting to arrakis-test");
    assertStringIncludes(proxy.stderr(), "remote server grpc://info:31206");
    const forwards = forwardsFrom(proxy.stderr());
    assertEquals([...forwards.keys()].sort(), ["data-a:40001", "data-b:40001", "info:31206"]);
    // Unix sockets in the proxy's private directory: no other user reaches them.
    for (const local of forwards.values()) assertMatch(local, /^\/.+\/f-[0-9a-f]{8}$/);
  });

  await t.step("GetFlightInfo locations point at the local forwards", async () => {
    const forwards = forwardsFrom(proxy.stderr());
    const info = await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
    assertEquals(endpointLocations(info), [
      [`grpc+unix://${forwards.get("data-a:40001")}`],
      [`grpc+unix://${forwards.get("data-b:40001")}`],
    ]);
  });

  await t.step(
    "DoGet on every location reaches the right server; the Arrow data decodes",
    async () => {
      const info = await client.getFlightInfo(
        arrakisCommand("Stream", { channels: ["X1:A", "X1:B", "X1:C"], start: null, end: null }),
      );
      const [replicas] = endpointLocations(info);
      assertEquals(replicas.length, 2);
      for (const [i, location] of replicas.entries()) {
        using data = FlightTestClient.connect(location);
        const ticket = info.endpoint[0].ticket!.ticket;
        const { table } = await data.doGet(ticket);
        const server = ["data-a", "data-b"][i];
        assertEquals(table.schema.metadata.get("server"), server);
        const args = JSON.parse(new TextDecoder().decode(ticket)).args;
        assertEquals(rows(table), rows(expectedTable(args, server)));
      }
    },
  );

  await t.step("a data server that appears later is forwarded on demand", async () => {
    await cluster.addDataServer("data-c");
    const info = await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
    const late = endpointLocations(info)[2][0];
    assertMatch(late, /^grpc\+unix:\/\/\/.+\/f-[0-9a-f]{8}$/);
    using data = FlightTestClient.connect(late);
    const { table } = await data.doGet(info.endpoint[2].ticket!.ticket);
    assertEquals(table.schema.metadata.get("server"), "data-c");
    await waitFor(() => forwardsFrom(proxy.stderr()).has("data-c:40001"), 5000, "the log line");
  });

  await t.step("the proxy process is restarted when it dies; the URL keeps working", async () => {
    const [child] = proxyChildren(proxy.child.pid);
    assert(child, "a proxy child process runs");
    Deno.kill(child, "SIGKILL");
    await waitFor(() => /proxy restarted on/.test(proxy.stderr()), 20_000, "the restart");
    assertStringIncludes(proxy.stderr(), "the proxy process died (signal SIGKILL");
    using again = FlightTestClient.connect(proxy.url);
    const info = await again.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
    assertEquals(info.endpoint.length, 3);
  });

  await t.step("SIGINT tears everything down: no ssh process, no temp directory", async () => {
    const children = proxyChildren(proxy.child.pid);
    assertEquals(children.length, 1);
    const controlPath = /-S (\/\S+\/ctl)/.exec(proxy.stderr())?.[1];
    assert(controlPath, "the -v output names the control socket");
    assert(findProcesses(controlPath).length > 0, "ssh processes while running");
    // Close our side first: Deno 2.9.6 can abort in nghttp2 when a GOAWAY reaches
    // a client session (denoland/deno#36788), and the runner would die with it.
    client.close();
    const started = Date.now();
    const status = await proxy.stop("SIGINT");
    assertEquals(status.code, 0);
    assert(Date.now() - started < 5000, `exit took ${Date.now() - started} ms`);
    assertEquals(findProcesses(controlPath), []);
    assertEquals(children.filter(isAlive), [], "no proxy process left");
    assertEquals(await Deno.stat(dirname(controlPath)).then(() => true, () => false), false);
  });
});

Deno.test("-- COMMAND runs with ARRAKIS_SERVER set; its exit status becomes ours", async () => {
  await using cluster = await startCluster();
  const result = await runProxy([
    ...sshArgs(cluster),
    "--",
    Deno.execPath(),
    "run",
    "-A",
    CLIENT,
    "7",
  ]);
  assertEquals(result.code, 7, result.stderr);
  assertEquals(
    result.stdout.includes("export ARRAKIS_SERVER"),
    false,
    "no export line with a command",
  );
  const summary = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
  assertMatch(summary.url, /^grpc:\/\/localhost:\d+$/);
  assertEquals(summary.fetched.map((f: { server: string }) => f.server), ["data-a", "data-b"]);
  for (const fetched of summary.fetched) assert(fetched.rows > 0);
  // A command that cannot start is one clear line, not a stack trace.
  const missing = await runProxy([...sshArgs(cluster), "--", "no-such-command-here"]);
  assertEquals(missing.code, 127);
  assertStringIncludes(missing.stderr, "command not found: no-such-command-here");
});

Deno.test("--server when the login host does not set ARRAKIS_SERVER", async () => {
  await using cluster = await startCluster({ env: {} });
  const unset = await runProxy(sshArgs(cluster));
  assertEquals(unset.code, 1, unset.stderr);
  assertStringIncludes(unset.stderr, "--server");
  assertEquals(unset.stderr.includes("    at "), false, "no stack trace");
  assertEquals(unset.stdout, "");

  await using proxy = await startProxy(["-s", "info:31206", ...sshArgs(cluster)]);
  assertStringIncludes(proxy.stderr(), "remote server grpc://info:31206");
  using client = FlightTestClient.connect(proxy.url);
  const info = await client.getFlightInfo(arrakisCommand("Count", {}));
  assertEquals(info.endpoint.length, 2);
});

Deno.test("ARRAKIS_SERVER set only in the login profile is found", async () => {
  await using cluster = await startCluster({
    env: {},
    loginProfileEnv: { ARRAKIS_SERVER: "grpc://info:31206" },
  });
  await using proxy = await startProxy(sshArgs(cluster));
  assertStringIncludes(proxy.stderr(), "remote server grpc://info:31206");
  using client = FlightTestClient.connect(proxy.url);
  assertEquals((await client.getFlightInfo(arrakisCommand("Count", {}))).endpoint.length, 2);
});

Deno.test("a password typed at ssh's prompt in a terminal (tmux)", async () => {
  await using cluster = await startCluster({ passwordUser: { password: "e2e-pw-31206" } });
  // A shell in the pane reports the exit status (tmux's own view of it races with
  // the terminal closing); its trap only keeps Ctrl-C from ending the shell itself.
  const command = proxyCommand(sshArgs(cluster)).map(shellQuote).join(" ");
  await using terminal = await startTerminal(
    cluster.sshd.dir,
    `trap true INT; ${command}; echo "exit status $?"; sleep 600`,
  );
  const screen = () => terminal.screen();
  await waitFor(async () => /password:/i.test(await screen()), 60_000, "ssh's password prompt");
  await terminal.sendKeys("e2e-pw-31206", "Enter");
  await waitFor(
    async () => /export ARRAKIS_SERVER=grpc:\/\/localhost:\d+/.test(await screen()),
    60_000,
    "the export line",
  );
  assertEquals((await screen()).includes("e2e-pw-31206"), false, "the password is not echoed");
  const url = /export ARRAKIS_SERVER=(grpc:\/\/localhost:\d+)/.exec(await screen())![1];
  const client = FlightTestClient.connect(url);
  assertEquals((await client.getFlightInfo(arrakisCommand("Count", {}))).endpoint.length, 2);
  // Our side first: a GOAWAY reaching a client session can abort Deno (denoland/deno#36788).
  client.close();
  await terminal.sendKeys("C-c");
  await waitFor(async () => /exit status \d+/.test(await screen()), 30_000, "the exit")
    .catch(async (error) => {
      throw new Error(`${error.message}; the terminal shows:\n${await screen()}`);
    });
  assertMatch(await screen(), /SIGINT: shutting down\n(.*\n)*exit status 0\n/);
  // Ctrl-C is for the proxy: its ssh session must not take it for a lost connection.
  assertEquals((await screen()).includes("reconnecting"), false, await screen());
});

Deno.test("the default port taken (a proxy for another cluster): a free port, said in one line", async () => {
  await using cluster = await startCluster();
  // Held here, or already held by someone else: taken either way.
  let holder: Deno.Listener | undefined;
  try {
    holder = Deno.listen({ hostname: "localhost", port: 31206 });
  } catch { /* taken */ }
  try {
    await using proxy = await startProxy(["-F", cluster.sshConfigPath, cluster.sshHost]);
    assertMatch(proxy.url, /^grpc:\/\/localhost:\d+$/);
    assert(!proxy.url.endsWith(":31206"), proxy.url);
    assertMatch(
      proxy.stderr(),
      /^arrakis-proxy: localhost:31206 is in use \(.*\); listening on a free port instead$/m,
    );
    assertEquals(await streamRowsVia(proxy.url), 3 * 32);
    // Asked for by name, a taken port stays an error, before ssh runs.
    const named = await runProxy(["-q", "-l", "localhost:31206", "-F", cluster.sshConfigPath, "h"]);
    assertEquals(named.code, 1);
    assertMatch(
      named.stderr,
      /^arrakis-proxy: cannot listen on localhost:31206: address already in use \(.*--listen\)\n$/,
    );
  } finally {
    holder?.close();
  }
});
