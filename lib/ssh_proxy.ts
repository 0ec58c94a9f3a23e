/**
 * One proxy run, in named stages that doctor runs one at a time too: connect →
 * find the server → forward it → serve (the rewriting Flight proxy, in its child
 * process) → discover every data server → forward them all. Data flows
 * one way: the SSH layer fills the location map, the proxy reads it and asks for
 * new forwards only through the resolver it was given. Clients redeem
 * reuse-connection endpoints at a second forward to the server, so bulk data
 * does not pass through the proxy.
 *
 * @module
 */
import { SshSupervisor, type SupervisorOptions } from "./ssh/supervisor.ts";
import { type ConnectOptions, localName } from "./ssh/connection.ts";
import { assertSshDestination } from "./ssh/validate.ts";
import { type RemoteServer, resolveRemoteServer } from "./ssh/remote_server.ts";
import { IsolatedProxy, type IsolatedProxyOptions } from "./isolated_proxy.ts";
import {
  isSocketPath,
  LocationMap,
  type ParsedLocation,
  REUSE_CONNECTION,
  unixLocation,
} from "./flight/locations.ts";
import { makeControlDir } from "./ssh/control_dir.ts";
import { TokenRelays } from "./http2/token_relays.ts";
import { serveGuardedForward } from "./net/guarded_forward.ts";
import type { Discovery } from "./flight/discovery.ts";
import {
  formatNetloc,
  type HostPort,
  isLoopbackHost,
  parseListenAddress,
  parseNetloc,
} from "./netloc.ts";
import { type Logger, silentLogger } from "./log.ts";
import { UsageError, UserError } from "./errors.ts";

/** How to reach the login host and the server behind it: what a run and doctor share. */
export interface SshOptions {
  /** Remote Arrakis server URL; default: the remote `$ARRAKIS_SERVER`. */
  server?: string;
  /** ssh_config file, passed to ssh as `-F`. */
  sshConfig?: string;
  /** ssh options, each passed as `-o`. */
  sshOptions?: string[];
  /** ssh executable. @default {"ssh"} */
  sshBinary?: string;
  /** Let ssh prompt on the terminal. @default {true} */
  interactive?: boolean;
  /** Progress and warnings; at `verbose`, ssh command lines and (in a run) each RPC. */
  logger?: Logger;
}

/** The connection options of a run (and of doctor, which makes the same connection). */
export function connectOptions(sshHost: string, options: SshOptions): ConnectOptions {
  return {
    host: sshHost,
    sshConfig: options.sshConfig,
    sshOptions: options.sshOptions,
    sshBinary: options.sshBinary,
    interactive: options.interactive ?? true,
    logger: options.logger ?? silentLogger,
  };
}

/** Options of {@link sshProxy}. */
export interface SshProxyOptions extends SshOptions {
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
   * The forwards in use, remote `host:port` → local `host:port`; grows on demand.
   * The second one to the server, for reuse-connection endpoints, says so in `purpose`.
   */
  readonly forwards: readonly { remote: string; local: string; purpose?: "reuse-connection" }[];
  /** How often the SSH connection was lost and made again. */
  readonly reconnects: number;
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
 * The proxy's address (`listen`, default `localhost:31206`), parsed; one beyond
 * loopback only with `allowRemoteClients`.
 *
 * @throws {UsageError} when it is invalid, or not loopback and not allowed.
 */
export function listenAddress(
  options: Pick<SshProxyOptions, "listen" | "allowRemoteClients">,
): HostPort {
  const listen = parseListenAddress(options.listen ?? "localhost:31206");
  if (!isLoopbackHost(listen.host) && !options.allowRemoteClients) {
    throw new UsageError(
      `refusing to listen on ${listen.host}: the proxy has no authentication, so anyone who ` +
        `can reach it can read the cluster's data; pass --allow-remote-clients to do it anyway`,
    );
  }
  return listen;
}

/**
 * The address to bind, checked before anyone types a password. When no
 * `listen` was given and the default port is taken (a proxy for another
 * cluster, say), a free port instead, said in one info line: the URL handed
 * out names the port in use. A taken address the user asked for is an error.
 *
 * @throws {UserError} when the address cannot be bound.
 */
export function listenable(
  listen: HostPort,
  { isDefault = false, logger = silentLogger }: { isDefault?: boolean; logger?: Logger } = {},
): HostPort {
  if (listen.port === 0) return listen;
  const where = formatNetloc(listen.host, listen.port);
  try {
    Deno.listen({ hostname: listen.host, port: listen.port }).close();
    return listen;
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) {
      throw new UserError(`cannot listen on ${where}: ${(error as Error).message}`);
    }
  }
  if (isDefault) {
    logger.info(
      `${where} is in use (another arrakis-proxy? \`arrakis-proxy status\` lists background ` +
        `ones); listening on a free port instead`,
    );
    return { ...listen, port: 0 };
  }
  throw new UserError(
    `cannot listen on ${where}: address already in use (another arrakis-proxy? see ` +
      `\`arrakis-proxy status\`, or choose another with --listen)`,
  );
}

