/**
 * GetFlightInfo over one emulated link, call by call (issue 18): the tunnel and
 * the proxy started as `link.ts` starts them, then `py/gfi_calls.py` alternates
 * them call by call and every call's time is kept, so the distribution of the
 * proxy's added time shows (on every call, or on some calls only).
 *
 * Usage: `deno run -A bench/gfi_link.ts [--rtt MS] [--calls N] [--gaps MS,MS] [--base ROOT] [--hold FILE]`;
 * `--gaps`: idle time between calls, one run each (does the added time follow the idle time?);
 * with `--hold`, waits while FILE exists before measuring (to attach tcpdump or strace;
 * `/tmp/gfi/state.json` names the URLs and pids).
 *
 * @module
 */
import { benchChannels, findVenv, pythonCache, startArrakisServer } from "./python.ts";
import { pythonJson } from "../tests/fixtures/python.ts";
import { LINK_PATHS, type LinkContext } from "./link.ts";
import { quantile } from "./stats.ts";
import { startProxy } from "../tests/fixtures/proxy_cli.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;
const option = (name: string) => {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
};
const rtt = Number(option("--rtt") ?? 80);
const calls = Number(option("--calls") ?? 60);
const hold = option("--hold");
const gaps = (option("--gaps") ?? "0").split(",").map(Number);
const venv = findVenv(undefined);
const python = `${venv}/bin/python`;

const { startCluster } = await import("../tests/fixtures/cluster.ts");
await using cache = await pythonCache();
const channels = await benchChannels(cache.dir, 8);
const main = { name: "arrakis", host: "127.0.0.31", port: 31300 };
const server = `grpc://${main.name}:${main.port}`;
await using cluster = await startCluster({ env: { ARRAKIS_SERVER: server } });
await cluster.netns.addHosts({ [main.name]: main.host });
await using _server = await startArrakisServer(cluster.netns, venv, cache.dir, {
  ...main,
  channelsFile: channels.file,
});
const dir = await Deno.makeTempDir({ prefix: "arrakis-gfi-" });
let sshConfig = cluster.sshConfigPath;
if (rtt > 0.1) {
  const relay = [
    `'${python}'`,
    `'${here("./py/link_relay.py")}'`,
    "--rtt-ms",
    String(rtt),
    "%h",
    "%p",
  ]
    .join(" ");
  const text = await Deno.readTextFile(cluster.sshConfigPath);
  sshConfig = `${dir}/ssh_config`;
  await Deno.writeTextFile(sshConfig, text.replace(/^(Host .*)$/m, `$1\n  ProxyCommand ${relay}`));
}
const context: LinkContext = {
  sshConfig,
  host: cluster.sshHost,
  venv,
  cacheDir: cache.dir,
  sshDir: dir,
};
await using tunnel = await LINK_PATHS.tunnel.start(context, server);
await using proxy = await LINK_PATHS.proxy.start(context, server);
const paths: Record<string, string> = { tunnel: tunnel.url, proxy: proxy.url };
// --base ROOT: the same proxy from another checkout (e.g. `git archive` of the commit before a
// change), measured alternately with this one.
const base = option("--base");
await using other = base === undefined ? undefined : await startProxy(
  ["-q", "-l", "127.0.0.1:0", "-s", server, "-F", sshConfig, cluster.sshHost],
  { program: [Deno.execPath(), "run", "-A", "--config", `${base}/deno.json`, `${base}/main.ts`] },
);
if (other) paths.base = other.url;
await Deno.mkdir("/tmp/gfi", { recursive: true });
await Deno.writeTextFile("/tmp/gfi/state.json", JSON.stringify({ paths, sshConfig, rtt }));
if (hold) {
  await Deno.writeTextFile(hold, "");
  console.error(`gfi: holding while ${hold} exists; ${JSON.stringify(paths)}`);
  while (await Deno.stat(hold).then(() => true, () => false)) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
const show = (values: number[]) =>
  [0.1, 0.25, 0.5, 0.75, 0.9, 0.99].map((q) => `p${q * 100} ${quantile(values, q).toFixed(2)}`)
    .join("  ");
const loadText = () => Deno.loadavg().map((x) => x.toFixed(1)).join(" ");
for (const gapMs of gaps) {
  const load = loadText();
  const result = await pythonJson<{ ms: Record<string, number[]> }>(
    [here("./py/gfi_calls.py"), JSON.stringify({ paths, calls, gapMs })],
    { python },
  );
  console.log(`rtt ${rtt} ms, ${gapMs} ms idle between calls, ${calls} calls a path`);
  for (const [name, values] of Object.entries(result.ms)) {
    console.log(`${name.padEnd(7)} ${show(values)}`);
  }
  for (const name of Object.keys(paths).filter((name) => name !== "tunnel")) {
    const diffs = result.ms[name].map((ms, i) => ms - result.ms.tunnel[i]);
    console.log(`added by ${name.padEnd(6)} ${show(diffs)}`);
  }
  console.log(`load ${load} → ${loadText()}`);
  await Deno.writeTextFile(`/tmp/gfi/calls-${rtt}-${gapMs}.json`, JSON.stringify(result));
}
await Deno.remove(dir, { recursive: true });
