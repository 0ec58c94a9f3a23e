/**
 * Moving bytes between two connections: one reused buffer a direction (memory
 * stays bounded at any stream size), large reads, whole writes.
 *
 * @example
 * ```ts
 * import { pipeConnections } from "./pipe.ts";
 *
 * declare const a: Deno.Conn, b: Deno.Conn;
 * await pipeConnections(a, b); // until either side ends; both closed after
 * ```
 *
 * @module
 */

/** Bytes a direction reads at once. @default for {@link copyConnection} */
export const PIPE_BUFFER = 256 * 1024;

/** Writes all of `bytes`. */
export async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await to.write(bytes.subarray(written));
}

/** Copies `from` to `to` through one reused buffer until `from` ends. */
export async function copyConnection(
  from: Deno.Conn,
  to: Deno.Conn,
  size: number = PIPE_BUFFER,
): Promise<void> {
  const buffer = new Uint8Array(size);
  for (;;) {
    const n = await from.read(buffer);
    if (n === null) return;
    await writeAll(to, buffer.subarray(0, n));
  }
}

/** Closes, ignoring "already closed". */
export function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

/** Sets TCP_NODELAY on a TCP connection (gRPC's small frames must not wait). */
export function noDelay(conn: Deno.Conn): void {
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
}

/**
 * Copies both ways until either direction ends or fails (HTTP/2 peers do not
 * half-close), then closes both.
 */
export async function pipeConnections(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  noDelay(a);
  noDelay(b);
  const both = [copyConnection(a, b), copyConnection(b, a)];
  await Promise.race(both).catch(() => undefined);
  closeQuietly(a);
  closeQuietly(b);
  await Promise.allSettled(both);
}
