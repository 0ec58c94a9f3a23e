/**
 * The arrakis-proxy benchmark: the same mock Arrakis backend reached directly
 * and through the proxy, on loopback and over SSH into a private network
 * namespace, each comparison measured alternately in one run.
 *
 * Usage: `deno task bench [--quick] [--out FILE] [--no-ssh]`. Prints a table and
 * writes every figure as JSON (default `bench/results/latest.json`).
 * `--quick` runs tiny sizes so CI can prove the bench still works; its figures
 * mean nothing. The SSH part needs root (it creates a network namespace).
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { dirname, resolve } from "node:path";
import { flightType } from "../lib/flight/proto.ts";
import { LocationMap } from "../lib/flight/locations.ts";
import { LocationRewriter, Shapes } from "../lib/flight/rewrite.ts";
import { peakRssMiB, spawnMock, spawnProxy } from "./children.ts";
import {
  arrakisDescriptor,
  doGet,
  doPut,
  putMessages,
  rawClient,
  ready,
  streamTicket,
  unary,
} from "./flight_raw.ts";
import { compare, type Comparison, median, quantile, timeMs } from "./stats.ts";

const MiB = 1 << 20;

/** How much work each figure does. */
interface Sizes {
  rounds: number;
  latencyCalls: number;
  rateCalls: number;
  concurrency: number;
  getBytes: number;
  putBytes: number;
  endpoints: number;
  rewriteRuns: number;
  rssBytes: number;
  dataServers: number;
  readyRuns: number;
}

const FULL: Sizes = {
  rounds: 5,
  latencyCalls: 300,
  rateCalls: 3000,
  concurrency: 64,
  getBytes: 256 * MiB,
  putBytes: 128 * MiB,
  endpoints: 20_000,
  rewriteRuns: 7,
  rssBytes: 1024 * MiB,
  dataServers: 16,
  readyRuns: 3,
};

const QUICK: Sizes = {
  rounds: 2,
  latencyCalls: 10,
  rateCalls: 128,
  concurrency: 64,
  getBytes: 2 * MiB,
  putBytes: 2 * MiB,
  endpoints: 2_000,
  rewriteRuns: 2,
  rssBytes: 8 * MiB,
  dataServers: 2,
  readyRuns: 1,
};

/** The proxy's options in every run: the defaults, as users get them. */
const PROXY_OPTIONS = {};

/** Figures of one path pair (baseline `a`, proxied `b`). */
type Figures = Record<string, Comparison | number | string>;

const rate = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

/** Latency, call rate, DoGet and DoPut throughput between a baseline and a proxied address. */
async function pathFigures(
  sizes: Sizes,
  baseline: string,
  proxied: string,
  log: (line: string) => void,
): Promise<Figures> {
  const a = rawClient(baseline);
  const b = rawClient(proxied);
  try {
    await Promise.all([ready(a), ready(b)]);
    const count = arrakisDescriptor("Count", { pattern: ".*" });
    // Warm both paths: connections, JIT, the proxy's forwards.
    for (const client of [a, b]) {
      for (let i = 0; i < 20; i++) await unary(client, "GetFlightInfo", count);
      await doGet(client, streamTicket(64 * 1024, 16));
    }
    const figures: Figures = {};

    const latencies = (client: grpc.Client) => async () => {
      const ms: number[] = [];
      for (let i = 0; i < sizes.latencyCalls; i++) {
        ms.push(await timeMs(() => unary(client, "GetFlightInfo", count)));
      }
      return ms;
    };
    const p50: [number, number][] = [];
    const p99: [number, number][] = [];
    for (let round = 0; round < sizes.rounds; round++) {
      const first = round % 2 === 0 ? a : b;
      const second = first === a ? b : a;
      const runs = new Map([[first, await latencies(first)()], [
        second,
        await latencies(second)(),
      ]]);
      p50.push([quantile(runs.get(a)!, 0.5), quantile(runs.get(b)!, 0.5)]);
      p99.push([quantile(runs.get(a)!, 0.99), quantile(runs.get(b)!, 0.99)]);
    }
    figures.getFlightInfoP50Ms = fromPairs(p50);
    figures.getFlightInfoP99Ms = fromPairs(p99);
    log(`GetFlightInfo p50 ${show(figures.getFlightInfoP50Ms)}`);

    const callsPerSecond = (client: grpc.Client) => async () => {
      let next = 0;
      const worker = async () => {
        while (next++ < sizes.rateCalls) await unary(client, "GetFlightInfo", count);
      };
      const ms = await timeMs(() => Promise.all(Array.from({ length: sizes.concurrency }, worker)));
      return sizes.rateCalls / (ms / 1000);
    };
    figures.getFlightInfoCallsPerS = await compare(
      sizes.rounds,
      callsPerSecond(a),
      callsPerSecond(b),
    );
    log(`GetFlightInfo calls/s ${show(figures.getFlightInfoCallsPerS)}`);

    for (const [name, message] of [["doGet1MiBMBps", MiB], ["doGet64KiBMBps", 64 * 1024]]) {
      const ticket = streamTicket(message as number, sizes.getBytes / (message as number));
      const get = (client: grpc.Client) => async () => {
        let bytes = 0;
        const ms = await timeMs(async () => bytes = await doGet(client, ticket));
        return rate(bytes, ms);
      };
      figures[name as string] = await compare(sizes.rounds, get(a), get(b));
      log(`${name} ${show(figures[name as string])}`);
    }

    const upload = putMessages(MiB, sizes.putBytes / MiB);
    const put = (client: grpc.Client) => async () => {
      let bytes = 0;
      const ms = await timeMs(async () => bytes = await doPut(client, upload));
      return rate(bytes, ms);
    };
    figures.doPutMBps = await compare(sizes.rounds, put(a), put(b));
    log(`doPutMBps ${show(figures.doPutMBps)}`);
    return figures;
  } finally {
    a.close();
    b.close();
  }
}

