/**
 * Flight location URIs and the map from remote endpoints to local forwards.
 *
 * A location such as `grpc://data-a:40001` names a server inside the cluster; the
 * proxy hands clients `grpc://127.0.0.1:41234` instead, where an SSH forward leads
 * to it. The map grows while the proxy runs: a host:port seen for the first time
 * goes to a resolver (the SSH layer opens a forward), once, however many requests
 * ask for it at the same moment.
 *
 * @module
 */

import {
  formatNetloc,
  isValidHost,
  isValidPort,
  NETLOC_PATTERN,
  parseNetloc,
  unbracket,
} from "../netloc.ts";

/** The special location meaning "redeem on the connection that produced the ticket". */
export const REUSE_CONNECTION = "arrow-flight-reuse-connection://?";

/** A location URI taken apart around its `host:port`. */
export interface ParsedLocation {
  /** `grpc`, `grpc+tcp`, `grpc+tls`, … */
  scheme: string;
  /** Host as written, IPv6 literals without brackets. */
  host: string;
  /** TCP port. */
  port: number;
  /** Canonical `host:port` key (lower-case host, IPv6 in brackets). */
  netloc: string;
  /** Everything after the port (path, query), kept as it was. */
  rest: string;
}

/** What the proxy can do with a location URI. */
export type LocationKind =
  | { kind: "reuse-connection" }
  | { kind: "endpoint"; location: ParsedLocation }
  /** Not a gRPC location (`kafka://…`): clients use it as it is, so it passes unchanged. */
  | { kind: "other-scheme"; scheme: string }
  /** A gRPC location the proxy cannot make sense of; passes unchanged. */
  | { kind: "unsupported"; reason: string };

/**
 * Schemes an SSH TCP forward can carry. Others name other transports (Kafka
 * brokers advertise their own addresses, so a port forward cannot reach them).
 */
const FORWARDABLE_SCHEMES = new Set(["grpc", "grpc+tcp", "grpc+tls"]);
const SCHEME_RE = /^([A-Za-z][A-Za-z0-9+.-]*):/;

// scheme://host:port, then whatever follows (path, query) kept as it is.
const LOCATION_RE = new RegExp(`^([A-Za-z][A-Za-z0-9+.-]*)://${NETLOC_PATTERN}(.*)$`, "s");

/**
 * Classifies a location URI. Endpoints are `grpc[+tcp|+tls]://host:port[rest]` with
 * a valid host and a port in 1..65535; anything else is passed on unchanged by the
 * proxy.
 *
 * @example
 * ```ts
 * classifyLocation("grpc://data-a:40001"); // { kind: "endpoint", location: { netloc: "data-a:40001", … } }
 * classifyLocation("arrow-flight-reuse-connection://?"); // { kind: "reuse-connection" }
 * classifyLocation("kafka://broker:9092"); // { kind: "other-scheme", scheme: "kafka" }
 * ```
 */
export function classifyLocation(uri: string): LocationKind {
  if (uri === REUSE_CONNECTION || uri.startsWith("arrow-flight-reuse-connection:")) {
    return { kind: "reuse-connection" };
  }
  const scheme = SCHEME_RE.exec(uri)?.[1].toLowerCase();
  if (scheme !== undefined && !FORWARDABLE_SCHEMES.has(scheme)) {
    return { kind: "other-scheme", scheme };
  }
  const match = LOCATION_RE.exec(uri);
  if (!match) return { kind: "unsupported", reason: "no host:port in the URI" };
  const [, rawScheme, rawHost, rawPort, rest] = match;
  const host = unbracket(rawHost);
  const port = Number(rawPort);
  if (!isValidHost(host)) return { kind: "unsupported", reason: `invalid host ${rawHost}` };
  if (!isValidPort(port)) {
    return { kind: "unsupported", reason: `invalid port ${rawPort}` };
  }
  return {
    kind: "endpoint",
    location: {
      scheme: rawScheme.toLowerCase(),
      host,
      port,
      netloc: formatNetloc(host, port),
      rest,
    },
  };
}

const UNIX_SCHEME = "grpc+unix://";

/**
 * Whether a {@link LocationMap} local side names a Unix socket (an absolute
 * path: a forward in the proxy's private directory) rather than a `host:port`.
 */
export function isSocketPath(local: string): boolean {
  return local.startsWith("/");
}

/** `grpc+unix:///path`: how a location names a Unix socket (pyarrow's Flight client dials it). */
export function unixLocation(path: string): string {
  return `${UNIX_SCHEME}${path}`;
}

/**
 * The URL that dials a local end: `grpc+unix:///path` for a Unix socket (its
 * path, or grpc-js's `unix:/path`), `grpc://host:port` for a TCP one.
 */
