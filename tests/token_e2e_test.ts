/**
 * Token-protected deployments end to end: real `arrakis-server --auth full`
 * servers (info and two data servers) trusting an offline SciToken issuer,
 * the real `arrakis` client with its default token discovery, the real
 * `arrakis-proxy` command over real OpenSSH. The client finds no token for
 * `https://localhost`, so the proxy adds the user's (found for `https://info`);
 * a client's own token passes untouched; each bad token gives one line, in the
 * client's error and on the proxy's stderr; the token is in no output.
 *
 * Fetches redeem endpoints at the data servers' forwards, which carry the
 * token through the proxy's header-adding relays.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { clusterArgs, forwardTargets, runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { requirePython } from "./fixtures/python.ts";
import { runCommand, waitFor } from "./fixtures/processes.ts";
import { REAL_CHANNELS } from "./fixtures/real_arrakis.ts";
import { lastJson, REAL_CHANNEL_LIST, REAL_CLIENT } from "./fixtures/real_client.ts";
import { startIssuer } from "./fixtures/scitokens.ts";

const python = requirePython();

/** `-- python real_client.py ARGS…`: what the proxy runs for the real client. */
const clientCommand = (...args: string[]) => ["--", python.python, REAL_CLIENT, ...args];
const AUDIENCE = "https://info";

/** A count of every channel with the real client, its token given explicitly. */
const EXPLICIT_COUNT = `
import json, sys
from arrakis.client import Client
print(json.dumps({"count": Client(token=sys.argv[1]).count(".*")}))
`;

