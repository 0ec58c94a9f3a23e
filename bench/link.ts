/**
 * The bench over emulated links (`deno task bench --link`): the namespaced
 * cluster reached through `py/link_relay.py` as ssh's ProxyCommand, which holds
 * each direction of the one SSH connection for half a round trip (and can cap
 * its rate), so everything any path carries crosses the emulated link.
 *
 * For each link: the link itself (`ssh HOST true`, a ping through an SSH
 * session), ready time of every path against `ssh HOST true`, the same with 1,
 * 10 and 50 data servers in the server's scope map, and — the paths measured
 * alternately by `py/flight_bench.py` — `arrakis.Client.fetch` MB/s and
 * GetFlightInfo p50; then how many streams in parallel get out of the one SSH
 * connection, and the proxy's start-up steps with their times.
 *
 * A path is one entry of {@link LINK_PATHS}: add one there to measure it too.
 * Two deployments besides the plain one, started only when a chosen path needs
 * them: one that checks SciTokens (an info server routing to one data server,
 * both `arrakis-server --auth full`, trusting an offline test issuer), where the
 * proxy adds the user's token against a tunnel whose client sends its own; and
 * the Kafka-backed one of `kafka.ts`, whose live-stream latency is measured
 * over the link (tunnel to the broker, `--kafka forward`, `--kafka flight`).
 *
 * Usage: `deno task bench --link [--rtt 10,80] [--cap none|only] [--paths a,b] [--quick]
 * [--ready-only] [--runs N] [--data-servers 1,10,50] [--out FILE] [--venv DIR]`.
 * `--paths` measures only those (and their baselines), without the parallel-streams
 * and start-up-steps figures.
 *
 * @module
 */
import { resolve } from "node:path";
import { readLines } from "../lib/lines.ts";
import { sendSignal, stopChild } from "../lib/process.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { proxyCommand, startProxy } from "../tests/fixtures/proxy_cli.ts";
import { startIssuer } from "../tests/fixtures/scitokens.ts";
import type { Netns } from "../tests/fixtures/netns.ts";
import {
  type BenchArrakisServer,
  benchChannels,
  findVenv,
  flightBench,
  pythonCache,
  sshWrapper,
  startArrakisServer,
  startSeedProxy,
} from "./python.ts";
import { sshTunnel } from "./ssh_tunnel.ts";
import { kafkaClient, kafkaProxyArgs, startKafkaDeployment, startKafkaTunnel } from "./kafka.ts";
import {
  alternate,
  loadLine,
  median,
  type PathFigure,
  quantile,
  summarize,
  writeResults,
} from "./stats.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;

/** One emulated link: its round trip and, optionally, a rate cap each way. */
export interface Link {
  rttMs: number;
  rateMbit?: number;
}

/** Below this round trip there is no relay at all (the namespace's own ~0.1 ms). */
const NO_DELAY_MS = 0.1;

/** Round trips 0.1 (none), 10, 30, 80 ms, each uncapped and capped at 1 Gbit/s. */
export const LINKS: readonly Link[] = [NO_DELAY_MS, 10, 30, 80]
  .flatMap((rttMs) => [{ rttMs }, { rttMs, rateMbit: 1000 }]);

/** "80 ms, 1 Gbit/s". */
export function linkName(link: Link): string {
  return `${link.rttMs} ms, ${link.rateMbit ? `${link.rateMbit / 1000} Gbit/s` : "uncapped"}`;
}

/** How much work each link's figures do. */
export interface LinkSizes {
  rounds: number;
  /** Sequential GetFlightInfo (Count) calls per path and round. */
  latencyCalls: number;
  /** Seconds of data (1 MiB each) of every `arrakis.Client.fetch`. */
  fetchSeconds: number;
  readyRuns: number;
  /** Scope-map sizes the ready time is measured with. */
  dataServers: number[];
  /** Seconds of data (1 MiB each) of each parallel-streams figure. */
  parallelSeconds: number;
  pings: number;
  /** Live blocks (a quarter second each) of every Kafka latency run, the first `kafkaSkip` dropped. */
  kafkaBlocks: number;
  kafkaSkip: number;
  /** The Kafka broker's JVM fully compiled (a slower start; for figures that mean something). */
  kafkaBrokerFullJit: boolean;
  /**
   * Start the Kafka deployment while the first link's other figures run (their
   * load then disturbs them: for CI, whose figures mean nothing), not before.
   */
  overlapStarts: boolean;
  /**
   * Only the ready figures, a new client's first call and the start-up steps
   * (`--ready-only`): before and after a start-up change.
   */
  readyOnly?: boolean;
}

/** The full run. */
export const LINK_FULL: LinkSizes = {
  rounds: 3,
  latencyCalls: 30,
  fetchSeconds: 64,
  readyRuns: 3,
  dataServers: [1, 10, 50],
  parallelSeconds: 32,
  pings: 20,
  kafkaBlocks: 44,
  kafkaSkip: 4,
  kafkaBrokerFullJit: true,
  overlapStarts: false,
};

/** Tiny sizes that only prove the bench works (CI); its figures mean nothing. */
export const LINK_QUICK: LinkSizes = {
  rounds: 1,
  latencyCalls: 2,
  fetchSeconds: 2,
  readyRuns: 1,
  dataServers: [1, 10],
  parallelSeconds: 2,
  pings: 2,
  kafkaBlocks: 4,
  kafkaSkip: 1,
  kafkaBrokerFullJit: false,
  overlapStarts: true,
};

