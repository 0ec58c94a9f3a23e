/**
 * One proxy run: the stages of `stages.ts` (the list doctor runs too), and the
 * handle a caller keeps — the URL for clients, the state of the SSH connection,
 * the forwards. Clients redeem reuse-connection endpoints at a second forward
 * to the server, so bulk data does not pass through the proxy.
 *
 * @module
 */
import { SshConnection } from "./ssh/connection.ts";
import { endLeftoverMaster, type MasterAddress } from "./ssh/leftover_master.ts";
import { assertSshDestination } from "./ssh/validate.ts";
import { REUSE_CONNECTION } from "./flight/locations.ts";
import { formatNetloc, isLoopbackHost, parseNetloc } from "./netloc.ts";
import { silentLogger } from "./log.ts";
import { listenable, listenAddress } from "./net/listen_address.ts";
import { connectOptions, type SshOptions } from "./ssh_options.ts";
import { type MasterLogin, startLogin } from "./ssh/login.ts";
import { spawnProxyChild } from "./proxy_process/parent.ts";
import type { TokenOptions } from "./proxy_process/token.ts";

export type { SshOptions } from "./ssh_options.ts";
export type { MasterAddress } from "./ssh/leftover_master.ts";

/**
 * An SSH master authenticated in this process for another one to adopt
 * ({@link SshProxyOptions.adoptMaster}, {@link SshProxy.reconnectWith}).
 */
export interface HandOverMaster {
  /** The master's control socket, which the other process is given. */
  readonly controlPath: string;
  /** Lets go of the master once the other process has adopted it (it keeps running). */
  release(): Promise<void>;
  /** Ends the master (nobody took it). */
  close(): Promise<void>;
}

/**
 * Logs in to `sshHost` here, prompting on this terminal as a run does, for a
 * process that cannot prompt (a background proxy) to take the master over.
 *
 * @throws {UserError} when ssh cannot connect.
 */
export async function loginForHandOver(
  sshHost: string,
  options: Omit<SshOptions, "server" | "interactive"> & { signal?: AbortSignal },
): Promise<HandOverMaster> {
  return await SshConnection.connect({
    ...connectOptions(sshHost, { ...options, interactive: true }),
    signal: options.signal,
  });
}

/**
 * Ends the SSH master a proxy that is gone left behind (killed by SIGKILL, its
 * master lingers for `ControlPersist` seconds) and removes its control
 * directory; `master` as {@link SshProxy.master} told it.
 */
export async function endLeftoverSsh(
  sshHost: string,
  master: MasterAddress,
  options: Pick<SshOptions, "sshBinary" | "logger"> = {},
): Promise<void> {
  await endLeftoverMaster(sshHost, master, options);
}

/** Options of {@link sshProxy}; the token ones are `--token-file`, `--token-audience`, `--no-token`. */
export interface SshProxyOptions extends SshOptions, TokenOptions {
  /**
   * Local proxy address, `HOST:PORT`. Left out: `localhost:31206`, or a free
   * port when that one is taken (said at info level; {@link SshProxy.url} names it).
   * @default {"localhost:31206"}
   */
  listen?: string;
  /** Allow a `listen` address other than loopback (anyone who reaches it reaches the cluster). */
  allowRemoteClients?: boolean;
  /** Aborting stops the set-up and releases what it opened. */
  signal?: AbortSignal;
  /** First wait before reconnecting a lost SSH connection (doubles up to 30 s). @default {1000} */
  reconnectBackoffMs?: number;
  /**
   * Control socket of an SSH master already authenticated by another process, to
   * take over instead of connecting (see `lib/background/`); reconnects start
   * masters of their own.
   */
  adoptMaster?: string;
  /**
   * Redeem reuse-connection endpoints at the proxy, as clients would without
   * it, instead of at a forward straight to the info server (the default, which
   * keeps bulk data off the proxy).
   */
  reuseThroughProxy?: boolean;
  /**
   * The `authorization` value (`Bearer …`) to add to data-server and
   * reuse-connection calls that carry none (header relays in front of those
   * forwards); undefined: none. Ignored with remote clients: their calls never
   * get the user's token.
   */
  authorization?: () => string | undefined;
}

/** Where a running {@link SshProxy} is. */
export type SshProxyState = "up" | "reconnecting" | "closed";

