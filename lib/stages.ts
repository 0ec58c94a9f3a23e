/**
 * The stages of one proxy run, in one list that `sshProxy` and `doctor` both
 * run, so that doctor checks exactly what a run does: connect → find the server
 * → forward it → serve (the rewriting Flight proxy, in its child process) → the
 * user's token, when the server's reads need one → a second forward to the
 * server for reuse-connection endpoints → discover every data server → forward
 * them all.
 *
 * Only the user reaches a loopback run (issue 16): it opens with a private
 * (0700) directory, where the forwards are Unix sockets and the proxy child's
 * gRPC server listens, behind a client port this process guards (only our uid
 * is admitted). Every forward goes to the location map through
 * {@link handOut}, which puts a header relay in front of it when clients' calls
 * there are to carry the user's token. With remote clients forwards are TCP
 * ports on the listen address, the child listens there itself, and no token is
 * added.
 *
 * A stage reads what earlier stages put in the {@link Run} and adds its own; it
 * resolves to one line saying what it found (doctor's report), or undefined
 * when it has nothing to do in this run. A new stage is one object added to
 * {@link STAGES} (and, when it produces something, a field of {@link Run}):
 * the run runs it and doctor reports it, timed, without further wiring.
 *
 * Data flows one way: the SSH layer fills the location map, the proxy reads it
 * and asks for new forwards only through the resolver it was given.
 *
 * @example
 * ```ts
 * import { openRun, runStages } from "./stages.ts";
 *
 * await using stack = new AsyncDisposableStack();
 * const run = await openRun("login.example.org", { listen: { host: "127.0.0.1", port: 0 } }, stack);
 * await runStages(run, { report: ({ stage, detail, error, ms }) => {
 *   console.log(stage.name, error?.message ?? detail, `${ms} ms`);
 * } });
 * ```
 *
 * @module
 */
import { SshSupervisor } from "./ssh/supervisor.ts";
import type { MasterLogin } from "./ssh/login.ts";
import { connectOptions, type SshOptions } from "./ssh_options.ts";
import { type LocalAddress, localName } from "./ssh/connection.ts";
import { makeControlDir } from "./ssh/control_dir.ts";
import { resolveRemoteServer } from "./ssh/remote_server.ts";
import {
  recallServer,
  rememberServer,
  type ServerMemory,
  serverMemoryFor,
} from "./ssh/remembered_server.ts";
import { IsolatedProxy } from "./proxy_process/parent.ts";
import {
  localUrl,
  LocationMap,
  type ParsedLocation,
  REUSE_CONNECTION,
} from "./flight/locations.ts";
import { TokenRelays } from "./http2/token_relays.ts";
import { type GuardedForward, serveGuardedPort } from "./net/guarded_forward.ts";
import { admitsOwnUser, CAN_CHECK_PEER } from "./net/guard.ts";
import type { Discovery } from "./flight/discovery.ts";
import {
  dialableAddress,
  formatNetloc,
  type HostPort,
  isLoopbackHost,
  parseNetloc,
  type RemoteServer,
} from "./netloc.ts";
import { type Logger, silentLogger } from "./log.ts";
import { withTimeout } from "./async.ts";
import { type KafkaAdmit, KafkaSession } from "./session/kafka.ts";
import {
  type CarriedToken,
  carryToken,
  type TokenOptions,
  tokenReport,
} from "./proxy_process/token.ts";

export { connectOptions, type SshOptions } from "./ssh_options.ts";

