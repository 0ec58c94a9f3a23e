/**
 * The arrakis-proxy benchmark. Clients are fast and independent of the proxy:
 * pyarrow's Flight client (C++, the one Arrakis users run) and the real
 * `arrakis` client, in `bench/py/flight_bench.py`. Over SSH into a private
 * network namespace holding a real `arrakis-server`, three paths are measured
 * alternately in one run: a hand-made `ssh -L` tunnel (the baseline), this
 * proxy (the real `main.ts` command) and the seed's own `arrakis.proxy.ssh_proxy`.
 *
 * Usage: `deno task bench [--quick] [--out FILE] [--no-ssh] [--venv DIR]`, or
 * `deno task bench load …` for the load matrix (bench/load.ts), `deno task bench kafka …`
 * for a Kafka-backed deployment (bench/kafka.ts),
 * `deno task bench --link …` for the bench over emulated links (`link.ts`). Prints a
 * table and writes every figure as JSON (default `bench/results/latest.json`).
 * `--quick` runs tiny sizes so CI can prove the bench still works; its figures
 * mean nothing. The SSH part needs root (it creates a network namespace) and a
 * Python venv with arrakis, arrakis-server and pyarrow (`--venv`, else
 * `$ARRAKIS_BENCH_VENV`, else `.venv`).
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { resolve } from "node:path";
import { flightType } from "../lib/flight/proto.ts";
import { LocationMap } from "../lib/flight/locations.ts";
import { LocationRewriter, Shapes } from "../lib/flight/rewrite.ts";
import { spawnMock, spawnProxy, treeMemory } from "./children.ts";
import { arrakisDescriptor, rawClient, ready, unary } from "./flight_raw.ts";
import { sshTunnel } from "./ssh_tunnel.ts";
import {
  benchChannels,
  findVenv,
  flightBench,
  pythonCache,
  sshWrapper,
  startArrakisServer,
  startSeedProxy,
} from "./python.ts";
import {
  alternate,
  compare,
  type Comparison,
  loadLine,
  median,
  type PathFigure,
  summarize,
  timeMs,
  writeResults,
} from "./stats.ts";

const MiB = 1 << 20;

/** How much work each figure does. */
interface Sizes {
  rounds: number;
  /** Sequential GetFlightInfo (Count) calls a path and round; p50/p90 of them. */
  latencyCalls: number;
  /** Seconds of data each "following locations" fetch asks for (1 MiB a second). */
  followSeconds: number;
  /** Seconds of data each `arrakis.Client.fetch` asks for. */
  fetchSeconds: number;
  /** Bytes of each DoGet on the URL (the Deno mock's 1 MiB messages). */
  getBytes: number;
  endpoints: number;
  rewriteRuns: number;
  /** Bytes streamed through a fresh proxy while its memory is sampled. */
  rssBytes: number;
  readyRuns: number;
}

const FULL: Sizes = {
  rounds: 5,
  latencyCalls: 300,
  followSeconds: 256,
  fetchSeconds: 64,
  getBytes: 256 * MiB,
  endpoints: 20_000,
  rewriteRuns: 7,
  rssBytes: 1024 * MiB,
  readyRuns: 5,
};

const QUICK: Sizes = {
  rounds: 2,
  latencyCalls: 10,
  followSeconds: 4,
  fetchSeconds: 2,
  getBytes: 4 * MiB,
  endpoints: 2_000,
  rewriteRuns: 2,
  rssBytes: 8 * MiB,
  readyRuns: 1,
};

/** Channels the real server serves: 8 × 16384 Hz × float64 = 1 MiB per one-second batch. */
const CHANNELS = 8;
/** Where the real server listens inside the namespace. */
const ARRAKIS = { name: "arrakis", host: "127.0.0.31", port: 31300 };

type Figures = Record<string, Comparison | PathFigure | number | string>;

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

/**
 * The loopback part: the location rewriter alone, and a 20,000-endpoint
 * FlightInfo through a bare FlightProxy child from the Deno mock. The client is
 * grpc-js, on both paths; it is not what limits this figure.
 */
