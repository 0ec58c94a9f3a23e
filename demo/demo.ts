/**
 * `deno task demo`: a whole arrakis-proxy run on this machine, nothing to set up.
 *
 * 1. Brings up a private "cluster": a throwaway sshd (the login host) and a mock
 *    Arrakis deployment (an info server and two data servers, real Arrow Flight).
 *    As root they live in a network namespace where the server names resolve
 *    only inside it, so data can only come through the proxy's ssh forwards; as
 *    a normal user, sshd runs unprivileged on loopback.
 * 2. Runs the real `arrakis-proxy` command against it.
 * 3. Fetches data through the proxy with a Flight client and prints a table.
 * 4. Stops everything.
 *
 * `deno task demo --binary PATH` runs a compiled `arrakis-proxy` (scripts/compile.ts)
 * in step 2 instead of `main.ts`: the release workflow does, so the self-spawned
 * proxy child of a compiled binary runs before the binary is published.
 *
 * @module
 */
import { startCluster } from "../tests/fixtures/cluster.ts";
import { startSshd } from "../tests/fixtures/sshd.ts";
import { startMockDeployment } from "../tests/fixtures/mock_arrakis.ts";
import { startProxy } from "../tests/fixtures/proxy_cli.ts";
import { fetchArrakis, summarizeTables } from "../lib/flight/client.ts";

// Overridable only so a test can check the message for a machine without sshd.
const SSHD = Deno.env.get("ARRAKIS_DEMO_SSHD") ?? "/usr/sbin/sshd";
const CHANNELS = ["X1:DEMO-SEISMIC_Z", "X1:DEMO-STRAIN_H", "X1:DEMO-TEMPERATURE"];

/** The login host and the deployment behind it, however they were started. */
interface DemoCluster extends AsyncDisposable {
  sshHost: string;
  sshConfigPath: string;
  description: string;
}

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function namespacedCluster(): Promise<DemoCluster> {
  const cluster = await startCluster();
  return {
    sshHost: cluster.sshHost,
    sshConfigPath: cluster.sshConfigPath,
    description: `network namespace ${cluster.netns.name}: sshd on ${cluster.sshd.host}:22, ` +
      `info:31206, data-a:40001, data-b:40001 (names resolve only inside it)`,
    [Symbol.asyncDispose]: () => cluster[Symbol.asyncDispose](),
  };
}

async function loopbackCluster(): Promise<DemoCluster> {
  await using stack = new AsyncDisposableStack();
  const deployment = stack.use(
    await startMockDeployment({ info: { host: "127.0.0.1" } }),
  );
  const sshd = stack.use(await startSshd({ env: { ARRAKIS_SERVER: deployment.infoUrl } }));
  const owned = stack.move();
  return {
    sshHost: sshd.hostAlias,
    sshConfigPath: sshd.sshConfigPath,
    description: `unprivileged sshd on 127.0.0.1:${sshd.port} (as ${sshd.user}), Arrakis at ` +
      `${deployment.infoUrl} and ${deployment.data.map((server) => server.address).join(", ")}`,
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
    .join("\n");
}

async function main(args: string[]): Promise<number> {
  const binaryAt = args.indexOf("--binary");
  const binary = binaryAt >= 0 ? args[binaryAt + 1] : undefined;
  if (binaryAt >= 0 && !binary) {
    console.error("demo: --binary needs the path of a compiled arrakis-proxy");
    return 2;
  }
  if (!installed(SSHD)) {
    console.error(
      `demo: OpenSSH's server (${SSHD}) is not installed; the demo runs a private one.\n` +
        "  Debian/Ubuntu: sudo apt-get install openssh-server\n" +
        "  Fedora/RHEL:   sudo dnf install openssh-server\n" +
        "(The demo's sshd is its own throwaway instance: the system service is not started.)",
    );
    return 1;
  }
  const root = Deno.uid() === 0;
  console.log(`1. Starting a private cluster (${root ? "as root" : "as a normal user"})…`);
  await using cluster = root ? await namespacedCluster() : await loopbackCluster();
  console.log(`   ${cluster.description}\n`);

  console.log(`2. ${binary ?? "arrakis-proxy"} -F <demo ssh_config> ${cluster.sshHost}`);
  await using proxy = await startProxy([
    "-F",
    cluster.sshConfigPath,
    "-l",
    "localhost:0",
    cluster.sshHost,
  ], { program: binary ? [binary] : undefined });
  for (const line of proxy.stderr().trim().split("\n")) console.log(`   ${line}`);
  console.log(`   stdout: ${await proxy.exportLine}\n`);

  console.log(`3. A Flight client fetches ${CHANNELS.length} channels through ${proxy.url}`);
  const fetched = await fetchArrakis(proxy.url, {
    request: "Stream",
    args: { channels: CHANNELS, start: null, end: null },
  });
  // "forwarding 127.0.0.1:41002 → data-a:40001" lines say which server each forward reaches.
  const remoteOf = new Map(
    [...proxy.stderr().matchAll(/forwarding (\S+) → (\S+)/g)].map((m) => [m[1], m[2]]),
  );
  const via = (location: string) => {
    const local = location.replace(/^grpc(\+unix)?:\/\//, "");
    return remoteOf.has(local) ? `${local} → ${remoteOf.get(local)}` : "(same connection)";
  };
  const rows = [["channel", "via", "rate", "samples", "first", "last"]];
  for (const endpoint of fetched) {
    for (const channel of summarizeTables([endpoint.table]).channels) {
      rows.push([
        channel.name,
        via(endpoint.location),
        channel.rate === undefined ? "?" : `${channel.rate} Hz`,
        String(channel.samples),
        String(channel.first),
        String(channel.last),
      ]);
    }
  }
  const summary = summarizeTables(fetched.map((endpoint) => endpoint.table));
  console.log(table(rows).replace(/^/gm, "   "));
  if (summary.span) {
    console.log(
      `   GPS ${summary.span.start.toFixed(3)} – ${summary.span.end.toFixed(3)}, ` +
        `${summary.rows} rows from ${fetched.length} endpoints\n`,
    );
  }

  console.log("4. Stopping (SIGTERM to arrakis-proxy, then the cluster)");
  const status = await proxy.stop();
  console.log(`   arrakis-proxy exited with ${status.code}`);
  if (summary.channels.length !== CHANNELS.length || status.code !== 0) {
    console.error("demo: FAILED: not every channel came back, or the proxy did not exit cleanly");
    return 1;
  }
  console.log("demo: ok");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
