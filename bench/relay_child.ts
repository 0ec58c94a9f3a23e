/**
 * A header relay in its own process, so the bench can read its memory: listens
 * on a Unix socket, dials another (an `ssh -L /path:…` forward), adds
 * `authorization: Bearer $ARRAKIS_BENCH_TOKEN`.
 *
 * Usage: `deno run -A bench/relay_child.ts '{"listen": PATH, "dial": PATH}'`; prints
 * `{"pid": N}` when listening and exits on stdin EOF.
 *
 * @module
 */
import { serveHeaderRelay } from "../lib/http2/relay.ts";
import { stderrLogger } from "../lib/log.ts";
import { serveGuardedForward } from "../lib/net/guarded_forward.ts";

/** What the bench asks of the child. */
export interface RelayChildConfig {
  /** Unix socket to listen on. */
  listen: string;
  /** Unix socket to dial for each connection. */
  dial: string;
  /**
   * Also a uid-guarded TCP port (option (a) for the client port) piping to this
   * TCP port; the child then prints `guardedPort` too.
   */
  guardTo?: number;
}

async function main(config: RelayChildConfig): Promise<void> {
  const token = Deno.env.get("ARRAKIS_BENCH_TOKEN");
  await using _relay = serveHeaderRelay(
    Deno.listen({ transport: "unix", path: config.listen }),
    {
      dial: () => Deno.connect({ transport: "unix", path: config.dial }),
      authorization: () => token === undefined ? undefined : `Bearer ${token}`,
      logger: stderrLogger("normal", "relay"),
    },
  );
  await using guarded = config.guardTo === undefined ? undefined : serveGuardedForward(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    { dial: () => Deno.connect({ hostname: "127.0.0.1", port: config.guardTo! }) },
  );
  console.log(JSON.stringify({ pid: Deno.pid, guardedPort: guarded?.addr.port }));
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0]));
  Deno.exit(0);
}
