/**
 * The full load matrix through the real `arrakis-proxy` command (the suite's
 * `tests/load_test.ts` runs the same scenarios, tests/fixtures/load.ts, small):
 *
 * - 1,000 concurrent GetFlightInfo;
 * - 20 concurrent 256 MiB DoGets on each path — data-server forwards, the info
 *   server's reuse forward, the proxy — in a rotated order each round, MiB/s
 *   per path and each path's ratio to the reuse forward (the same server and
 *   ticket as the proxy path, so that ratio is what the proxy costs);
 * - 100,000 sequential GetFlightInfo after 20,000 to warm up: the resident memory
 *   of the command and of its gRPC child grows by less than 20 MB, their open
 *   descriptors not at all.
 *
 * Usage: `deno task bench load [--quick] [--rounds N] [--out FILE]` (needs root:
 * the cluster lives in a network namespace). Prints a line per figure, writes
 * them as JSON (default `bench/results/load.json`) and exits 1 if a DoGet came
 * back short or a process grew.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import {
  concurrentInfos,
  doGetPaths,
  type DoGetSizes,
  sequentialInfos,
  startLoadRig,
} from "../tests/fixtures/load.ts";
import { alternate, summarize } from "./stats.ts";

const MiB = 1 << 20;

interface LoadSizes {
  rounds: number;
  infos: number;
  doGets: DoGetSizes;
  warmUp: number;
  calls: number;
}

// The child's heap settles after 10,000-20,000 calls (RSS ~70 → ~200 MiB, then flat: measured in
// steps of 10,000 up to 80,000); growth is judged from there.
const FULL: LoadSizes = {
  rounds: 1,
  infos: 1_000,
  // 16 bytes a row: 4 MiB batches, 256 MiB a DoGet.
  doGets: { concurrent: 20, rowsPerBatch: 262_144, batches: 64, digest: false },
  warmUp: 20_000,
  calls: 100_000,
};

const QUICK: LoadSizes = {
  rounds: 2,
  infos: 100,
  doGets: { concurrent: 4, rowsPerBatch: 65_536, batches: 4, digest: false },
  warmUp: 100,
  calls: 500,
};

const MAX_RSS_GROWTH = 20_000_000;

/** Runs the matrix; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const option = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const quick = args.includes("--quick");
  const sizes = { ...(quick ? QUICK : FULL) };
  if (option("--rounds")) sizes.rounds = Number(option("--rounds"));
  if (!(sizes.rounds >= 1)) {
    console.error("bench load: --rounds needs a whole number of at least 1");
    return 2;
  }
  if (Deno.uid() !== 0) {
    console.error("bench load: needs root (the cluster lives in a network namespace)");
    return 1;
  }
  const out = resolve(option("--out") ?? new URL("./results/load.json", import.meta.url).pathname);
  const problems: string[] = [];
  const loadBefore = Deno.loadavg();
  await using rig = await startLoadRig();

  const infos = await concurrentInfos(rig.proxy.url, sizes.infos);
  console.log(`${sizes.infos} concurrent GetFlightInfo: ${infos.ms.toFixed(0)} ms`);

  const expectedRows = sizes.doGets.rowsPerBatch * sizes.doGets.batches;
  const paths = await doGetPaths(rig.proxy.url, sizes.doGets);
  const mibps = await alternate(
    sizes.rounds,
    Object.fromEntries(paths.map((path) => [path.name, async () => {
      const { ms, results } = await path.run();
      for (const result of results) {
        if (result.rows !== expectedRows) {
          problems.push(`${path.label}: ${result.rows} rows of ${expectedRows}`);
        }
      }
      return results.reduce((sum, result) => sum + result.bytes, 0) / MiB / (ms / 1000);
    }])),
  );
  const doGets = summarize(mibps, "reuse");
  for (const path of paths) {
    console.log(
      `${sizes.doGets.concurrent} concurrent DoGets through ${path.label}: ` +
        `${doGets.median[path.name].toFixed(0)} MiB/s (×${
          doGets.ratio[path.name].toFixed(2)
        } of the reuse forward)`,
    );
  }

  const sequential = await sequentialInfos(rig.proxy, sizes);
  console.log(
    `${sizes.calls} sequential GetFlightInfo: ${(sequential.ms / 1000).toFixed(1)} s ` +
      `(${(sequential.ms * 1000 / sizes.calls).toFixed(0)} µs each)`,
  );
  for (const { name, before, after } of sequential.results) {
    const growth = after.rss - before.rss;
    console.log(
      `  ${name}: VmRSS ${(before.rss / MiB).toFixed(1)} → ${(after.rss / MiB).toFixed(1)} MiB ` +
        `(${growth >= 0 ? "+" : ""}${(growth / MiB).toFixed(1)} MiB), ` +
        `fds ${before.fds} → ${after.fds}`,
    );
    if (!quick && growth >= MAX_RSS_GROWTH) {
      problems.push(`${name}: resident memory grew by ${growth} bytes`);
    }
    if (after.fds > before.fds) problems.push(`${name}: open descriptors grew to ${after.fds}`);
  }

  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        mode: quick ? "quick" : "full",
        date: new Date().toISOString(),
        loadAverage: { before: loadBefore, after: Deno.loadavg() },
        sizes,
        concurrentInfosMs: infos.ms,
        doGetMiBps: doGets,
        sequentialInfos: { ms: sequential.ms, processes: sequential.results },
        problems,
      },
      null,
      2,
    ) + "\n",
  );
  console.error(`bench load: wrote ${out}`);
  for (const problem of problems) console.error(`bench load: FAILED: ${problem}`);
  return problems.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