Deno.test("a token-protected real deployment through arrakis-proxy", async (t) => {
  await using issuer = await startIssuer();
  await using cluster = await startCluster({
    deployment: "real-info",
    auth: { issuer: issuer.issuer, audience: AUDIENCE, env: issuer.env },
  });
  const [good, explicit, explicitExpired, other, expired, narrow, unsigned] = await issuer.mint([
    { aud: AUDIENCE, sub: "proxy-user" },
    { aud: AUDIENCE, sub: "explicit-user" },
    { aud: AUDIENCE, sub: "explicit-expired", lifetime: -600 },
    { aud: "https://other", sub: "other-user" },
    { aud: AUDIENCE, lifetime: -300 },
    { aud: AUDIENCE, scope: "arrakis.read:/H1" },
    { aud: AUDIENCE, unregistered: true },
  ]);
  const tokens = [good, explicit, explicitExpired, other, expired, narrow, unsigned];
  const empty = `${issuer.dir}/empty-runtime`;
  await Deno.mkdir(empty, { mode: 0o700 });
  const goodFile = await issuer.writeToken("good", good);
  /** The user's environment: the issuer's key cache (for the client) and where tokens are. */
  const userEnv = (extra: Record<string, string> = {}) => ({
    ...issuer.env,
    XDG_RUNTIME_DIR: empty,
    ...extra,
  });
  // Every output of the test, searched for the tokens at the end.
  const outputs: string[] = [];
  const seen = <T extends { stdout: string; stderr: string }>(result: T): T => {
    outputs.push(result.stdout, result.stderr);
    return result;
  };
  const arrakis = async (url: string, env: Record<string, string>, ...args: string[]) =>
    seen(
      await runCommand(python.arrakis, {
        args,
        env: { ...env, ARRAKIS_SERVER: url },
        signal: AbortSignal.timeout(60_000),
      }),
    );

  await t.step(
    "default discovery: count and find through the proxy, which adds the user's token",
    async () => {
      await using proxy = await startProxy(["-v", ...clusterArgs(cluster)], {
        env: userEnv({ BEARER_TOKEN_FILE: goodFile }),
      });
      const stderr = proxy.stderr();
      assertMatch(
        stderr,
        new RegExp(
          `token for reads: issuer ${issuer.issuer}, audience ${AUDIENCE}, scope arrakis\\.read:/, ` +
            `5\\d min left \\(until .+Z\\), from \\$BEARER_TOKEN_FILE \\(${goodFile}\\)`,
        ),
      );
      // Start-up discovery carried the token: both data servers forwarded before the ready line.
      assertEquals(forwardTargets(stderr), ["data-a:40001", "data-b:40001", "info:31206"]);
      assertEquals(stderr.includes("warning"), false, stderr);

      const env = userEnv({ BEARER_TOKEN_FILE: goodFile });
      // The info server's read-gated scope map, with the proxy's token.
      const domains = await arrakis(proxy.url, env, "domains");
      assertEquals(
        [domains.code, domains.stdout.split(/\s+/).filter(Boolean)],
        [0, ["H1", "L1"]],
        domains.stderr,
      );
      assertStringIncludes(cluster.real!.log(), "authenticated caller: proxy-user");
      // Count and Find redeem their endpoints at the data servers: through the relays.
      const count = await arrakis(proxy.url, env, "count", ".*");
      const found = await arrakis(proxy.url, env, "find", "L1:.*");
      assertEquals(
        [count.code, count.stdout.trim()],
        [0, String(REAL_CHANNEL_LIST.length)],
        count.stderr,
      );
      assertEquals(found.code, 0, found.stderr);
      for (const channel of REAL_CHANNELS.L1) assertStringIncludes(found.stdout, channel);

      // Without the proxy's token the same client is refused: the test is not vacuous.
      await using bare = await startProxy(["--no-token", ...clusterArgs(cluster)], { env });
      const refused = await arrakis(bare.url, env, "domains");
      assert(refused.code !== 0, refused.stdout);
      assertStringIncludes(refused.stderr, "arrakis-proxy adds no token (--no-token)");
      outputs.push(proxy.stderr(), proxy.stdout(), bare.stderr(), bare.stdout());
    },
  );

  await t.step("a client's own token passes untouched: the server sees it", async () => {
    await using proxy = await startProxy(clusterArgs(cluster), {
      env: userEnv({ BEARER_TOKEN_FILE: goodFile }),
    });
    const env = { ...userEnv(), ARRAKIS_SERVER: proxy.url };
    const run = async (token: string) =>
      seen(
        await runCommand(python.python, {
          args: ["-c", EXPLICIT_COUNT, token],
          env,
          signal: AbortSignal.timeout(60_000),
        }),
      );
    const ok = await run(explicit);
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(lastJson(ok.stdout, ok.stderr).count, REAL_CHANNEL_LIST.length);
    assertStringIncludes(cluster.real!.log(), "authenticated caller: explicit-user");
    // An expired token of the client's own is refused by the server, not replaced by the proxy's.
    const refused = await run(explicitExpired);
    assert(refused.code !== 0, refused.stdout);
    assertStringIncludes(refused.stderr, "authentication required");
    assertEquals(refused.stderr.includes("arrakis-proxy"), false, refused.stderr);
    outputs.push(proxy.stderr(), proxy.stdout());
  });

  await t.step(
    "fetch and stream across both data servers",
    async () => {
      const env = userEnv({ BEARER_TOKEN_FILE: goodFile });
      const fetched = seen(
        await runProxy(
          [
            ...clusterArgs(cluster),
            ...clientCommand("snapshot", ...REAL_CHANNEL_LIST),
          ],
          { env },
        ),
      );
      const streamed = seen(
        await runProxy(
          [
            ...clusterArgs(cluster),
            ...clientCommand("stream", "4", REAL_CHANNELS.H1[0], REAL_CHANNELS.L1[0]),
          ],
          { env },
        ),
      );
      for (const result of [fetched, streamed]) {
        assertEquals(result.code, 0, result.stderr + cluster.real!.log());
      }
      const snapshot = lastJson(fetched.stdout, fetched.stderr);
      assertEquals(Object.keys(snapshot.fetch as object), [...REAL_CHANNEL_LIST].sort());
      const blocks = (lastJson(streamed.stdout) as { blocks: unknown[] }).blocks;
      assertEquals(blocks.length, 4);
    },
  );

  await t.step(
    "each bad token: one line from the proxy, in the client's error and on stderr",
    async () => {
      const openFile = await issuer.writeToken("open", good, 0o644);
      const cases: { name: string; env: Record<string, string>; args?: string[]; line: RegExp }[] =
        [
          {
            name: "no token anywhere",
            env: userEnv(),
            line: new RegExp(
              `arrakis-proxy sent no token: none for audience ${AUDIENCE} \\(looked at \\$SCITOKEN: ` +
                `not set; .*${empty}/bt_u\\d+: no such file\\); get one with htgettoken ` +
                `\\(--audience ${AUDIENCE}\\), or pass --token-file FILE or --token-audience AUD`,
            ),
          },
          {
            name: "wrong audience",
            env: userEnv({ BEARER_TOKEN: other }),
            line: new RegExp(
              `arrakis-proxy sent no token: none for audience ${AUDIENCE} \\(looked at .*\\$BEARER_TOKEN: ` +
                `token is for audience https://other, not ${AUDIENCE}\\); get one for ${AUDIENCE}`,
            ),
          },
          {
            name: "expired",
            env: userEnv({ BEARER_TOKEN: expired }),
            line:
              /arrakis-proxy sent no token: .*\$BEARER_TOKEN: token expired [56] min ago \(\d{4}-\d\d-\d\d [\d:]+Z\)\); renew it with htgettoken/,
          },
          {
            name: "narrow scope",
            env: userEnv({ BEARER_TOKEN: narrow }),
            line:
              /arrakis-proxy sent no token: .*token lacks the scope arrakis\.read:\/ \(has arrakis\.read:\/H1\)\); get one with the scope arrakis\.read:\//,
          },
          {
            name: "another audience, forced with --token-audience: the server denies it",
            env: userEnv({ BEARER_TOKEN: other }),
            args: ["--token-audience", "https://other"],
            line:
              /arrakis-proxy sent a token \(issuer .+, audience https:\/\/other, .+\) and the server denied it: it may expect another audience/,
          },
          {
            name: "a bad signature: the server does not accept it",
            env: userEnv({ BEARER_TOKEN: unsigned }),
            line:
              /arrakis-proxy sent a token \(issuer .+, audience https:\/\/info, .+\) and the server did not accept it/,
          },
          {
            name: "a token file others can read",
            env: userEnv({ BEARER_TOKEN_FILE: openFile }),
            line: new RegExp(
              `arrakis-proxy sent no token: .*refused: readable by others \\(mode 0644\\), as ssh ` +
                `refuses such a private key; chmod 600 ${openFile}`,
            ),
          },
        ];
      for (const { name, env, args = [], line } of cases) {
        const result = seen(
          await runProxy([...args, ...clusterArgs(cluster), "--", python.arrakis, "domains"], {
            env,
          }),
        );
        assert(result.code !== 0, `${name}: the call worked:\n${result.stdout}`);
        const lines = result.stderr.split("\n");
        // The client's error carries the line, with the server's own text after it.
        const client = lines.filter((l) => !l.startsWith("arrakis-proxy:") && line.test(l));
        assert(client.length >= 1, `${name}: not in the client's error:\n${result.stderr}`);
        assertStringIncludes(client[0], "; the server said: ");
        // The proxy logs it once, however many calls were refused.
        const logged = lines.filter((l) =>
          l.startsWith("arrakis-proxy: warning: ") && line.test(l)
        );
        assertEquals(logged.length, 1, `${name}:\n${result.stderr}`);
      }
      // --token-file readable by others: refused at once, one line, nothing connects.
      const refused = seen(
        await runProxy(["--token-file", openFile, ...clusterArgs(cluster)], { env: userEnv() }),
      );
      assertEquals(refused.code, 1);
      assertEquals(
        refused.stderr,
        `arrakis-proxy: --token-file ${openFile}: refused: readable by others (mode 0644), as ssh ` +
          `refuses such a private key; chmod 600 ${openFile}\n`,
      );
    },
  );

  await t.step(
    "a token renewed in its file while the proxy runs is used from then on",
    async () => {
      const file = await issuer.writeToken("renewed", other);
      await using proxy = await startProxy(clusterArgs(cluster), {
        env: userEnv({ BEARER_TOKEN_FILE: file }),
      });
      const env = userEnv({ BEARER_TOKEN_FILE: file });
      const before = await arrakis(proxy.url, env, "domains");
      assert(before.code !== 0, before.stdout);
      assertStringIncludes(before.stderr, "token is for audience https://other, not https://info");
      // As htgettoken renews it: a new file renamed over the old one.
      await issuer.writeToken("renewed.new", good);
      await Deno.rename(`${issuer.dir}/renewed.new`, file);
      await waitFor(
        () => proxy.stderr().includes("token for reads: issuer"),
        15_000,
        "the proxy to pick up the renewed token",
      );
      const after = await arrakis(proxy.url, env, "domains");
      assertEquals(after.code, 0, after.stderr + proxy.stderr());
      outputs.push(proxy.stderr(), proxy.stdout());
    },
  );

  await t.step("--token-file overrides discovery; doctor reports the token", async () => {
    const report = seen(
      await runProxy([
        "doctor",
        "--token-file",
        goodFile,
        "-F",
        cluster.sshConfigPath,
        cluster.sshHost,
      ], {
        env: userEnv({ BEARER_TOKEN: other }),
      }),
    );
    assertMatch(
      report.stdout,
      new RegExp(
        `\\ntoken +ok, [\\d.]+ ms: issuer ${issuer.issuer}, audience ${AUDIENCE}, scope ` +
          `arrakis\\.read:/, 5\\d min left \\(until .+Z\\), from ${goodFile}\\n`,
      ),
    );
    assertMatch(report.stdout, /\nendpoints +ok, .*2 data server\(s\) from the scope-map action/);
    // Its own sample fetch carries the token to the data servers too.
    assertEquals(report.code, 0, report.stdout + report.stderr);
    const none = seen(
      await runProxy(["doctor", "-F", cluster.sshConfigPath, cluster.sshHost], { env: userEnv() }),
    );
    assertEquals(none.code, 1);
    assertMatch(
      none.stdout,
      /\ntoken +FAILED: the server needs a token for reads and none fits: none for audience https:\/\/info \(looked at /,
    );
  });

  await t.step(
    "a background proxy finds the token itself; its record and log never hold it",
    async () => {
      const runtime = await Deno.makeTempDir({ prefix: "arrakis-token-bg-" });
      await Deno.chmod(runtime, 0o700);
      const env = {
        ...userEnv({ BEARER_TOKEN_FILE: goodFile }),
        XDG_RUNTIME_DIR: runtime,
        SHELL: "/bin/sh",
      };
      try {
        const started = seen(
          // A port of its own (clusterArgs): the default one is shared with other test files running.
          await runProxy(["-f", "-v", ...clusterArgs(cluster)], { env }),
        );
        assertEquals(started.code, 0, started.stderr);
        const url = /ARRAKIS_SERVER=(grpc:\/\/[^;\s'"]+)/.exec(started.stdout)?.[1];
        assert(url, started.stdout);
        const domains = await arrakis(url, env, "domains");
        assertEquals(
          [domains.code, domains.stdout.split(/\s+/).filter(Boolean)],
          [0, ["H1", "L1"]],
          domains.stderr,
        );
        const status = seen(await runProxy(["status", "--json"], { env }));
        const [record] = JSON.parse(status.stdout);
        const log = await Deno.readTextFile(record.log);
        assertStringIncludes(log, "token for reads: issuer");
        outputs.push(log, status.stdout);
        for await (const entry of Deno.readDir(`${runtime}/arrakis-proxy`)) {
          if (entry.isFile) {
            outputs.push(
              await Deno.readTextFile(`${runtime}/arrakis-proxy/${entry.name}`),
            );
          }
        }
        // The background process's command line holds its options, never the token.
        outputs.push(await Deno.readTextFile(`/proc/${record.pid}/cmdline`));
      } finally {
        seen(await runProxy(["stop", "--all"], { env }));
        await Deno.remove(runtime, { recursive: true });
      }
    },
  );

  await t.step("no token appears in any output", () => {
    assert(outputs.length > 20);
    for (const token of tokens) {
      const signature = token.split(".")[2];
      for (const output of outputs) {
        assertEquals(output.includes(token), false);
        assertEquals(output.includes(signature), false, "a token's signature was printed");
      }
    }
  });
});

Deno.test("a protected single server, reuse-connection through the proxy: count, find, fetch with default discovery", async () => {
  await using issuer = await startIssuer();
  await using cluster = await startCluster({
    deployment: "real-single",
    auth: { issuer: issuer.issuer, audience: AUDIENCE, env: issuer.env },
  });
  const [good] = await issuer.mint([{ aud: AUDIENCE, sub: "proxy-user" }]);
  const empty = `${issuer.dir}/empty-runtime`;
  await Deno.mkdir(empty, { mode: 0o700 });
  const env = { ...issuer.env, XDG_RUNTIME_DIR: empty, BEARER_TOKEN: good };
  // Every call goes through the proxy's grpc-js server, which adds the token.
  const result = await runProxy(
    [
      "--reuse-through-proxy",
      ...clusterArgs(cluster),
      ...clientCommand("snapshot", ...REAL_CHANNEL_LIST),
    ],
    { env },
  );
  assertEquals(result.code, 0, result.stderr + cluster.real!.log());
  const snapshot = lastJson(result.stdout, result.stderr);
  assertEquals(snapshot.count, REAL_CHANNEL_LIST.length);
  assertEquals(Object.keys(snapshot.fetch as object), [...REAL_CHANNEL_LIST].sort());
  assertStringIncludes(result.stderr, "token for reads: issuer");
  assertStringIncludes(cluster.real!.log(), "authenticated caller: proxy-user");
  for (const output of [result.stdout, result.stderr, cluster.real!.log()]) {
    assertEquals(output.includes(good.split(".")[2]), false);
  }
});
