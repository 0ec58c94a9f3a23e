/**
 * What the token stage of a run (and of doctor; `stages.ts`'s `tokenStage`)
 * does: ask the server (through the proxy
 * child, which makes every gRPC call) whether reads need a token; when they
 * do, find the user's token for the remote server's audience and keep the
 * child's copy current, with the lines a refused call gets. On an open
 * deployment nothing changes: no token is looked for or sent.
 *
 * @example
 * ```ts
 * import { carryToken } from "./token.ts";
 *
 * // proxy: a started IsolatedProxy; server: the remote server's URL.
 * using token = await carryToken(proxy, "grpc://arrakis.example.org:31206");
 * token.authorization(); // for the data-server relay: "Bearer …" or undefined
 * ```
 *
 * @module
 */
import type { ProxyToken } from "../flight/proxy.ts";
import type { ServerInfo } from "../flight/server_info.ts";
import { serverAudience } from "../token/fit.ts";
import { describeSearch, NO_TOKEN_REFUSAL, tokenFixes, TokenSource } from "../token/source.ts";
import { type Logger, silentLogger } from "../log.ts";

/** The token options of a run, doctor and a background proxy (never the token itself). */
export interface TokenOptions {
  /** `--token-file`: read the token only from this file. */
  tokenFile?: string;
  /** `--token-audience`: the audience to look for, in place of `https://<server host>`. */
  tokenAudience?: string;
  /** `--no-token`: never add a token. */
  noToken?: boolean;
}

/** What {@link carryToken} needs of the proxy: the child's `server-info` call and its token. */
export interface TokenCarrier {
  serverInfo(timeoutMs?: number): Promise<ServerInfo>;
  setToken(token: ProxyToken | undefined): void;
}

/** Options of {@link carryToken}. */
export interface CarryTokenOptions extends TokenOptions {
  /** Where the token found (or why none fits) is said. */
  logger?: Logger;
  /**
   * Clients on other machines (`--allow-remote-clients`): only the proxy's own
   * calls carry the token, never theirs.
   */
  remoteClients?: boolean;
  /** Time limit of the `server-info` call. */
  timeoutMs?: number;
  /** How often the token is looked for again, in ms. */
  pollMs?: number;
}

/** The token as a run carries it; dispose of it to stop looking. */
export interface CarriedToken extends Disposable {
  /** The server's `auth_mode` (null: none), or undefined when `server-info` failed. */
  readonly authMode: ServerInfo["authMode"] | undefined;
  /** Why `server-info` failed, when it did. */
  readonly serverInfoError?: string;
  /** Reads need a token, and the proxy adds the user's (false on open deployments, `--no-token`). */
  readonly needed: boolean;
  /** The source, when a token is looked for. */
  readonly source?: TokenSource;
  /** `--no-token` was given. */
  readonly disabled: boolean;
  /**
   * The `authorization` value for a connection to a data server (the relay
   * calls it per connection): `Bearer …`, or undefined when none is to be added.
   */
  authorization(): string | undefined;
}

/** The message the child gets for `source`: the token (or none), and the lines refusals get. */
export function proxyToken(source: TokenSource, clients: boolean): ProxyToken {
  return {
    authorization: source.authorization(),
    clients,
    unauthenticated: source.refusal("unauthenticated"),
    permissionDenied: source.refusal("permission-denied"),
  };
}

/** The warning (and doctor's FAILED line) when reads need a token and none fits. */
export function noTokenFits(source: TokenSource): string {
  return `the server needs a token for reads and none fits: ${source.describe()}; ` +
    tokenFixes(source.search);
}

/**
 * Asks the server whether reads need a token and, when they do, finds the
 * user's token for `serverUrl`'s audience (or `tokenAudience`) and hands it to
 * the child, again on each change. Logs the token found; that none fits only
 * when it changes to that later (at first the caller says so, see
 * {@link tokenReport}).
 *
 * @throws {UserError} when `tokenFile` cannot be used (missing, others can read it).
 */
export async function carryToken(
  proxy: TokenCarrier,
  serverUrl: string,
  options: CarryTokenOptions = {},
): Promise<CarriedToken> {
  const logger = options.logger ?? silentLogger;
  const none = (fields: Partial<CarriedToken>): CarriedToken => ({
    authMode: undefined,
    needed: false,
    disabled: false,
    authorization: () => undefined,
    [Symbol.dispose]() {},
    ...fields,
  });
  if (options.noToken) {
    // Refusals still say why: the proxy was told to send none.
    const lines = { unauthenticated: NO_TOKEN_REFUSAL, permissionDenied: NO_TOKEN_REFUSAL };
    proxy.setToken({ clients: !options.remoteClients, ...lines });
    return none({ disabled: true });
  }
  const open = () =>
    TokenSource.open({
      audience: options.tokenAudience ?? serverAudience(serverUrl),
      file: options.tokenFile,
      logger,
      pollMs: options.pollMs,
    });
  // Looked for before server-info answers (local files only): a token that fits
  // goes with the proxy's own first calls (server-info, and the discovery its
  // caller sends next), so a protected server's listing needs no second call, a
  // round trip of start-up. It is for this server's audience; clients' calls get
  // it only once server-info says reads need it.
  let early: TokenSource | undefined;
  try {
    early = open();
  } catch {
    // A --token-file that cannot be used: said below, when reads need a token.
  }
  if (early?.search.chosen) proxy.setToken(proxyToken(early, false));
  const unused = (fields: Partial<CarriedToken>) => {
    if (early?.search.chosen) proxy.setToken(undefined);
    early?.[Symbol.dispose]();
    return none(fields);
  };
  let info: ServerInfo;
  try {
    info = await proxy.serverInfo(options.timeoutMs);
  } catch (error) {
    const message = (error as Error).message;
    logger.debug(`server-info: ${message}; adding no token`);
    return unused({ serverInfoError: message });
  }
  if (info.authMode !== "full") {
    logger.debug(`the server's auth mode is ${info.authMode ?? "none"}: reads need no token`);
    return unused({ authMode: info.authMode });
  }

  const source = early ?? open();
  const clients = !options.remoteClients;
  const say = () => {
    if (source.search.chosen) logger.info(`token for reads: ${source.describe()}`);
    else logger.warn(noTokenFits(source));
  };
  if (source.search.chosen) say();
  if (!clients) {
    logger.info("clients' calls get no token (--allow-remote-clients): only the proxy's own do");
  }
  proxy.setToken(proxyToken(source, clients));
  const unsubscribe = source.onChange(() => {
    say();
    proxy.setToken(proxyToken(source, clients));
  });
  return {
    authMode: info.authMode,
    needed: true,
    source,
    disabled: false,
    authorization: () => clients ? source.authorization() : undefined,
    [Symbol.dispose]() {
      unsubscribe();
      source[Symbol.dispose]();
    },
  };
}

/**
 * The token stage's line: the token found (issuer, audience, scope, time
 * left, where; never the token), or why none is needed; not ok: where it
 * looked and why none fits ({@link noTokenFits}).
 */
export function tokenReport(token: CarriedToken): { ok: boolean; detail: string } {
  if (token.disabled) return { ok: true, detail: "none added (--no-token)" };
  if (token.serverInfoError !== undefined) {
    return { ok: true, detail: `none added: server-info failed (${token.serverInfoError})` };
  }
  if (!token.needed || !token.source) {
    return {
      ok: true,
      detail: `not needed (the server's auth_mode is ${token.authMode ?? "none"})`,
    };
  }
  const search = token.source.search;
  if (search.chosen) return { ok: true, detail: describeSearch(search) };
  return { ok: false, detail: noTokenFits(token.source) };
}
