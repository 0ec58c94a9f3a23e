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

const PAGE_BYTES = 4096;

/**
 * Physical memory backing `pids` together, in MiB: every page frame any of them
 * has resident, counted once. Summing VmRSS counts twice what the processes
 * share (the proxy's two processes map the same ~35 MiB `deno` binary), so
 * this is what the machine spends on them. Reads `/proc/PID/pagemap`, whose
 * frame numbers only root sees; a process that is gone adds nothing.
 */
export function physicalMiB(pids: number[]): number {
  const frames = new Set<number>();
  for (const pid of pids) {
    let smaps: string;
    let pagemap: Deno.FsFile;
    try {
      smaps = Deno.readTextFileSync(`/proc/${pid}/smaps`);
      pagemap = Deno.openSync(`/proc/${pid}/pagemap`, { read: true });
    } catch {
      continue;
    }
    try {
      let range: [number, number] | undefined;
      for (const line of smaps.split("\n")) {
        const mapping = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
        if (mapping) {
          range = [parseInt(mapping[1], 16), parseInt(mapping[2], 16)];
          continue;
        }
        const rss = /^Rss:\s+(\d+) kB/.exec(line);
        if (!rss || !range || rss[1] === "0") continue;
        // One 64-bit entry per page: bit 63 present, bits 0-54 the frame number.
        const pages = (range[1] - range[0]) / PAGE_BYTES;
        const entries = new Uint8Array(pages * 8);
        pagemap.seekSync((range[0] / PAGE_BYTES) * 8, Deno.SeekMode.Start);
        for (let read = 0; read < entries.length;) {
          const n = pagemap.readSync(entries.subarray(read));
          if (!n) break;
          read += n;
        }
        const view = new DataView(entries.buffer);
        for (let page = 0; page < pages; page++) {
          const high = view.getUint32(page * 8 + 4, true);
          if (high & 0x8000_0000) {
            frames.add((high & 0x7f_ffff) * 2 ** 32 + view.getUint32(page * 8, true));
          }
        }
      }
    } finally {
      pagemap.close();
    }
  }
  if (frames.size === 1 && frames.has(0)) {
    throw new Error("physicalMiB: /proc/PID/pagemap shows no frame numbers (run as root)");
  }
  return frames.size * PAGE_BYTES / 2 ** 20;
}

/** Sum of {@link rssMiB} over `pids`. */
export function sumRssMiB(pids: number[], options: { peak?: boolean } = {}): number {
  return pids.reduce((sum, pid) => sum + rssMiB(pid, options), 0);
}

/**
 * Memory of a process tree while `load` runs, two ways: the physical memory
 * of all its processes together (each page once, {@link physicalMiB}) idle
 * before and its largest sample (every 100 ms) during; and the same as the sum
 * of VmRSS (every 20 ms), which counts shared pages once per process, plus the
 * sum of every process's VmHWM after (an upper bound: they need not peak at once).
 */
export async function treeMemory(pid: number, load: () => Promise<unknown>) {
  const tree = processTree(pid);
  const idle = physicalMiB(tree.own);
  const idleRss = sumRssMiB(tree.own);
  const idleSsh = sumRssMiB(tree.ssh);
  let peak = idle;
  let peakRss = idleRss;
  const sampleRss = setInterval(() => peakRss = Math.max(peakRss, sumRssMiB(tree.own)), 20);
  const sample = setInterval(() => peak = Math.max(peak, physicalMiB(tree.own)), 100);
  try {
    await load();
  } finally {
    clearInterval(sampleRss);
    clearInterval(sample);
  }
  peak = Math.max(peak, physicalMiB(tree.own));
  peakRss = Math.max(peakRss, sumRssMiB(tree.own));
  return {
    processes: tree.own.length,
    idleMiB: idle,
    peakMiB: peak,
    idleRssSumMiB: idleRss,
    peakRssSumMiB: peakRss,
    peakHwmSumMiB: sumRssMiB(tree.own, { peak: true }),
    sshIdleMiB: idleSsh,
  };
}
