/**
 * One backoff policy for everything that retries: waits that grow by a factor
 * up to a ceiling, optionally starting with no wait at all, and start over after
 * {@link Backoff.reset}. The SSH reconnect loop and the proxy child's restarts
 * both use it.
 *
 * @example
 * ```ts
 * import { Backoff } from "./backoff.ts";
 *
 * const backoff = new Backoff({ initialMs: 250, maxMs: 10_000, immediateFirst: true });
 * backoff.next(); // 0
 * backoff.next(); // 250
 * backoff.next(); // 500
 * backoff.reset(); // after a long enough success
 * ```
 *
 * @module
 */

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** The first wait (the second one with `immediateFirst`). */
  initialMs: number;
  /** The longest wait. */
  maxMs: number;
  /** Growth factor between waits. @default {2} */
  factor?: number;
  /** Whether the first wait is 0 (retry at once once, then back off). @default {false} */
  immediateFirst?: boolean;
}

/** Successive waits of a retry loop; see the module documentation. */
export class Backoff {
  #options: BackoffOptions;
  #attempt = 0;

  /** A backoff at its start. */
  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** The wait before the next attempt, in milliseconds; each call moves one step on. */
  next(): number {
    const { initialMs, maxMs, factor = 2, immediateFirst = false } = this.#options;
    const step = this.#attempt++ - (immediateFirst ? 1 : 0);
    if (step < 0) return 0;
    return Math.min(initialMs * factor ** step, maxMs);
  }

  /** Starts over: the next wait is the first one again. */
  reset(): void {
    this.#attempt = 0;
  }
}
