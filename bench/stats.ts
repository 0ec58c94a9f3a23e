/**
 * Small statistics for the bench: medians, percentiles and the alternating
 * A/B rounds every comparison is made of.
 *
 * @module
 */

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
