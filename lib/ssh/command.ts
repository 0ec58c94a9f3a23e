/**
 * Running the OpenSSH client: argument arrays only (never a shell string),
 * a clear error when the binary is missing, each command line a debug line
 * (shown with `--verbose`), and what ssh says on stderr.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { settlesWithin } from "../async.ts";
import type { Logger } from "../log.ts";

/**
 * Why this operating system cannot run the proxy, or undefined when it can.
 * Everything here rests on OpenSSH connection sharing (ControlMaster), which
 * the OpenSSH that ships with Windows does not implement.
 */
export function platformProblem(os: typeof Deno.build.os): string | undefined {
  return os === "windows"
    ? "Windows' OpenSSH has no connection sharing (ControlMaster), which arrakis-proxy " +
      "needs; run it under WSL, or on a Linux or macOS machine"
    : undefined;
}

/** What a finished ssh command left behind. */
export interface SshResult {
  /** Exit status (255 is ssh's own failure; others come from the remote command). */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/** How to start ssh. */
export interface SshRunner {
  /** ssh executable, looked up on PATH unless it contains a slash. */
  binary: string;
  /** Extra environment for ssh (for example `SSH_ASKPASS`). */
  env?: Record<string, string>;
  /** Gets each command line, `$ ssh …`, as a debug line. */
  logger: Logger;
}

/**
 * Shows an argument array as one line, quoting words a shell would split.
 * For display only: commands are always run from the array itself.
 */
export function formatCommandLine(argv: readonly string[]): string {
  return argv.map((word) =>
    /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
  )
    .join(" ");
}

/**
 * Starts ssh with `args`, turning a missing binary into a {@link UserError}.
 *
 * @throws {UserError} when the ssh binary cannot be found or executed.
 */
export function spawnSsh(
  runner: SshRunner,
  args: readonly string[],
  options: Omit<Deno.CommandOptions, "args" | "env">,
): Deno.ChildProcess {
  runner.logger.debug(`$ ${formatCommandLine([runner.binary, ...args])}`);
  try {
    return new Deno.Command(runner.binary, { ...options, args: [...args], env: runner.env })
      .spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(
        `ssh not found (${runner.binary}): install OpenSSH or put its ssh on your PATH`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`cannot run ${runner.binary}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/** Runs ssh to completion with stdin closed and collects its output. */
export async function runSsh(runner: SshRunner, args: readonly string[]): Promise<SshResult> {
  const child = spawnSsh(runner, args, { stdin: "null", stdout: "piped", stderr: "piped" });
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** The last non-empty line of ssh's stderr, which is where it says why it failed. */
export function lastLine(text: string): string {
  const lines = text.split(/\r?\n|\r/).map((line) => line.trim()).filter((line) => line !== "");
  return lines.at(-1) ?? "";
}

/** Copies ssh's stderr to ours (when interactive) and remembers its last lines. */
export class StderrTee {
  #reader: ReadableStreamDefaultReader<string>;
  #done: Promise<void>;
  #text = "";

  /** Starts reading `stream`, echoing it to our stderr when `echo`. */
  constructor(stream: ReadableStream<Uint8Array>, echo: boolean) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.#done = this.#pump(echo);
  }

  /** The last non-empty line seen so far. */
  get lastLine(): string {
    return lastLine(this.#text);
  }

  async #pump(echo: boolean): Promise<void> {
    const encoder = new TextEncoder();
    try {
      while (true) {
        const { value, done } = await this.#reader.read();
        if (done) return;
        if (echo) await Deno.stderr.write(encoder.encode(value));
        this.#text = (this.#text + value).slice(-4096);
      }
    } catch {
      // Cancelled by finish(): the remaining output is not ours to wait for.
    }
  }

  /** Waits up to `ms` for EOF, then stops reading. */
  async finish(ms: number): Promise<void> {
    if (!await settlesWithin(this.#done, ms)) {
      await this.#reader.cancel().catch(() => undefined);
      await this.#done;
    }
  }
}
