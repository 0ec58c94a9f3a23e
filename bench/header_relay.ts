/**
 * The token-carrying data path against a plain tunnel: pyarrow's Flight client
 * (`bench/py/relay_bench.py`) pulls Arrow data from a real `arrakis-server` in a
 * network namespace, over one ssh connection that carries two forwards:
 *
 * - **tunnel**: `-L 127.0.0.1:PORT:arrakis:31300`, the client sending its token itself;
 * - **relay**: `-L DIR/forward:arrakis:31300` (a Unix socket), with the header
 *   relay (`bench/relay_child.ts`, its own process) on `DIR/relay` adding the
 *   token; the client sends none and names the relay `grpc+unix://DIR/relay`.
 *
 * - **proxy**: the whole proxy run adding the token (`bench/token_proxy_child.ts`):
 *   the client sends none; data comes through the proxy's relays;
 * - **guarded**: the tunnel behind a uid-guarded TCP → TCP pipe (`lib/net/`), what
 *   option (a) for the proxy's client port adds to a call.
 *
 * Rounds alternate the paths; ratios are medians of per-round ratios. Then
 * `memBytes` stream through the relay alone while its memory is sampled.
 *
 * Usage (root): `deno run -A bench/header_relay.ts [--quick] [--venv DIR]`.
 *
 * @module
 */
import { createNetns } from "../tests/fixtures/netns.ts";
import { startSshd } from "../tests/fixtures/sshd.ts";
import { stopChild } from "../lib/process.ts";
import { waitFor } from "../tests/fixtures/processes.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { makeControlDir } from "../lib/ssh/control_dir.ts";
import { physicalMiB, processTree, spawnDeno } from "./children.ts";
import type { TokenProxyChildConfig } from "./token_proxy_child.ts";
import { benchChannels, findVenv, pythonCache, startArrakisServer } from "./python.ts";
import { pythonJson } from "../tests/fixtures/python.ts";
import { median, summarize } from "./stats.ts";
import type { RelayChildConfig } from "./relay_child.ts";

const MiB = 1 << 20;
const ARRAKIS = { name: "arrakis", host: "127.0.0.31", port: 31300 };
const TOKEN = "x".repeat(900); // a SciToken's size; the open-mode server ignores it

const quick = Deno.args.includes("--quick");
const venvFlag = Deno.args[Deno.args.indexOf("--venv") + 1];
const sizes = quick
  ? { rounds: 2, seconds: 4, bytes: 0, calls: 20, memBytes: 16 * MiB }
  : { rounds: 5, seconds: 64, bytes: 256 * MiB, calls: 300, memBytes: 1024 * MiB };

const venv = findVenv(Deno.args.includes("--venv") ? venvFlag : undefined);
await using cache = await pythonCache();
const channels = await benchChannels(cache.dir, 8);
await using netns = await createNetns();
await netns.addHosts({ [ARRAKIS.name]: ARRAKIS.host });
await using sshd = await startSshd({ netns });
await using _server = await startArrakisServer(netns, venv, cache.dir, {
  host: ARRAKIS.host,
  port: ARRAKIS.port,
  channelsFile: channels.file,
});
const dir = await makeControlDir();
await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
const port = getFreePort("127.0.0.1");
const remote = `${ARRAKIS.name}:${ARRAKIS.port}`;
const ssh = new Deno.Command("ssh", {
  args: [
    "-F",
    sshd.sshConfigPath,
    "-T",
    "-o",
    "ExitOnForwardFailure=yes",
    "-L",
    `127.0.0.1:${port}:${remote}`,
    "-L",
    `${dir}/forward:${remote}`,
    sshd.hostAlias,
    "cat", // a session open, so sshd sets TCP_NODELAY
  ],
  stdin: "piped",
  stdout: "null",
}).spawn();
await using _ssh = {
  [Symbol.asyncDispose]: async () => void await stopChild(ssh, { ask: () => ssh.stdin.close() }),
};
await waitFor(
  () => {
    try {
      Deno.statSync(`${dir}/forward`);
      return true;
    } catch {
      return false;
    }
  },
  10_000,
  "the ssh forwards",
);

