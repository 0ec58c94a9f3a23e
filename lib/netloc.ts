/**
 * `host:port`, the one parser and formatter: the SSH layer (forward targets, the
 * remote server), the Flight layer (endpoint locations, the backend) and the
 * command line (`--listen`, `--server` URLs: {@link parseServerUrl}) all take addresses apart and put them together here,
 * and decide here whether a name that came from the remote side may reach an ssh
 * command line.
 *
 * @example
 * ```ts
 * import { formatNetloc, parseNetloc } from "./netloc.ts";
 *
 * parseNetloc("[::1]:31206"); // { host: "::1", port: 31206 }
 * formatNetloc("Data-A", 40001); // "data-a:40001"
 * ```
 *
 * @module
 */
import { UsageError, UserError } from "./errors.ts";

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;

/** Whether `port` is an integer in 1..65535. */
export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** Whether `text` is a plain IPv6 literal (no brackets, no zone id). */
export function isIPv6Literal(text: string): boolean {
  if (!text.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** Whether `text` is a dotted-quad IPv4 address with every octet 0..255. */
export function isIPv4Literal(text: string): boolean {
  return IPV4.test(text) && text.split(".").every((octet) => Number(octet) <= 255);
}

/**
 * Whether `host` is a DNS name, an IPv4 address or a bare IPv6 literal.
 *
 * Names follow RFC 1123 labels (underscores tolerated, as some clusters use
 * them); nothing may start with "-" and nothing may contain "/", "@", spaces
 * or other characters that would change how ssh reads a forward spec.
 */
export function isValidHost(host: string): boolean {
  if (isIPv6Literal(host)) return true;
  if (IPV4.test(host)) return isIPv4Literal(host);
  if (host.length === 0 || host.length > 253) return false;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  return name.split(".").every((label) => HOST_LABEL.test(label));
}

/** A host (IPv6 literals without brackets) and a port. */
export interface HostPort {
  /** DNS name, IPv4 address or bare IPv6 literal. */
  host: string;
  /** TCP port. */
  port: number;
}

/**
 * The grammar of `host:port` inside a larger pattern (two groups: the host,
 * bracketed when IPv6, and the port's digits); {@link parseNetloc} and the
 * location URI parser share it.
 */
export const NETLOC_PATTERN = String.raw`(\[[0-9A-Fa-f:.]+\]|[^/?#:@\[\]\s]+):(\d+)`;
const NETLOC = new RegExp(`^${NETLOC_PATTERN}$`);

/** The host of `[v6]`-or-plain text, brackets removed. */
export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Takes `host:port` (IPv6 in brackets) apart; undefined when it is not of that
 * form or the port is above 65535. Port 0 is accepted (a listen address).
 */
export function parseNetloc(text: string): HostPort | undefined {
  const match = NETLOC.exec(text);
  const port = Number(match?.[2]);
  if (!match || match[2].length > 5 || port > 65535) return undefined;
  return { host: unbracket(match[1]), port };
}

/**
 * Canonical `host:port` for display and for map keys: host names lower-case
 * (DNS ignores case), IPv6 literals bracketed (`[::1]:31206`).
 */
export function formatNetloc(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host.toLowerCase()}:${port}`;
}

/** `HOST:PORT` from a URL (`grpc://`, `grpc+tcp://`) or bare; the grpc-js target form. */
export function netlocOfUrl(url: string): string | undefined {
  return /^(?:grpc(?:\+tcp)?:\/\/)?([^/]+?)\/?$/.exec(url)?.[1];
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1)$/i;

/** A bound address as this machine dials it: a wildcard bind means loopback. */
export function dialableAddress(bound: HostPort): HostPort {
  if (bound.host === "0.0.0.0") return { host: "127.0.0.1", port: bound.port };
  if (bound.host === "::") return { host: "::1", port: bound.port };
  return { host: bound.host, port: bound.port };
}

/** Whether a listen host only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

/** Parses a `--listen` address, `HOST:PORT` (IPv6 in brackets, port 0 for any). */
export function parseListenAddress(text: string): HostPort {
  const address = parseNetloc(text);
  if (!address) {
    throw new UsageError(`invalid listen address ${JSON.stringify(text)}: expected HOST:PORT`);
  }
  return address;
}

/** An Arrakis server URL taken apart: where the server is, as seen from the login host. */
export interface RemoteServer {
  /** Normalized URL, `grpc://host:port` (IPv6 bracketed). */
  url: string;
  /** Host to forward to (no brackets). */
  host: string;
  /** TCP port, 1..65535. */
  port: number;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const ACCEPTED_SCHEMES = new Set(["grpc", "grpc+tcp"]);

/**
 * Parses an Arrakis server URL: `grpc://host:port`, `grpc+tcp://host:port`
 * or bare `host:port` (meaning grpc://). The host is a DNS name, IPv4 or
 * bracketed IPv6 address; nothing else is allowed (no user, path, query).
 *
 * The unspecified addresses (`0.0.0.0`, Arrakis's default, and `::`) mean
 * "the server on the login host itself", so they become its loopback
 * (`127.0.0.1`, `::1`): forwarding to 0.0.0.0 happens to reach the local
 * host on Linux, but loopback says what is meant and works everywhere.
 *
 * @example Usage
 * ```ts
 * import { parseServerUrl } from "./netloc.ts";
 * parseServerUrl("grpc://info:31206"); // { url: "grpc://info:31206", host: "info", port: 31206 }
 * ```
 *
 * @param text The URL.
 * @param source Where it came from, for the error message.
 * @throws {UserError} naming the source and the problem.
 */
export function parseServerUrl(text: string, source = "server URL"): RemoteServer {
  const fail = (why: string): never => {
    throw new UserError(`invalid Arrakis server ${JSON.stringify(text)} from ${source}: ${why}`);
  };
  let rest = text;
  const scheme = SCHEME.exec(text);
  if (scheme) {
    if (!ACCEPTED_SCHEMES.has(scheme[1].toLowerCase())) {
      fail(`scheme ${scheme[1]}:// is not grpc:// or grpc+tcp://`);
    }
    rest = text.slice(scheme[0].length);
  }
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (/[/?#@\\]/.test(rest)) fail("only host:port is allowed (no user, path or query)");

  let host: string;
  let portText: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0 || rest[close + 1] !== ":") fail("expected [IPv6]:port");
    host = rest.slice(1, close);
    portText = rest.slice(close + 2);
    if (!isIPv6Literal(host)) fail(`${host} is not an IPv6 address`);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon < 0) fail("missing :port");
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
    if (host.includes(":")) fail("IPv6 addresses must be in brackets");
    if (!isValidHost(host) || isIPv6Literal(host)) fail(`${host || "(empty)"} is not a host name`);
    if (/^[\d.]+$/.test(host) && !isIPv4Literal(host)) fail(`${host} is not an IPv4 address`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    fail(`port ${portText || "(empty)"} is not in 1..65535`);
  }
  const port = Number(portText);
  if (host === "0.0.0.0") host = "127.0.0.1";
  else if (isIPv6Literal(host) && /^[0:]+$/.test(host)) host = "::1";
  return { url: `grpc://${formatNetloc(host, port)}`, host, port };
}