/** Options of {@link openRun}; the token ones are `--token-file`, `--token-audience`, `--no-token`. */
export interface RunOptions extends SshOptions, TokenOptions {
  /** Where the proxy listens, already checked (`listenable`); port 0 picks one. */
  listen: HostPort;
  /** Aborting stops the set-up between stages and releases what it opened. */
  signal?: AbortSignal;
  /** First wait before reconnecting a lost SSH connection (doubles up to 30 s). @default {1000} */
  reconnectBackoffMs?: number;
  /** Control socket of an SSH master another process authenticated, to adopt. */
  adoptMaster?: string;
  /**
   * The master's login, begun before the run loaded (`sshProxy` starts it first
   * thing) with {@link connectOptions}' options: the connect stage takes it over.
   */
  login?: MasterLogin;
  /**
   * Without `server`: start at once with the server remembered from the last
   * run over the same destination, while the remote `$ARRAKIS_SERVER` is read
   * again (`ssh/remembered_server.ts`); the run is ready once they agree.
   */
  rememberServer?: boolean;
  /** The proxy child's process, spawned with the login (`spawnProxyChild`): the serve stage's. */
  proxyProcess?: Deno.ChildProcess;
  /** Redeem reuse-connection endpoints at the proxy: no second forward to the server. */
  reuseThroughProxy?: boolean;
  /** Time limit of each network step in milliseconds (doctor's); none when left out. */
  timeoutMs?: number;
  /**
   * The `authorization` value (`Bearer …`) to add to clients' calls at data
   * servers (and reuse-connection endpoints) that carry none, read per call;
   * undefined: none. Ignored with remote clients: their calls never get the
   * user's token.
   */
  authorization?: () => string | undefined;
}

/**
 * One endpoint after the forward-every-server stage: what the location map has
 * for it (a local `host:port`, a socket path), or why it has none.
 */
export type ForwardedEndpoint =
  & { endpoint: Endpoint }
  & ({ local: string; error?: undefined } | { local?: undefined; error: Error });

/** A server to forward to: what {@link LocationMap.resolve} needs of a location. */
export type Endpoint = Pick<ParsedLocation, "host" | "port" | "netloc">;

/**
 * What the stages of one run share. Each stage reads the fields of earlier ones
 * and sets its own; everything it opens it hands to `stack`, which closes it all
 * when the run ends (or its set-up fails).
 */
export interface Run {
  /** The ssh destination. */
  readonly sshHost: string;
  /** The run's options. */
  readonly options: RunOptions;
  /** `options.logger`, or a silent one. */
  readonly logger: Logger;
  /** Remote → local `host:port`; grows on demand through the resolver of the server's stage. */
  readonly locations: LocationMap;
  /** Where clean-up goes: disposed of (last stage first) when the run ends. */
  readonly stack: AsyncDisposableStack;
  /** Whether clients on other machines are served (the proxy listens beyond loopback). */
  readonly remoteClients: boolean;
  /**
   * The private (0700) directory of the run's Unix sockets: the forwards, their
   * header relays, the proxy child's gRPC server. Undefined with remote clients.
   */
  readonly socketDir?: string;
  /** The header relays in front of forwards (see {@link handOut}); with `socketDir`. */
  readonly relays?: TokenRelays;
  /** The uid-guarded client port, piping to the child's socket; with `socketDir`. */
  clientPort?: GuardedForward;
  /** What clients dial, `host:port` as bound (serve): the guarded port, or the child's own. */
  clientAddress?: string;
  /** How often the SSH connection was lost and made again. */
  reconnects: number;
  /** The SSH master, kept up (connect). */
  ssh?: SshSupervisor;
  /** The Kafka listeners, one per broker, opened on demand (`--kafka forward` only). */
  kafka?: KafkaSession;
  /** The Arrakis server to forward (find the server). */
  server?: RemoteServer;
  /**
   * Started with the remembered server: the remote `$ARRAKIS_SERVER` read
   * meanwhile; resolves to it when it differs, to undefined when it agrees.
   */
  serverCheck?: Promise<RemoteServer | undefined>;
  /** With `rememberServer`: where the server is remembered, and the one remembered if any. */
  recalled?: Promise<{ memory?: ServerMemory; server?: RemoteServer }>;
  /**
   * The reuse-connection forward, asked for with the server's (one batched
   * `ssh -O forward`); the reuse stage hands it out.
   */
  reuseForward?: Promise<LocalAddress>;
  /** The server's forward, local `host:port` or socket path: the child's backend (forward the server). */
  serverLocal?: string;
  /** The Flight proxy in its child process (serve). */
  proxy?: IsolatedProxy;
  /** The child, loading since the run opened; it learns its backend in the serve stage. */
  proxyStarting?: { proxy: Promise<IsolatedProxy>; backend: PromiseWithResolvers<string> };
  /**
   * Whether reads need a token, and the user's, kept current (token); its
   * `authorization()` is what a connection to a data server carries.
   */
  token?: CarriedToken;
  /**
   * Discovery's first answer, asked for alongside the token stage's
   * `server-info` (see {@link tokenStage}), without a token.
   */
  discovering?: Promise<Discovery>;
  /** Every data server the server lists (discover). */
  discovery?: Discovery;
  /** Each listed data server's forward (forward every data server). */
  forwarded?: ForwardedEndpoint[];
}