Deno.env.set("ARRAKIS_BENCH_TOKEN", TOKEN);
await using relay = await spawnDeno<{ pid: number; guardedPort: number }>(
  new URL("./relay_child.ts", import.meta.url).pathname,
  { listen: `${dir}/relay`, dial: `${dir}/forward`, guardTo: port } satisfies RelayChildConfig,
);
const idleMiB = physicalMiB([relay.pid]);
// The whole proxy adding the token: data and reuse-connection calls through its relays.
await using proxy = await spawnDeno<{ pid: number; url: string }>(
  new URL("./token_proxy_child.ts", import.meta.url).pathname,
  {
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    server: `grpc://${remote}`,
  } satisfies TokenProxyChildConfig,
);
const proxyPids = () => processTree(proxy.pid).own;
const proxyIdleMiB = physicalMiB(proxyPids());

const stream = { channels: channels.names, start: channels.start };
const paths = {
  tunnel: { url: `grpc://127.0.0.1:${port}`, token: TOKEN },
  relay: { url: `grpc+unix://${dir}/relay`, token: null },
  // The tunnel behind a uid-guarded TCP pipe: what option (a) adds to each call.
  guarded: { url: `grpc://127.0.0.1:${relay.hello.guardedPort}`, token: TOKEN },
  proxy: { url: proxy.hello.url, token: null },
};
const python = `${venv}/bin/python`;
const script = new URL("./py/relay_bench.py", import.meta.url).pathname;
type Result = { figures: Record<string, Record<string, number[]>> };
const { figures } = await pythonJson<Result>(
  [script, JSON.stringify({ ...sizes, paths, stream })],
  { python },
);
const mbps = summarize(figures.mbps, "tunnel");
const info = summarize(figures.infoP50Ms, "tunnel");

// Memory: `memBytes` through the relay alone, then through the whole proxy, sampled.
async function peakWhileStreaming(path: keyof typeof paths, pids: () => number[]) {
  let peak = 0;
  const sampler = setInterval(() => peak = Math.max(peak, physicalMiB(pids())), 100);
  await pythonJson<Result>([
    script,
    JSON.stringify({
      ...sizes,
      rounds: 1,
      calls: 0,
      bytes: sizes.memBytes,
      paths: { [path]: paths[path] },
      stream,
    }),
  ], { python });
  clearInterval(sampler);
  return Math.max(peak, physicalMiB(pids()));
}
const peakMiB = await peakWhileStreaming("relay", () => [relay.pid]);
const proxyPeakMiB = await peakWhileStreaming("proxy", proxyPids);

const fixed = (value: number, digits = 1) => value.toFixed(digits);
console.log(
  `data path (MB/s, median of ${sizes.rounds}): tunnel ${fixed(mbps.median.tunnel)}, relay ${
    fixed(mbps.median.relay)
  }, token proxy ${fixed(mbps.median.proxy)}; relay/tunnel ${
    fixed(mbps.ratio.relay, 2)
  }, proxy/tunnel ${fixed(mbps.ratio.proxy, 2)}`,
);
console.log(
  `GetFlightInfo p50: tunnel ${fixed(info.median.tunnel, 2)} ms, relay ${
    fixed(info.median.relay, 2)
  } ms, tunnel behind the guarded pipe ${fixed(info.median.guarded, 2)} ms (added ${
    fixed(median(figures.infoP50Ms.guarded.map((ms, i) => ms - figures.infoP50Ms.tunnel[i])), 3)
  } ms)`,
);
console.log(
  `physical memory while ${sizes.memBytes / MiB} MiB passed: relay process ${fixed(idleMiB)} → ${
    fixed(peakMiB)
  } MiB; all the token proxy's processes ${fixed(proxyIdleMiB)} → ${fixed(proxyPeakMiB)} MiB`,
);
console.log(JSON.stringify({ mbps, info, idleMiB, peakMiB, proxyIdleMiB, proxyPeakMiB }));
