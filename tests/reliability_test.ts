/**
 * The real `arrakis-proxy` command against the namespace cluster when things
 * go wrong: the SSH connection drops (sshd killed, or the network silently
 * vanishing), servers crash, the proxy is stopped by a signal or killed.
 * Needs root; run with `deno test -A tests/reliability_test.ts`.
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";
import { descendants, findProcesses, isAlive, killAll, waitFor } from "./fixtures/processes.ts";
import { type ProxyProcess, startProxy } from "./fixtures/proxy_cli.ts";

const COUNT_ALL = arrakisCommand("Count", { pattern: ".*" });

/** Runs the CLI verbosely (to learn its control paths) on a free loopback port. */
function startCli(cluster: Cluster, extra: string[] = []) {
  return startProxy([
    "-v",
    "-l",
    "127.0.0.1:0",
    "-F",
    cluster.sshConfigPath,
    ...extra,
    cluster.sshHost,
  ]);
}

/** Every ssh control path (`-S DIR/ctl`) the proxy has used so far, from its -v output. */
function controlPaths(proxy: ProxyProcess): string[] {
  return [...new Set([...proxy.stderr().matchAll(/ -S (\/\S+\/ctl) /g)].map((m) => m[1]))];
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A GetFlightInfo with a fresh channel; resolves to the status code and details. */
async function tryCount(url: string, timeout = 2000): Promise<{ code: number; details: string }> {
  using client = FlightTestClient.connect(url);
  try {
    await client.getFlightInfo(COUNT_ALL, { timeout });
    return { code: grpc.status.OK, details: "" };
  } catch (error) {
    const { code, details } = error as grpc.ServiceError;
    return { code, details };
  }
}

/** Location URIs of a Count through the proxy: data-a's forward, then data-b's. */
async function countLocations(url: string): Promise<string[]> {
  using client = FlightTestClient.connect(url);
  const info = await client.getFlightInfo(COUNT_ALL, { timeout: 5000 });
  return client.locations(info).flat();
}

/** Rows of a small DoGet at a location (a rewritten data server forward). */
async function doGetRows(location: string, timeout = 5000): Promise<number> {
  using client = FlightTestClient.connect(location);
  const ticket = new TextEncoder().encode(JSON.stringify({ request: "Stream", args: {} }));
  const { table } = await client.doGet(ticket, { timeout });
  return table.numRows;
}

/** sshd again, with the cluster's config, after `cluster.sshd.kill()`. */
async function restartSshd(cluster: Cluster): Promise<AsyncDisposable> {
  const dir = cluster.sshd.dir;
  const child = cluster.netns.spawn(
    ["/usr/sbin/sshd", "-D", "-E", `${dir}/sshd-restarted.log`, "-f", `${dir}/sshd_config`],
    { stdin: "null", stdout: "null", stderr: "null" },
  );
  await waitFor(
    async () => {
      try {
        (await Deno.connect({ hostname: cluster.sshd.host, port: cluster.sshd.port })).close();
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    "the restarted sshd",
  );
  return {
    async [Symbol.asyncDispose]() {
      const pids = [child.pid, ...descendants(child.pid)];
      killAll(pids, "SIGTERM");
      await child.status;
    },
  };
}

/** The namespace's end of the veth pair: taking it down makes the login host vanish silently. */
async function nsLink(cluster: Cluster): Promise<string> {
  const { stdout } = await cluster.netns.exec(["ip", "-o", "link", "show"]);
  const name = /^\d+: (an[^@:]+)/m.exec(stdout)?.[1];
  if (!name) throw new Error(`no veth in the namespace:\n${stdout}`);
  return name;
}

async function setLink(cluster: Cluster, link: string, state: "up" | "down"): Promise<void> {
  const result = await cluster.netns.exec(["ip", "link", "set", "dev", link, state]);
  if (result.code !== 0) throw new Error(`ip link set ${link} ${state}: ${result.stderr}`);
}

/** Polls until calls through the proxy fail with the reconnecting message; returns ms taken. */
function waitForReconnecting(url: string, ms: number): Promise<number> {
  return waitFor(
    async () => {
      const { code, details } = await tryCount(url, 500);
      return code === grpc.status.UNAVAILABLE && /lost, reconnecting/.test(details);
    },
    ms,
    "calls to fail with 'lost, reconnecting'",
  );
}

Deno.test("sshd restart: UNAVAILABLE while down, then the same forwards work again", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const before = await countLocations(proxy.url);
  assertEquals(before.length, 2);
  assertEquals(await doGetRows(before[0]), 32);

  await cluster.sshd.kill();
  const noticed = await waitForReconnecting(proxy.url, 5000);
  console.log(`sshd killed: proxy answers UNAVAILABLE after ${noticed} ms`);
  // Failing fast: the answer comes at once, not after a timeout.
  const start = Date.now();
  const down = await tryCount(proxy.url, 10_000);
  assertEquals(down, {
    code: grpc.status.UNAVAILABLE,
    details: `SSH connection to ${cluster.sshHost} lost, reconnecting`,
  });
  assert(Date.now() - start < 1000, `took ${Date.now() - start} ms`);

  await using _sshd = await restartSshd(cluster);
  const recovered = await waitFor(
    async () => (await tryCount(proxy.url)).code === grpc.status.OK,
    30_000,
    "the proxy to work again",
  );
  console.log(`sshd back: proxy works again after ${recovered} ms`);
  // Same local ports: the URIs handed out before the drop still work.
  assertEquals(await countLocations(proxy.url), before);
  for (const location of before) assertEquals(await doGetRows(location), 32);
  assertStringIncludes(proxy.stderr(), "reconnected to");
  assert(isAlive(proxy.child.pid), "the proxy keeps running through the drop");

  // Only the new master and its keepalive session remain; the old control directory is gone.
  const paths = controlPaths(proxy);
  assertEquals(paths.length, 2, paths.join(", "));
  assertEquals(await exists(paths[0].replace(/\/ctl$/, "")), false);
  assertEquals(findProcesses(paths[0]), []);
  const status = await proxy.stop("SIGTERM");
  assertEquals(status.code, 0);
  assertEquals(findProcesses(paths[1]), []);
  assertEquals(await exists(paths[1].replace(/\/ctl$/, "")), false);
});

Deno.test("a login host that silently vanishes is noticed within 5 s", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const before = await countLocations(proxy.url);
  const link = await nsLink(cluster);
  await setLink(cluster, link, "down");
  let noticed: number;
  try {
    noticed = await waitForReconnecting(proxy.url, 5000);
  } finally {
    await setLink(cluster, link, "up");
  }
  console.log(`network gone: proxy answers UNAVAILABLE after ${noticed} ms`);
  const recovered = await waitFor(
    async () => (await tryCount(proxy.url)).code === grpc.status.OK,
    30_000,
    "the proxy to work again",
  );
  console.log(`network back: proxy works again after ${recovered} ms`);
  assertEquals(await countLocations(proxy.url), before);
  assertEquals(await doGetRows(before[1]), 32);
});

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.test(`${signal}: exit 0 within 5 s, no ssh process, no socket, no temp dir`, async () => {
    await using cluster = await startCluster();
    await using proxy = await startCli(cluster);
    const [path] = controlPaths(proxy);
    assert(path, proxy.stderr());
    assert(findProcesses(path).length >= 2, "master and keepalive session run");
    assert(await exists(path));
    const start = Date.now();
    const status = await proxy.stop(signal);
    const took = Date.now() - start;
    console.log(`${signal}: exited with ${status.code} after ${took} ms`);
    assertEquals(status.code, 0);
    assert(took < 5000, `took ${took} ms`);
    assertEquals(findProcesses(path), []);
    assertEquals(await exists(path), false);
    assertEquals(await exists(path.replace(/\/ctl$/, "")), false);
  });
}

