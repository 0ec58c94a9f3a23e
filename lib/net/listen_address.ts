/**
 * The proxy's own listen address: parsed, refused beyond loopback unless
 * allowed, and checked bindable before anyone types a password.
 *
 * @example
 * ```ts
 * import { listenable, listenAddress } from "./listen_address.ts";
 *
 * const listen = listenable(listenAddress({}), { isDefault: true }); // localhost:31206, or port 0
 * ```
 *
 * @module
 */
import { formatNetloc, type HostPort, isLoopbackHost, parseListenAddress } from "../netloc.ts";
import { type Logger, silentLogger } from "../log.ts";
import { UsageError, UserError } from "../errors.ts";
import { isAddressFree } from "./free_port.ts";

/** The proxy's address when none is given. */
export const DEFAULT_LISTEN = "localhost:31206";

/** What {@link listenAddress} reads of a run's options. */
export interface ListenOptions {
  /** `HOST:PORT`. @default {"localhost:31206"} */
  listen?: string;
  /** Allow a `listen` address other than loopback. */
  allowRemoteClients?: boolean;
}

/**
 * The proxy's address (`listen`, default `localhost:31206`), parsed; one beyond
 * loopback only with `allowRemoteClients`.
 *
 * @throws {UsageError} when it is invalid, or not loopback and not allowed.
 */
export function listenAddress(options: ListenOptions): HostPort {
  const listen = parseListenAddress(options.listen ?? DEFAULT_LISTEN);
  if (!isLoopbackHost(listen.host) && !options.allowRemoteClients) {
    throw new UsageError(
      `refusing to listen on ${listen.host}: the proxy has no authentication, so anyone who ` +
        `can reach it can read the cluster's data; pass --allow-remote-clients to do it anyway`,
    );
  }
  return listen;
}

/** Options of {@link listenable}. */
export interface ListenableOptions {
  /** The address is the default one, not asked for: a taken port means a free one instead. */
  isDefault?: boolean;
  /** Says (at info level) when a free port replaces the taken default. */
  logger?: Logger;
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
  { isDefault = false, logger = silentLogger }: ListenableOptions = {},
): HostPort {
  if (listen.port === 0) return listen;
  const where = formatNetloc(listen.host, listen.port);
  let free: boolean;
  try {
    free = isAddressFree(listen.host, listen.port);
  } catch (error) {
    throw new UserError(`cannot listen on ${where}: ${(error as Error).message}`);
  }
  if (free) return listen;
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
