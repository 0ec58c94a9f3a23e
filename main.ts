#!/usr/bin/env -S deno run --allow-all
/**
 * `arrakis-proxy`: reach an Arrakis (Arrow Flight) server behind an SSH login host.
 * See `lib/cli.ts` for the command line and `mod.ts` for the library.
 *
 * @module
 */
import { PROXY_CHILD_FLAG } from "./lib/proxy_process/protocol.ts";

if (import.meta.main) {
  // The proxy's gRPC half runs as a child of this same program (see lib/proxy_process/parent.ts);
  // each side loads only its own modules: the parent never loads grpc-js.
  if (Deno.args[0] === PROXY_CHILD_FLAG) {
    const { runProxyChild } = await import("./lib/proxy_process/child.ts");
    Deno.exit(await runProxyChild());
  }
  const { main } = await import("./lib/cli.ts");
  Deno.exit(await main(Deno.args));
}