/** One step of a run; see the module documentation. */
export interface Stage {
  /** Its name in doctor's report, e.g. `ssh connect`. */
  readonly name: string;
  /**
   * Runs the stage; resolves to what it found in one line, or undefined when
   * it has nothing to do in this run (doctor then prints no line for it).
   */
  run(run: Run): Promise<string | undefined>;
  /** Starts slow local work as the run opens, before any stage runs (the proxy child loading). */
  prepare?(run: Run): void;
  /** A run goes on with the next stages while this one works; it is done before the run is ready. */
  readonly concurrent?: boolean;
  /**
   * Set when a run survives this stage failing: the warning it logs then (the
   * stages after it still run, and doctor goes on too, reporting it FAILED),
   * or undefined for an error the run does not survive.
   */
  readonly survivable?: (error: Error) => string | undefined;
}

/** The supervisor's key of the second forward to the server (reuse-connection endpoints). */
const REUSE_FORWARD = "reuse-connection";

/**
 * The backend channel goes through an SSH forward that vanishes while SSH
 * reconnects; grpc-js's default backoff (1 s growing to 120 s) would keep the
 * proxy failing long after the forward is back.
 */
const BACKEND_CHANNEL_OPTIONS = {
  "grpc.initial_reconnect_backoff_ms": 250,
  "grpc.min_reconnect_backoff_ms": 250,
  "grpc.max_reconnect_backoff_ms": 2000,
};

/** `value`, or a programming error naming the stage that should have set it. */
function needs<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`stage order: ${what} is not there yet`);
  return value;
}

/** `promise`, limited to the run's `timeoutMs` when it has one. */
function limited<T>(run: Run, promise: Promise<T>, what: string): Promise<T> {
  const ms = run.options.timeoutMs;
  return ms === undefined ? promise : withTimeout(promise, ms, what);
}

/**
 * The URL this machine dials a forward at: its socket, or its `host:port` (a
 * wildcard bind means loopback).
 */
export function dialUrl(local: string): string {
  const netloc = parseNetloc(local);
  if (!netloc) return localUrl(local);
  const address = dialableAddress(netloc);
  return localUrl(formatNetloc(address.host, address.port));
}

/**
 * The hook giving the `authorization` to add at data-server forwards: the
 * token stage's, when the server's reads need a token (or `options.authorization`);
 * read each time a forward is handed out, so the token stage decides for every
 * forward handed out after it. None with remote clients.
 */
function authorizationOf(run: Run): (() => string | undefined) | undefined {
  if (run.remoteClients) return undefined;
  if (run.options.authorization) return run.options.authorization;
  const token = run.token;
  return token?.needed ? () => token.authorization() : undefined;
}

/**
 * A forward as the location map (and so clients) gets it: the socket of a
 * header relay in front of it when clients' calls there are to carry the
 * user's token, else the forward itself. The one place that decides it.
 */
function handOut(run: Run, local: LocalAddress, remote: string): string {
  const name = localName(local);
  return run.relays && authorizationOf(run) ? run.relays.front(name, remote) : name;
}

/**
 * Connect: the SSH master, kept up (reconnects with backoff). Without `server`
 * its keepalive session also reads the remote `$ARRAKIS_SERVER`. While SSH is
 * down the proxy answers UNAVAILABLE; forwards that come back on other ports
 * are put in the location map.
 */