export function localUrl(local: string): string {
  const path = local.startsWith("unix:") ? local.slice("unix:".length) : local;
  return isSocketPath(path) ? unixLocation(path) : `grpc://${local}`;
}

/** The socket path of a `grpc+unix:///path` location; undefined for any other. */
export function unixPathOf(uri: string): string | undefined {
  return uri.startsWith(`${UNIX_SCHEME}/`) ? uri.slice(UNIX_SCHEME.length) : undefined;
}

/** Rebuilds a location with another `host:port`, keeping scheme and the rest. */
export function withNetloc(location: ParsedLocation, netloc: string): string {
  return `${location.scheme}://${netloc}${location.rest}`;
}

/**
 * Opens a way to a remote `host:port` and answers the local `host:port` that
 * reaches it. The SSH layer provides one; it may throw to refuse.
 */
export type LocationResolver = (remote: { host: string; port: number; netloc: string }) => Promise<
  string
>;

/**
 * Remote endpoint `host:port` → local forward `host:port` (or the path of a Unix
 * socket, see {@link isSocketPath}), both ways, growing on demand through a
 * {@link LocationResolver}.
 *
 * @example
 * ```ts
 * const map = new LocationMap([["data-a:40001", "127.0.0.1:41234"]]);
 * map.local("data-a:40001"); // "127.0.0.1:41234"
 * map.remote("127.0.0.1:41234"); // "data-a:40001"
 * ```
 *
 * The key {@link REUSE_CONNECTION} names the forward that redeems
 * reuse-connection endpoints: a second forward to the info server.
 */
export class LocationMap {
  #toLocal = new Map<string, string>();
  #toRemote = new Map<string, string>();
  #atPort = new Map<number, string>();
  #pending = new Map<string, Promise<string>>();
  #resolver?: LocationResolver;
  #watchers = new Set<(remote: string, local: string) => void>();

  /** A map holding `entries` (remote → local), with `resolver` for the remotes it lacks. */
  constructor(
    entries: Iterable<[remote: string, local: string]> = [],
    resolver?: LocationResolver,
  ) {
    for (const [remote, local] of entries) this.set(remote, local);
    this.#resolver = resolver;
  }

  /** Sets the resolver used for remote endpoints not yet in the map. */
  setResolver(resolver: LocationResolver | undefined): void {
    this.#resolver = resolver;
  }

  /** Records that `remote` is reached through `local` (both `host:port`). */
  set(remote: string, local: string): void {
    const old = this.#toLocal.get(remote);
    if (old !== undefined) {
      this.#toRemote.delete(old);
      this.#atPort.delete(parseNetloc(old)?.port ?? -1);
    }
    this.#toLocal.set(remote, local);
    this.#toRemote.set(local, remote);
    const port = parseNetloc(local)?.port;
    if (port !== undefined) this.#atPort.set(port, remote);
    if (old !== local) { for (const watcher of this.#watchers) watcher(remote, local); }
  }

  /** Calls `watcher` for every entry set from now on; returns a function that stops it. */
  watch(watcher: (remote: string, local: string) => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  /** The local forward for a remote `host:port`, if known. */
  local(remote: string): string | undefined {
    return this.#toLocal.get(remote);
  }

  /** The remote endpoint behind a local forward `host:port`, if it is one of ours. */
  remote(local: string): string | undefined {
    return this.#toRemote.get(local);
  }

  /**
   * The remote endpoint behind the local forward on `port`, whatever name the
   * client used for this machine (forwards share one listen address).
   */
  remoteAtPort(port: number): string | undefined {
    return this.#atPort.get(port);
  }

  /** All known `[remote, local]` pairs. */
  entries(): [string, string][] {
    return [...this.#toLocal];
  }

  /** How many remotes it maps. */
  get size(): number {
    return this.#toLocal.size;
  }

  /** Whether unknown endpoints can be resolved; without a resolver they pass unchanged. */
  get canResolve(): boolean {
    return this.#resolver !== undefined;
  }

  /**
   * The local forward for `remote`, asking the resolver when it is new. Concurrent
   * calls for the same endpoint share one resolution; a failure is not remembered,
   * so a later request tries again.
   */
  resolve(remote: { host: string; port: number; netloc: string }): Promise<string> {
    const known = this.#toLocal.get(remote.netloc);
    if (known !== undefined) return Promise.resolve(known);
    const pending = this.#pending.get(remote.netloc);
    if (pending) return pending;
    const resolver = this.#resolver;
    if (!resolver) {
      return Promise.reject(new Error(`no forward to ${remote.netloc} and no way to open one`));
    }
    const promise = (async () => {
      try {
        const local = await resolver(remote);
        this.set(remote.netloc, local);
        return local;
      } finally {
        this.#pending.delete(remote.netloc);
      }
    })();
    this.#pending.set(remote.netloc, promise);
    return promise;
  }
}