/** Options of the {@link connect} stage; `onDown`/`onUp` as {@link SshSupervisor} calls them. */
export interface ConnectStageOptions
  extends
    SshOptions,
    Pick<SshProxyOptions, "adoptMaster" | "reconnectBackoffMs">,
    Pick<SupervisorOptions, "onDown" | "onUp" | "bindAddress" | "socketDir"> {}

/**
 * Stage 1, connect: the SSH master, kept up (reconnects with backoff). Without
 * `server` its keepalive session also reads the remote `$ARRAKIS_SERVER`.
 */
export async function connect(
  sshHost: string,
  options: ConnectStageOptions,
): Promise<SshSupervisor> {
  const logger = options.logger ?? silentLogger;
  logger.info(`connecting to ${sshHost}`);
  logger.progress(`connecting to ${sshHost}…`);
  return await SshSupervisor.start({
    ...connectOptions(sshHost, options),
    adopt: options.adoptMaster,
    bindAddress: options.bindAddress,
    socketDir: options.socketDir,
    sessionEnv: options.server === undefined ? ["ARRAKIS_SERVER"] : [],
    initialBackoffMs: options.reconnectBackoffMs,
    onDown: options.onDown,
    onUp: options.onUp,
  });
}

/** Stage 2, find the server: `server` (`--server`), or the remote `$ARRAKIS_SERVER`. */
export async function findServer(
  ssh: SshSupervisor,
  server: string | undefined,
  logger: Logger = silentLogger,
): Promise<RemoteServer> {
  if (!server) logger.progress(`reading ARRAKIS_SERVER on ${ssh.host}…`);
  const found = await resolveRemoteServer(ssh, server);
  logger.info(`remote server ${found.url}`);
  return found;
}

/**
 * Stage 3, forward the server: from now on `locations` opens a forward over `ssh`
 * for each remote it has not seen (one line each); the first is the server's.
 * Resolves to its local `host:port`.
 */
export async function forwardServer(
  ssh: SshSupervisor,
  server: RemoteServer,
  locations: LocationMap,
  logger: Logger = silentLogger,
  relays?: TokenRelays,
): Promise<string> {
  const serverNetloc = formatNetloc(server.host, server.port);
  locations.setResolver(async (remote) => {
    const local = localName(await ssh.forward(remote.host, remote.port));
    logger.info(`forwarding ${local} → ${remote.netloc}`);
    // The info server's forward is the grpc-js backend, which adds the token itself.
    return relays && remote.netloc !== serverNetloc ? relays.front(local, remote.netloc) : local;
  });
  return await locations.resolve({ host: server.host, port: server.port, netloc: serverNetloc });
}

/**
 * Stage 3b, a second forward to the server for reuse-connection endpoints
 * ("redeem where you asked"): clients fetch that data there, not through the
 * proxy. Sets {@link REUSE_CONNECTION} in `locations`.
 */
export async function forwardReuse(
  ssh: SshSupervisor,
  server: RemoteServer,
  locations: LocationMap,
  logger: Logger = silentLogger,
  relays?: TokenRelays,
): Promise<string> {
  const local = await ssh.forward(server.host, server.port, { key: REUSE_FORWARD });
  const netloc = localName(local);
  logger.info(
    `forwarding ${netloc} → ${formatNetloc(server.host, server.port)} (reuse-connection endpoints)`,
  );
  const where = relays ? relays.front(netloc, formatNetloc(server.host, server.port)) : netloc;
  locations.set(REUSE_CONNECTION, where);
  return where;
}

/**
 * Stage 4, serve: the Flight proxy in its child process. `backend` may be a
 * promise, so that the child loads while ssh connects.
 */
export function startProxy(
  options: Pick<
    IsolatedProxyOptions,
    "backend" | "listen" | "locations" | "logger" | "remoteClients"
  >,
): Promise<IsolatedProxy> {
  return IsolatedProxy.start({ ...options, channelOptions: BACKEND_CHANNEL_OPTIONS });
}

