/**
 * The module this project reimplements, side by side with it: the pinned
 * `arrakis` package's own `arrakis.proxy.ssh_proxy` against the same real
 * deployments and the same sshd (a plain account), then the same client calls
 * through it. It gets no `-F`: an `ssh` earlier on PATH adds the test's config.
 * Needs root and the pinned Python peers (`bash .ci/python-venv`).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { startProxy } from "./fixtures/proxy_cli.ts";
import { findProcesses, isAlive, killAll, waitFor } from "./fixtures/processes.ts";
import { pythonEnv, requirePython } from "./fixtures/python.ts";
import { lastJson, REAL_CHANNEL_LIST, snapshotInside } from "./fixtures/real_client.ts";

const python = requirePython();
const SSH_PROXY = new URL("./fixtures/arrakis_ssh_proxy.py", import.meta.url).pathname;

/** A PATH whose `ssh` is OpenSSH with `-F` the cluster's config. */
async function sshOnPath(cluster: Cluster): Promise<Record<string, string>> {
  const bin = await Deno.makeTempDir({ prefix: "arrakis-sshbin-" });
  await Deno.writeTextFile(
    `${bin}/ssh`,
    `#!/bin/sh\nexec /usr/bin/ssh -F ${cluster.sshConfigPath} "$@"\n`,
    { mode: 0o755 },
  );
  return { ...await pythonEnv(), PATH: `${bin}:${Deno.env.get("PATH")}` };
}

/** ssh processes started for this cluster (their command line names its config). */
const sshProcesses = (cluster: Cluster) => findProcesses(cluster.sshConfigPath);

for (const deployment of ["real-info", "real-single"] as const) {
  Deno.test(`arrakis.proxy.ssh_proxy with a real ${deployment} deployment`, async (t) => {
    await using cluster = await startCluster({ deployment });
    const env = await sshOnPath(cluster);
    const { server: _, ...direct } = await snapshotInside(cluster);

    await t.step(
      "the real client's calls through it match the same calls made inside",
      async () => {
        const output = await new Deno.Command(python.python, {
          args: [SSH_PROXY, cluster.sshHost, ...REAL_CHANNEL_LIST],
          env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(120_000),
        }).output();
        const stdout = new TextDecoder().decode(output.stdout);
        const stderr = new TextDecoder().decode(output.stderr);
        assertEquals(output.code, 0, stderr);
        const [up] = stdout.trim().split("\n").map((line) => JSON.parse(line));
        assertMatch(up.url, /^grpc:\/\/localhost:\d+$/);
        const result = lastJson(stdout, stderr) as Record<string, { ok?: unknown; error?: string }>;
        assertEquals(result.snapshot.error, undefined, stderr);
        assertEquals(result.snapshot.ok, direct, "the same answers as inside the namespace");
        assertEquals(result.stream.error, undefined, stderr);
        assertEquals((result.stream.ok as { blocks: unknown[] }).blocks.length, 4);
        // What it forwarded: every scope-map entry, once, at start — never on demand.
        const map = /proxy_map: (\{.*\})/.exec(stderr)?.[1];
        assert(map, `its debug log names its forwards:\n${stderr}`);
        const remotes = Object.keys(JSON.parse(map.replaceAll("'", '"'))).sort();
        assertEquals(
          remotes,
          deployment === "real-info"
            ? ["data-a:40001", "data-b:40001", "info:31206"]
            // The reuse-connection entry comes back from Client.endpoints() as the
            // URL the client used (its own forward), and gets forwarded again as a
            // remote `localhost:PORT`: a pointless forward on the login host.
            : ["info:31206", remotes.find((r) => r.startsWith("localhost:"))!],
        );
        await waitFor(() => sshProcesses(cluster).length === 0, 10_000, "its ssh master to exit");
      },
    );
  });
}

Deno.test("killed with SIGKILL, ssh_proxy's ssh master outlives arrakis-proxy's", async () => {
  await using cluster = await startCluster({ deployment: "real-info" });
  const env = await sshOnPath(cluster);

  await using ours = await startProxy(
    ["-v", "-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost],
  );
  const controlPath = /-S (\/\S+\/ctl)/.exec(ours.stderr())?.[1];
  assert(controlPath, "the -v output names our control socket");
  const theirs = new Deno.Command(python.python, {
    args: [SSH_PROXY, cluster.sshHost, "hold", REAL_CHANNEL_LIST[0]],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = theirs.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (out.split("\n").length < 3) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  assertEquals(out.split("\n").length, 3, `two JSON lines from ssh_proxy: ${out}`);
  const theirMasters = () =>
    sshProcesses(cluster).filter((pid) => !findProcesses(controlPath).includes(pid));
  assert(findProcesses(controlPath).length > 0, "our ssh master runs");
  assert(theirMasters().length > 0, "their ssh master runs");

  theirs.kill("SIGKILL");
  await ours.stop("SIGKILL");
  await theirs.status;
  reader.releaseLock();
  await theirs.stdout.cancel().catch(() => undefined);
  // Ours: the keep-alive session ends with its owner, then ControlPersist=30 runs out.
  const ms = await waitFor(
    () => findProcesses(controlPath).length === 0,
    45_000,
    "our ssh master to stop after its owner was killed",
  );
  // Theirs: ControlPersist=yes, and nothing ties the master to its owner.
  const left = theirMasters();
  try {
    assert(left.length > 0, `their ssh master is still running ${ms} ms after ours stopped`);
  } finally {
    killAll(left, "SIGTERM");
    await waitFor(() => left.every((pid) => !isAlive(pid)), 5000, "their master to stop");
  }
  console.log(`our master stopped ${ms} ms after the SIGKILL; theirs was still running`);
});
