/**
 * The foreground half of `arrakis-proxy -f`: everything that may prompt
 * happens here, on the caller's terminal; the proxy itself runs in a detached
 * process (`daemon.ts`) that outlives the caller.
 *
 * Deno cannot fork, so the hand-over goes through OpenSSH's own multiplexing:
 *
 * 1. the caller logs in (the SSH master, prompting as a foreground run does:
 *    password, OTP, host key); the master backgrounds itself (`ssh -f`);
 * 2. the caller starts this program again, detached, with the master's control
 *    socket; that process adopts the master and writes its record when ready
 *    (see `daemon.ts`, `state.ts`);
 * 3. the caller relays the log's lines while it waits, and once the record
 *    appears lets go of the master (which the background process now keeps
 *    alive) and returns.
 *
 * Reconnects in the background cannot prompt (BatchMode). Starting it again
 * from a terminal while it is reconnecting logs in here (prompting as the
 * first start did) and hands the new master over the same way, through a file
 * beside its record that the background process polls.
 *
 * @module
 */
import { assertSshDestination } from "../ssh/validate.ts";
import { formatNetloc } from "../netloc.ts";
import { loginForHandOver, type SshProxyOptions } from "../ssh_proxy.ts";
import { listenable, listenAddress } from "../net/listen_address.ts";
import { type Logger, silentLogger } from "../log.ts";
import { UserError } from "../errors.ts";
import { delay } from "../async.ts";
import {
  handOverPath,
  isLive,
  listRecords,
  logPath,
  openStateDir,
  type ProxyRecord,
  readRecord,
  removeRecord,
} from "./state.ts";
import { parseLogLine } from "./log_file.ts";
import { DAEMON_FLAG, type DaemonConfig } from "./daemon.ts";

/** Default of {@link BackgroundOptions.giveUpAfterSeconds}. */
export const GIVE_UP_AFTER_SECONDS = 300;

/** Options of {@link startBackgroundProxy}. */
export interface BackgroundOptions extends
  Pick<
    SshProxyOptions,
    | "server"
    | "listen"
    | "allowRemoteClients"
    | "reuseThroughProxy"
    | "kafka"
    | "splitStreams"
    | "sshConfig"
    | "sshOptions"
    | "tokenFile"
    | "tokenAudience"
    | "noToken"
    | "signal"
  > {
  /**
   * Progress while starting (the background process's log lines are relayed
   * here); its level is also the log file's (`verbose` adds ssh command lines and
   * each call; below `normal`, `normal`).
   */
  logger?: Logger;
  /** Exit when the SSH connection stays down this long. @default {300} */
  giveUpAfterSeconds?: number;
  /**
   * The command that runs this program, in place of `deno run -A main.ts` (or
   * the compiled binary itself); {@link DAEMON_FLAG} and its configuration follow.
   */
  program?: string[];
  /**
   * When the proxy found for this host is reconnecting: log in here (ssh may
   * prompt) and hand it the new connection.
   * @default {Deno.stdin.isTerminal()}
   */
  relogin?: boolean;
}

/** A background proxy: its record, and whether it was already running. */
export type BackgroundProxy = ProxyRecord & {
  /** True when a proxy for the same host (and server) was found instead of started. */
  alreadyRunning: boolean;
};

/**
 * Starts a proxy in the background, or finds the one already running for the
 * same host (and `server`, and `listen`, when given). ssh prompts on this
 * process's terminal; the proxy outlives this process. Stop it with
 * {@link stopBackgroundProxy}.
 *
 * @example
 * ```ts
 * import { startBackgroundProxy } from "./starter.ts";
 *
 * const proxy = await startBackgroundProxy("login.example.org");
 * console.log(proxy.url, proxy.pid, proxy.log);
 * ```
 *
 * @throws {UserError} as `sshProxy` does, with the background process's message.
 */
