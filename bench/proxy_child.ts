/**
 * A FlightProxy in its own process, so the bench can read its resident memory
 * (`/proc/PID/status` VmHWM) and so client, proxy and server do not share one
 * event loop.
 *
 * Usage: `deno run -A bench/proxy_child.ts '<ProxyChildConfig JSON>'`; prints one
 * line `{"address": "host:port", "pid": N}` when listening and exits on stdin EOF
 * or SIGTERM.
 *
 * @module
 */
import { FlightProxy, type FlightProxyOptions } from "../lib/flight/proxy.ts";
import { LocationMap } from "../lib/flight/locations.ts";

/** What the bench asks of the child. */
export interface ProxyChildConfig {
  backend: string;
  /** `[remote, local]` pairs the map starts with. */
  locations?: [string, string][];
  /** Passed to {@link FlightProxy.start} as they are. */
  options?: Omit<FlightProxyOptions, "backend" | "listen" | "locations" | "logger">;
}

async function main(config: ProxyChildConfig): Promise<void> {
  await using proxy = await FlightProxy.start({
    ...config.options,
    backend: config.backend,
    listen: "127.0.0.1:0",
    locations: new LocationMap(config.locations ?? []),
  });
  console.log(JSON.stringify({ address: proxy.address, pid: Deno.pid }));
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
    stop.resolve();
  })();
  await stop.promise;
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0] ?? "{}"));
  Deno.exit(0);
}
