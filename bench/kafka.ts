/**
 * The Kafka bench: the real `arrakis` client (Python) through real OpenSSH
 * into a namespace holding the `real-kafka` deployment (a KRaft broker,
 * `arrakis-server` with the Kafka backend, the real `arrakis.Publisher`
 * publishing 1 MiB/s), three paths measured alternately in one run:
 *
 * - `forward`: `arrakis-proxy --kafka forward` (its per-broker Kafka listeners);
 * - `flight`: `arrakis-proxy --kafka flight` (the stream relayed by the server);
 * - `tunnel`, the baseline: a plain `ssh -L` to a second broker listener
 *   advertised at that local port, the client told to read Kafka there
 *   (`Client.stream(kafka_url=…)`; its Flight calls go through the flight proxy).
 *
 * Figures: live latency (receipt minus the block's end, when the publisher
 * publishes it) p50/p90, past-data MB/s, what the forward listener adds to a
 * single round trip (`kafka_round_trip.ts`), and the memory of every process
 * of a forward proxy while `memoryBytes` pass through its Kafka listener.
 *
 * Usage: `deno task bench kafka [--quick] [--out FILE] [--venv DIR]` (root).
 *
 * @module
 */
import { resolve } from "node:path";
import { getFreePort } from "../lib/net/free_port.ts";
import { findVenv } from "./python.ts";
import { sshTunnel } from "./ssh_tunnel.ts";
import { treeMemory } from "./children.ts";
import { kafkaRoundTrips, type KafkaRoundTripTimes } from "./kafka_round_trip.ts";
import { alternate, loadLine, median, quantile, summarize, writeResults } from "./stats.ts";
import { pythonJson } from "../tests/fixtures/python.ts";
import { KAFKA_BROKER } from "../tests/fixtures/real_kafka.ts";
import type { Cluster } from "../tests/fixtures/cluster.ts";
import type { KafkaPublisher } from "../tests/fixtures/kafka_publisher.ts";

const MiB = 1 << 20;
const SCRIPT = new URL("./py/kafka_bench.py", import.meta.url).pathname;
/** 8 channels × 16384 Hz × float64 = 1 MiB/s, 256 KiB a quarter-second block. */
const CHANNELS = Array.from({ length: 8 }, (_, i) => ({ name: `K1:TEST-BENCH_${i}`, rate: 16384 }));
const STRIDE_NS = 250_000_000n;
const INFO = "grpc://info:31206";
/** The baseline's broker listener inside the namespace. */
const BASELINE_PORT = 9094;

interface Sizes {
  rounds: number;
  /** Live blocks a run reads, of which the first `skip` are dropped. */
  liveBlocks: number;
  skip: number;
  /** Seconds of past data each MB/s run reads (published before the first round). */
  pastSeconds: number;
  /** Bytes through a fresh forward proxy while its memory is sampled. */
  memoryBytes: number;
}

const FULL: Sizes = {
  rounds: 5,
  liveBlocks: 44,
  skip: 4,
  pastSeconds: 64,
  memoryBytes: 1024 * MiB,
};
const QUICK: Sizes = { rounds: 1, liveBlocks: 4, skip: 1, pastSeconds: 2, memoryBytes: 4 * MiB };

/** What one `py/kafka_bench.py` run answers. */
export interface KafkaRun {
  latencyMs?: number[];
  bytes?: number;
  seconds?: number;
  reads?: number;
}

/**
 * Single round trips through the tunnel and the forward proxy's Kafka listener
 * (named in its stderr), alternated: what the listener adds to each answer.
 */
async function roundTrips(tunnel: string, forwardStderr: string, quick: boolean) {
  const listener = /forwarding (\S+) → \S+ \(Kafka\)/.exec(forwardStderr)?.[1];
  if (!listener) return undefined;
  const rounds = quick ? 20 : 300;
  const fetchBytes = 256 * 1024;
  const times = await kafkaRoundTrips([tunnel, listener], { rounds, fetchBytes });
  const added = (of: (t: KafkaRoundTripTimes) => number[]) =>
    median(of(times[listener]).map((ms, i) => ms - of(times[tunnel])[i]));
  return {
    rounds,
    fetchBytes,
    tunnelFetchMs: median(times[tunnel].fetchMs),
    fetchAddedMs: added((t) => t.fetchMs),
    apiVersionsAddedMs: added((t) => t.apiVersionsMs),
  };
}

/** GPS seconds of a GPS ns time, as the client takes them. */
function seconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

/**
 * The Kafka-backed deployment the bench measures: its cluster (reach the
 * login host with `cluster.sshConfigPath`), the publisher, and the local port
 * the broker's BASELINE listener advertises (the tunnel's, see {@link startKafkaTunnel}).
 */
