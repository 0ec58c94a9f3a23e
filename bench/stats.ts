/**
 * Small statistics for the bench: medians, percentiles and the alternating
 * A/B rounds every comparison is made of; the report's load line and JSON file.
 *
 * @module
 */
import { dirname } from "node:path";

/** The value at quantile `q` (0..1) of `values`, nearest rank. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The median of `values`. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Two paths measured alternately: the median of each and the median per-round ratio b/a. */
export interface Comparison {
  /** Median over rounds of the baseline (direct, or the plain ssh tunnel). */
  a: number;
  /** Median over rounds of the proxied path. */
  b: number;
  /** Median over rounds of b/a, each round's two runs taken back to back. */
  ratio: number;
  /** Every round's [a, b]. */
  rounds: [number, number][];
}

/**
 * Runs `measure` on path A and path B `rounds` times, swapping which goes first
 * each round so neither always runs on a warmer (or more loaded) machine.
 */
export async function compare(
  rounds: number,
  measureA: () => Promise<number>,
  measureB: () => Promise<number>,
): Promise<Comparison> {
  const pairs: [number, number][] = [];
  for (let round = 0; round < rounds; round++) {
    let a: number, b: number;
    if (round % 2 === 0) {
      a = await measureA();
      b = await measureB();
    } else {
      b = await measureB();
      a = await measureA();
    }
    pairs.push([a, b]);
  }
  return {
    a: median(pairs.map(([a]) => a)),
    b: median(pairs.map(([, b]) => b)),
    ratio: median(pairs.map(([a, b]) => b / a)),
    rounds: pairs,
  };
}

/** Milliseconds `run` takes. */
export async function timeMs(run: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

/** One figure on several paths: each path's median and its ratio to the baseline path. */
export interface PathFigure {
  /** The path the ratios are relative to (the plain ssh tunnel). */
  baseline: string;
  /** Median over rounds of each path's value. */
  median: Record<string, number>;
  /** Median over rounds of value / baseline's value of the same round. */
  ratio: Record<string, number>;
  /** Every round's value of each path. */
  rounds: Record<string, number[]>;
}

/** Medians and per-round ratios to `baseline` of values measured round by round. */
export function summarize(rounds: Record<string, number[]>, baseline: string): PathFigure {
  const base = rounds[baseline];
  const median_: Record<string, number> = {};
  const ratio: Record<string, number> = {};
  for (const [path, values] of Object.entries(rounds)) {
    median_[path] = median(values);
    ratio[path] = median(values.map((value, i) => value / base[i]));
  }
  return { baseline, median: median_, ratio, rounds };
}

/**
 * Runs every measure once a round, in an order rotated each round and reversed
 * every other round, so no path always runs first; returns each one's values.
 */
export async function alternate(
  rounds: number,
  measures: Record<string, () => Promise<number>>,
): Promise<Record<string, number[]>> {
  const names = Object.keys(measures);
  const values: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const shift = round % names.length;
    const order = [...names.slice(shift), ...names.slice(0, shift)];
    if (round % 2) order.reverse();
    for (const name of order) values[name][round] = await measures[name]();
  }
  return values;
}

/** The machine's load averages before a run and now, as one line for the report. */
export function loadLine(before: number[]): string {
  const format = (loads: number[]) => loads.map((load) => load.toFixed(2)).join(" ");
  return `load average before ${format(before)}, after ${format(Deno.loadavg())}`;
}

/** Writes a bench's figures as JSON to `out`, making its folder. */
export async function writeResults(out: string, results: unknown): Promise<void> {
  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(results, null, 2) + "\n");
}
