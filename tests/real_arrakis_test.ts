/**
 * End to end with the real peers: the real `arrakis` Python client (pyarrow,
 * C++ Flight) through the real `arrakis-proxy` command to real `arrakis-server`
 * deployments in a network namespace, over real OpenSSH as a plain account.
 * Needs root and the pinned Python peers (`bash .ci/python-venv`); without
 * them the fixtures fail with the reason.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import {
  clusterArgs,
  forwardTargets,
  proxyCommand,
  runProxy,
  startProxy,
} from "./fixtures/proxy_cli.ts";
import { findProcesses, waitFor } from "./fixtures/processes.ts";
import { pythonEnv, requirePython } from "./fixtures/python.ts";
import { REAL_CHANNELS } from "./fixtures/real_arrakis.ts";
import type { RealDeploymentKind } from "./fixtures/real_arrakis.ts";
import {
  lastJson,
  REAL_CHANNEL_LIST,
  REAL_CLIENT,
  snapshotInside,
} from "./fixtures/real_client.ts";

const python = requirePython();
const CLIENT = REAL_CLIENT;
const CHANNELS = REAL_CHANNEL_LIST;

/** Pids of processes owned by `user` (the login account), from /proc. */
async function processesOf(user: string): Promise<number[]> {
  const id = await new Deno.Command("id", { args: ["-u", user], stdout: "piped" }).output();
  const uid = Number(new TextDecoder().decode(id.stdout).trim());
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) pids.push(Number(entry.name));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