async function loopback(sizes: Sizes, log: (line: string) => void): Promise<Figures> {
  const names = Array.from({ length: 16 }, (_, i) => `data-${i}`);
  const advertised = names.map((name) => `${name}.cluster:40001`);
  await using mock = await spawnMock({
    data: names.map((name, i) => ({ name, advertise: advertised[i] })),
  });
  const locations: [string, string][] = mock.hello.data.map((server, i) => [
    advertised[i],
    server.address,
  ]);
  const figures: Figures = {};
  await using proxy = await spawnProxy({ backend: mock.hello.info, locations, options: {} });
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
    await Promise.all([ready(a), ready(b)]);
    const call = (client: grpc.Client) => () => timeMs(() => unary(client, "GetFlightInfo", raw));
    figures.bigFlightInfoMs = await compare(sizes.rewriteRuns, call(a), call(b));
  } finally {
    a.close();
    b.close();
  }
  const big = figures.bigFlightInfoMs as Comparison;
  figures.bigFlightInfoAddedMs = median(big.rounds.map(([a, b]) => b - a));
  log(`${sizes.endpoints}-endpoint FlightInfo: toLocal ${fixed(figures.rewriteToLocalMs)} ms`);
  return figures;
}

/** The ticket the Deno mock answers with `bytes` in 1 MiB batches (one Float64 channel). */
function mockTicket(bytes: number): string {
  // One Float64 channel plus the int64 time column: 16 bytes a row.
  const args = { channels: ["X1:BENCH"], rows_per_batch: MiB / 16, batches: bytes / MiB };
  return JSON.stringify({ request: "Stream", args });
}

/**
 * The SSH part: a namespaced cluster with a real self-serving arrakis-server
 * (and the Deno mock for raw DoGet), reached by tunnel, this proxy and the seed proxy.
 */