export const connectStage: Stage = {
  name: "ssh connect",
  async run(run) {
    const { sshHost, options, logger, locations } = run;
    // A login begun before the run loaded said so then.
    if (options.login === undefined) {
      logger.info(`connecting to ${sshHost}`);
      logger.progress(`connecting to ${sshHost}…`);
    }
    run.ssh = run.stack.use(
      await SshSupervisor.start({
        ...connectOptions(sshHost, options),
        adopt: options.adoptMaster,
        login: options.login,
        // The master's pid is for closing it: learnt while the server's forward is asked for.
        checkLater: true,
        // Clients on other machines must reach the forwards too: they listen where the proxy does.
        bindAddress: run.remoteClients ? options.listen.host : "127.0.0.1",
        socketDir: run.socketDir,
        sessionEnv: options.server === undefined ? ["ARRAKIS_SERVER"] : [],
        initialBackoffMs: options.reconnectBackoffMs,
        onDown: (reason) => run.proxy?.setUnavailable(reason),
        onUp: (moved) => {
          run.reconnects++;
          const server = run.server && formatNetloc(run.server.host, run.server.port);
          for (const { host, port, key, local } of moved) {
            const remote = formatNetloc(host, port);
            // A Kafka listener keeps its port; only what it dials moved.
            if (run.kafka?.moved(key, local)) {
              logger.debug(`Kafka broker ${remote}: its SSH forward moved to ${localName(local)}`);
              continue;
            }
            logger.info(`forwarding ${localName(local)} → ${remote} (moved)`);
            if (key === REUSE_FORWARD) {
              locations.set(REUSE_CONNECTION, handOut(run, local, remote));
              continue;
            }
            locations.set(remote, handOut(run, local, remote));
            if (remote === server) run.proxy?.setBackend(dialUrl(localName(local)));
          }
          run.proxy?.setUnavailable(undefined);
        },
      }),
    );
    return "master connection up";
  },
};

/**
 * Which connections the Kafka listeners serve: only this user's processes, as
 * at the guarded client port (TCP, since librdkafka has no Unix sockets); all
 * with remote clients allowed, whose processes this machine cannot name.
 */
function kafkaAdmit(run: Run): KafkaAdmit | undefined {
  return run.remoteClients ? undefined : (conn) => admitsOwnUser(conn, run.logger);
}

/**
 * Kafka: with `--kafka forward` (the default), the session that gives each
 * broker a kafka:// location names a local Kafka listener over SSH, opened when
 * a FlightInfo first names the broker (see `session/kafka.ts`).
 */
export const kafkaStage: Stage = {
  name: "kafka",
  run(run) {
    const mode = run.options.kafka ?? "forward";
    if (mode === "forward") {
      run.kafka = run.stack.use(
        new KafkaSession({
          ssh: needs(run.ssh, "the SSH connection"),
          logger: run.logger,
          admit: kafkaAdmit(run),
          // Clients on other machines must reach the listeners too, as the forwards.
          listenHost: run.remoteClients ? run.options.listen.host : undefined,
          probeTimeoutMs: run.options.timeoutMs,
        }),
      );
    }
    // No line of its own in doctor's report: brokers are checked once the test fetch names them.
    return Promise.resolve(undefined);
  },
};

/**
 * Find the server: `--server`, or the remote `$ARRAKIS_SERVER`. With
 * `rememberServer`, the one it was last time, at once, while the keepalive
 * session reads it again ({@link Run.serverCheck}; the confirm stage waits for it).
 */
