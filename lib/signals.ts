/**
 * Waiting for the signals that end a run (Ctrl-C, `kill`, a closed terminal):
 * one disposable waiter, for the foreground command line and the background
 * proxy alike.
 *
 * @example
 * ```ts
 * import { signalWaiter, TERMINATING_SIGNALS } from "./signals.ts";
 *
 * using signals = signalWaiter(TERMINATING_SIGNALS);
 * // Pass signals.signal to what sets up; then wait:
 * console.error(`${await signals.received}: shutting down`);
 * ```
 *
 * @module
 */
import { UserError } from "./errors.ts";

/** The signals that ask a proxy to shut down. */
export const TERMINATING_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** What {@link signalWaiter} returns; dispose of it to remove its listeners. */
export interface SignalWaiter extends Disposable {
  /** Resolves with the first of the signals that arrives. */
  readonly received: Promise<Deno.Signal>;
  /** Aborted then, with a {@link UserError} `interrupted by SIGNAL` (exit status 130). */
  readonly signal: AbortSignal;
}

/** Listens for `signals` until disposed of; see {@link SignalWaiter}. */
export function signalWaiter(signals: readonly Deno.Signal[] = TERMINATING_SIGNALS): SignalWaiter {
  const controller = new AbortController();
  const received = Promise.withResolvers<Deno.Signal>();
  const listeners = signals.map((signal) => {
    const listener = () => {
      controller.abort(new UserError(`interrupted by ${signal}`, { exitCode: 130 }));
      received.resolve(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return {
    received: received.promise,
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
