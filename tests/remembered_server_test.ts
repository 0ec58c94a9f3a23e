/**
 * Without `--server` a run starts with the server remembered from the last run
 * over the same destination, while the keepalive session reads the remote
 * `$ARRAKIS_SERVER` again: over real OpenSSH (the cluster's login host sets it
 * to `grpc://info:31206`), with a private state directory (XDG_RUNTIME_DIR).
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { startProxy } from "./fixtures/proxy_cli.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";

Deno.test("the remote server is remembered, used at once, and corrected", async (t) => {
  await using cluster = await startCluster();
  const runtime = await Deno.makeTempDir({ prefix: "arrakis-mem-" });
  await Deno.chmod(runtime, 0o700);
  using _cleanup = { [Symbol.dispose]: () => Deno.removeSync(runtime, { recursive: true }) };
  const env = { XDG_RUNTIME_DIR: runtime };
  const args = ["-v", "-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost];
  const memoryFile = () => {
    const dir = `${runtime}/arrakis-proxy`;
    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name)
      .filter((name) => /^server-[0-9a-f]+\.json$/.test(name));
    assertEquals(names.length, 1, `one remembered server in ${dir}: ${names}`);
    return `${dir}/${names[0]}`;
  };
  /** A run, one call through it, and its stderr. */
  const run = async () => {
    await using proxy = await startProxy(args, { env });
    using client = FlightTestClient.connect(proxy.url);
    const info = await client.getFlightInfo(arrakisCommand("Count", { pattern: ".*" }));
    assert(info.endpoint.length > 0, "the server answered through the proxy");
    return proxy.stderr();
  };

  await t.step("the first run reads it on the login host and remembers it, mode 0600", async () => {
    const stderr = await run();
    assertStringIncludes(stderr, "remote server grpc://info:31206\n");
    const file = memoryFile();
    assertEquals(Deno.statSync(file).mode! & 0o777, 0o600);
    assertEquals(JSON.parse(Deno.readTextFileSync(file)).server, "grpc://info:31206");
  });

  await t.step("the next run starts with it and checks it", async () => {
    const stderr = await run();
    assertStringIncludes(stderr, "remote server grpc://info:31206 (as last time; checking it)");
    assertStringIncludes(stderr, "is still grpc://info:31206");
  });

  await t.step(
    "a remembered server the login host no longer names: over again with the one it names",
    async () => {
      const file = memoryFile();
      const saved = JSON.parse(Deno.readTextFileSync(file));
      Deno.writeTextFileSync(file, JSON.stringify({ ...saved, server: "grpc://gone:31206" }));
      const stderr = await run();
      assertStringIncludes(stderr, "remote server grpc://gone:31206 (as last time; checking it)");
      assertStringIncludes(
        stderr,
        "remote server is now grpc://info:31206 (not grpc://gone:31206): starting over",
      );
      assertEquals(JSON.parse(Deno.readTextFileSync(file)).server, "grpc://info:31206");
      // One login: the run started over on the same master.
      assertEquals(stderr.match(/\$ ssh -M /g)?.length, 1);
    },
  );

  await t.step(
    "a memory others can read, or that does not parse, is ignored with a line",
    async () => {
      const file = memoryFile();
      Deno.chmodSync(file, 0o644);
      let stderr = await run();
      assertMatch(stderr, /ignoring the remembered server in \S+: mode 644 lets others in/);
      assertStringIncludes(stderr, "remote server grpc://info:31206\n");
      assertEquals(Deno.statSync(file).mode! & 0o777, 0o600, "written again, private");

      Deno.writeTextFileSync(file, "{ not json");
      stderr = await run();
      assertMatch(stderr, /ignoring the remembered server in \S+: unreadable/);
      assertStringIncludes(stderr, "remote server grpc://info:31206\n");

      const saved = JSON.parse(Deno.readTextFileSync(file));
      Deno.writeTextFileSync(file, JSON.stringify({ ...saved, server: "grpc://-o:1" }));
      stderr = await run();
      assertMatch(stderr, /ignoring the remembered server in \S+: invalid Arrakis server/);
    },
  );
});