/** What a path needs to start over one link. */
export interface LinkContext {
  /** ssh_config whose {@link host} reaches the login host over the link. */
  sshConfig: string;
  host: string;
  venv: string;
  /** `XDG_CACHE_HOME` for Python processes (gpstime's leap-second table). */
  cacheDir: string;
  /** A directory holding an `ssh` that uses {@link sshConfig}, for programs that run plain ssh. */
  sshDir: string;
  /** The token-checking deployment, when a chosen path needs it. */
  token?: TokenDeployment;
  /** The Kafka-backed deployment over the same link, once it is up, when a chosen path needs it. */
  kafka?: Promise<KafkaLinkDeployment>;
}

/** The deployment that checks SciTokens, as the login host names it. */
export interface TokenDeployment {
  /** Its info server (`grpc://…`), whose scope map routes every channel to {@link data}. */
  info: string;
  /** Its data server (`host:port`): serves the channels itself, so a tunnel to it suffices. */
  data: string;
  /** The user's token, which the proxy adds (`--token-file`). */
  proxyTokenFile: string;
  /** Another subject's token, which the tunnel's client sends itself. */
  clientTokenFile: string;
}

/** The Kafka-backed deployment (`kafka.ts`) reached over the link. */
export interface KafkaLinkDeployment {
  sshConfig: string;
  host: string;
  /** The local port its broker's BASELINE listener advertises (the tunnel's). */
  tunnelPort: number;
  channels: string[];
}

/**
 * Figures a path takes part in: data (fetch, GetFlightInfo), ready, ready with N
 * data servers, Kafka live-stream latency.
 */
export type LinkFigure = "data" | "ready" | "dataServers" | "kafkaLive";

/** What a started path offers: a Flight URL and, for a Kafka tunnel, the broker to read. */
export type StartedPath = { url: string; kafka?: string } & AsyncDisposable;

/** A way to reach the server over the link. */
export interface LinkPath {
  figures: readonly LinkFigure[];
  /** The deployment it reaches, when not the plain one (started only when needed). */
  needs?: "token" | "kafka";
  /** The path its ratios are against. @default {"tunnel"} */
  baseline?: string;
  /**
   * A token-checking path's client: sends its own token (`explicit`) or none,
   * looking for none (`none`), so only what the path adds reaches the server.
   */
  clientToken?: "explicit" | "none";
  /** Starts it for `server` (as the login host sees it); resolves once clients can use `url`. */
  start(context: LinkContext, server: string): Promise<StartedPath>;
}

const proxyArgs = (context: LinkContext, more: string[]) => [
  "-q",
  "-l",
  "127.0.0.1:0",
  ...more,
  "-F",
  context.sshConfig,
  context.host,
];

function needed<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`bench: no ${what} deployment was started`);
  return value;
}

/** A Kafka path: `arrakis-proxy --kafka mode`, its own Kafka listeners or the server's relay. */
const kafkaProxy = (mode: "forward" | "flight") => async (context: LinkContext) => {
  const kafka = await needed(context.kafka, "Kafka");
  return await startProxy(kafkaProxyArgs(mode, kafka.sshConfig, kafka.host));
};

