/**
 * Child processes of the bench: the mock deployment and proxies, each started
 * with `deno run`, announcing itself with one JSON line on stdout, stopped by
 * closing its stdin (then SIGTERM, then SIGKILL).
 *
 * @module
 */
import type { MockDeploymentOptions } from "../tests/fixtures/mock_arrakis.ts";
import type { ProxyChildConfig } from "./proxy_child.ts";
import { descendants } from "../tests/fixtures/processes.ts";

/** A running child and the line it announced itself with. */
export interface Child<T> extends AsyncDisposable {
  readonly pid: number;
  readonly hello: T;
}

const here = (file: string) => new URL(file, import.meta.url).pathname;

/**
 * Spawns `deno run -A script json` (optionally under `prefix`, e.g. `ip netns exec NS`).
 * `denoFlags` go before the script, e.g. `--cpu-prof`.
 */
export async function spawnDeno<T>(
  script: string,
  config: unknown,
  { prefix = [], denoFlags = [] }: { prefix?: string[]; denoFlags?: string[] } = {},
): Promise<Child<T>> {
  const argv = [
    ...prefix,
    Deno.execPath(),
    "run",
    "-A",
    ...denoFlags,
    script,
    JSON.stringify(config),
  ];
  const process = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = process.stdin.getWriter();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let stopping = false;
  process.status.then((status) => {
    if (!stopping) {
      console.error(`bench: ${script} exited unexpectedly (${JSON.stringify(status)})`);
    }
  });
  const stop = async () => {
    stopping = true;
    await stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        process.kill("SIGTERM");
        setTimeout(() => {
          try {
            process.kill("SIGKILL");
          } catch { /* gone */ }
        }, 2000);
      } catch { /* gone */ }
    }, 3000);
    await process.status;
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  };
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${script} exited before it was ready`);
      text += value;
    }
  } catch (error) {
    await stop();
    throw error;
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read().catch(() => ({ done: true }))).done) { /* discard */ }
  })();
  return {
    pid: process.pid,
    hello: JSON.parse(text.slice(0, text.indexOf("\n"))),
    [Symbol.asyncDispose]: stop,
  };
}

/** What `tests/fixtures/mock_arrakis_main.ts` announces. */
export interface MockHello {
  info: string;
  data: { name: string; address: string }[];
}

/** The mock deployment in its own process. */
export function spawnMock(options: MockDeploymentOptions, prefix?: string[]) {
  return spawnDeno<MockHello>(here("../tests/fixtures/mock_arrakis_main.ts"), options, { prefix });
}

/**
 * A FlightProxy in its own process. With `ARRAKIS_BENCH_CPU_PROF=DIR` in the
 * environment it runs under `--cpu-prof` and leaves its profile in DIR.
 */
export function spawnProxy(config: ProxyChildConfig) {
  const dir = Deno.env.get("ARRAKIS_BENCH_CPU_PROF");
  const denoFlags = dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
  return spawnDeno<{ address: string; pid: number }>(here("./proxy_child.ts"), config, {
    denoFlags,
  });
}

/** Peak resident memory of a process so far, in MiB (`VmHWM`). */
export function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
  return kib / 1024;
}

/** Resident memory (`VmRSS`, or `VmHWM` with `peak`) of one process in MiB; 0 once it is gone. */
export function rssMiB(pid: number, { peak = false } = {}): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const field = peak ? "VmHWM" : "VmRSS";
    return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** A process and its descendants, split into ssh processes and the rest. */
export function processTree(pid: number): { own: number[]; ssh: number[] } {
  const own: number[] = [];
  const ssh: number[] = [];
  for (const each of [pid, ...descendants(pid)]) {
    let comm = "";
    try {
      comm = Deno.readTextFileSync(`/proc/${each}/comm`).trim();
    } catch { /* gone */ }
    (comm === "ssh" ? ssh : own).push(each);
  }
  return { own, ssh };
}

/** Sum of {@link rssMiB} over `pids`. */
export function sumRssMiB(pids: number[], options: { peak?: boolean } = {}): number {
  return pids.reduce((sum, pid) => sum + rssMiB(pid, options), 0);
}