function fromPairs(pairs: [number, number][]): Comparison {
  return {
    a: median(pairs.map(([a]) => a)),
    b: median(pairs.map(([, b]) => b)),
    ratio: median(pairs.map(([a, b]) => b / a)),
    rounds: pairs,
  };
}

/** An encoded FlightInfo with `count` endpoints spread over `servers` advertised names. */
function bigFlightInfo(count: number, servers: string[]): Uint8Array {
  const FlightInfo = flightType("FlightInfo");
  return FlightInfo.encode(FlightInfo.fromObject({
    schema: new Uint8Array(200),
    endpoint: Array.from({ length: count }, (_, i) => ({
      ticket: { ticket: new TextEncoder().encode(`{"request":"Stream","endpoint":${i}}`) },
      location: [{ uri: `grpc://${servers[i % servers.length]}` }],
      app_metadata: new TextEncoder().encode(`{"endpoint":${i}}`),
    })),
    total_records: -1,
    total_bytes: -1,
  })).finish();
}

/** The loopback part: mock backend and proxy in child processes, this process the client. */
async function loopback(sizes: Sizes, log: (line: string) => void): Promise<Figures> {
  const names = Array.from({ length: sizes.dataServers }, (_, i) => `data-${i}`);
  const advertised = names.map((name) => `${name}.cluster:40001`);
  await using mock = await spawnMock({
    data: names.map((name, i) => ({ name, advertise: advertised[i] })),
  });
  const locations: [string, string][] = mock.hello.data.map((server, i) => [
    advertised[i],
    server.address,
  ]);
  const figures: Figures = {};
  {
    await using proxy = await spawnProxy({
      backend: mock.hello.info,
      locations,
      options: PROXY_OPTIONS,
    });
    Object.assign(figures, await pathFigures(sizes, mock.hello.info, proxy.hello.address, log));
  }
  // Each part gets a fresh proxy child: Deno 2.9.6 can abort a bare FlightProxy inside nghttp2
  // when its clients hang up (denoland/deno#36788; the product restarts its proxy process, see
  // lib/isolated_proxy.ts), which must not take the next part's measurements with it.
  {
    await using proxy = await spawnProxy({
      backend: mock.hello.info,
      locations,
      options: PROXY_OPTIONS,
    });
    // A 20,000-endpoint FlightInfo: the rewriter alone, then the whole proxied call.
    const info = bigFlightInfo(sizes.endpoints, advertised);
    const rewriter = new LocationRewriter(new LocationMap(locations));
    const runs: number[] = [];
    for (let i = 0; i < sizes.rewriteRuns; i++) {
      runs.push(await timeMs(() => rewriter.toLocal(info, Shapes.FlightInfo)));
    }
    figures.rewriteToLocalMs = median(runs);
    figures.rewriteToLocalFirstMs = runs[0];
    const raw = arrakisDescriptor("Raw", { base64: Buffer.from(info).toString("base64") });
    const a = rawClient(mock.hello.info);
    const b = rawClient(proxy.hello.address);
    try {
      const call = (client: grpc.Client) => () => timeMs(() => unary(client, "GetFlightInfo", raw));
      figures.bigFlightInfoMs = await compare(sizes.rewriteRuns, call(a), call(b));
    } finally {
      a.close();
      b.close();
    }
    const big = figures.bigFlightInfoMs as Comparison;
    figures.bigFlightInfoAddedMs = median(big.rounds.map(([a, b]) => b - a));
    log(`${sizes.endpoints}-endpoint FlightInfo: toLocal ${fixed(figures.rewriteToLocalMs)} ms`);
  }

  // Peak memory: a fresh proxy, so its high-water mark is this stream's.
  await using fresh = await spawnProxy({
    backend: mock.hello.info,
    locations,
    options: PROXY_OPTIONS,
  });
  figures.proxyIdleRssMiB = peakRssMiB(fresh.pid);
  const client = rawClient(fresh.hello.address);
  try {
    await doGet(client, streamTicket(MiB, sizes.rssBytes / MiB));
  } finally {
    client.close();
  }
  figures.proxyPeakRssMiB = peakRssMiB(fresh.pid);
  figures.rssStreamedMiB = sizes.rssBytes / MiB;
  log(`peak RSS ${fixed(figures.proxyPeakRssMiB)} MiB while streaming ${sizes.rssBytes / MiB} MiB`);
  return figures;
}