export const findServerStage: Stage = {
  name: "arrakis server",
  prepare(run) {
    if (run.options.server !== undefined || !run.options.rememberServer) return;
    // Read while ssh logs in.
    run.recalled = (async () => {
      const memory = await serverMemoryFor({
        host: run.sshHost,
        sshConfig: run.options.sshConfig,
        sshOptions: run.options.sshOptions ?? [],
      }).catch((error) => {
        run.logger.debug(`no remembered server: ${(error as Error).message}`);
        return undefined;
      });
      const server = memory && await recallServer(memory, (line) => run.logger.warn(line));
      return { memory, server };
    })();
  },
  async run(run) {
    const ssh = needs(run.ssh, "the SSH connection");
    const { server } = run.options;
    const { memory, server: remembered } = await run.recalled ?? {};
    const remember = (read: RemoteServer) =>
      memory && read.url !== remembered?.url &&
      rememberServer(memory, read.url).catch((error) =>
        run.logger.debug(`could not remember the server: ${(error as Error).message}`)
      );
    if (remembered) {
      run.server = remembered;
      run.serverCheck = resolveRemoteServer(ssh).then(async (read) => {
        await remember(read);
        return read.url === remembered.url ? undefined : read;
      });
      run.serverCheck.catch(() => {/* the confirm stage reports it */});
      run.logger.info(`remote server ${remembered.url} (as last time; checking it)`);
      return `${remembered.url} (remembered; the remote $ARRAKIS_SERVER checked at the end)`;
    }
    if (!server) run.logger.progress(`reading ARRAKIS_SERVER on ${ssh.host}…`);
    run.server = await resolveRemoteServer(ssh, server);
    await remember(run.server);
    run.logger.info(`remote server ${run.server.url}`);
    return `${run.server.url} (from ${server ? "--server" : "remote $ARRAKIS_SERVER"})`;
  },
};

/**
 * The remote `$ARRAKIS_SERVER` names another server than the remembered one the
 * run started with: it starts over with that one ({@link movedServer}).
 */
export class ServerMoved extends Error {
  /** The server the login host names now. */
  readonly server: RemoteServer;

  /** `server`: the one read; `was`: the one remembered. */
  constructor(server: RemoteServer, was: RemoteServer) {
    super(`remote ARRAKIS_SERVER is now ${server.url}, not ${was.url} as last time`);
    this.server = server;
  }
}

/**
 * Confirm the server: a run that started with the remembered server is ready
 * only once the remote `$ARRAKIS_SERVER` agrees; else {@link ServerMoved}.
 */
export const confirmServerStage: Stage = {
  name: "arrakis server check",
  async run(run) {
    if (run.serverCheck === undefined) return undefined;
    const moved = await run.serverCheck;
    if (moved) throw new ServerMoved(moved, needs(run.server, "the server"));
    run.logger.debug(`remote ARRAKIS_SERVER on ${run.sshHost} is still ${run.server?.url}`);
    return `the remote $ARRAKIS_SERVER is ${run.server?.url}, as remembered`;
  },
};

/**
 * After the stages of `run` failed with `error`: the server to start over
 * with when the run started with a remembered one that the login host no
 * longer names (a stage may have failed because of it), else undefined.
 *
 * @throws the remote read's error when it failed: what the run would have said
 * without a remembered server.
 */
export async function movedServer(run: Run, error: unknown): Promise<RemoteServer | undefined> {
  if (error instanceof ServerMoved) return error.server;
  // Stopped (Ctrl-C): not worth the remote read's round trips.
  if (run.options.signal?.aborted) return undefined;
  return await run.serverCheck;
}

/**
 * Forward the server: from now on the location map opens a forward over SSH
 * for each remote it has not seen (one line each); the first is the server's,
 * the child's backend as it is (the map gets it through {@link handOut}, as
 * every other).
 */
export const forwardServerStage: Stage = {
  name: "server forward",
  async run(run) {
    const ssh = needs(run.ssh, "the SSH connection");
    const server = needs(run.server, "the server");
    const { locations, logger } = run;
    locations.setResolver(async (remote) => {
      const local = await ssh.forward(remote.host, remote.port);
      logger.info(`forwarding ${localName(local)} → ${remote.netloc}`);
      return handOut(run, local, remote.netloc);
    });
    const netloc = formatNetloc(server.host, server.port);
    logger.progress(`forwarding ${netloc}…`);
    const forwarding = limited(run, ssh.forward(server.host, server.port), "forward");
    // In the same turn, so that both go to ssh as one `-O forward -L … -L …`.
    if (!run.options.reuseThroughProxy) {
      run.reuseForward = ssh.forward(server.host, server.port, { key: REUSE_FORWARD });
      run.reuseForward.catch(() => {/* the reuse stage reports it */});
    }
    // A master that did not stay up says so, rather than the forward that failed on it.
    await ssh.connection.checked.catch((error) => {
      forwarding.catch(() => {/* the check's error is the one to report */});
      throw error;
    });
    const local = await forwarding;
    run.serverLocal = localName(local);
    logger.info(`forwarding ${run.serverLocal} → ${netloc}`);
    locations.set(netloc, handOut(run, local, netloc));
    return `${run.serverLocal} → ${netloc}`;
  },
};