Deno.test("SIGKILL: the ssh master does not outlive the proxy by more than 60 s", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const [path] = controlPaths(proxy);
  const pids = findProcesses(path);
  assert(pids.length >= 2, "master and keepalive session run");
  try {
    await proxy.stop("SIGKILL");
    const took = await waitFor(() => pids.every((pid) => !isAlive(pid)), 60_000, "ssh to exit");
    console.log(`SIGKILL: ssh master gone ${took} ms after the proxy`);
  } finally {
    killAll(findProcesses(path), "SIGKILL");
    await Deno.remove(path.replace(/\/ctl$/, ""), { recursive: true }).catch(() => undefined);
  }
});

Deno.test("forwards are Unix sockets in a private directory, no TCP port; the control directory is private", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const [path] = controlPaths(proxy);
  assertEquals((await Deno.stat(path.replace(/\/ctl$/, ""))).mode! & 0o777, 0o700);
  const master = findProcesses(path).find((pid) =>
    Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").includes("-M")
  );
  assert(master !== undefined, "the master is found by its control path");
  // No other user could connect to a TCP forward's port: the master listens on none.
  assertEquals(listeningAddresses(master), []);
  // The info server (twice: its reuse-connection forward) and both data servers.
  const sockets = [...proxy.stderr().matchAll(/forwarding (\/\S+) → /g)].map((m) => m[1]);
  assertEquals(new Set(sockets).size, 4, proxy.stderr());
  for (const socket of sockets) {
    const stat = await Deno.stat(socket);
    assert(stat.isSocket, socket);
    assertEquals((await Deno.stat(socket.replace(/\/[^/]+$/, ""))).mode! & 0o777, 0o700);
  }
});