/** Starts `ssh -L` to the info server with a session open (so ssh sets TCP_NODELAY). */
async function sshTunnel(
  config: string,
  host: string,
  remote: string,
): Promise<{ address: string } & AsyncDisposable> {
  const { getFreePort } = await import("../lib/ssh/free_port.ts");
  const port = await getFreePort();
  const child = new Deno.Command("ssh", {
    args: [
      "-F",
      config,
      "-T",
      "-o",
      "ExitOnForwardFailure=yes",
      "-L",
      `127.0.0.1:${port}:${remote}`,
      host,
      "cat",
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
  };
  // Ready once the forward accepts connections.
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return { address: `127.0.0.1:${port}`, [Symbol.asyncDispose]: stop };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await stop();
  throw new Error(`ssh -L ${port}:${remote} ${host}: the forward never opened`);
}

/** The SSH part: a namespaced cluster, a hand-made tunnel vs the full arrakis-proxy command. */
async function overSsh(sizes: Sizes, log: (line: string) => void): Promise<Figures> {
  const { startCluster } = await import("../tests/fixtures/cluster.ts");
  const { startProxy } = await import("../tests/fixtures/proxy_cli.ts");
  await using cluster = await startCluster();
  for (let i = cluster.data.length; i < sizes.dataServers; i++) {
    await cluster.addDataServer(`data-${i}`);
  }
  const ssh = ["-F", cluster.sshConfigPath, cluster.sshHost];
  const figures: Figures = {};

  // Ready time against one `ssh HOST true`, alternately.
  const ready = await compare(
    sizes.readyRuns,
    async () => {
      const ms = await timeMs(() =>
        new Deno.Command("ssh", { args: [...ssh, "true"], stdout: "null" }).output()
      );
      return ms;
    },
    async () => {
      const start = performance.now();
      await using _proxy = await startProxy(["-q", "-l", "127.0.0.1:0", ...ssh]);
      return performance.now() - start;
    },
  );
  figures.readyMs = ready;
  figures.readyMarginMs = median(ready.rounds.map(([a, b]) => b - a));
  log(`ready ${fixed(ready.b)} ms vs ssh true ${fixed(ready.a)} ms`);

  await using tunnel = await sshTunnel(
    cluster.sshConfigPath,
    cluster.sshHost,
    `${cluster.info.name}:${cluster.info.port}`,
  );
  await using proxy = await startProxy(["-q", "-l", "127.0.0.1:0", ...ssh]);
  const proxyAddress = proxy.url.replace(/^grpc:\/\//, "");
  Object.assign(figures, await pathFigures(sizes, tunnel.address, proxyAddress, log));
  return figures;
}

function fixed(value: unknown, digits = 1): string {
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

function show(figure: unknown): string {
  const c = figure as Comparison;
  return `${fixed(c.a)} → ${fixed(c.b)} (×${fixed(c.ratio, 2)})`;
}

/** A goal: the figure, the bound, and whether it holds. */
interface Goal {
  goal: string;
  value: number | null;
  target: string;
  met: boolean | null;
}

function goals(results: Record<string, Figures | { skipped: string }>): Goal[] {
  const loop = results.loopback as Figures;
  const ssh = "skipped" in results.ssh ? undefined : results.ssh as Figures;
  const ratio = (f: Figures | undefined, key: string) => f ? (f[key] as Comparison).ratio : null;
  const goal = (
    name: string,
    value: number | null,
    target: string,
    ok: (v: number) => boolean,
  ) => ({
    goal: name,
    value,
    target,
    met: value === null ? null : ok(value),
  });
  const readyLimit = ssh ? (ssh.readyMs as Comparison).a + 500 : null;
  return [
    goal(
      "ssh GetFlightInfo p50 proxy/tunnel",
      ratio(ssh, "getFlightInfoP50Ms"),
      "≤ 1.5",
      (v) => v <= 1.5,
    ),
    goal("ssh DoGet 1 MiB proxy/tunnel", ratio(ssh, "doGet1MiBMBps"), "≥ 0.8", (v) => v >= 0.8),
    goal("ssh DoGet 64 KiB proxy/tunnel", ratio(ssh, "doGet64KiBMBps"), "≥ 0.8", (v) => v >= 0.8),
    goal(
      "loopback DoGet 1 MiB proxy/direct",
      ratio(loop, "doGet1MiBMBps"),
      "≥ 0.7",
      (v) => v >= 0.7,
    ),
    goal(
      "loopback DoGet 64 KiB proxy/direct",
      ratio(loop, "doGet64KiBMBps"),
      "≥ 0.7",
      (v) => v >= 0.7,
    ),
    goal("20,000-endpoint FlightInfo rewritten (ms)", loop.rewriteToLocalMs as number, "< 50", (
      v,
    ) => v < 50),
    goal(
      "ready (ms), 16 data servers",
      ssh ? (ssh.readyMs as Comparison).b : null,
      readyLimit === null ? "≤ ssh true + 500" : `≤ ${readyLimit.toFixed(0)}`,
      (v) => v <= readyLimit!,
    ),
    goal(
      "proxy peak RSS streaming 1 GiB (MiB)",
      loop.proxyPeakRssMiB as number,
      "< 150",
      (v) => v < 150,
    ),
  ];
}

function table(results: Record<string, Figures | { skipped: string }>): string {
  const rows: string[][] = [["path", "figure", "baseline", "proxy", "proxy/baseline"]];
  for (const [part, figures] of Object.entries(results)) {
    if ("skipped" in figures) {
      rows.push([part, `skipped: ${figures.skipped}`, "", "", ""]);
      continue;
    }
    for (const [name, value] of Object.entries(figures)) {
      if (typeof value === "object") {
        rows.push([part, name, fixed(value.a), fixed(value.b), fixed(value.ratio, 2)]);
      } else rows.push([part, name, "", fixed(value), ""]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ")).join("\n");
}

function machine() {
  const cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1];
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    loadAverage: Deno.loadavg(),
  };
}

async function main(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  const outIndex = args.indexOf("--out");
  const out = resolve(
    outIndex >= 0 ? args[outIndex + 1] : new URL("./results/latest.json", import.meta.url).pathname,
  );
  const sizes = quick ? QUICK : FULL;
  const limitMs = quick ? 180_000 : 1_200_000;
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${limitMs / 1000} s; giving up`);
    Deno.exit(2);
  }, limitMs);
  const log = (line: string) => console.error(`bench: ${line}`);
  const started = performance.now();
  const results: Record<string, Figures | { skipped: string }> = {};
  log(`loopback (${quick ? "quick" : "full"})`);
  results.loopback = await loopback(sizes, log);
  if (args.includes("--no-ssh")) results.ssh = { skipped: "--no-ssh" };
  else if (Deno.uid() !== 0) results.ssh = { skipped: "needs root for the network namespace" };
  else {
    log("over ssh");
    results.ssh = await overSsh(sizes, log);
  }
  const report = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    machine: machine(),
    sizes,
    durationS: (performance.now() - started) / 1000,
    ...results,
    goals: goals(results),
  };
  console.log(table(results));
  console.log();
  for (const g of report.goals) {
    const verdict = g.met === null ? "not measured" : g.met ? "met" : "NOT met";
    console.log(`${g.goal}: ${fixed(g.value, 2)} (goal ${g.target}) ${verdict}`);
  }
  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(report, null, 2) + "\n");
  log(`wrote ${out}`);
  clearTimeout(watchdog);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
