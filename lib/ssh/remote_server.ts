/**
 * Finding the Arrakis server to forward: `--server`, else the login host's
 * `ARRAKIS_SERVER` (plain session first, then once through a login shell).
 *
 * The remote value is untrusted: it becomes a forward target on the ssh
 * command line, so it must be exactly `[grpc://|grpc+tcp://]host:port`.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { lastLine, type SshResult } from "./command.ts";
import { formatNetloc, isIPv4Literal, isIPv6Literal, isValidHost } from "../netloc.ts";

/** Where the Arrakis info server is, as seen from the login host. */
export interface RemoteServer {
  /** Normalized URL, `grpc://host:port` (IPv6 bracketed). */
  url: string;
  /** Host to forward to (no brackets). */
  host: string;
  /** TCP port, 1..65535. */
  port: number;
}

/** What {@link resolveRemoteServer} needs of a connection. */
export interface RemoteShell {
  /** ssh destination, for messages. */
  readonly host: string;
  /** Runs a fixed remote command. */
  exec(argv: readonly string[], options?: { login?: boolean }): Promise<SshResult>;
  /** A variable the connection's own session already read, if it did. */
  sessionEnv?(name: string): Promise<string | undefined>;
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
 * import { parseServerUrl } from "./remote_server.ts";
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

/**
 * The Arrakis server to forward to: `explicit` (from `--server`) when given,
 * else `ARRAKIS_SERVER` on the login host — from a plain session, then, if
 * empty, once from a login shell (clusters often export it in ~/.profile).
 * Only the last line of output counts, so a chatty profile does not matter.
 *
 * @throws {UserError} when it is not set or not a valid server URL, or when
 * the remote command could not run.
 */
export async function resolveRemoteServer(
  conn: RemoteShell,
  explicit?: string,
): Promise<RemoteServer> {
  if (explicit !== undefined) return parseServerUrl(explicit, "--server");
  // The keepalive session reads it as it opens, saving a remote shell start.
  const seen = await conn.sessionEnv?.("ARRAKIS_SERVER");
  if (seen) return parseServerUrl(seen, `remote ARRAKIS_SERVER on ${conn.host}`);
  for (const login of seen === "" ? [true] : [false, true]) {
    const result = await conn.exec(["printenv", "ARRAKIS_SERVER"], { login });
    // 255 is ssh's own failure; printenv says "unset" with 1.
    if (result.code === 255) {
      throw new UserError(
        `reading ARRAKIS_SERVER on ${conn.host} failed: ${
          lastLine(result.stderr) || "ssh exit 255"
        }`,
      );
    }
    const value = lastLine(result.stdout);
    if (value !== "") return parseServerUrl(value, `remote ARRAKIS_SERVER on ${conn.host}`);
  }
  throw new UserError(`remote ARRAKIS_SERVER is not set on ${conn.host}; pass --server URL`);
}
