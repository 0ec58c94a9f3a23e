/**
 * Does splitting one Stream endpoint into K (`--split-streams K`) lift the one
 * SSH channel window at high round trips? The link bench (`link.ts`) with its
 * data paths replaced by: the `ssh -L` tunnel (baseline), a proxy child behind
 * that tunnel as it is, and the same child splitting each bounded Stream
 * endpoint in 2, 4 and 8. Every endpoint of the child's answers is redeemed at
 * the tunnel (reuse-connection), one TCP connection, so one SSH channel, each;
 * `arrakis.Client.fetch` MB/s and GetFlightInfo p50 are measured alternately.
 *
 * Usage: `deno run -A bench/split.ts [link.ts options: --rtt 0.1,30,80 --cap none …]`.
 *
 * @module
 */
import { LINK_PATHS, type LinkContext, linkMain } from "./link.ts";
import { sshTunnel } from "./ssh_tunnel.ts";
import { spawnProxy } from "./children.ts";
import { REUSE_CONNECTION } from "../lib/flight/locations.ts";

/** A proxy child whose backend and reuse-connection endpoints are one `ssh -L` tunnel. */
async function childBehindTunnel(context: LinkContext, server: string, splitStreams?: number) {
  const remote = server.replace(/^grpc:\/\//, "");
  const tunnel = await sshTunnel(context.sshConfig, context.host, remote);
  const netloc = tunnel.url.replace(/^grpc:\/\//, "");
  try {
    const child = await spawnProxy({
      backend: tunnel.url,
      locations: [[REUSE_CONNECTION, netloc]],
      options: { splitStreams },
    });
    return {
      url: `grpc://${child.hello.address}`,
      [Symbol.asyncDispose]: async () => {
        await child[Symbol.asyncDispose]();
        await tunnel[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await tunnel[Symbol.asyncDispose]();
    throw error;
  }
}

const tunnel = LINK_PATHS.tunnel;
for (const name of Object.keys(LINK_PATHS)) delete LINK_PATHS[name];
LINK_PATHS.tunnel = tunnel;
LINK_PATHS.child = {
  figures: ["data"],
  start: (context, server) => childBehindTunnel(context, server),
};
for (const parts of [2, 4, 8]) {
  LINK_PATHS[`split${parts}`] = {
    figures: ["data"],
    start: (context, server) => childBehindTunnel(context, server, parts),
  };
}

if (import.meta.main) {
  const args = Deno.args;
  Deno.exit(
    await linkMain([
      ...args,
      ...(args.includes("--data-servers") ? [] : ["--data-servers", "1"]),
      ...(args.includes("--out") ? [] : [
        "--out",
        new URL("./results/split-latest.json", import.meta.url).pathname,
      ]),
    ]),
  );
}