/**
 * Stage 5, discover: every data server the server lists, asked by the proxy
 * child (this process speaks no HTTP/2, see isolated_proxy.ts).
 */
export async function discover(
  proxy: IsolatedProxy,
  logger: Logger = silentLogger,
  timeoutMs?: number,
): Promise<Discovery> {
  logger.progress("listing endpoints…");
  const discovery = await proxy.discover(timeoutMs);
  const { endpoints, method, ignored } = discovery;
  logger.debug(
    `${endpoints.length} data server(s) listed by the ${
      method === "scope-map" ? "server's scope-map action" : "Count over every channel"
    }${ignored.length ? `; not forwarded: ${ignored.join(", ")}` : ""}`,
  );
  return discovery;
}

/** A server to forward to: what {@link LocationMap.resolve} needs of a location. */
export type Endpoint = Pick<ParsedLocation, "host" | "port" | "netloc">;

/** One endpoint after {@link forwardAll}: its local `host:port`, or why it has none. */
export type ForwardedEndpoint =
  & { endpoint: Endpoint }
  & ({ local: string; error?: undefined } | { local?: undefined; error: Error });

/**
 * Stage 6, forward every data server (through `locations`, see
 * {@link forwardServer}), counting them on the status line.
 */
export async function forwardAll(
  locations: LocationMap,
  endpoints: readonly Endpoint[],
  logger: Logger = silentLogger,
): Promise<ForwardedEndpoint[]> {
  let forwarded = 0;
  const total = endpoints.length + 1; // the server counts as one
  logger.progress(`forwarding ${++forwarded}/${total} endpoints`);
  const results = await Promise.all(endpoints.map(async (endpoint) => {
    try {
      const local = await locations.resolve(endpoint);
      logger.progress(`forwarding ${++forwarded}/${total} endpoints`);
      return { endpoint, local };
    } catch (error) {
      return { endpoint, error: error as Error };
    }
  }));
  if (results.every((result) => result.error === undefined)) {
    logger.info(`${endpoints.length} data endpoint(s) forwarded`);
  }
  return results;
}