/** A running proxy over SSH; dispose of it to tear everything down. */
export interface SshProxy extends AsyncDisposable {
  /** What clients put in `ARRAKIS_SERVER`, e.g. `grpc://localhost:31206`. */
  readonly url: string;
  /** The remote Arrakis server being proxied. */
  readonly server: string;
  /**
   * `up`, or `reconnecting` while the SSH connection is down (every call is then
   * answered UNAVAILABLE at once), or `closed`. A lost connection does not end
   * the proxy.
   */
  readonly state: SshProxyState;
  /**
   * The forwards in use, remote `host:port` → local `host:port` (or the socket
   * path of a forward or of the header relay in front of it); grows on demand.
   * The second one to the server, for reuse-connection endpoints, says so in
   * `purpose`, and so does each Kafka broker's listener (`kafka`, local = the listener).
   */
  readonly forwards: readonly {
    remote: string;
    local: string;
    purpose?: "reuse-connection" | "kafka";
  }[];
  /** How often the SSH connection was lost and made again. */
  readonly reconnects: number;
  /**
   * The SSH master in use, for a record that outlives this process: given to
   * {@link endLeftoverSsh}, it ends the master if this process dies without closing it.
   */
  readonly master: MasterAddress;
  /**
   * While `reconnecting`: reconnect at once over an SSH master that another
   * process authenticated (its control socket), for a proxy that cannot prompt
   * itself (a background one, whose login needs a password).
   *
   * @throws {UserError} when the connection is not down.
   */
  reconnectWith(controlPath: string): void;
  /** Stops the proxy, the forwards and the SSH connection. */
  close(): Promise<void>;
}

/**
 * Connects to `sshHost`, forwards the remote Arrakis server and every data server
 * it knows, and serves a local Flight proxy that points clients at those forwards.
 * The TypeScript counterpart of the Python `arrakis.proxy.ssh_proxy`; its stages
 * are `stages.ts`'s `STAGES`, which doctor runs one at a time.
 *
 * @example
 * ```ts
 * await using proxy = await sshProxy("login.example.org");
 * Deno.env.set("ARRAKIS_SERVER", proxy.url);
 * ```
 */
export async function sshProxy(sshHost: string, options: SshProxyOptions = {}): Promise<SshProxy> {
  const logger = options.logger ?? silentLogger;
  // Before anything else: a host starting with "-" must never get near ssh.
  assertSshDestination(sshHost);
  const requested = listenAddress(options);
  if (!isLoopbackHost(requested.host)) {
    logger.warn(
      `listening on ${requested.host}: anyone who can reach it can read the cluster's data`,
    );
  }
  const listen = listenable(requested, { isDefault: options.listen === undefined, logger });
  options.signal?.throwIfAborted();

  await using stack = new AsyncDisposableStack();
  // The login first: its round trips overlap loading the rest and the proxy child's start.
  let login: MasterLogin | undefined;
  if (options.adoptMaster === undefined) {
    logger.info(`connecting to ${sshHost}`);
    logger.progress(`connecting to ${sshHost}…`);
    const started = await startLogin({
      ...connectOptions(sshHost, options),
      signal: options.signal,
    });
    stack.defer(() => started.abandon());
    login = started;
  }
  // The proxy child too: loading grpc-js takes it about as long as a quick login.
  const proxyProcess = spawnProxyChild();
  stack.defer(async () => {
    // Unless the serve stage took it (then its proxy stops it): its stdin's end stops it.
    await proxyProcess.stdin.close().catch(() => undefined);
    await proxyProcess.status;
  });
  // Loaded here, not with this module: most of the program (cli.ts imports this one).
  const { movedServer, openRun, runStages } = await import("./stages.ts");
  let run = await openRun(
    sshHost,
    { ...options, listen, login, rememberServer: true, proxyProcess },
    stack.use(new AsyncDisposableStack()),
  );
  try {
    await runStages(run);
  } catch (error) {
    const moved = await movedServer(run, error);
    if (moved === undefined) throw error;
    // Started with the server of last time: again with the one the login host
    // names now, over the same master (no second login).
    logger.info(`remote server is now ${moved.url} (not ${run.server?.url}): starting over`);
    const adoptMaster = await run.ssh!.release();
    await run.stack.disposeAsync();
    run = await openRun(
      sshHost,
      { ...options, listen, server: moved.url, adoptMaster },
      stack.use(new AsyncDisposableStack()),
    );
    await runStages(run);
  }
  const ssh = run.ssh!;
  const proxy = run.proxy!;
  const server = run.server!;
  const serverNetloc = formatNetloc(server.host, server.port);

  logger.progress("");
  if (ssh.state === "reconnecting") proxy.setUnavailable(ssh.downReason);
  // The host as the user wrote it (localhost stays localhost), the port as bound.
  const url = `grpc://${formatNetloc(listen.host, parseNetloc(run.clientAddress!)!.port)}`;

  const owned = stack.move();
  let closing: Promise<void> | undefined;
  const close = () => closing ??= owned.disposeAsync();
  return {
    url,
    server: server.url,
    get state() {
      return ssh.state;
    },
    get forwards() {
      return [
        ...run.locations.entries().map(([remote, local]) =>
          remote === REUSE_CONNECTION
            ? { remote: serverNetloc, local, purpose: "reuse-connection" as const }
            : { remote, local }
        ),
        ...(run.kafka?.brokers ?? []).map(({ remote, local }) => ({
          remote,
          local,
          purpose: "kafka" as const,
        })),
      ];
    },
    get reconnects() {
      return run.reconnects;
    },
    get master() {
      return { controlPath: ssh.connection.controlPath, pid: ssh.connection.masterPid };
    },
    reconnectWith: (controlPath) => ssh.reconnectWith(controlPath),
    close,
    [Symbol.asyncDispose]: close,
  };
}