export interface KafkaDeployment extends AsyncDisposable {
  readonly cluster: Cluster;
  readonly publisher: KafkaPublisher;
  readonly tunnelPort: number;
  /** The channels the publisher publishes (1 MiB/s together). */
  readonly channels: string[];
}

/** Starts the deployment and its publisher; `brokerFullJit` for long runs (slower start). */
export async function startKafkaDeployment(
  { brokerFullJit }: { brokerFullJit: boolean },
): Promise<KafkaDeployment> {
  const { startCluster } = await import("../tests/fixtures/cluster.ts");
  const { startKafkaPublisher } = await import("../tests/fixtures/kafka_publisher.ts");
  await using stack = new AsyncDisposableStack();
  const tunnelPort = getFreePort();
  const cluster = stack.use(
    await startCluster({
      deployment: "real-kafka",
      kafka: {
        channels: CHANNELS,
        strideNs: STRIDE_NS,
        brokerFullJit,
        brokerListeners: [
          { name: "BASELINE", port: BASELINE_PORT, advertised: `127.0.0.1:${tunnelPort}` },
        ],
      },
    }),
  );
  const publisher = stack.use(await startKafkaPublisher(cluster.netns));
  const owned = stack.move();
  return {
    cluster,
    publisher,
    tunnelPort,
    channels: CHANNELS.map((channel) => channel.name),
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
}

/** `arrakis-proxy` arguments for the deployment's info server with `--kafka mode`. */
export function kafkaProxyArgs(mode: "forward" | "flight", sshConfig: string, host: string) {
  return ["-q", "-l", "127.0.0.1:0", "-s", INFO, "--kafka", mode, "-F", sshConfig, host];
}

/** The baseline: `ssh -L` on the very port the BASELINE listener advertises. */
export function startKafkaTunnel(sshConfig: string, host: string, tunnelPort: number) {
  return sshTunnel(sshConfig, host, {
    port: tunnelPort,
    remote: `${KAFKA_BROKER.name}:${BASELINE_PORT}`,
  });
}

/** One run of `py/kafka_bench.py` (see there for `config`). */
export function kafkaClient(
  venv: string,
  channels: string[],
  config: Record<string, unknown>,
): Promise<KafkaRun> {
  return pythonJson<KafkaRun>([SCRIPT, JSON.stringify({ channels, ...config })], {
    python: `${venv}/bin/python`,
  });
}

/** Runs the bench; resolves to its exit code. */
export async function main(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  const option = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  if (Deno.uid() !== 0) {
    console.error("bench kafka: needs root (it creates a network namespace)");
    return 1;
  }
  const out = resolve(option("--out") ?? new URL("./results/kafka.json", import.meta.url).pathname);
  const venv = findVenv(option("--venv"));
  const sizes = quick ? QUICK : FULL;
  const log = (line: string) => console.error(`bench kafka: ${line}`);
  const loadBefore = Deno.loadavg();
  const started = performance.now();
  const { startProxy } = await import("../tests/fixtures/proxy_cli.ts");

  log(`starting the deployment (${quick ? "quick" : "full"})`);
  await using deployment = await startKafkaDeployment({ brokerFullJit: !quick });
  const { cluster, publisher, tunnelPort, channels } = deployment;
  const proxyArgs = (mode: "forward" | "flight") =>
    kafkaProxyArgs(mode, cluster.sshConfigPath, cluster.sshHost);
  // Not quiet: its "forwarding … (Kafka)" line names the listener the round trips go through.
  await using forward = await startProxy(proxyArgs("forward").filter((arg) => arg !== "-q"));
  await using flight = await startProxy(proxyArgs("flight"));
  await using _tunnel = await startKafkaTunnel(cluster.sshConfigPath, cluster.sshHost, tunnelPort);
  const paths: Record<string, { url: string; kafka: string | null }> = {
    tunnel: { url: flight.url, kafka: `127.0.0.1:${tunnelPort}` },
    forward: { url: forward.url, kafka: null },
    flight: { url: flight.url, kafka: null },
  };
  const client = (config: Record<string, unknown>) => kafkaClient(venv, channels, config);

  // Past data: a span published before the first round, well within the retention.
  const first = await publisher.waitForBlocks(1);
  const strides = Math.ceil(sizes.pastSeconds * 4) + 2;
  await publisher.waitForBlocks(strides + 1, (sizes.pastSeconds + 60) * 1000);
  const start = seconds(first + STRIDE_NS);
  const end = start + sizes.pastSeconds;
  log(`past span ${sizes.pastSeconds} s (${sizes.pastSeconds} MiB); ${sizes.rounds} rounds`);

  const p90: Record<string, number[]> = { tunnel: [], forward: [], flight: [] };
  const mbps: Record<string, number[]> = { tunnel: [], forward: [], flight: [] };
  const measure = (name: string) => async () => {
    const run = await client({
      ...paths[name],
      blocks: sizes.liveBlocks,
      skip: sizes.skip,
      start,
      end,
      bytes: 0,
    });
    p90[name].push(quantile(run.latencyMs!, 0.9));
    mbps[name].push(run.bytes! / MiB / run.seconds!);
    log(
      `${name}: live p50 ${median(run.latencyMs!).toFixed(1)} ms, past ${
        mbps[name].at(-1)!.toFixed(1)
      } MB/s`,
    );
    return median(run.latencyMs!);
  };
  const p50 = await alternate(sizes.rounds, {
    tunnel: measure("tunnel"),
    forward: measure("forward"),
    flight: measure("flight"),
  });
  const figures: Record<string, unknown> = {
    liveP50Ms: summarize(p50, "tunnel"),
    liveP90Ms: summarize(p90, "tunnel"),
    pastMBps: summarize(mbps, "tunnel"),
  };
  const roundTrip = await roundTrips(`127.0.0.1:${tunnelPort}`, forward.stderr(), quick);
  if (roundTrip) figures.roundTrip = roundTrip;
  const added = median(p50.forward.map((ms, i) => ms - p50.tunnel[i]));
  const flightAdded = median(p50.flight.map((ms, i) => ms - p50.tunnel[i]));
  figures.forwardAddedP50Ms = added;
  figures.flightAddedP50Ms = flightAdded;

  // Memory: a fresh forward proxy, idle, then while memoryBytes pass through its listener.
  const whole = seconds(publisher.published.at(-1)!);
  let passed: KafkaRun = {};
  {
    await using proxy = await startProxy(proxyArgs("forward"));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const memory = await treeMemory(proxy.child.pid, async () => {
      passed = await client({
        url: proxy.url,
        kafka: null,
        start,
        end: whole,
        bytes: sizes.memoryBytes,
      });
    });
    figures.memory = {
      ...memory,
      passedMiB: passed.bytes! / MiB,
      reads: passed.reads,
      MBps: passed.bytes! / MiB / passed.seconds!,
    };
  }
  const memory = figures.memory as { peakMiB: number; idleMiB: number; passedMiB: number };
  const mbpsRatio = (figures.pastMBps as ReturnType<typeof summarize>).ratio.forward;
  const goals = [
    {
      goal: "forward live p50 added over the tunnel (ms)",
      value: added,
      target: "≤ 1",
      met: added <= 1,
    },
    {
      goal: "forward past-data MB/s, forward/tunnel",
      value: mbpsRatio,
      target: "≥ 0.9",
      met: mbpsRatio >= 0.9,
    },
    {
      goal: `all forward-proxy processes while ${memory.passedMiB.toFixed(0)} MiB passed (MiB)`,
      value: memory.peakMiB,
      target: "≤ 150",
      met: memory.peakMiB <= 150,
    },
  ];
  for (const name of ["liveP50Ms", "liveP90Ms", "pastMBps"]) {
    const figure = figures[name] as ReturnType<typeof summarize>;
    console.log(
      `${name}: ` +
        Object.keys(figure.median).map((path) =>
          `${path} ${figure.median[path].toFixed(2)}` +
          (path === "tunnel" ? "" : ` (×${figure.ratio[path].toFixed(2)})`)
        ).join(", "),
    );
  }
  console.log(`flight live p50 added over the tunnel: ${flightAdded.toFixed(2)} ms`);
  if (roundTrip) {
    console.log(
      `forward adds per round trip (median of paired differences, ${roundTrip.rounds} rounds): ` +
        `Fetch of ${roundTrip.fetchBytes / 1024} KiB ${roundTrip.fetchAddedMs.toFixed(3)} ms ` +
        `(tunnel ${roundTrip.tunnelFetchMs.toFixed(3)} ms), ApiVersions ` +
        `${roundTrip.apiVersionsAddedMs.toFixed(3)} ms`,
    );
  }
  console.log(
    `forward proxy memory, each page once: idle ${memory.idleMiB.toFixed(1)} MiB, peak ${
      memory.peakMiB.toFixed(1)
    } MiB while ${memory.passedMiB.toFixed(0)} MiB passed`,
  );
  for (const g of goals) {
    console.log(`${g.goal}: ${g.value.toFixed(2)} (goal ${g.target}) ${g.met ? "met" : "NOT met"}`);
  }
  const loadAfter = Deno.loadavg();
  console.log(loadLine(loadBefore));
  const report = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    sizes,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadAfter,
    durationS: (performance.now() - started) / 1000,
    figures,
    goals,
  };
  await writeResults(out, report);
  log(`wrote ${out}`);
  return 0;
}
