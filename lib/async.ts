/**
 * Waiting with a limit: a sleep that an abort cuts short, whether a promise
 * settles in time, and a promise that fails when it takes too long.
 *
 * @example
 * ```ts
 * import { delay, settlesWithin, withTimeout } from "./async.ts";
 *
 * await delay(100);
 * declare const exited: Promise<unknown>;
 * if (!await settlesWithin(exited, 3000)) console.log("still running");
 * await withTimeout(fetch("http://127.0.0.1:8080/"), 5000, "fetch");
 * ```
 *
 * @module
 */

/** Waits `ms`; resolves false at once when `signal` aborts first (or had). */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const aborted = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", aborted);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/** Whether `promise` settles (either way) within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `promise`, or an error `WHAT: no answer within MS ms` when it takes longer. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