/**
 * Connects to `sshHost`, forwards the remote Arrakis server and every data server
 * it knows, and serves a local Flight proxy that points clients at those forwards.
 * The TypeScript counterpart of the Python `arrakis.proxy.ssh_proxy`; its stages
 * are the functions above, which doctor runs one at a time.
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
  // Clients on other machines must reach the forwards too: they listen where the proxy does.
  const remoteClients = !isLoopbackHost(listen.host);

  const locations = new LocationMap();
  await using stack = new AsyncDisposableStack();
  // Only the user (issue 16): forwards on Unix sockets in a private directory, no
  // TCP port another user could reach, and with a token, header relays beside
  // the data-server ones. Remote clients need TCP forwards, and get no token.
  const socketDir = remoteClients ? undefined : await makeControlDir();
  if (socketDir !== undefined) {
    stack.defer(() => Deno.remove(socketDir, { recursive: true }).catch(() => undefined));
  }
  const relays = socketDir !== undefined && options.authorization
    ? stack.use(new TokenRelays(options.authorization, logger))
    : undefined;
  // The proxy process loads while ssh connects; it learns its backend at the end.
  const backend = Promise.withResolvers<string>();
  // Only the user (issue 16): with a private directory, the gRPC server listens on
  // a Unix socket there and this process owns the TCP port, admitting only our uid.
  const clientPort = socketDir === undefined
    ? undefined
    : guardClientPort(stack, listen, `${socketDir}/proxy`, logger);
  const proxyStarting = startProxy({
    backend: backend.promise,
    listen: clientPort ? `unix:${socketDir}/proxy` : formatNetloc(listen.host, listen.port),
    locations,
    logger,
    remoteClients,
  });
  proxyStarting.catch(() => {/* awaited below, or at clean-up */});
  stack.defer(async () => {
    backend.reject(new Error("set-up stopped"));
    await proxyStarting.then((proxy) => proxy.close(), () => undefined);
  });
  // Set once the Flight proxy exists; SSH drops before that fail the set-up.
  const started: { proxy?: IsolatedProxy } = {};
  let reconnects = 0;
  const ssh = stack.use(
    await connect(sshHost, {
      ...options,
      bindAddress: remoteClients ? listen.host : "127.0.0.1",
      socketDir,
      onDown: (reason) => started.proxy?.setUnavailable(reason),
      onUp: (moved) => {
        reconnects++;
        for (const { host, port, key, local } of moved) {
          const remote = formatNetloc(host, port);
          const netloc = localName(local);
          logger.info(`forwarding ${netloc} → ${remote} (moved)`);
          if (key === REUSE_FORWARD) {
            locations.set(REUSE_CONNECTION, relays ? relays.front(netloc, remote) : netloc);
            continue;
          }
          locations.set(
            remote,
            relays && remote !== infoNetloc ? relays.front(netloc, remote) : netloc,
          );
          if (remote === infoNetloc) started.proxy?.setBackend(backendUrl(netloc));
        }
        started.proxy?.setUnavailable(undefined);
      },
    }),
  );
  options.signal?.throwIfAborted();

  const server = await findServer(ssh, options.server, logger);
  const infoNetloc = formatNetloc(server.host, server.port);
  options.signal?.throwIfAborted();

  const infoLocal = await forwardServer(ssh, server, locations, logger, relays);
  options.signal?.throwIfAborted();
  // Opened while the proxy starts and discovers; in place before the ready line.
  const reuse = options.reuseThroughProxy
    ? undefined
    : forwardReuse(ssh, server, locations, logger, relays);
  reuse?.catch(() => {/* awaited below */});

  backend.resolve(backendUrl(infoLocal));
  const proxy = stack.use(await proxyStarting);
  started.proxy = proxy;
  options.signal?.throwIfAborted();

  try {
    const { endpoints } = await discover(proxy, logger);
    const failed = (await forwardAll(locations, endpoints, logger)).find((result) => result.error);
    if (failed) throw failed.error;
  } catch (error) {
    // The resolver opens forwards on demand, so the proxy is still useful.
    logger.warn(
      `could not list the server's endpoints (${(error as Error).message}); ` +
        `they will be forwarded when first seen`,
    );
  }
  await reuse;
  options.signal?.throwIfAborted();

  logger.progress("");
  if (ssh.state === "reconnecting") proxy.setUnavailable(ssh.downReason);
  // The host as the user wrote it (localhost stays localhost), the port as bound.
  const port = clientPort?.addr.port ?? parseNetloc(proxy.address)!.port;
  const url = `grpc://${formatNetloc(listen.host, port)}`;

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
      return locations.entries().map(([remote, local]) =>
        remote === REUSE_CONNECTION
          ? { remote: infoNetloc, local, purpose: "reuse-connection" as const }
          : { remote, local }
      );
    },
    get reconnects() {
      return reconnects;
    },
    reconnectWith: (controlPath) => ssh.reconnectWith(controlPath),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The client port, uid-guarded, piping to the gRPC server's socket. `localhost`
 * gets both loopback addresses on one port, as grpc-js bound them: a port left
 * free on ::1 is one another user could take, and clients trying ::1 first would
 * reach them.
 */
function guardClientPort(
  stack: AsyncDisposableStack,
  listen: HostPort,
  socket: string,
  logger: Logger,
): { addr: Deno.NetAddr } {
  const options = { dial: () => Deno.connect({ transport: "unix", path: socket }), logger };
  const first = stack.use(
    serveGuardedForward(Deno.listen({ hostname: listen.host, port: listen.port }), options),
  );
  if (listen.host.toLowerCase() === "localhost") {
    const other = first.addr.hostname.includes(":") ? "127.0.0.1" : "::1";
    try {
      stack.use(
        serveGuardedForward(Deno.listen({ hostname: other, port: first.addr.port }), options),
      );
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new UserError(
          `cannot listen on ${formatNetloc(other, first.addr.port)} too: address already in ` +
            `use, and clients of localhost may reach whoever holds it; choose another --listen`,
        );
      }
      // Otherwise no such address family here: nothing anyone could take there either.
    }
  }
  return first;
}

/** The grpc-js backend URL of a forward: its Unix socket, or its TCP address. */
function backendUrl(local: string): string {
  return isSocketPath(local) ? unixLocation(local) : `grpc://${dialable(local)}`;
}

/** A forward's local address as this machine dials it (a wildcard bind means loopback). */
function dialable(netloc: string): string {
  const local = parseNetloc(netloc);
  if (local?.host === "0.0.0.0") return formatNetloc("127.0.0.1", local.port);
  if (local?.host === "::") return formatNetloc("::1", local.port);
  return netloc;
}