async function overSsh(sizes: Sizes, venv: string, log: (line: string) => void): Promise<Figures> {
  const { startCluster } = await import("../tests/fixtures/cluster.ts");
  const { startProxy } = await import("../tests/fixtures/proxy_cli.ts");
  await using cache = await pythonCache();
  const channels = await benchChannels(cache.dir, CHANNELS);
  await using cluster = await startCluster();
  await cluster.netns.addHosts({ [ARRAKIS.name]: ARRAKIS.host });
  await using _server = await startArrakisServer(cluster.netns, venv, cache.dir, {
    host: ARRAKIS.host,
    port: ARRAKIS.port,
    channelsFile: channels.file,
  });
  const server = `grpc://${ARRAKIS.name}:${ARRAKIS.port}`;
  await using wrapper = await sshWrapper(cluster.sshConfigPath);
  const ssh = ["-F", cluster.sshConfigPath, cluster.sshHost];
  const proxyArgs = ["-q", "-l", "127.0.0.1:0", "-s", server, ...ssh];
  const seedEnv = { cacheDir: cache.dir, sshDir: wrapper.dir };
  const figures: Figures = {};

  // Ready time: to the export line / the seed's URL, against one `ssh HOST true`.
  const readyRounds = await alternate(sizes.readyRuns, {
    sshTrue: () =>
      timeMs(() => new Deno.Command("ssh", { args: [...ssh, "true"], stdout: "null" }).output()),
    proxy: async () => {
      const start = performance.now();
      await using _proxy = await startProxy(proxyArgs);
      return performance.now() - start;
    },
    seed: async () => {
      const start = performance.now();
      await using _seed = await startSeedProxy(venv, seedEnv, cluster.sshHost, server);
      return performance.now() - start;
    },
  });
  figures.readyMs = summarize(readyRounds, "sshTrue");
  figures.readyMarginMs = median(readyRounds.proxy.map((ms, i) => ms - readyRounds.sshTrue[i]));
  figures.seedReadyMarginMs = median(readyRounds.seed.map((ms, i) => ms - readyRounds.sshTrue[i]));
  log(
    `ready: proxy +${fixed(figures.readyMarginMs)} ms, seed +${
      fixed(figures.seedReadyMarginMs)
    } ms over ssh true`,
  );

  const stream = { channels: channels.names, start: channels.start };
  {
    await using tunnel = await sshTunnel(
      cluster.sshConfigPath,
      cluster.sshHost,
      `${ARRAKIS.host}:${ARRAKIS.port}`,
    );
    await using proxy = await startProxy(proxyArgs);
    await using seed = await startSeedProxy(venv, seedEnv, cluster.sshHost, server);
    // The Deno mock's synthetic stream: the transport alone, no server-side generation.
    await using mockTunnel = await sshTunnel(
      cluster.sshConfigPath,
      cluster.sshHost,
      `${cluster.info.name}:${cluster.info.port}`,
    );
    await using mockProxy = await startProxy(["-q", "-l", "127.0.0.1:0", ...ssh]);
    const result = await flightBench<{ figures: Record<string, Record<string, number[]>> }>(
      venv,
      {
        mode: "compare",
        paths: { tunnel: tunnel.url, proxy: proxy.url, seed: seed.url },
        mockPaths: { tunnel: mockTunnel.url, proxy: mockProxy.url },
        mockTicket: mockTicket(sizes.getBytes),
        rounds: sizes.rounds,
        latencyCalls: sizes.latencyCalls,
        stream,
        warmSeconds: 2,
        followSeconds: sizes.followSeconds,
        fetchSeconds: sizes.fetchSeconds,
      },
    );
    for (const [name, rounds] of Object.entries(result.figures)) {
      figures[name] = summarize(rounds, "tunnel");
      log(`${name} ${showPaths(figures[name] as PathFigure)}`);
    }
    const p50 = result.figures.getFlightInfoP50Ms;
    figures.getFlightInfoAddedP50Ms = median(p50.proxy.map((ms, i) => ms - p50.tunnel[i]));
    figures.seedGetFlightInfoAddedP50Ms = median(p50.seed.map((ms, i) => ms - p50.tunnel[i]));
  }

  // Memory: fresh proxies, idle, then while rssBytes stream through their URL.
  const streamThrough = (url: string) =>
    flightBench(venv, {
      mode: "stream",
      url,
      stream,
      seconds: Math.min(64, sizes.rssBytes / MiB),
      bytes: sizes.rssBytes,
    });
  {
    await using proxy = await startProxy(proxyArgs);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // settle after start
    const memory = await treeMemory(proxy.child.pid, () => streamThrough(proxy.url));
    figures.proxyIdleMiB = memory.idleMiB;
    figures.proxyPeakMiB = memory.peakMiB;
    figures.proxyIdleRssSumMiB = memory.idleRssSumMiB;
    figures.proxyPeakRssSumMiB = memory.peakRssSumMiB;
    figures.proxyPeakHwmSumMiB = memory.peakHwmSumMiB;
    figures.proxyProcesses = memory.processes;
    figures.proxySshRssMiB = memory.sshIdleMiB;
  }
  {
    // The same stream with the data through the proxy itself (the server serves it,
    // so every endpoint is reuse-connection): the proxy's own data path.
    await using proxy = await startProxy([...proxyArgs, "--reuse-through-proxy"]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const memory = await treeMemory(proxy.child.pid, () => streamThrough(proxy.url));
    figures.proxyThroughIdleMiB = memory.idleMiB;
    figures.proxyThroughPeakMiB = memory.peakMiB;
    figures.proxyThroughPeakRssSumMiB = memory.peakRssSumMiB;
  }
  {
    await using seed = await startSeedProxy(venv, seedEnv, cluster.sshHost, server);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const memory = await treeMemory(seed.pid, () => streamThrough(seed.url));
    figures.seedIdleMiB = memory.idleMiB;
    figures.seedPeakMiB = memory.peakMiB;
    figures.seedIdleRssSumMiB = memory.idleRssSumMiB;
    figures.seedPeakRssSumMiB = memory.peakRssSumMiB;
  }
  figures.rssStreamedMiB = sizes.rssBytes / MiB;
  const pair = (idle: string, peak: string) =>
    `${fixed(figures[idle])}/${fixed(figures[peak])} MiB`;
  log(
    `memory idle/peak, each page once: proxy ${pair("proxyIdleMiB", "proxyPeakMiB")} ` +
      `(data through it: ${pair("proxyThroughIdleMiB", "proxyThroughPeakMiB")}), ` +
      `seed ${pair("seedIdleMiB", "seedPeakMiB")}; as a sum of VmRSS: proxy ` +
      `${pair("proxyIdleRssSumMiB", "proxyPeakRssSumMiB")}, seed ` +
      pair("seedIdleRssSumMiB", "seedPeakRssSumMiB"),
  );
  return figures;
}

function fixed(value: unknown, digits = 1): string {
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

function showPaths(figure: PathFigure): string {
  return Object.keys(figure.median)
    .map((path) =>
      path === figure.baseline
        ? `${path} ${fixed(figure.median[path], 2)}`
        : `${path} ${fixed(figure.median[path], 2)} (×${fixed(figure.ratio[path], 2)})`
    )
    .join(", ");
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
  const ratio = (key: string) => ssh ? (ssh[key] as PathFigure).ratio.proxy : null;
  const number = (key: string) => ssh ? ssh[key] as number : null;
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
  return [
    goal("following locations, proxy/tunnel", ratio("followMBps"), "≥ 0.95", (v) => v >= 0.95),
    goal(
      "DoGet on the proxy's URL (1 MiB), proxy/tunnel",
      ratio("doGet1MiBMBps"),
      "≥ 0.8",
      (v) => v >= 0.8,
    ),
    goal(
      "GetFlightInfo p50 added (ms)",
      number("getFlightInfoAddedP50Ms"),
      "≤ 0.6",
      (v) => v <= 0.6,
    ),
    goal("ready minus ssh HOST true (ms)", number("readyMarginMs"), "≤ 250", (v) => v <= 250),
    goal("all proxy processes idle (MiB)", number("proxyIdleMiB"), "≤ 100", (v) => v <= 100),
    goal(
      "all proxy processes streaming 1 GiB (MiB)",
      number("proxyPeakMiB"),
      "≤ 150",
      (v) => v <= 150,
    ),
    goal(
      "the same, the data through the proxy (--reuse-through-proxy) (MiB)",
      number("proxyThroughPeakMiB"),
      "≤ 150",
      (v) => v <= 150,
    ),
    goal(
      "20,000-endpoint FlightInfo rewritten (ms)",
      loop.rewriteToLocalMs as number,
      "< 50",
      (v) => v < 50,
    ),
  ];
}

function table(results: Record<string, Figures | { skipped: string }>): string {
  const rows: string[][] = [["part", "figure", "tunnel", "proxy", "seed", "proxy/t", "seed/t"]];
  for (const [part, figures] of Object.entries(results)) {
    if ("skipped" in figures) {
      rows.push([part, `skipped: ${figures.skipped}`, "", "", "", "", ""]);
      continue;
    }
    for (const [name, value] of Object.entries(figures)) {
      if (typeof value !== "object") {
        rows.push([part, name, "", fixed(value), "", "", ""]);
      } else if ("median" in value) {
        const base = value.baseline;
        const cell = (path: string) => path in value.median ? fixed(value.median[path], 2) : "";
        const ratio = (path: string) => path in value.ratio ? fixed(value.ratio[path], 2) : "";
        rows.push([
          part,
          base === "tunnel" ? name : `${name} (vs ${base} ${fixed(value.median[base])})`,
          base === "tunnel" ? cell("tunnel") : "",
          cell("proxy"),
          cell("seed"),
          ratio("proxy"),
          ratio("seed"),
        ]);
      } else {
        rows.push([
          part,
          `${name} (direct → proxy)`,
          fixed(value.a),
          fixed(value.b),
          "",
          fixed(value.ratio, 2),
          "",
        ]);
      }
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
  // `deno task bench load …`: the load matrix, a bench of its own (bench/load.ts).
  if (args[0] === "load") return await (await import("./load.ts")).main(args.slice(1));
  if (args[0] === "kafka") return await (await import("./kafka.ts")).main(args.slice(1));
  // Over emulated links: its own run and report (bench/link.ts).
  if (args.includes("--link")) return await (await import("./link.ts")).linkMain(args);
  const quick = args.includes("--quick");
  const option = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const out = resolve(
    option("--out") ?? new URL("./results/latest.json", import.meta.url).pathname,
  );
  const sizes = quick ? QUICK : FULL;
  const limitMs = quick ? 240_000 : 1_800_000;
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${limitMs / 1000} s; giving up`);
    Deno.exit(2);
  }, limitMs);
  const log = (line: string) => console.error(`bench: ${line}`);
  const started = performance.now();
  const loadBefore = Deno.loadavg();
  const results: Record<string, Figures | { skipped: string }> = {};
  log(`loopback (${quick ? "quick" : "full"})`);
  results.loopback = await loopback(sizes, log);
  if (args.includes("--no-ssh")) results.ssh = { skipped: "--no-ssh" };
  else if (Deno.uid() !== 0) results.ssh = { skipped: "needs root for the network namespace" };
  else {
    const venv = findVenv(option("--venv"));
    log(`over ssh (Python clients from ${venv})`);
    results.ssh = await overSsh(sizes, venv, log);
  }
  const report = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    machine: { ...machine(), loadAverageBefore: loadBefore },
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
  console.log(loadLine(loadBefore));
  await writeResults(out, report);
  log(`wrote ${out}`);
  clearTimeout(watchdog);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
