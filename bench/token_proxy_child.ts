/**
 * A whole proxy run that adds a token (`sshProxy` with `authorization`), in its
 * own process so the bench can count the memory of every process it runs.
 *
 * Usage: `deno run -A bench/token_proxy_child.ts '{"host", "sshConfig", "server"}'`;
 * prints `{"pid": N, "url": "grpc://…"}` when ready and exits on stdin EOF.
 *
 * @module
 */
import { sshProxy } from "../lib/ssh_proxy.ts";
import { stderrLogger } from "../lib/log.ts";

/** What the bench asks of the child. */
export interface TokenProxyChildConfig {
  host: string;
  sshConfig: string;
  server: string;
}

async function main(config: TokenProxyChildConfig): Promise<void> {
  const token = Deno.env.get("ARRAKIS_BENCH_TOKEN");
  await using proxy = await sshProxy(config.host, {
    sshConfig: config.sshConfig,
    server: config.server,
    listen: "127.0.0.1:0",
    interactive: false,
    authorization: () => `Bearer ${token}`,
    logger: stderrLogger("quiet"),
  });
  console.log(JSON.stringify({ pid: Deno.pid, url: proxy.url }));
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0]));
  Deno.exit(0);
}
