/**
 * Does splitting one Stream endpoint into K (`--split-streams K`) lift the one
 * SSH channel window at high round trips? The link bench (`link.ts`) with its
 * data paths replaced by: the `ssh -L` tunnel (baseline), the proxy command as
 * it is and with `--split-streams 4`, a proxy child behind the tunnel as it is,
 * and the same child splitting each bounded Stream endpoint in 2, 4 and 8. Every endpoint of the child's answers is redeemed at
 * the tunnel (reuse-connection), one TCP connection, so one SSH channel, each;
 * `arrakis.Client.fetch` MB/s and GetFlightInfo p50 are measured alternately.
 *
 * With `--server-cost [--rounds N] [--seconds S]`, on loopback instead (no ssh, no
 * link): the real server and the real client straight, through a proxy child,
 * and through it splitting in 2, 4 and 8, alternately; MB/s and the server's and
 * the client's CPU milliseconds per MiB (`py/split_cost.py`).
 *
 * Usage: `deno run -A bench/split.ts [link.ts options: --rtt 0.1,30,80 --cap none …]`.
 *
 * @module
 */
import { LINK_PATHS, type LinkContext, linkMain } from "./link.ts";
import { sshTunnel } from "./ssh_tunnel.ts";
import { startProxy } from "../tests/fixtures/proxy_cli.ts";
import { spawnProxy } from "./children.ts";
import { REUSE_CONNECTION } from "../lib/flight/locations.ts";
import { benchChannels, findVenv, pythonCache } from "./python.ts";
import { loadLine, median } from "./stats.ts";
import { startRealServer } from "../tests/fixtures/real_server.ts";
import { pythonJson } from "../tests/fixtures/python.ts";

/** A proxy child whose backend and reuse-connection endpoints are one `ssh -L` tunnel. */
async function childBehindTunnel(context: LinkContext, server: string, splitStreams?: number) {
  const remote = server.replace(/^grpc:\/\//, "");
  const tunnel = await sshTunnel(context.sshConfig, context.host, remote);
  const netloc = tunnel.url.replace(/^grpc:\/\//, "");
  try {
    const child = await spawnProxy({
      backend: tunnel.url,
      locations: [[REUSE_CONNECTION, netloc]],
      options: { splitStreams },
    });
    return {
      url: `grpc://${child.hello.address}`,
      [Symbol.asyncDispose]: async () => {
        await child[Symbol.asyncDispose]();
        await tunnel[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await tunnel[Symbol.asyncDispose]();
    throw error;
  }
}

/** The K each path splits in. */
const SPLITS = [2, 4, 8];

const { tunnel, proxy } = LINK_PATHS;
for (const name of Object.keys(LINK_PATHS)) delete LINK_PATHS[name];
LINK_PATHS.tunnel = tunnel;
LINK_PATHS.proxy = { ...proxy, figures: ["data"] };
// The real command with the option: the same split, through its own forwards.
LINK_PATHS.proxySplit4 = {
  figures: ["data"],
  start: (context, server) =>
    startProxy([
      "-q",
      "-l",
      "127.0.0.1:0",
      "-s",
      server,
      "--split-streams",
      "4",
      "-F",
      context.sshConfig,
      context.host,
    ]),
};
LINK_PATHS.child = {
  figures: ["data"],
  start: (context, server) => childBehindTunnel(context, server),
};
for (const parts of SPLITS) {
  LINK_PATHS[`split${parts}`] = {
    figures: ["data"],
    start: (context, server) => childBehindTunnel(context, server, parts),
  };
}

/** The pid of the process listening on 127.0.0.1:`port` that `cmdline` names (the real server). */
function serverPid(port: number): number {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (
        cmdline.includes(`grpc://127.0.0.1:${port}`) &&
        cmdline.some((a) => a.endsWith("arrakis-server"))
      ) {
        return Number(entry.name);
      }
    } catch { /* gone */ }
  }
  throw new Error(`no arrakis-server process for port ${port}`);
}

/** `--server-cost`: what K DoGets instead of one cost the server and the client, on loopback. */
async function serverCost(args: string[]): Promise<number> {
  const option = (name: string, fallback: number) => {
    const index = args.indexOf(name);
    return index >= 0 ? Number(args[index + 1]) : fallback;
  };
  const venv = findVenv(undefined);
  const loadBefore = Deno.loadavg();
  await using cache = await pythonCache();
  const channels = await benchChannels(cache.dir, 8);
  await using server = await startRealServer({ backend: ["mock", channels.file] });
  const netloc = server.url.replace(/^grpc:\/\//, "");
  await using stack = new AsyncDisposableStack();
  const paths: Record<string, string> = { direct: server.url };
  for (const parts of [undefined, ...SPLITS]) {
    const child = stack.use(
      await spawnProxy({
        backend: server.url,
        locations: [[REUSE_CONNECTION, netloc]],
        options: { splitStreams: parts },
      }),
    );
    paths[parts === undefined ? "child" : `split${parts}`] = `grpc://${child.hello.address}`;
  }
  const result = await pythonJson<{ figures: Record<string, Record<string, number[]>> }>(
    [
      new URL("./py/split_cost.py", import.meta.url).pathname,
      JSON.stringify({
        paths,
        serverPid: serverPid(Number(netloc.split(":")[1])),
        rounds: option("--rounds", 5),
        seconds: option("--seconds", 64),
        stream: { channels: channels.names, start: channels.start },
      }),
    ],
    { python: `${venv}/bin/python` },
  );
  for (const [figure, byPath] of Object.entries(result.figures)) {
    const line = Object.entries(byPath).map(([name, values]) =>
      `${name} ${median(values).toFixed(1)}`
    );
    console.log(`${figure} (median of ${Object.values(byPath)[0].length}): ${line.join(", ")}`);
  }
  console.log(loadLine(loadBefore));
  return 0;
}

if (import.meta.main) {
  const args = Deno.args;
  if (args.includes("--server-cost")) Deno.exit(await serverCost(args));
  Deno.exit(
    await linkMain([
      ...args,
      ...(args.includes("--data-servers") ? [] : ["--data-servers", "1"]),
      ...(args.includes("--out") ? [] : [
        "--out",
        new URL("./results/split-latest.json", import.meta.url).pathname,
      ]),
    ]),
  );
}
