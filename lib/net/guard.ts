/**
 * Only the user: a gate for accepted TCP connections that lets in only
 * processes of this process's own uid (Linux, see `peer_uid.ts`) and closes
 * every other with one log line. Elsewhere it cannot tell, and lets everyone in.
 *
 * @example
 * ```ts
 * import { admitsOwnUser } from "./guard.ts";
 *
 * for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: 31206 })) {
 *   if (await admitsOwnUser(conn)) {
 *     // serve conn
 *   }
 * }
 * ```
 *
 * @module
 */
import { type Logger, silentLogger } from "../log.ts";
import { formatNetloc } from "../netloc.ts";
import { type ConnectionEnds, peerUid } from "./peer_uid.ts";

/** Whether this platform can tell who connected (Linux: yes). */
export const CAN_CHECK_PEER = Deno.build.os === "linux";

/**
 * True when `conn` comes from a process of our uid (or the platform cannot
 * tell); otherwise closes it, logs one line and answers false.
 */
export async function admitsOwnUser(
  conn: ConnectionEnds & { close(): void },
  logger: Logger = silentLogger,
  uid: number = Deno.uid() ?? -1,
): Promise<boolean> {
  if (!CAN_CHECK_PEER) return true;
  const owner = await peerUid(conn);
  if (owner === uid) return true;
  const from = formatNetloc(conn.remoteAddr.hostname, conn.remoteAddr.port);
  logger.warn(
    `refused a connection from ${from}: ${
      owner === undefined ? "its owner is unknown (not this machine?)" : `uid ${owner}`
    }, not this proxy's user (uid ${uid})`,
  );
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  return false;
}
