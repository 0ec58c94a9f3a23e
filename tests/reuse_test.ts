/**
 * Bulk data off the proxy, through the real command with the real client and
 * server: reuse-connection endpoints are redeemed at a forward straight to the
 * info server (the old way, through the proxy, stays behind
 * `--reuse-through-proxy`), and clients on other machines
 * (`--allow-remote-clients`) reach every forward by the address they dialled.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { pythonEnv, pythonJson, requirePython } from "./fixtures/python.ts";
import { arrakisJson } from "../lib/flight/discovery.ts";
import { REAL_CHANNELS } from "./fixtures/real_arrakis.ts";
import {
  lastJson,
  REAL_CHANNEL_LIST,
  REAL_CLIENT,
  snapshotInside,
} from "./fixtures/real_client.ts";

const python = requirePython();
const CALLS = new URL("./fixtures/py/flight_calls.py", import.meta.url).pathname;

function sshArgs(cluster: Cluster, listen = "localhost:0"): string[] {
  return ["-F", cluster.sshConfigPath, "-l", listen, cluster.sshHost];
}

/** The proxy's per-call lines (`-v`) for one RPC. */
const calls = (stderr: string, method: string) =>
  stderr.split("\n").filter((line) => line === `arrakis-proxy: ${method}`).length;

Deno.test("reuse-connection data goes straight to the info server's forward, the same data", async () => {
  await using cluster = await startCluster({ deployment: "real-single" });
  const env = await pythonEnv();
  const direct = await snapshotInside(cluster);
  const run = (extra: string[]) =>
    runProxy(
      ["-v", ...extra, ...sshArgs(cluster), "--", python.python, REAL_CLIENT, "snapshot"]
        .concat(REAL_CHANNEL_LIST),
      { env },
    );
  const straight = await run([]);
  assertEquals(straight.code, 0, straight.stderr);
  const through = await run(["--reuse-through-proxy"]);
  assertEquals(through.code, 0, through.stderr);

  const snapshot = (stdout: string, stderr: string) => ({
    ...lastJson(stdout, stderr),
    server: undefined,
  });
  assertEquals(snapshot(straight.stdout, straight.stderr), { ...direct, server: undefined });
  assertEquals(snapshot(through.stdout, through.stderr), { ...direct, server: undefined });

  // By default: a second forward to the info server, named in the verbose log...
  const reuse = /forwarding (\S+) → info:31206 \(reuse-connection endpoints\)/.exec(
    straight.stderr,
  );
  assert(reuse, straight.stderr);
  assertStringIncludes(
    straight.stderr,
    `location arrow-flight-reuse-connection://? → grpc+unix://${reuse[1]} (the info server)`,
  );
  // ...and no DoGet passes the proxy; with the option every one does.
  assertEquals(calls(straight.stderr, "DoGet"), 0, straight.stderr);
  assert(calls(through.stderr, "DoGet") > 0, through.stderr);
  assertEquals(through.stderr.includes("reuse-connection endpoints"), false);
});

Deno.test("--allow-remote-clients: every forward listens where the proxy does and is named so", async () => {
  await using cluster = await startCluster({ deployment: "real-info" });
  // An address of this machine that is not loopback: the root end of the namespace's link.
  const address = cluster.netns.hostAddress;
  await using proxy = await startProxy([
    "--allow-remote-clients",
    ...sshArgs(cluster, `${address}:0`),
  ]);
  assertMatch(proxy.url, new RegExp(`^grpc://${address.replaceAll(".", "\\.")}:\\d+$`));
  const forwards = [...proxy.stderr().matchAll(/forwarding (\S+):\d+ → /g)].map((m) => m[1]);
  assertEquals(forwards.length, 4, proxy.stderr()); // info, its reuse forward, data-a, data-b
  for (const host of forwards) assertEquals(host, address);

  const stream = arrakisJson({
    request: "Stream",
    args: {
      channels: [REAL_CHANNELS.H1[0], REAL_CHANNELS.L1[0]],
      start: 1_400_000_000_000_000_000n,
      end: 1_400_000_001_000_000_000n,
    },
  });
  // deno-lint-ignore no-explicit-any
  const seen = await pythonJson<any>([CALLS, proxy.url, stream]);
  assertEquals(seen.locations.length, 2);
  for (const [location] of seen.locations) {
    assertMatch(location, new RegExp(`^grpc://${address.replaceAll(".", "\\.")}:\\d+$`));
  }
  assertEquals(seen.data.length, 2);
  for (const fetched of seen.data) assert(fetched.rows > 0, JSON.stringify(fetched));
});
