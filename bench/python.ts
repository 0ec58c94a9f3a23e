/**
 * The Python side of the bench: the venv holding the real Arrakis peers
 * (`arrakis`, `arrakis-server`, pyarrow), the real server in the bench's
 * namespace, the seed's own proxy (`arrakis.proxy.ssh_proxy`), and the
 * measurement client `py/flight_bench.py`.
 *
 * @module
 */
import { pythonEnv, pythonJson } from "../tests/fixtures/python.ts";
import { sendSignal, stopChild } from "../lib/process.ts";
import { readLines } from "../lib/lines.ts";
import type { Netns } from "../tests/fixtures/netns.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;

/** The venv: `--venv DIR`, else `$ARRAKIS_BENCH_VENV`, else `.venv` at the repo root. */
export function findVenv(flag: string | undefined): string {
  const venv = flag ?? Deno.env.get("ARRAKIS_BENCH_VENV") ?? here("../.venv");
  try {
    Deno.statSync(`${venv}/bin/arrakis-server`);
    Deno.statSync(`${venv}/bin/python`);
  } catch {
    throw new Error(
      `no Python venv with arrakis-server at ${venv}: run .ci/run (it makes .venv from ` +
        "tests/requirements.txt), or pass --venv DIR / set ARRAKIS_BENCH_VENV",
    );
  }
  return venv;
}

/**
 * A cache directory for Python processes (`XDG_CACHE_HOME`) holding gpstime's
 * leap-second table: the test fixtures' (see `pythonEnv`), so that neither peer
 * tries to download one from the internet.
 */
export async function pythonCache(): Promise<{ dir: string } & AsyncDisposable> {
  const { XDG_CACHE_HOME: dir } = await pythonEnv();
  return { dir, [Symbol.asyncDispose]: () => Promise.resolve() };
}

/** The channels the real server serves: 16384 Hz float64, one-second strides. */
export interface BenchChannels {
  names: string[];
  /** GPS start of every Stream the bench asks for, in ns (past, so no live waits). */
  start: number;
  /** The TOML file for `arrakis-server mock`. */
  file: string;
}

/**
 * A channel file for `arrakis-server mock`: `count` channels at 16384 Hz,
 * float64, one-second stride, so each one-second block of 8 channels is a
 * 1 MiB record batch. `func = "t"` is cheap for the server to generate (its
 * default draws random numbers, which made the server the bottleneck).
 */
export async function benchChannels(dir: string, count: number): Promise<BenchChannels> {
  const names = Array.from(
    { length: count },
    (_, i) => `B1:BENCH-${String(i).padStart(2, "0")}`,
  );
  const file = `${dir}/bench_channels.toml`;
  await Deno.writeTextFile(
    file,
    [
      '["common"]',
      'publisher = "BENCH"',
      "sample_rate = 16384",
      'data_type = "float64"',
      "stride = 1_000_000_000",
      'func = "t"',
      "",
      ...names.map((name) => `["${name}"]\n`),
    ].join("\n"),
  );
  return { names, start: 1_300_000_000 * 1e9, file };
}

/** A running {@link startArrakisServer}. */
export interface BenchArrakisServer extends AsyncDisposable {
  /** What it wrote on stderr so far (with `--verbose`, each call's authenticated caller). */
  log(): string;
}

/**
 * A real `arrakis-server` inside the namespace, bound to `host:port`: self-serving
 * (`mock CHANNELS.toml`) and/or routing by a scope map (`-s FILE`), with `options`
 * before those (e.g. `--auth full …`); ready once it accepts connections there.
 */
export async function startArrakisServer(
  netns: Netns,
  venv: string,
  cacheDir: string,
  { host, port, channelsFile, scopeMapFile, options = ["-q"] }: {
    host: string;
    port: number;
    channelsFile?: string;
    scopeMapFile?: string;
    /** @default {["-q"]} */
    options?: string[];
  },
): Promise<BenchArrakisServer> {
  const child = netns.spawn(
    [
      `${venv}/bin/arrakis-server`,
      ...options,
      "-u",
      `grpc://${host}:${port}`,
      ...(scopeMapFile ? ["-s", scopeMapFile] : []),
      ...(channelsFile ? ["mock", channelsFile] : []),
    ],
    { env: { XDG_CACHE_HOME: cacheDir }, stdin: "null", stdout: "null", stderr: "piped" },
  );
  let log = "";
  // Read for as long as it runs: a verbose server would block on a full pipe.
  const stderr = (async () => {
    for await (const line of readLines(child.stderr)) log += line + "\n";
    return log;
  })();
  let exited = false;
  child.status.then(() => exited = true);
  const stop = async () => {
    await stopChild(child, {
      ask: () => sendSignal(child, "SIGTERM"),
      graceMs: 5000,
      signal: "SIGKILL",
    });
  };
  for (let i = 0; i < 600; i++) {
    if (exited) throw new Error(`arrakis-server exited at startup:\n${await stderr}`);
    const probe = await netns.exec(["bash", "-c", `echo > /dev/tcp/${host}/${port}`]);
    if (probe.code === 0) return { log: () => log, [Symbol.asyncDispose]: stop };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`arrakis-server never listened on ${host}:${port}:\n${await stderr}`);
}

/**
 * A directory holding an `ssh` that runs the real one with `-F config`, to put
 * first on PATH for programs that call plain `ssh` (the seed's proxy).
 */
export async function sshWrapper(config: string): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "arrakis-bench-ssh-" });
  const ssh = new Deno.Command("sh", { args: ["-c", "command -v ssh"], stdout: "piped" })
    .outputSync();
  const real = new TextDecoder().decode(ssh.stdout).trim();
  await Deno.writeTextFile(`${dir}/ssh`, `#!/bin/sh\nexec ${real} -F '${config}' "$@"\n`);
  await Deno.chmod(`${dir}/ssh`, 0o755);
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** A running seed proxy and its URL. */
export interface SeedProxy extends AsyncDisposable {
  readonly pid: number;
  readonly url: string;
}

/** Starts `arrakis.proxy.ssh_proxy(host, server)`; resolves once it printed its URL. */
export async function startSeedProxy(
  venv: string,
  env: { cacheDir: string; sshDir: string },
  host: string,
  server: string,
): Promise<SeedProxy> {
  const child = new Deno.Command(`${venv}/bin/python`, {
    args: [here("./py/seed_proxy.py"), host, server],
    env: {
      XDG_CACHE_HOME: env.cacheDir,
      PATH: `${env.sshDir}:${Deno.env.get("PATH")}`,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    await stopChild(child, { ask: () => child.stdin.close(), graceMs: 10_000, signal: "SIGKILL" });
    reader.cancel().catch(() => {});
  };
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      await stop();
      throw new Error(`the seed's ssh_proxy exited before it was ready:\n${await stderr}`);
    }
    text += value;
  }
  return { pid: child.pid, url: text.trim(), [Symbol.asyncDispose]: stop };
}

/** Runs `py/flight_bench.py` with `config`; resolves with its JSON answer. */
export function flightBench<T>(venv: string, config: Record<string, unknown>): Promise<T> {
  return pythonJson<T>([here("./py/flight_bench.py"), JSON.stringify(config)], {
    python: `${venv}/bin/python`,
  });
}