/**
 * A second forward to the server for reuse-connection endpoints ("redeem where
 * you asked"): clients fetch that data there, not through the proxy. Sets
 * {@link REUSE_CONNECTION} in the location map. Not with `reuseThroughProxy`.
 * The forward itself is asked for with the server's; it is handed out after
 * serve, so that a hook to add the token that a stage in between sets decides
 * its relay too (see {@link handOut}).
 */
export const forwardReuseStage: Stage = {
  name: "reuse forward",
  concurrent: true,
  async run(run) {
    if (run.options.reuseThroughProxy) return undefined;
    const server = needs(run.server, "the server");
    const local = await limited(run, needs(run.reuseForward, "the reuse forward"), "forward");
    const remote = formatNetloc(server.host, server.port);
    run.logger.info(`forwarding ${localName(local)} → ${remote} (reuse-connection endpoints)`);
    const handed = handOut(run, local, remote);
    run.locations.set(REUSE_CONNECTION, handed);
    return `${handed} → ${remote}, for reuse-connection endpoints`;
  },
};

/** Where the proxy child's gRPC server listens in the private directory, if there is one. */
function childSocket(run: Run): string | undefined {
  return run.socketDir && `${run.socketDir}/proxy`;
}

/**
 * Serve: the Flight proxy in its child process, which starts loading as the run
 * opens (while ssh connects) and learns its backend, the server's forward, here.
 * With a private directory the child listens on a socket there and this process
 * takes the client port as the run opens, admitting only our uid.
 */
export const serveStage: Stage = {
  name: "proxy",
  prepare(run) {
    const { listen } = run.options;
    const socket = childSocket(run);
    if (socket) {
      run.clientPort = run.stack.use(serveGuardedPort(listen, {
        dial: () => Deno.connect({ transport: "unix", path: socket }),
        logger: run.logger,
      }));
    }
    const backend = Promise.withResolvers<string>();
    const proxy = IsolatedProxy.start({
      backend: backend.promise,
      listen: socket ? `unix:${socket}` : formatNetloc(listen.host, listen.port),
      locations: run.locations,
      logger: run.logger,
      remoteClients: run.remoteClients,
      channelOptions: BACKEND_CHANNEL_OPTIONS,
      process: run.options.proxyProcess,
      kafka: {
        mode: run.options.kafka ?? "forward",
        // Asked only once the proxy serves, after the Kafka stage made the session.
        resolver: (broker) => run.kafka?.resolve(broker) ?? Promise.resolve(undefined),
      },
      splitStreams: run.options.splitStreams,
    });
    proxy.catch(() => {/* awaited in the stage, or at clean-up */});
    run.proxyStarting = { proxy, backend };
    run.stack.defer(async () => {
      backend.reject(new Error("set-up stopped"));
      await proxy.then((started) => started.close(), () => undefined);
    });
  },
  async run(run) {
    const starting = needs(run.proxyStarting, "the proxy child");
    run.logger.progress("starting the proxy process…");
    starting.backend.resolve(dialUrl(needs(run.serverLocal, "the server's forward")));
    // Closed before the SSH connection under it (the stack closes the last in first).
    run.proxy = run.stack.use(await starting.proxy);
    const port = run.clientPort?.addr;
    run.clientAddress = port ? formatNetloc(port.hostname, port.port) : run.proxy.address;
    if (!port) return `grpc://${run.clientAddress}`;
    const only = CAN_CHECK_PEER ? `, only uid ${Deno.uid()} admitted` : "";
    return `grpc://${run.clientAddress} → ${childSocket(run)}${only}`;
  },
};

/** Reads need a token and none fits: the run serves (a client may bring its own), and says so. */
class NoTokenFits extends Error {}

