/**
 * Finding the Arrakis server to forward: `--server`, else the login host's
 * `ARRAKIS_SERVER` (plain session first, then once through a login shell).
 *
 * The remote value is untrusted: it becomes a forward target on the ssh
 * command line, so it must be exactly `[grpc://|grpc+tcp://]host:port`
 * ({@link parseServerUrl}, in `netloc.ts`).
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { lastLine, type SshResult } from "./command.ts";
import { parseServerUrl, type RemoteServer } from "../netloc.ts";

/** What {@link resolveRemoteServer} needs of a connection. */
export interface RemoteShell {
  /** ssh destination, for messages. */
  readonly host: string;
  /** Runs a fixed remote command. */
  exec(argv: readonly string[], options?: { login?: boolean }): Promise<SshResult>;
  /** A variable the connection's own session already read, if it did. */
  sessionEnv?(name: string): Promise<string | undefined>;
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
