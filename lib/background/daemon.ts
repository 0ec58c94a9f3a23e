/**
 * The background half of `arrakis-proxy -f` (see `starter.ts` for the
 * foreground half): a detached process (a new session: no controlling
 * terminal, stdio on /dev/null, its output in a log file) that adopts the SSH
 * master the starter logged in, runs the proxy, and keeps its record current.
 * A proxy whose SSH connection stays down longer than `giveUpAfterSeconds`
 * exits and removes its record, so every background proxy a user cannot reach
 * is also gone from `arrakis-proxy status`.
 *
 * @module
 */
import type { KafkaMode } from "../flight/kafka_locations.ts";
import { formatNetloc } from "../netloc.ts";
import { sshProxy } from "../ssh_proxy.ts";
import { listenAddress } from "../net/listen_address.ts";
import type { Logger, Verbosity } from "../log.ts";
import { UserError } from "../errors.ts";
import { delay } from "../async.ts";
import { signalWaiter } from "../signals.ts";
import denoJson from "../../deno.json" with { type: "json" };
import {
  handOverPath,
  logPath,
  openStateDir,
  processStartTime,
  type ProxyRecord,
  RECORD_FORMAT,
  removeRecord,
  writeRecord,
} from "./state.ts";
import { fileLogger } from "./log_file.ts";
import type { TokenOptions } from "../proxy_process/token.ts";

/** First argument that makes `main.ts` (or the compiled binary) run as a background proxy. */
export const DAEMON_FLAG = "--internal-background-proxy";

/**
 * What the starter hands the background process (as one JSON argument after
 * {@link DAEMON_FLAG}). Token options only, never the token: the background
 * process finds it itself, and again when it is renewed.
 */
export interface DaemonConfig extends TokenOptions {
  /** ssh destination. */
  host: string;
  /** `--server`, when given. */
  server?: string;
  /** `--listen`, when given. */
  listen?: string;
  /** `--allow-remote-clients`. */
  allowRemoteClients?: boolean;
  /** `--reuse-through-proxy`. */
  reuseThroughProxy?: boolean;
  /** `--kafka`. */
  kafka?: KafkaMode;
  /** `--split-streams`. */
  splitStreams?: number;
  /** `-F`. */
  sshConfig?: string;
  /** Each `-o`. */
  sshOptions?: string[];
  /** The log's level. */
  verbosity: Verbosity;
  /** Exit when SSH stays down this long. */
  giveUpAfterSeconds: number;
  /** Control socket of the master the starter logged in. */
  master: string;
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
  using signals = signalWaiter();
  let keepLog = false;
  try {
    await using proxy = await sshProxy(config.host, {
      server: config.server,
      listen: config.listen,
      allowRemoteClients: config.allowRemoteClients,
      reuseThroughProxy: config.reuseThroughProxy,
      kafka: config.kafka,
      splitStreams: config.splitStreams,
      sshConfig: config.sshConfig,
      sshOptions: config.sshOptions,
      tokenFile: config.tokenFile,
      tokenAudience: config.tokenAudience,
      noToken: config.noToken,
      adoptMaster: config.master,
      // Nobody is there to answer a prompt: reconnects run with BatchMode.
      interactive: false,
      logger: tracked,
      signal: signals.signal,
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
      master: proxy.master,
    };
    await writeRecord(dir, record);
    logger.info(`ready: ARRAKIS_SERVER=${proxy.url}, pid ${Deno.pid}`);

    let downSince: number | undefined;
    while (true) {
      if (!await delay(500, signals.signal)) {
        logger.info(`${await signals.received}: shutting down`);
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
        record.master = proxy.master;
      } else {
        downSince ??= Date.now();
        if (Date.now() - downSince > config.giveUpAfterSeconds * 1000) {
          keepLog = true;
          log.error(
            `ssh connection to ${config.host} down for more than ` +
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
    log.error(message);
    return error instanceof UserError ? error.exitCode : 1;
  } finally {
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
