/**
 * A proxy that runs in the background, like `ssh -f`: everything that may
 * prompt happens in the calling process, on its terminal; the proxy itself runs
 * in a detached process (a new session: no controlling terminal, stdio on
 * /dev/null, its output in a log file) that outlives the caller.
 *
 * Deno cannot fork, so the hand-over goes through OpenSSH's own multiplexing:
 *
 * 1. the caller opens the SSH master connection, prompting as a foreground run
 *    does (password, OTP, host key); the master backgrounds itself (`ssh -f`);
 * 2. the caller starts this program again, detached, with the master's control
 *    socket; that process adopts the master (its own keepalive session), finds
 *    the server, opens the forwards, starts the Flight proxy and writes its
 *    record (see `state.ts`);
 * 3. the caller relays the log's lines while it waits, and once the record
 *    appears ends its own session on the master (which the background process
 *    now keeps alive) and returns.
 *
 * Reconnects in the background cannot prompt (BatchMode). Starting it again
 * from a terminal while it is reconnecting logs in there (prompting as the
 * first start did) and hands the new master over the same way, through a file
 * beside its record that the background process polls. A proxy whose SSH
 * connection stays down longer than `giveUpAfterSeconds` exits and removes its
 * record, so every background proxy a user cannot reach is also gone from
 * `arrakis-proxy status`.
 *
 * @module
 */
import { SshConnection } from "../ssh/connection.ts";
import { assertSshDestination } from "../ssh/validate.ts";
import { formatNetloc } from "../netloc.ts";
import {
  connectOptions,
  listenable,
  listenAddress,
  sshProxy,
  type SshProxyOptions,
} from "../ssh_proxy.ts";
import { type Logger, silentLogger, type Verbosity } from "../log.ts";
import { UserError } from "../errors.ts";
import denoJson from "../../deno.json" with { type: "json" };
import {
  handOverPath,
  isLive,
  listRecords,
  logPath,
  openStateDir,
  processStartTime,
  type ProxyRecord,
  RECORD_FORMAT,
  type RecordList,
  recordPath,
  removeRecord,
  writeRecord,
} from "./state.ts";
import { fileLogger, unstamp } from "./log_file.ts";

export type { ProxyRecord, RecordList } from "./state.ts";

/** First argument that makes `main.ts` (or the compiled binary) run as a background proxy. */
export const DAEMON_FLAG = "--internal-background-proxy";

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
    | "sshConfig"
    | "sshOptions"
    | "signal"
    | "tokenFile"
    | "tokenAudience"
    | "noToken"
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

/** What the caller hands the background process (as one JSON argument). */
interface DaemonConfig {
  host: string;
  server?: string;
  listen?: string;
  allowRemoteClients?: boolean;
  reuseThroughProxy?: boolean;
  sshConfig?: string;
  sshOptions?: string[];
  /** Token options (never the token: the background process finds it, and again on reconnects). */
  tokenFile?: string;
  tokenAudience?: string;
  noToken?: boolean;
  verbosity: Verbosity;
  giveUpAfterSeconds: number;
  /** Control socket of the master the caller opened. */
  master: string;
}