/**
 * Token: asks the server (through the proxy child) whether reads need a token;
 * when they do, the child adds the user's to calls, kept current as it is
 * renewed. Fails, survivably, when none fits. Discovery's call goes out with
 * `server-info` (grpc-js shares one connection between them): on an open
 * deployment its answer is the one the discover stage needs.
 */
export const tokenStage: Stage = {
  name: "token",
  survivable: (error) => error instanceof NoTokenFits ? error.message : undefined,
  async run(run) {
    const proxy = needs(run.proxy, "the proxy");
    const server = needs(run.server, "the server");
    run.logger.progress("asking whether reads need a token…");
    const carrying = carryToken(proxy, server.url, {
      ...run.options,
      logger: run.logger,
      remoteClients: run.remoteClients,
    });
    // After carryToken's first step: it carries the user's token when one fits (a
    // protected server lists its endpoints at once), and a `--no-token` run's refusal says why.
    run.discovering = proxy.discover(run.options.timeoutMs);
    run.discovering.catch(() => {/* the discover stage reports it */});
    run.token = run.stack.use(await carrying);
    const { ok, detail } = tokenReport(run.token);
    if (!ok) throw new NoTokenFits(detail);
    return detail;
  },
};

/** Why a run goes on without the data servers: they are forwarded when first seen. */
const forwardedLater = (error: Error) =>
  `could not list the server's endpoints (${error.message}); they will be forwarded when first ` +
  `seen`;

/**
 * Discover: every data server the server lists, asked by the proxy child (this
 * process speaks no HTTP/2, see `proxy_process/parent.ts`).
 */
export const discoverStage: Stage = {
  name: "endpoints",
  survivable: forwardedLater,
  async run(run) {
    const proxy = needs(run.proxy, "the proxy");
    // Without a token a protected server refuses the listing; the token stage said so.
    if (run.token?.needed && !run.token.source?.search.token) {
      run.logger.info("data servers will be forwarded when first seen");
      return undefined;
    }
    run.logger.progress("listing endpoints…");
    const early = run.discovering;
    let discovery: Discovery;
    try {
      discovery = await (early ?? proxy.discover(run.options.timeoutMs));
    } catch (error) {
      // Asked before the token stage found that reads need a token: once more, with it.
      if (early === undefined || !run.token?.needed) throw error;
      discovery = await proxy.discover(run.options.timeoutMs);
    }
    run.discovery = discovery;
    const { endpoints, method, ignored } = discovery;
    run.logger.debug(
      `${endpoints.length} data server(s) listed by the ${
        method === "scope-map" ? "server's scope-map action" : "Count over every channel"
      }${ignored.length ? `; not forwarded: ${ignored.join(", ")}` : ""}`,
    );
    return `${endpoints.length} data server(s) from the ${
      method === "scope-map" ? "scope-map action" : "Count over all channels"
    }: ${endpoints.map((e) => e.netloc).join(", ") || "none"}`;
  },
};

/**
 * Forward every data server the server listed (through the location map),
 * counting them on the status line. Fails with the first forward that failed,
 * after trying them all (`forwarded` says which).
 */
export const forwardAllStage: Stage = {
  name: "endpoint forwards",
  survivable: forwardedLater,
  async run(run) {
    if (run.discovery === undefined) return undefined;
    const { endpoints } = run.discovery;
    const { logger, locations } = run;
    let forwarded = 0;
    const total = endpoints.length + 1; // the server counts as one
    logger.progress(`forwarding ${++forwarded}/${total} endpoints`);
    const all = Promise.all(endpoints.map(async (endpoint): Promise<ForwardedEndpoint> => {
      try {
        const local = await locations.resolve(endpoint);
        logger.progress(`forwarding ${++forwarded}/${total} endpoints`);
        return { endpoint, local };
      } catch (error) {
        return { endpoint, error: error as Error };
      }
    }));
    try {
      run.forwarded = await limited(run, all, "forward");
    } catch (error) {
      run.forwarded = endpoints.map((endpoint) => ({ endpoint, error: error as Error }));
    }
    const failed = run.forwarded.find((result) => result.error);
    if (failed) throw failed.error;
    logger.info(`${endpoints.length} data endpoint(s) forwarded`);
    return `${endpoints.length} data endpoint(s) forwarded`;
  },
};

