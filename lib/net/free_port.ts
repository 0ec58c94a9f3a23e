/**
 * Local TCP port probing, the one probe: find a free port, reserve one for a
 * forward, or check that a chosen address (a forward's, the proxy's) is free.
 *
 * @module
 */
import { UserError } from "../errors.ts";

/**
 * Returns a TCP port that was free on `hostname` a moment ago.
 *
 * The probe socket closes before returning, so another process may take the
 * port in between; callers that bind later must be ready to retry.
 *
 * @example Usage
 * ```ts
 * import { getFreePort } from "./free_port.ts";
 * const port = getFreePort();
 * ```
 *
 * @param hostname Address to bind the probe to.
 * @default {"127.0.0.1"}
 * @returns A port number in 1..65535.
 */
export function getFreePort(hostname = "127.0.0.1"): number {
  using listener = Deno.listen({ hostname, port: 0, transport: "tcp" });
  return listener.addr.port;
}

/**
 * Whether `hostname:port` can be bound right now.
 *
 * Only `AddrInUse` counts as "not free"; other failures (for example an
 * address that is not local) are rethrown.
 *
 * @example Usage
 * ```ts
 * import { isAddressFree } from "./free_port.ts";
 * if (!isAddressFree("127.0.0.1", 31206)) console.log("taken");
 * ```
 */
export function isAddressFree(hostname: string, port: number): boolean {
  try {
    using _listener = Deno.listen({ hostname, port, transport: "tcp" });
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

/**
 * A free port on `hostname` that is not in `reserved`, added to it: concurrent
 * forwards of one connection never pick the same port before ssh binds it.
 *
 * @throws {UserError} when no such port turns up.
 */
export function reserveFreePort(reserved: Set<number>, hostname = "127.0.0.1"): number {
  for (let i = 0; i < 100; i++) {
    const port = getFreePort(hostname);
    if (!reserved.has(port)) {
      reserved.add(port);
      return port;
    }
  }
  throw new UserError(`no free local port on ${hostname}`);
}