for (const deployment of ["real-info", "real-single"] as RealDeploymentKind[]) {
  Deno.test(`the real client through arrakis-proxy to a real ${deployment} deployment`, async (t) => {
    await using cluster = await startCluster({ deployment });
    assert(cluster.sshd.user !== "root", "the login account is a plain one");
    const env = await pythonEnv();

    await t.step(
      "find, count, describe, fetch: identical to the same calls made inside",
      async () => {
        const direct = await snapshotInside(cluster);
        const result = await runProxy(
          ["-v", ...clusterArgs(cluster), "--", python.python, CLIENT, "snapshot", ...CHANNELS],
          { env },
        );
        assertEquals(result.code, 0, result.stderr + cluster.real?.log());
        const proxied = lastJson(result.stdout, result.stderr);
        assertMatch(String(proxied.server), /^grpc:\/\/localhost:\d+$/);
        assertEquals(direct.server, "grpc://info:31206");
        assertEquals({ ...proxied, server: undefined }, { ...direct, server: undefined });
        // And the data is what the channels define, not empty answers that happen to agree.
        assertEquals(Object.keys(direct.find as object), [...CHANNELS].sort());
        assertEquals(direct.count, CHANNELS.length);
        assertEquals(direct.count_l1, REAL_CHANNELS.L1.length);
        const fetched = direct.fetch as Record<string, { shape: number[]; has_gaps: boolean }>;
        assertEquals(Object.keys(fetched), [...CHANNELS].sort());
        assertEquals(fetched["H1:TEST-SINE"].shape, [2 * 256]);
        assertEquals(fetched["L1:TEST-SQUARED"].shape, [2 * 1024]);
        for (const digest of Object.values(fetched)) assertEquals(digest.has_gaps, false);
        // Only the forwards this deployment needs: the data servers by their in-cluster names.
        assertEquals(
          forwardTargets(result.stderr),
          deployment === "real-info"
            ? ["data-a:40001", "data-b:40001", "info:31206"]
            : ["info:31206"],
        );
      },
    );

    await t.step("a live stream for a few blocks, then stopped: nothing left running", async () => {
      // A copy of the script with a unique path, to find its process by.
      const dir = await Deno.makeTempDir({ prefix: "arrakis-stream-" });
      const script = `${dir}/stream_client.py`;
      await Deno.copyFile(CLIENT, script);
      const channels = [REAL_CHANNELS.H1[0], REAL_CHANNELS.L1[0]];
      const result = await runProxy(
        ["-v", ...clusterArgs(cluster), "--", python.python, script, "stream", "8", ...channels],
        { env },
      );
      assertEquals(result.code, 0, result.stderr + cluster.real?.log());
      const streamed = lastJson(result.stdout, result.stderr) as {
        blocks: { t0: number; channels: string[] }[];
      };
      assertEquals(streamed.blocks.length, 8);
      for (const block of streamed.blocks) assertEquals(block.channels, [...channels].sort());
      // Live: consecutive 1/16 s blocks near now (GPS is ahead of UTC by 18 s).
      const t0s = streamed.blocks.map((b) => b.t0);
      for (let i = 1; i < t0s.length; i++) assertEquals(t0s[i] - t0s[i - 1], 0.0625);
      const gpsNow = Date.now() / 1000 - 315964800 + 18;
      assert(Math.abs(t0s[0] - gpsNow) < 60, `first block at GPS ${t0s[0]}, now ${gpsNow}`);

      const controlPath = /-S (\/\S+\/ctl)/.exec(result.stderr)?.[1];
      assert(controlPath, "the -v output names the control socket");
      assertEquals(findProcesses(controlPath), [], "no ssh process left");
      assertEquals(findProcesses(script), [], "no client process left");
      await Deno.remove(dir, { recursive: true });
      // The login host: no session of the account is left (sshd's listener runs as root).
      await waitFor(
        async () => (await processesOf(cluster.sshd.user)).length === 0,
        10_000,
        `no process of ${cluster.sshd.user} left on the login host`,
      );
    });

    await t.step("the arrakis CLI with the printed export line", async () => {
      await using proxy = await startProxy(clusterArgs(cluster));
      const exportLine = await proxy.exportLine;
      const url = /^export ARRAKIS_SERVER=(\S+)$/.exec(exportLine)![1];
      const arrakis = async (...args: string[]) => {
        const output = await new Deno.Command(python.arrakis, {
          args,
          env: { ...env, ARRAKIS_SERVER: url },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(output.stdout);
        assert(
          output.success,
          `arrakis ${args.join(" ")}:\n${text}\n${new TextDecoder().decode(output.stderr)}`,
        );
        return text;
      };
      assertEquals((await arrakis("count", ".*")).trim(), String(CHANNELS.length));
      const found = await arrakis("find", "L1:.*");
      for (const channel of REAL_CHANNELS.L1) assertStringIncludes(found, channel);
      assertEquals(found.includes("H1:"), false);
      const described = await arrakis("describe", REAL_CHANNELS.H1[2]);
      assertStringIncludes(described, REAL_CHANNELS.H1[2]);
      assertStringIncludes(described, "int32");
      const fetched = await arrakis(
        "fetch",
        REAL_CHANNELS.H1[0],
        REAL_CHANNELS.L1[0],
        "--start",
        "1400000000",
        "--end",
        "1400000001",
      );
      for (const channel of [REAL_CHANNELS.H1[0], REAL_CHANNELS.L1[0]]) {
        assertStringIncludes(fetched, channel);
      }
    });
  });
}

Deno.test("a plain account whose login shell takes 2 s: the run works, progress shows meanwhile", async () => {
  await using cluster = await startCluster({ deployment: "real-info", slowLoginMs: 2000 });
  // The fixture does what it says: a plain account, and every session waits for its shell.
  const started = Date.now();
  const who = await new Deno.Command("ssh", {
    args: ["-F", cluster.sshConfigPath, cluster.sshHost, "id -un"],
    stdout: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(who.stdout).trim(), cluster.sshd.user);
  assert(cluster.sshd.user !== "root");
  assert(Date.now() - started >= 2000, `ssh took only ${Date.now() - started} ms`);

  const direct = await snapshotInside(cluster);
  // Each line as it arrives, with when: what a user watching the terminal sees.
  const argv = proxyCommand([
    ...clusterArgs(cluster),
    "--",
    python.python,
    CLIENT,
    "snapshot",
    ...CHANNELS,
  ]);
  const t0 = Date.now();
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: await pythonEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timed = async (stream: ReadableStream<Uint8Array>) => {
    const lines: { ms: number; text: string }[] = [];
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        lines.push({ ms: Date.now() - t0, text: buffer.slice(0, i) });
        buffer = buffer.slice(i + 1);
      }
    }
    return lines;
  };
  const [stdout, stderr, status] = await Promise.all([
    timed(child.stdout),
    timed(child.stderr),
    child.status,
  ]);
  const stderrText = stderr.map((l) => `${l.ms} ms: ${l.text}`).join("\n");
  assertEquals(status.code, 0, stderrText);
  const result = stdout.at(-1)!;
  const proxied = JSON.parse(result.text);
  assertEquals({ ...proxied, server: undefined }, { ...direct, server: undefined });
  // The login shell's 2 s went by with a progress line already on the screen.
  const first = stderr.find((line) => line.text.includes("connecting to arrakis-test"));
  assert(first, `a progress line on stderr:\n${stderrText}`);
  assert(
    result.ms - first.ms >= 2000,
    `the first progress line came ${result.ms - first.ms} ms before the result:\n${stderrText}`,
  );
  console.log(`slow login: result after ${result.ms} ms; stderr:\n${stderrText}`);
});
