/**
 * The master's login: `ssh -M … -f -N` in the foreground until it has
 * authenticated (so password, OTP and host-key prompts reach the user's
 * terminal), then in the background. Started on its own so that a run can
 * begin it before it loads the rest of the program; {@link SshConnection}
 * takes it over (`ConnectOptions.login`), or starts one itself.
 *
 * @example
 * ```ts
 * import { startLogin } from "./login.ts";
 *
 * const login = await startLogin({ host: "ldas-grid" });
 * // … load what the run needs meanwhile …
 * await login.done; // the master is up, at login.controlPath (or ssh's one line, thrown)
 * ```
 *
 * @module
 */
import { UserError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { sendSignal, stopChild } from "../process.ts";
import { platformProblem, runSsh, spawnSsh, type SshRunner, StderrTee } from "./command.ts";
import { masterArgs, type MasterArgsOptions, muxArgs } from "./args.ts";
import { makeControlDir } from "./control_dir.ts";
import { assertSshDestination } from "./validate.ts";

/** Options of {@link startLogin}: what the master's command line and its ssh process need. */
export interface LoginOptions extends Omit<MasterArgsOptions, "controlPath"> {
  /** ssh executable. @default {"ssh"} */
  sshBinary?: string;
  /** Each ssh command line is a debug line. */
  logger?: Logger;
  /** Extra environment for ssh (for example `SSH_ASKPASS`). */
  env?: Record<string, string>;
  /** Aborting stops the login (the foreground ssh is killed). */
  signal?: AbortSignal;
}

/** A master's login under way; see the module documentation. */
export interface MasterLogin {
  /** The ssh destination. */
  readonly host: string;
  /** Its private (0700) directory, which holds the control socket. */
  readonly dir: string;
  /** The master's control socket, `${dir}/ctl`. */
  readonly controlPath: string;
  /**
   * Resolves once the master has authenticated and gone to the background.
   *
   * @throws {UserError} `ssh to HOST failed (exit 255): <ssh's last line>`.
   */
  readonly done: Promise<void>;
  /** The connection that took it over closes it from now on: {@link abandon} does nothing. */
  take(): void;
  /**
   * Unless taken: stops the login (or the master it started) and removes its
   * directory, for a run that ends before its connection took it over.
   */
  abandon(): Promise<void>;
}

/**
 * Starts the master's login in a fresh control directory.
 *
 * @throws {UserError} for an unsafe host, an unsupported OS or a missing ssh.
 */
export async function startLogin(options: LoginOptions): Promise<MasterLogin> {
  const problem = platformProblem(Deno.build.os);
  if (problem) throw new UserError(problem);
  assertSshDestination(options.host);
  options.signal?.throwIfAborted();
  const dir = await makeControlDir();
  const controlPath = `${dir}/ctl`;
  const runner: SshRunner = {
    binary: options.sshBinary ?? "ssh",
    env: options.env,
    logger: options.logger ?? silentLogger,
  };
  const interactive = options.interactive !== false;
  let child: Deno.ChildProcess;
  try {
    child = spawnSsh(runner, masterArgs({ ...options, controlPath }), {
      stdin: interactive ? "inherit" : "null",
      stdout: "null",
      stderr: "piped",
    });
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
    throw error;
  }
  const stderr = new StderrTee(child.stderr, interactive);
  const abort = () => sendSignal(child, "SIGTERM");
  options.signal?.addEventListener("abort", abort);
  const done = (async () => {
    const status = await child.status.finally(() =>
      options.signal?.removeEventListener("abort", abort)
    );
    // With -f the backgrounded master may keep the pipe open; don't wait for EOF.
    await stderr.finish(300);
    if (!status.success) {
      const why = stderr.lastLine || (status.signal ? `killed by ${status.signal}` : "no message");
      throw new UserError(`ssh to ${options.host} failed (exit ${status.code}): ${why}`);
    }
  })();
  done.catch(() => {/* the connection, or abandon, awaits it */});
  let taken = false;
  return {
    host: options.host,
    dir,
    controlPath,
    done,
    take: () => taken = true,
    async abandon() {
      if (taken) return;
      taken = true;
      await stopChild(child, { ask: () => sendSignal(child, "SIGTERM") });
      if (await done.then(() => true, () => false)) {
        await runSsh(runner, [...muxArgs(controlPath), "-O", "exit", "--", options.host])
          .catch(() => undefined);
      }
      await Deno.remove(dir, { recursive: true }).catch(() => undefined);
    },
  };
}
