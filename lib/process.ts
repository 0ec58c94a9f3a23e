/**
 * Ending processes we started: one way to stop a child (ask it, wait, then
 * signal it), a signal that tolerates a process already gone, and a wait for a
 * process that is not our direct child (ssh's backgrounded master).
 *
 * @example
 * ```ts
 * import { stopChild } from "./process.ts";
 *
 * const child = new Deno.Command("cat", { stdin: "piped" }).spawn();
 * const input = child.stdin.getWriter();
 * // Closing stdin asks cat to end; after 3 s it gets SIGKILL.
 * await stopChild(child, { ask: () => input.close(), signal: "SIGKILL" });
 * ```
 *
 * @module
 */
import { delay, settlesWithin } from "./async.ts";

/** Sends `signal` to a child or a pid; a process that is already gone is no error. */
export function sendSignal(target: Deno.ChildProcess | number, signal: Deno.Signal): void {
  try {
    if (typeof target === "number") Deno.kill(target, signal);
    else target.kill(signal);
  } catch {
    // Already exited.
  }
}

/** Options of {@link stopChild}. */
export interface StopOptions {
  /** Asks the process to end by itself (close its stdin, `ssh -O exit`, …). */
  ask?: () => unknown;
  /** How long it may take after `ask`. @default {3000} */
  graceMs?: number;
  /** Sent when the grace time is over. @default {"SIGTERM"} */
  signal?: Deno.Signal;
}

/**
 * Stops a process: `ask`, wait up to `graceMs` for it to exit, then `signal` it.
 * A child is awaited to the end; a pid (not our child, so nothing to reap) is
 * signalled and left. Resolves whether it exited within the grace time.
 */
export async function stopChild(
  target: Deno.ChildProcess | number,
  { ask, graceMs = 3000, signal = "SIGTERM" }: StopOptions = {},
): Promise<boolean> {
  await Promise.resolve(ask?.()).catch(() => undefined);
  const exited = typeof target === "number"
    ? pidGone(target, graceMs)
    : settlesWithin(target.status, graceMs);
  if (await exited) return true;
  sendSignal(target, signal);
  if (typeof target !== "number") await target.status;
  return false;
}

/**
 * Polls until `pid` no longer exists (or is a zombie nobody reaps), for up to
 * `ms`. Without /proc (not Linux) it cannot tell and answers true.
 */
async function pidGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      if (/^\d+ \(.*\) Z/s.test(stat)) return true;
    } catch {
      return true;
    }
    if (Date.now() > deadline) return false;
    await delay(25);
  }
}

/**
 * The command line of process `pid` (its argv), or undefined when there is no
 * such process or it cannot be read.
 */
export async function commandLine(pid: number): Promise<string[] | undefined> {
  if (Deno.build.os === "linux") {
    const text = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => undefined);
    return text ? text.replace(/\0$/, "").split("\0") : undefined;
  }
  // Elsewhere ps joins the words with spaces: good enough to find a word in it.
  const output = await new Deno.Command("ps", {
    args: ["-o", "args=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  const text = output?.success ? new TextDecoder().decode(output.stdout).trim() : "";
  return text ? text.split(" ") : undefined;
}