/** Listening TCP addresses (`ip:port`) whose sockets `pid` holds, from /proc/net/tcp{,6}. */
function listeningAddresses(pid: number): string[] {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const found: string[] = [];
  for (const file of ["tcp", "tcp6"]) {
    const lines = Deno.readTextFileSync(`/proc/${pid}/net/${file}`).trim().split("\n").slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      const [local, , state] = [fields[1], fields[2], fields[3]];
      if (state !== "0A" || !inodes.has(fields[9])) continue; // 0A: LISTEN
      const [hex, port] = local.split(":");
      const ip = file === "tcp"
        ? hex.match(/../g)!.reverse().map((byte) => parseInt(byte, 16)).join(".")
        : `[${hex}]`;
      found.push(`${ip}:${parseInt(port, 16)}`);
    }
  }
  return found;
}

Deno.test("info server down: UNAVAILABLE within 5 s, back by itself", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  assertEquals((await tryCount(proxy.url)).code, grpc.status.OK);
  await cluster.stopArrakis();
  const start = Date.now();
  const down = await tryCount(proxy.url, 30_000);
  const took = Date.now() - start;
  console.log(`info server down: ${grpc.status[down.code]} after ${took} ms (${down.details})`);
  assertEquals(down.code, grpc.status.UNAVAILABLE);
  assert(took < 5000, `took ${took} ms`);
  await cluster.startArrakis();
  const recovered = await waitFor(
    async () => (await tryCount(proxy.url)).code === grpc.status.OK,
    10_000,
    "the proxy to reach the info server again",
  );
  console.log(`info server back: proxy works again after ${recovered} ms`);
});

Deno.test("data server down: UNAVAILABLE within 5 s, back by itself", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const locations = await countLocations(proxy.url);
  assertEquals(await doGetRows(locations[0]), 32);
  await cluster.stopDataServer("data-a");
  using client = FlightTestClient.connect(locations[0]);
  const ticket = new TextEncoder().encode(JSON.stringify({ request: "Stream", args: {} }));
  const start = Date.now();
  const error = await client.doGet(ticket, { timeout: 30_000 }).then(
    () => undefined,
    (error: grpc.ServiceError) => error,
  );
  const took = Date.now() - start;
  console.log(`data server down: ${error && grpc.status[error.code]} after ${took} ms`);
  assertEquals(error?.code, grpc.status.UNAVAILABLE);
  assert(took < 5000, `took ${took} ms`);
  await cluster.startDataServer("data-a");
  const recovered = await waitFor(
    () => doGetRows(locations[0]).then(() => true, () => false),
    10_000,
    "data-a to answer again through the same forward",
  );
  console.log(`data server back: DoGet works again after ${recovered} ms`);
});

/** Starts a big DoGet, waits for its first message, runs `crash`, and returns how the call ended. */
async function crashDuringDoGet(url: string, crash: () => Promise<void>) {
  using client = FlightTestClient.connect(url);
  const ticket = new TextEncoder().encode(JSON.stringify({
    request: "Stream",
    args: { channels: ["X1:BIG"], rows_per_batch: 65_536, batches: 10_000 },
  }));
  const call = client.client.makeServerStreamRequest(
    "/arrow.flight.protocol.FlightService/DoGet",
    (bytes: Buffer) => bytes,
    (bytes: Buffer) => bytes,
    Buffer.from(encodeTicket(ticket)),
  );
  let messages = 0;
  const first = new Promise<void>((resolve) => call.once("data", () => resolve()));
  call.on("data", () => messages++);
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  await first;
  await crash();
  const start = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    ended,
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 20_000)),
  ]);
  clearTimeout(timer);
  call.cancel();
  return { status, messages, took: Date.now() - start };
}

/** A `Ticket` message: field 1, the bytes. */
function encodeTicket(ticket: Uint8Array): Uint8Array {
  const length: number[] = [];
  for (let n = ticket.length; n >= 0x80; n >>>= 7) length.push((n & 0x7f) | 0x80);
  length.push(ticket.length >>> (7 * length.length));
  return new Uint8Array([0x0a, ...length, ...ticket]);
}

Deno.test("a server killed in the middle of a DoGet: the client gets an error, not a hang", async () => {
  await using cluster = await startCluster();
  await using proxy = await startCli(cluster);
  const [dataA] = await countLocations(proxy.url);

  const direct = await crashDuringDoGet(dataA, () => cluster.stopDataServer("data-a"));
  console.log(
    `data server killed mid-DoGet: ${direct.status && grpc.status[direct.status.code]} ` +
      `after ${direct.took} ms (${direct.messages} messages received)`,
  );
  assert(direct.status !== undefined, "the DoGet hung");
  assert(direct.status.code !== grpc.status.OK, "a cut stream must not look complete");

  // Through the proxy (the reuse-connection kind of endpoint), the info server crashing.
  const proxied = await crashDuringDoGet(proxy.url, () => cluster.stopArrakis());
  console.log(
    `info server killed mid-DoGet through the proxy: ${
      proxied.status && grpc.status[proxied.status.code]
    } after ${proxied.took} ms (${proxied.messages} messages received)`,
  );
  assert(proxied.status !== undefined, "the DoGet through the proxy hung");
  assert(proxied.status.code !== grpc.status.OK, "a cut stream must not look complete");
});