/** Every stage of a run, in order: the one list `sshProxy` and `doctor` run. */
export const STAGES: readonly Stage[] = [
  connectStage,
  kafkaStage,
  findServerStage,
  forwardServerStage,
  serveStage,
  tokenStage,
  forwardReuseStage,
  discoverStage,
  forwardAllStage,
  confirmServerStage,
];

/**
 * A run about to start: its shared state (with a loopback listen address, its
 * private directory), with every stage's `prepare` done. What the run and its
 * stages open goes on `stack`.
 */
export async function openRun(
  sshHost: string,
  options: RunOptions,
  stack: AsyncDisposableStack,
  stages: readonly Stage[] = STAGES,
): Promise<Run> {
  const logger = options.logger ?? silentLogger;
  const remoteClients = !isLoopbackHost(options.listen.host);
  const socketDir = remoteClients ? undefined : await makeControlDir();
  // Removed last, once everything listening in it is closed.
  if (socketDir !== undefined) {
    stack.defer(() => Deno.remove(socketDir, { recursive: true }).catch(() => undefined));
  }
  const run: Run = {
    sshHost,
    options,
    logger,
    locations: new LocationMap(),
    stack,
    remoteClients,
    socketDir,
    // The hook is read per call, so the relays follow whatever the run's is then.
    relays: socketDir === undefined
      ? undefined
      : stack.use(new TokenRelays(() => authorizationOf(run)?.(), logger)),
    reconnects: 0,
  };
  for (const stage of stages) stage.prepare?.(run);
  return run;
}

/** How one stage went, as {@link runStages} reports it. */
export interface StageOutcome {
  /** The stage. */
  stage: Stage;
  /** What it found, when it worked. */
  detail?: string;
  /** Why it failed, when it did. */
  error?: Error;
  /** How long it took, in milliseconds. */
  ms: number;
}

/** Options of {@link runStages}. */
export interface RunStagesOptions {
  /** The stages, in order. @default {STAGES} */
  stages?: readonly Stage[];
  /**
   * Runs one stage at a time (doctor), concurrent ones too, and is called with
   * each outcome (a stage with nothing to do is not reported); a survivable
   * failure is reported here instead of logged. It may do more checks before
   * the next stage runs.
   */
  report?: (outcome: StageOutcome) => void | Promise<void>;
}

/**
 * Runs the stages of `run` in order, stopping at the first failure that is not
 * survivable (rethrown) and between stages when `run.options.signal` aborts.
 * Without `report`, concurrent stages overlap the ones after them and are
 * awaited at the end, and survivable failures are logged as warnings.
 */
export async function runStages(run: Run, options: RunStagesOptions = {}): Promise<void> {
  const { stages = STAGES, report } = options;
  const pending: Promise<void>[] = [];
  const settle = async (stage: Stage) => {
    const started = performance.now();
    let outcome: StageOutcome;
    try {
      const detail = await stage.run(run);
      if (detail === undefined) return;
      outcome = { stage, detail, ms: performance.now() - started };
    } catch (error) {
      outcome = { stage, error: error as Error, ms: performance.now() - started };
    }
    const warning = outcome.error && stage.survivable?.(outcome.error);
    if (outcome.error && warning === undefined) {
      await report?.(outcome);
      throw outcome.error;
    }
    if (report) await report(outcome);
    else if (warning) run.logger.warn(warning);
  };
  try {
    for (const stage of stages) {
      run.options.signal?.throwIfAborted();
      const settled = settle(stage);
      if (stage.concurrent && !report) {
        settled.catch(() => {/* awaited below */});
        pending.push(settled);
      } else {
        await settled;
      }
    }
  } finally {
    // A failed set-up still waits for what it started, so that clean-up finds it settled.
    await Promise.allSettled(pending);
  }
  await Promise.all(pending);
  run.options.signal?.throwIfAborted();
}