export async function startBackgroundProxy(
  sshHost: string,
  options: BackgroundOptions = {},
): Promise<BackgroundProxy> {
  const logger = options.logger ?? silentLogger;
  assertSshDestination(sshHost);
  const listen = listenAddress(options);
  const dir = await openStateDir();
  const { records, problems } = await listRecords(dir);
  for (const problem of problems) logger.warn(problem);
  const wanted = formatNetloc(listen.host, listen.port);
  const running = records.find((record) =>
    record.host === sshHost &&
    (options.server === undefined || record.requestedServer === options.server ||
      record.server === options.server) &&
    (options.listen === undefined || record.listen === wanted)
  );
  if (running) {
    if (running.state !== "reconnecting" || !(options.relogin ?? Deno.stdin.isTerminal())) {
      return { ...running, alreadyRunning: true };
    }
    return { ...await relogin(dir, running, options, logger), alreadyRunning: true };
  }
  // A taken default port is not an error: the background process picks a free one and says so.
  listenable(listen, { isDefault: options.listen === undefined });
  options.signal?.throwIfAborted();

  // The background process logs "connecting to" itself (relayed below).
  logger.progress(`connecting to ${sshHost}…`);
  const master = await loginForHandOver(sshHost, options);
  let record: ProxyRecord;
  try {
    const config: DaemonConfig = {
      host: sshHost,
      server: options.server,
      listen: options.listen,
      allowRemoteClients: options.allowRemoteClients,
      reuseThroughProxy: options.reuseThroughProxy,
      kafka: options.kafka,
      splitStreams: options.splitStreams,
      sshConfig: options.sshConfig,
      sshOptions: options.sshOptions,
      tokenFile: options.tokenFile,
      tokenAudience: options.tokenAudience,
      noToken: options.noToken,
      verbosity: logger.level,
      giveUpAfterSeconds: options.giveUpAfterSeconds ?? GIVE_UP_AFTER_SECONDS,
      master: master.controlPath,
    };
    const [program, ...args] = [...(options.program ?? selfCommand()), DAEMON_FLAG];
    const child = new Deno.Command(program, {
      args: [...args, JSON.stringify(config)],
      cwd: "/",
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    record = await waitUntilReady(dir, child, logger, options.signal);
    child.unref();
  } catch (error) {
    await master.close();
    throw error;
  }
  logger.progress("");
  // The background process holds its own session on the master now.
  await master.release();
  return { ...record, alreadyRunning: false };
}

/** The argv that runs this program (before {@link DAEMON_FLAG}). */
function selfCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const main = new URL("../../main.ts", import.meta.url).href;
  return [Deno.execPath(), "run", "--quiet", "--no-prompt", "--allow-all", main];
}

/** How long a background proxy may take to come back over a handed-over master. */
const HAND_OVER_MS = 30_000;

/**
 * Logs in again for a background proxy that is reconnecting and cannot prompt:
 * opens a master here (prompting on this terminal), names its control socket in
 * the proxy's hand-over file, and once the proxy's record says it is up again
 * ends this process's session on the master, which the proxy now keeps.
 */
async function relogin(
  dir: string,
  running: ProxyRecord,
  options: BackgroundOptions,
  logger: Logger,
): Promise<ProxyRecord> {
  logger.info(
    `the background proxy for ${running.host} (pid ${running.pid}) is reconnecting; ` +
      `logging in again here`,
  );
  logger.progress(`connecting to ${running.host}…`);
  const master = await loginForHandOver(running.host, options);
  try {
    const request = handOverPath(dir, running.pid);
    await Deno.writeTextFile(`${request}.tmp`, `${master.controlPath}\n`, { mode: 0o600 });
    await Deno.rename(`${request}.tmp`, request);
    const deadline = Date.now() + HAND_OVER_MS;
    while (true) {
      const record = await readRecord(dir, running.pid);
      if (!record || !await isLive(record)) {
        throw new UserError(`the background proxy for ${running.host} exited meanwhile`);
      }
      if (record.state === "up" && record.reconnects > running.reconnects) {
        logger.progress("");
        await master.release();
        logger.info(`the background proxy for ${running.host} is connected again`);
        return record;
      }
      if (Date.now() > deadline) {
        throw new UserError(
          `the background proxy for ${running.host} did not take the new connection within ` +
            `${HAND_OVER_MS / 1000} s; see its log: ${running.log}`,
        );
      }
      await delay(100);
    }
  } catch (error) {
    await Deno.remove(handOverPath(dir, running.pid)).catch(() => undefined);
    await master.close();
    throw error;
  }
}

/**
 * Relays the background process's log lines to `logger` until its record
 * appears; throws its error line when it exits first.
 */
async function waitUntilReady(
  dir: string,
  child: Deno.ChildProcess,
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<ProxyRecord> {
  const log = logPath(dir, child.pid);
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  let offset = 0;
  let pending = "";
  let errorLine: string | undefined;
  const relay = async () => {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(log);
    } catch {
      return;
    }
    pending += new TextDecoder().decode(bytes.subarray(offset));
    offset = bytes.length;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const text of lines) {
      const line = parseLogLine(text);
      if (line?.level === "error") errorLine = line.message;
      else if (line?.level === "warning") logger.warn(line.message);
      else if (line) logger.info(line.message);
    }
  };
  while (true) {
    await relay();
    const record = await readRecord(dir, child.pid);
    if (record) return record;
    if (exited) {
      await relay();
      await removeRecord(dir, child.pid);
      throw new UserError(
        errorLine ?? `the background proxy exited (${exited.code}) before it was ready`,
        { exitCode: exited.code || 1 },
      );
    }
    if (signal?.aborted) {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await removeRecord(dir, child.pid);
      signal.throwIfAborted();
    }
    await delay(50, signal);
  }
}