/**
 * Starts a proxy in the background, or finds the one already running for the
 * same host (and `server`, and `listen`, when given). ssh prompts on this
 * process's terminal; the proxy outlives this process. Stop it with
 * {@link stopBackgroundProxy}.
 *
 * @example
 * ```ts
 * import { startBackgroundProxy } from "./daemon.ts";
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
  const master = await SshConnection.connect({
    ...connectOptions(sshHost, { ...options, interactive: true }),
    signal: options.signal,
  });
  let record: ProxyRecord;
  try {
    const config: DaemonConfig = {
      host: sshHost,
      server: options.server,
      listen: options.listen,
      allowRemoteClients: options.allowRemoteClients,
      reuseThroughProxy: options.reuseThroughProxy,
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

const ERROR_PREFIX = "arrakis-proxy: error: ";

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
  const master = await SshConnection.connect({
    ...connectOptions(running.host, { ...options, interactive: true }),
    signal: options.signal,
  });
  try {
    const request = handOverPath(dir, running.pid);
    await Deno.writeTextFile(`${request}.tmp`, `${master.controlPath}\n`, { mode: 0o600 });
    await Deno.rename(`${request}.tmp`, request);
    const deadline = Date.now() + HAND_OVER_MS;
    while (true) {
      const record = await readRecord(recordPath(dir, running.pid));
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
      await new Promise((resolve) => setTimeout(resolve, 100));
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
    for (const stamped of lines) {
      const line = unstamp(stamped);
      if (line.startsWith(ERROR_PREFIX)) errorLine = line.slice(ERROR_PREFIX.length);
      else if (line.startsWith("arrakis-proxy: warning: ")) logger.warn(line.slice(24));
      else if (line.startsWith("arrakis-proxy: ")) logger.info(line.slice(15));
    }
  };
  while (true) {
    await relay();
    const record = await readRecord(recordPath(dir, child.pid));
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
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function readRecord(path: string): Promise<ProxyRecord | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

/**
 * Every background proxy of this user that is running; records of proxies that
 * are gone are removed on the way.
 *
 * @example
 * ```ts
 * import { listBackgroundProxies } from "./daemon.ts";
 *
 * const { records } = await listBackgroundProxies();
 * for (const proxy of records) console.log(`${proxy.host} ${proxy.url} pid ${proxy.pid}`);
 * ```
 */
export async function listBackgroundProxies(): Promise<RecordList> {
  return await listRecords(await openStateDir());
}

/**
 * Stops a background proxy as Ctrl-C stops a foreground one (SIGTERM: the
 * proxy, its forwards and the SSH connection close) and waits until its process
 * is gone and its record removed; SIGKILL after `timeoutMs`.
 *
 * @example
 * ```ts
 * import { listBackgroundProxies, stopBackgroundProxy } from "./daemon.ts";
 *
 * const { records } = await listBackgroundProxies();
 * for (const proxy of records.filter((p) => p.host === "login.example.org")) {
 *   await stopBackgroundProxy(proxy);
 * }
 * ```
 *
 * @throws {UserError} when the proxy is not running (its stale record is removed).
 */
export async function stopBackgroundProxy(
  record: Pick<ProxyRecord, "pid" | "startTime" | "host">,
  { timeoutMs = 15_000 }: { timeoutMs?: number } = {},
): Promise<void> {
  const dir = await openStateDir();
  if (!await isLive(record)) {
    await removeRecord(dir, record.pid);
    throw new UserError(`no background proxy for ${record.host} is running (pid ${record.pid})`);
  }
  Deno.kill(record.pid, "SIGTERM");
  if (!await exitsWithin(record, timeoutMs)) {
    try {
      Deno.kill(record.pid, "SIGKILL");
    } catch { /* gone */ }
    await exitsWithin(record, 5000);
  }
  await removeRecord(dir, record.pid);
}

