#!/usr/bin/env -S deno run --allow-all
/**
 * `arrakis-proxy`: reach an Arrakis (Arrow Flight) server behind an SSH login host.
 * See `lib/cli.ts` for the command line and `mod.ts` for the library.
 *
 * @module
 */
import { main } from "./lib/cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
