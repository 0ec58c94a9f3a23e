#!/usr/bin/env -S deno run --allow-all
/**
 * `arrakis-proxy`: reach an Arrakis (Arrow Flight) server behind an SSH login host.
 * See `lib/cli.ts` for the command line and `mod.ts` for the library.
 *
 * @module
 */
import { main } from "./lib/cli.ts";
import { PROXY_CHILD_FLAG, runProxyChild } from "./lib/isolated_proxy.ts";

if (import.meta.main) {
  // The proxy's gRPC half runs as a child of this same program (see isolated_proxy.ts).
  Deno.exit(Deno.args[0] === PROXY_CHILD_FLAG ? await runProxyChild() : await main(Deno.args));
}