async function exitsWithin(
  record: Pick<ProxyRecord, "pid" | "startTime">,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (await isLive(record)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * The background process: adopts the master, runs the proxy, keeps its record
 * current, and on SIGTERM (or SIGINT, SIGHUP) tears down as a foreground run
 * does, removing its record and log. Resolves to the exit status.
 */
export async function runDaemon(configText: string): Promise<number> {
  const config: DaemonConfig = JSON.parse(configText);
  const dir = await openStateDir();
  using log = fileLogger(logPath(dir, Deno.pid), config.verbosity);
  const logger = log.logger;
  let lastError: string | undefined;
  const tracked: Logger = {
    ...logger,
    warn(message) {
      lastError = message;
      logger.warn(message);
    },
  };
  const stopping = new AbortController();
  const stopped = Promise.withResolvers<Deno.Signal>();
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];
  const listeners = signals.map((signal) => {
    const listener = () => {
      stopping.abort(new UserError(`interrupted by ${signal}`, { exitCode: 130 }));
      stopped.resolve(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  let keepLog = false;
  try {
    await using proxy = await sshProxy(config.host, {
      server: config.server,
      listen: config.listen,
      allowRemoteClients: config.allowRemoteClients,
      reuseThroughProxy: config.reuseThroughProxy,
      sshConfig: config.sshConfig,
      sshOptions: config.sshOptions,
      tokenFile: config.tokenFile,
      tokenAudience: config.tokenAudience,
      noToken: config.noToken,
      adoptMaster: config.master,
      // Nobody is there to answer a prompt: reconnects run with BatchMode.
      interactive: false,
      logger: tracked,
      signal: stopping.signal,
    });
    const startTime = await processStartTime(Deno.pid);
    if (startTime === undefined) throw new Error("cannot read this process's start time");
    const port = Number(proxy.url.slice(proxy.url.lastIndexOf(":") + 1));
    const listen = listenAddress(config);
    const record: ProxyRecord = {
      format: RECORD_FORMAT,
      version: denoJson.version,
      pid: Deno.pid,
      startTime,
      host: config.host,
      server: proxy.server,
      requestedServer: config.server,
      url: proxy.url,
      listen: formatNetloc(listen.host, port),
      forwards: [...proxy.forwards],
      started: new Date().toISOString(),
      state: "up",
      reconnects: 0,
      log: log.path,
    };
    await writeRecord(dir, record);
    logger.info(`ready: ARRAKIS_SERVER=${proxy.url}, pid ${Deno.pid}`);

    let downSince: number | undefined;
    while (true) {
      const signal = await Promise.race([
        stopped.promise,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 500)),
      ]);
      if (signal) {
        logger.info(`${signal}: shutting down`);
        return 0;
      }
      const handOver = await takeHandOver(dir, Deno.pid);
      if (handOver !== undefined && proxy.state === "reconnecting") {
        logger.info(`taking over the SSH connection opened by \`arrakis-proxy -f\` (${handOver})`);
        proxy.reconnectWith(handOver);
      }
      const before = JSON.stringify(record);
      record.reconnects = proxy.reconnects;
      record.state = proxy.state === "reconnecting" ? "reconnecting" : "up";
      if (record.state === "up") {
        downSince = undefined;
        record.forwards = [...proxy.forwards];
      } else {
        downSince ??= Date.now();
        if (Date.now() - downSince > config.giveUpAfterSeconds * 1000) {
          keepLog = true;
          logger.info(
            `${ERROR_PREFIX.slice(15)}ssh connection to ${config.host} down for more than ` +
              `${config.giveUpAfterSeconds} s (${lastError ?? "no reason given"}); giving up`,
          );
          return 1;
        }
      }
      record.lastError = lastError;
      if (JSON.stringify(record) !== before) await writeRecord(dir, record);
    }
  } catch (error) {
    keepLog = true; // the caller reads the error line from it
    const message = error instanceof UserError ? error.message : String(error);
    logger.info(`${ERROR_PREFIX.slice(15)}${message}`);
    return error instanceof UserError ? error.exitCode : 1;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    await removeRecord(dir, Deno.pid, { log: !keepLog });
  }
}

/**
 * The control socket a caller asked this proxy to take over (see {@link relogin}),
 * once: the request is removed. Only a socket owned by this user, in a directory
 * only this user can enter, is taken.
 */
async function takeHandOver(dir: string, pid: number): Promise<string | undefined> {
  const request = handOverPath(dir, pid);
  let text: string;
  try {
    text = await Deno.readTextFile(request);
  } catch {
    return undefined;
  }
  await Deno.remove(request).catch(() => undefined);
  const path = text.trim();
  const uid = Deno.uid();
  const [socket, parent] = await Promise.all([
    Deno.lstat(path).catch(() => undefined),
    Deno.lstat(path.slice(0, path.lastIndexOf("/")) || "/").catch(() => undefined),
  ]);
  const private_ = parent?.isDirectory && parent.uid === uid && (parent.mode! & 0o077) === 0;
  if (!path.startsWith("/") || !socket?.isSocket || socket.uid !== uid || !private_) {
    return undefined;
  }
  return path;
}