/** Every path measured, in the order of the tables; the first is the baseline. */
export const LINK_PATHS: Record<string, LinkPath> = {
  tunnel: {
    figures: ["data"],
    start: (context, server) =>
      sshTunnel(context.sshConfig, context.host, server.replace(/^grpc:\/\//, "")),
  },
  proxy: {
    figures: ["data", "ready", "dataServers"],
    start: (context, server) => startProxy(proxyArgs(context, ["-s", server])),
  },
  /** The proxy as most users run it: the server from the remote `$ARRAKIS_SERVER`. */
  proxyRemoteEnv: {
    figures: ["ready"],
    start: (context) => startProxy(proxyArgs(context, [])),
  },
  seed: {
    figures: ["data", "ready", "dataServers"],
    start: (context, server) => startSeedProxy(context.venv, context, context.host, server),
  },
  /** `ssh -L` to the token-checking data server, the client sending its own token. */
  tokenTunnel: {
    figures: ["data"],
    needs: "token",
    clientToken: "explicit",
    start: (context) =>
      sshTunnel(context.sshConfig, context.host, needed(context.token, "token").data),
  },
  /** The proxy adding the user's token: data-server forwards through its header relays. */
  tokenProxy: {
    figures: ["data", "ready"],
    needs: "token",
    baseline: "tokenTunnel",
    clientToken: "none",
    start: (context) => {
      const token = needed(context.token, "token");
      return startProxy(
        proxyArgs(context, ["-s", token.info, "--token-file", token.proxyTokenFile]),
      );
    },
  },
  /** `ssh -L` to a broker listener advertised at its port; Flight calls through a proxy. */
  kafkaTunnel: {
    figures: ["kafkaLive"],
    needs: "kafka",
    start: async (context) => {
      const kafka = await needed(context.kafka, "Kafka");
      await using stack = new AsyncDisposableStack();
      const flight = stack.use(await kafkaProxy("flight")(context));
      stack.use(await startKafkaTunnel(kafka.sshConfig, kafka.host, kafka.tunnelPort));
      const owned = stack.move();
      return {
        url: flight.url,
        kafka: `127.0.0.1:${kafka.tunnelPort}`,
        [Symbol.asyncDispose]: () => owned.disposeAsync(),
      };
    },
  },
  kafkaForward: {
    figures: ["kafkaLive"],
    needs: "kafka",
    baseline: "kafkaTunnel",
    start: kafkaProxy("forward"),
  },
  /** The stream relayed by the server over Flight (the proxy's fallback). */
  kafkaFlight: {
    figures: ["kafkaLive"],
    needs: "kafka",
    baseline: "kafkaTunnel",
    start: kafkaProxy("flight"),
  },
};

const BASELINE = "tunnel";

/**
 * The cluster's ssh_config with the relay as ProxyCommand for its host alias;
 * the config itself when the link adds nothing.
 */
async function linkSshConfig(
  base: string,
  link: Link,
  python: string,
  dir: string,
  name = "ssh_config",
) {
  if (link.rttMs <= NO_DELAY_MS && !link.rateMbit) return base;
  const relay = [
    `'${python}'`,
    `'${here("./py/link_relay.py")}'`,
    "--rtt-ms",
    String(link.rttMs),
    ...(link.rateMbit ? ["--rate-mbit", String(link.rateMbit)] : []),
    "%h",
    "%p",
  ].join(" ");
  const text = await Deno.readTextFile(base);
  const file = `${dir}/${name}-${link.rttMs}-${link.rateMbit ?? 0}`;
  // ssh keeps the first value of an option: ProxyCommand right under the Host line.
  await Deno.writeTextFile(file, text.replace(/^(Host .*)$/m, `$1\n  ProxyCommand ${relay}`));
  return file;
}

/** Milliseconds until `start` resolves; what it started is stopped after. */
async function readyMs(start: () => Promise<AsyncDisposable>): Promise<number> {
  const begin = performance.now();
  await using _started = await start();
  return performance.now() - begin;
}

/** Round trips of one line through `ssh HOST cat` (the first, which waits for login, left out). */
async function sshPings(config: string, host: string, count: number): Promise<number[]> {
  const child = new Deno.Command("ssh", {
    args: ["-F", config, "-T", host, "cat"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const input = child.stdin.getWriter();
  const lines = readLines(child.stdout);
  const line = new TextEncoder().encode("x\n");
  const times: number[] = [];
  try {
    for (let i = 0; i <= count; i++) {
      const start = performance.now();
      await input.write(line);
      if ((await lines.next()).done) throw new Error(`ssh ${host} cat ended early`);
      if (i > 0) times.push(performance.now() - start);
    }
  } finally {
    await stopChild(child, { ask: () => input.close() });
    await lines.return(undefined);
  }
  return times;
}

/** One timed line of a proxy's start-up. */
export interface StartupStep {
  ms: number;
  step: string;
}

/** Reading /proc/net/tcp takes ~3 ms here: polled more often, it slows the start it times. */
const LISTEN_POLL_MS = 25;

/** Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting). */
function listening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  return Deno.readTextFileSync("/proc/net/tcp").includes(`0100007F:${hex} 00000000:0000 0A`);
}

/** A `-v` ssh command line as the step it is (the whole line names temp paths). */
function sshStep(line: string): string {
  if (!line.startsWith("$ ssh ")) return line;
  if (line.includes(" -M ")) return "$ ssh -M … (master: connect, log in, background)";
  const op = / -O (\w+)/.exec(line)?.[1];
  if (op === "forward") return `$ ssh -O forward (${line.split(" -L ").length - 1} -L)`;
  if (op) return `$ ssh -O ${op}`;
  return `$ ssh … ${line.slice(line.lastIndexOf(" -- ") + 4).slice(0, 60)} (session)`;
}

/**
 * The proxy's start-up with `-v`: each stderr line with its time since the
 * command was spawned, when its child's listening socket appeared (polled every
 * {@link LISTEN_POLL_MS}; the parent's own bind probe comes and goes first), and the
 * export line.
 */
async function startupSteps(args: string[]): Promise<StartupStep[]> {
  const port = getFreePort();
  const [program, ...rest] = proxyCommand(["-v", "-l", `127.0.0.1:${port}`, ...args]);
  const begin = performance.now();
  const child = new Deno.Command(program, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const steps: StartupStep[] = [];
  const at = (step: string) => steps.push({ ms: performance.now() - begin, step });
  let listened: number | undefined;
  let was = false;
  const poll = setInterval(() => {
    const now = listening(port);
    if (now && !was) listened = performance.now() - begin;
    was = now;
  }, LISTEN_POLL_MS);
  const stderr = (async () => {
    for await (const line of readLines(child.stderr)) {
      at(sshStep(line.replace(/^arrakis-proxy: /, "")));
    }
  })();
  try {
    const first = await readLines(child.stdout).next();
    if (first.done) throw new Error(`arrakis-proxy exited before it was ready`);
    at(`ready: ${first.value}`);
  } finally {
    clearInterval(poll);
    await stopChild(child, { ask: () => sendSignal(child, "SIGTERM"), graceMs: 10_000 });
    await stderr;
  }
  if (listened !== undefined) steps.push({ ms: listened, step: "(proxy child listening)" });
  return steps.sort((a, b) => a.ms - b.ms);
}

/** A scope map naming `count` data servers (`data-N:40001`, domain `ZN`): entries only. */
function scopeMap(count: number): string {
  return Array.from(
    { length: count },
    (_, i) =>
      [`grpc://data-${i}:40001:`, "  scopes:", `    Z${i}:`, "      - all: true", "  retention: {}"]
        .join("\n"),
  ).join("\n") + "\n";
}

type Figures = Record<string, unknown>;

/** Host names and addresses of the token-checking deployment inside the namespace. */
const TOKEN_INFO = { name: "tinfo", host: "127.0.0.51", port: 31301 };
const TOKEN_DATA = { name: "tdata", host: "127.0.0.52", port: 40001 };
/** The audience both its servers accept: the info server's URL's, as the proxy looks for. */
const TOKEN_AUDIENCE = `https://${TOKEN_INFO.name}`;
/** The subjects of the proxy's token and of the tunnel client's own. */
export const TOKEN_SUBJECTS = { proxy: "link-proxy-user", client: "link-client-user" } as const;

/** How many calls each subject made, from `--verbose` server logs. */
export function tokenCallers(log: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [, subject] of log.matchAll(/authenticated caller: (\S+)/g)) {
    counts[subject] = (counts[subject] ?? 0) + 1;
  }
  return counts;
}

/** What a link run found: each link's figures, and who the token-checking servers saw. */
interface LinkRun {
  links: Record<string, Figures>;
  /** Calls per token subject at the token deployment's info and data server. */
  tokenCallers?: { info: Record<string, number>; data: Record<string, number> };
}

/**
 * The token-checking deployment in `netns`: an offline issuer, two minted tokens,
 * the info server (scope map: every `B1` channel on the data server) and the data
 * server, both `--auth full --verbose`.
 */
async function startTokenDeployment(
  netns: Netns,
  venv: string,
  channelsFile: string,
  stack: AsyncDisposableStack,
) {
  const issuer = stack.use(await startIssuer());
  // Hours: a full run takes up to one.
  const lifetime = 4 * 3600;
  const [proxyToken, clientToken] = await issuer.mint([
    { aud: TOKEN_AUDIENCE, sub: TOKEN_SUBJECTS.proxy, lifetime },
    { aud: TOKEN_AUDIENCE, sub: TOKEN_SUBJECTS.client, lifetime },
  ]);
  const scopeMap = `${issuer.dir}/scope_map.yaml`;
  await Deno.writeTextFile(
    scopeMap,
    [
      `grpc://${TOKEN_DATA.name}:${TOKEN_DATA.port}:`,
      "  scopes:",
      "    B1:",
      "      - all: true",
      "  retention: {}",
      "",
    ].join("\n"),
  );
  await Deno.chmod(issuer.dir, 0o755);
  await Deno.chmod(scopeMap, 0o644);
  await netns.addHosts({ [TOKEN_INFO.name]: TOKEN_INFO.host, [TOKEN_DATA.name]: TOKEN_DATA.host });
  const options = [
    "--auth",
    "full",
    "--scitoken-issuer",
    issuer.issuer,
    "--scitoken-audience",
    TOKEN_AUDIENCE,
    "--verbose",
  ];
  const [info, data] = await Promise.all([
    startArrakisServer(netns, venv, issuer.cacheHome, {
      ...TOKEN_INFO,
      scopeMapFile: scopeMap,
      options,
    }),
    startArrakisServer(netns, venv, issuer.cacheHome, { ...TOKEN_DATA, channelsFile, options }),
  ]);
  stack.use(info);
  stack.use(data);
  const deployment: TokenDeployment = {
    info: `grpc://${TOKEN_INFO.name}:${TOKEN_INFO.port}`,
    data: `${TOKEN_DATA.name}:${TOKEN_DATA.port}`,
    proxyTokenFile: await issuer.writeToken("proxy", proxyToken),
    clientTokenFile: await issuer.writeToken("client", clientToken),
  };
  return { deployment, servers: { info, data } as Record<"info" | "data", BenchArrakisServer> };
}

/** The whole link run: one cluster (and the others the chosen paths need), every link in turn. */
async function overLinks(
  links: readonly Link[],
  sizes: LinkSizes,
  venv: string,
  selected: Selection,
  log: (line: string) => void,
): Promise<LinkRun> {
  const { startCluster } = await import("../tests/fixtures/cluster.ts");
  const needs = (what: LinkPath["needs"]) =>
    selected.paths.some((name) => LINK_PATHS[name].needs === what);
  await using cache = await pythonCache();
  const channels = await benchChannels(cache.dir, 8);
  const main = { name: "arrakis", host: "127.0.0.31", port: 31300 };
  const server = `grpc://${main.name}:${main.port}`;
  await using kafkaStack = new AsyncDisposableStack();
  // Its own cluster, started meanwhile (the broker takes longest), stopped whatever happens.
  const kafkaStarting = needs("kafka") && !sizes.readyOnly
    ? startKafkaDeployment({ brokerFullJit: sizes.kafkaBrokerFullJit })
    : undefined;
  kafkaStack.defer(async () => {
    await (await kafkaStarting?.catch(() => undefined))?.[Symbol.asyncDispose]();
  });
  // The login host's $ARRAKIS_SERVER names the real server, for proxyRemoteEnv.
  await using cluster = await startCluster({ env: { ARRAKIS_SERVER: server } });
  await using stack = new AsyncDisposableStack();
  const scoped: Record<number, string> = {};
  await cluster.netns.addHosts({ [main.name]: main.host });
  const starting = [
    startArrakisServer(cluster.netns, venv, cache.dir, { ...main, channelsFile: channels.file }),
  ];
  const dataServers =
    selected.paths.some((name) => LINK_PATHS[name].figures.includes("dataServers"))
      ? sizes.dataServers
      : [];
  for (const [i, count] of dataServers.entries()) {
    const scope = { name: `scope${count}`, host: `127.0.0.${40 + i}`, port: 31300 };
    const file = `${cache.dir}/bench_scope_${count}.yaml`;
    await Deno.writeTextFile(file, scopeMap(count));
    await cluster.netns.addHosts({ [scope.name]: scope.host });
    starting.push(startArrakisServer(cluster.netns, venv, cache.dir, {
      ...scope,
      scopeMapFile: file,
    }));
    scoped[count] = `grpc://${scope.name}:${scope.port}`;
  }
  const token = needs("token")
    ? await startTokenDeployment(cluster.netns, venv, channels.file, stack)
    : undefined;
  for (const server of await Promise.all(starting)) stack.use(server);
  if (!sizes.overlapStarts) await kafkaStarting;
  const dir = await Deno.makeTempDir({ prefix: "arrakis-bench-link-" });
  stack.defer(() => Deno.remove(dir, { recursive: true }));
  const stream = { channels: channels.names, start: channels.start };
  const results: Record<string, Figures> = {};
  const python = `${venv}/bin/python`;
  for (const link of links) {
    log(`link ${linkName(link)}`);
    const sshConfig = await linkSshConfig(cluster.sshConfigPath, link, python, dir);
    await using wrapper = await sshWrapper(sshConfig);
    const context: LinkContext = {
      sshConfig,
      host: cluster.sshHost,
      venv,
      cacheDir: cache.dir,
      sshDir: wrapper.dir,
      token: token?.deployment,
      kafka: kafkaStarting?.then(async (kafka) => ({
        sshConfig: await linkSshConfig(kafka.cluster.sshConfigPath, link, python, dir, "kafka"),
        host: kafka.cluster.sshHost,
        tunnelPort: kafka.tunnelPort,
        channels: kafka.channels,
      })),
    };
    // Awaited by the Kafka figures; a failure before then is theirs to report.
    context.kafka?.catch(() => {});
    results[linkName(link)] = await overLink(
      link,
      sizes,
      context,
      { server, scoped, stream },
      selected,
      log,
    );
  }
  return {
    links: results,
    tokenCallers: token && {
      info: tokenCallers(token.servers.info.log()),
      data: tokenCallers(token.servers.data.log()),
    },
  };
}

/** The paths a run measures, in {@link LINK_PATHS}' order; `extras`: the figures of no path too. */
export interface Selection {
  paths: string[];
  /** Parallel streams through the tunnel and the proxy's start-up steps. */
  extras: boolean;
}

/**
 * Each path's median, and its median per-round ratio to its baseline
 * ({@link LinkPath.baseline}) when that was measured too.
 */
function pathFigure(rounds: Record<string, number[]>): PathFigure {
  const median_: Record<string, number> = {};
  const ratio: Record<string, number> = {};
  const baselines: Record<string, string> = {};
  for (const [name, values] of Object.entries(rounds)) {
    median_[name] = median(values);
    const base = LINK_PATHS[name]?.baseline ?? BASELINE;
    if (name === base || !rounds[base]) continue;
    baselines[name] = base;
    ratio[name] = median(values.map((value, i) => value / rounds[base][i]));
  }
  return { baseline: BASELINE, baselines, median: median_, ratio, rounds } as PathFigure;
}

const pathsWith = (selected: Selection, figure: LinkFigure) =>
  selected.paths.map((name) => [name, LINK_PATHS[name]] as const)
    .filter(([, path]) => path.figures.includes(figure));

/** `py/flight_bench.py`'s `tokenFiles` for the token-checking paths among `names`. */
function tokenFiles(names: string[], context: LinkContext): Record<string, string | null> {
  const files: Record<string, string | null> = {};
  for (const name of names) {
    const { clientToken } = LINK_PATHS[name];
    if (clientToken) {
      files[name] = clientToken === "explicit"
        ? needed(context.token, "token").clientTokenFile
        : null;
    }
  }
  return files;
}

/** Every figure over one link. */
async function overLink(
  link: Link,
  sizes: LinkSizes,
  context: LinkContext,
  servers: {
    server: string;
    scoped: Record<number, string>;
    stream: { channels: string[]; start: number };
  },
  selected: Selection,
  log: (line: string) => void,
): Promise<Figures> {
  const { server, scoped, stream } = servers;
  const figures: Figures = { link };
  const rtt = Math.max(link.rttMs, NO_DELAY_MS);
  const sshTrue = () =>
    readyMs(async () => {
      const args = ["-F", context.sshConfig, context.host, "true"];
      const output = await new Deno.Command("ssh", { args, stdout: "null" }).output();
      if (!output.success) throw new Error(`ssh ${context.host} true failed`);
      return { [Symbol.asyncDispose]: () => Promise.resolve() };
    });

  // The link as ssh sees it: a line's round trip through a session.
  const pings = await sshPings(context.sshConfig, context.host, sizes.pings);
  figures.pingP50Ms = median(pings);

  const ready = await alternate(sizes.readyRuns, {
    sshTrue,
    ...Object.fromEntries(
      pathsWith(selected, "ready").map(([name, path]) => [
        name,
        () => readyMs(() => path.start(context, server)),
      ]),
    ),
  });
  const margins = (rounds: Record<string, number[]>, base: number[]) =>
    Object.fromEntries(
      Object.entries(rounds).filter(([name]) => name !== "sshTrue").map((
        [name, values],
      ) => [name, median(values.map((ms, i) => ms - base[i % base.length]))]),
    );
  figures.readyMs = summarize(ready, "sshTrue");
  figures.readyMarginMs = margins(ready, ready.sshTrue);
  figures.sshTrueRtts = median(ready.sshTrue) / rtt;
  log(
    `ping ${fixed(figures.pingP50Ms, 2)} ms, ssh true ${fixed(median(ready.sshTrue))} ms; ` +
      `ready over ssh true: ${showRecord(figures.readyMarginMs as Record<string, number>)} ms`,
  );

  const byCount: Record<string, Record<string, number>> = {};
  for (const count of Object.keys(scoped).map(Number)) {
    const rounds = await alternate(
      sizes.readyRuns,
      Object.fromEntries(
        pathsWith(selected, "dataServers").map(([name, path]) => [
          name,
          () => readyMs(() => path.start(context, scoped[count])),
        ]),
      ),
    );
    byCount[count] = margins(rounds, ready.sshTrue);
    log(`${count} data server(s): ready over ssh true ${showRecord(byCount[count])} ms`);
  }
  figures.dataServersReadyMarginMs = byCount;

  {
    await using stack = new AsyncDisposableStack();
    const paths: Record<string, string> = {};
    for (const [name, path] of pathsWith(selected, "data")) {
      paths[name] = stack.use(await path.start(context, server)).url;
    }
    const tokens = tokenFiles(Object.keys(paths), context);
    // Before anything else used them: the first call pays for the paths' own connections.
    const first = await flightBench<{ firstCallMs: Record<string, number> }>(context.venv, {
      mode: "first",
      paths,
      tokenFiles: tokens,
    });
    figures.firstCallMs = first.firstCallMs;
    log(`first GetFlightInfo: ${showRecord(first.firstCallMs)} ms`);
    if (!sizes.readyOnly) {
      const result = await flightBench<{ figures: Record<string, Record<string, number[]>> }>(
        context.venv,
        {
          mode: "compare",
          paths,
          tokenFiles: tokens,
          rounds: sizes.rounds,
          latencyCalls: sizes.latencyCalls,
          stream,
          warmSeconds: 1,
          followSeconds: 0,
          fetchSeconds: sizes.fetchSeconds,
        },
      );
      for (const [name, rounds] of Object.entries(result.figures)) {
        figures[name] = pathFigure(rounds);
        log(`${name}: ${showRecord((figures[name] as PathFigure).median)}`);
      }
    }
  }
  if (!sizes.readyOnly) await kafkaLive(figures, sizes, context, selected, server, log);
  if (!selected.extras) return figures;
  if (sizes.readyOnly) return await withStartupSteps(figures, context, server);

  // Where the one stream's SSH channel window is the limit: 4 streams at once, on
  // one connection, on 4 clients of one forward, and on 4 forwards (4 SSH channels).
  {
    const remote = server.replace(/^grpc:\/\//, "");
    await using tunnel = await sshTunnel(context.sshConfig, context.host, ...Array(4).fill(remote));
    const parallel = (urls: string[], shared = false) =>
      flightBench<{ MBps: number }>(context.venv, {
        mode: "parallel",
        urls,
        shared,
        stream,
        seconds: sizes.parallelSeconds,
      }).then((result) => result.MBps);
    const one = Array(4).fill(tunnel.url);
    figures.parallelMBps = {
      oneStream: await parallel([tunnel.url]),
      fourStreamsOneConnection: await parallel(one, true),
      fourClientsOneForward: await parallel(one),
      fourForwards: await parallel(tunnel.urls),
    };
    log(`parallel streams MB/s: ${showRecord(figures.parallelMBps as Record<string, number>)}`);
  }

  return await withStartupSteps(figures, context, server);
}

/**
 * Live-stream latency of the Kafka paths, alternately: each round, each path's
 * client reads `kafkaBlocks` live blocks; per path the p50 and p90 of a run, and
 * the median over rounds of the p50 added over its baseline.
 */
async function kafkaLive(
  figures: Figures,
  sizes: LinkSizes,
  context: LinkContext,
  selected: Selection,
  server: string,
  log: (line: string) => void,
): Promise<void> {
  const chosen = pathsWith(selected, "kafkaLive");
  if (chosen.length === 0) return;
  const kafka = await needed(context.kafka, "Kafka");
  await using stack = new AsyncDisposableStack();
  const started: Record<string, StartedPath> = {};
  // Started together: each waits on its own SSH connection's login.
  const starting = await Promise.allSettled(chosen.map(([, path]) => path.start(context, server)));
  for (const [i, [name]] of chosen.entries()) {
    const result = starting[i];
    if (result.status === "fulfilled") started[name] = stack.use(result.value);
  }
  const failed = starting.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  const p90: Record<string, number[]> = {};
  const p50 = await alternate(
    sizes.rounds,
    Object.fromEntries(chosen.map(([name]) => [name, async () => {
      const run = await kafkaClient(context.venv, kafka.channels, {
        url: started[name].url,
        kafka: started[name].kafka ?? null,
        blocks: sizes.kafkaBlocks,
        skip: sizes.kafkaSkip,
      });
      (p90[name] ??= []).push(quantile(run.latencyMs!, 0.9));
      return median(run.latencyMs!);
    }])),
  );
  figures.kafkaLiveP50Ms = pathFigure(p50);
  figures.kafkaLiveP90Ms = pathFigure(p90);
  const added: Record<string, number> = {};
  for (const [name, path] of chosen) {
    const base = path.baseline && p50[path.baseline];
    if (base) added[name] = median(p50[name].map((ms, i) => ms - base[i]));
  }
  figures.kafkaLiveAddedP50Ms = added;
  log(
    `Kafka live p50: ${showRecord((figures.kafkaLiveP50Ms as PathFigure).median)} ms; ` +
      `added over the tunnel: ${showRecord(added)} ms`,
  );
}

/** `figures` with the proxy's start-up steps, with `-s` and without, and adding a token. */
async function withStartupSteps(
  figures: Figures,
  context: LinkContext,
  server: string,
): Promise<Figures> {
  figures.startupSteps = await startupSteps(["-s", server, "-F", context.sshConfig, context.host]);
  figures.startupStepsRemoteEnv = await startupSteps(["-F", context.sshConfig, context.host]);
  if (context.token) {
    const { info, proxyTokenFile } = context.token;
    figures.startupStepsToken = await startupSteps(
      ["-s", info, "--token-file", proxyTokenFile, "-F", context.sshConfig, context.host],
    );
  }
  return figures;
}

function fixed(value: unknown, digits = 1): string {
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

function showRecord(record: Record<string, number>): string {
  return Object.entries(record).map(([name, value]) => `${name} ${fixed(value)}`).join(", ");
}

/** A Markdown table per link (for bench/README.md). */
export function linkTables(results: Record<string, Figures>): string {
  const out: string[] = [];
  for (const [name, figures] of Object.entries(results)) {
    // The paths with a figure in this table (Kafka paths have a line of their own).
    const names = Object.keys(LINK_PATHS).filter((path) =>
      ["readyMs", "arrakisFetchMBps", "getFlightInfoP50Ms"].some((key) =>
        path in ((figures[key] as PathFigure | undefined)?.median ?? {})
      )
    );
    const link = figures.link as Link;
    const rtt = Math.max(link.rttMs, NO_DELAY_MS);
    const ready = figures.readyMs as PathFigure;
    const margin = figures.readyMarginMs as Record<string, number>;
    const sshTrue = ready.median.sshTrue;
    out.push(
      `#### ${name}: ping ${fixed(figures.pingP50Ms, 2)} ms, \`ssh HOST true\` ` +
        `${fixed(sshTrue, 0)} ms`,
      "",
      `| figure | ${names.join(" | ")} |`,
      `| --- | ${names.map(() => "---").join(" | ")} |`,
    );
    const row = (label: string, cell: (path: string) => string) =>
      out.push(`| ${label} | ${names.map(cell).join(" | ")} |`);
    const readyCell = (ms: number | undefined, over: number | undefined) =>
      ms === undefined || over === undefined
        ? ""
        : `${fixed(ms, 0)} (+${fixed(over, 0)}${
          link.rttMs > NO_DELAY_MS ? `, +${fixed(over / rtt)} RTT` : ""
        })`;
    row("ready, ms (over ssh true)", (p) => readyCell(ready.median[p], margin[p]));
    for (
      const [count, byPath] of Object.entries(
        figures.dataServersReadyMarginMs as Record<string, Record<string, number>>,
      )
    ) {
      row(
        `ready, ${count} data server(s)`,
        (p) => byPath[p] === undefined ? "" : readyCell(sshTrue + byPath[p], byPath[p]),
      );
    }
    const ratioRow = (label: string, key: string, digits: number) => {
      const figure = figures[key] as PathFigure | undefined;
      if (!figure) return;
      row(
        label,
        (p) =>
          p in figure.median
            ? `${fixed(figure.median[p], digits)}${
              p in figure.ratio ? ` (×${fixed(figure.ratio[p], 2)}${ofBaseline(figure, p)})` : ""
            }`
            : "",
      );
    };
    ratioRow("arrakis.fetch MB/s", "arrakisFetchMBps", 1);
    const fetch = figures.arrakisFetchMBps as PathFigure | undefined;
    if (fetch && link.rttMs > NO_DELAY_MS) {
      row(
        "fetch MiB per round trip",
        (p) => p in fetch.median ? fixed(fetch.median[p] * 1e6 * rtt / 1000 / 2 ** 20, 2) : "",
      );
    }
    ratioRow("GetFlightInfo p50, ms", "getFlightInfoP50Ms", 2);
    const firstCall = figures.firstCallMs as Record<string, number> | undefined;
    if (firstCall) {
      row("first GetFlightInfo, ms", (p) => p in firstCall ? fixed(firstCall[p], 0) : "");
    }
    out.push("");
    const live = figures.kafkaLiveP50Ms as PathFigure | undefined;
    if (live) {
      const p90 = (figures.kafkaLiveP90Ms as PathFigure).median;
      const added = figures.kafkaLiveAddedP50Ms as Record<string, number>;
      out.push(
        "Kafka live latency p50 / p90, ms: " +
          Object.keys(live.median).map((p) =>
            `${p} ${fixed(live.median[p])} / ${fixed(p90[p])}` +
            (p in added ? ` (p50 ${added[p] < 0 ? "" : "+"}${fixed(added[p], 2)})` : "")
          ).join(", ") + ".",
        "",
      );
    }
    const parallel = figures.parallelMBps as Record<string, number> | undefined;
    if (parallel) {
      out.push(
        `Streams at once through one SSH connection (tunnel), MB/s: ${showRecord(parallel)}.`,
        "",
      );
    }
  }
  return out.join("\n");
}

/** " of tokenTunnel" when a path's ratio is not against the tunnel. */
function ofBaseline(figure: PathFigure, path: string): string {
  const base = (figure as PathFigure & { baselines?: Record<string, string> }).baselines?.[path];
  return base && base !== BASELINE ? ` of ${base}` : "";
}

/** Start-up steps as Markdown lines: time, then the step. */
export function stepLines(steps: StartupStep[]): string {
  return steps.map(({ ms, step }) => `    ${fixed(ms, 0).padStart(6)} ms  ${step.slice(0, 110)}`)
    .join("\n");
}

/** `deno task bench --link …`: runs the links, prints the tables, writes the JSON. */
export async function linkMain(args: string[]): Promise<number> {
  const option = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const quick = args.includes("--quick");
  const runs = option("--runs");
  const servers = option("--data-servers");
  const sizes: LinkSizes = {
    ...(quick ? LINK_QUICK : LINK_FULL),
    ...(runs === undefined ? {} : { readyRuns: Number(runs) }),
    ...(args.includes("--ready-only") ? { readyOnly: true, dataServers: [] } : {}),
    ...(servers === undefined ? {} : { dataServers: servers.split(",").map(Number) }),
  };
  if (sizes.dataServers.some((count) => !Number.isInteger(count) || count < 1)) {
    console.error(`bench: --data-servers wants counts separated by commas, got ${servers}`);
    return 2;
  }
  if (!(sizes.readyRuns >= 1)) {
    console.error(`bench: --runs wants a count, got ${runs}`);
    return 2;
  }
  const pathsFlag = option("--paths")?.split(",");
  const unknown = pathsFlag?.filter((name) => !(name in LINK_PATHS));
  if (unknown?.length || (args.includes("--paths") && !pathsFlag)) {
    console.error(
      `bench: --paths wants names among ${Object.keys(LINK_PATHS).join(", ")}, got ${
        option("--paths") ?? "nothing"
      }`,
    );
    return 2;
  }
  // A chosen path's baseline is measured too: its ratios need it.
  const wanted = new Set(pathsFlag?.flatMap((name) => [name, LINK_PATHS[name].baseline ?? name]));
  const selected: Selection = {
    paths: Object.keys(LINK_PATHS).filter((name) => !pathsFlag || wanted.has(name)),
    extras: !pathsFlag,
  };
  const rtts = option("--rtt")?.split(",").map(Number);
  if (rtts?.some((rtt) => !(rtt >= 0))) {
    console.error(`bench: --rtt wants milliseconds separated by commas, got ${option("--rtt")}`);
    return 2;
  }
  const links = rtts
    ? LINKS.filter((link) => rtts.includes(link.rttMs))
    : quick
    ? [{ rttMs: 10, rateMbit: 1000 }]
    : LINKS;
  const capped = option("--cap");
  const chosen = capped === "only"
    ? links.filter((link) => link.rateMbit)
    : capped === "none"
    ? links.filter((link) => !link.rateMbit)
    : links;
  if (Deno.uid() !== 0) {
    console.error("bench: --link needs root (it creates a network namespace)");
    return 2;
  }
  const out = resolve(
    option("--out") ?? new URL("./results/link-latest.json", import.meta.url).pathname,
  );
  const limitMs = quick ? 300_000 : 3_600_000;
  const watchdog = setTimeout(() => {
    console.error(`bench: still running after ${limitMs / 1000} s; giving up`);
    Deno.exit(2);
  }, limitMs);
  const log = (line: string) => console.error(`bench: ${line}`);
  const loadBefore = Deno.loadavg();
  const started = performance.now();
  const venv = findVenv(option("--venv"));
  const run = await overLinks(chosen, sizes, venv, selected, log);
  const byLink = run.links;
  const report = {
    mode: quick ? "link-quick" : "link",
    date: new Date().toISOString(),
    machine: { cores: navigator.hardwareConcurrency, loadAverageBefore: loadBefore },
    loadAverageAfter: Deno.loadavg(),
    sizes,
    paths: selected.paths,
    durationS: (performance.now() - started) / 1000,
    links: byLink,
    tokenCallers: run.tokenCallers,
  };
  if (!sizes.readyOnly) console.log(linkTables(byLink));
  if (run.tokenCallers) {
    console.log(
      `calls per token subject: info server ${showRecord(run.tokenCallers.info)}; ` +
        `data server ${showRecord(run.tokenCallers.data)}`,
    );
  }
  for (const [name, figures] of Object.entries(byLink)) {
    if (!figures.startupSteps) continue;
    console.log(
      `start-up steps, ${name} (-s):\n${stepLines(figures.startupSteps as StartupStep[])}`,
    );
    console.log(
      `start-up steps, ${name} (remote $ARRAKIS_SERVER):\n${
        stepLines(figures.startupStepsRemoteEnv as StartupStep[])
      }`,
    );
    if (figures.startupStepsToken) {
      console.log(
        `start-up steps, ${name} (adding a token):\n${
          stepLines(figures.startupStepsToken as StartupStep[])
        }`,
      );
    }
  }
  console.log(loadLine(loadBefore));
  await writeResults(out, report);
  log(`wrote ${out}`);
  clearTimeout(watchdog);
  return 0;
}
