/**
 * The bench's baseline path: a hand-made `ssh -L` tunnel, as a user would make one.
 *
 * @module
 */
import { getFreePort } from "../lib/net/free_port.ts";
import { stopChild } from "../lib/process.ts";

/** A running tunnel: `url` is the first forward's, `urls` every forward's, in order. */
export interface SshTunnel extends AsyncDisposable {
  readonly url: string;
  readonly urls: string[];
}

/** A forward on a local port chosen beforehand (e.g. one a Kafka broker advertises). */
export interface FixedForward {
  port: number;
  /** `host:port`, as the login host sees it. */
  remote: string;
}

/**
 * Starts one `ssh -L` to each of `remotes` (`host:port`, as the login host sees
 * it, on a free local port; or a {@link FixedForward}) with a session open (so ssh sets TCP_NODELAY); every forward is a channel
 * of the one SSH connection. Resolves once they all accept connections.
 */
export async function sshTunnel(
  config: string,
  host: string,
  ...forwards: (string | FixedForward)[]
): Promise<SshTunnel> {
  const ports = forwards.map((forward) =>
    typeof forward === "string" ? getFreePort() : forward.port
  );
  const remotes = forwards.map((forward) => typeof forward === "string" ? forward : forward.remote);
  const child = new Deno.Command("ssh", {
    args: [
      "-F",
      config,
      "-T",
      "-o",
      "ExitOnForwardFailure=yes",
      ...remotes.flatMap((remote, i) => ["-L", `127.0.0.1:${ports[i]}:${remote}`]),
      host,
      "cat",
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    await stopChild(child, { ask: () => child.stdin.close(), graceMs: 1000 });
  };
  const urls = ports.map((port) => `grpc://127.0.0.1:${port}`);
  // Ready once the last forward accepts connections (ssh binds them in order).
  for (let i = 0; i < 400; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: ports.at(-1)! })).close();
      return { url: urls[0], urls, [Symbol.asyncDispose]: stop };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  await stop();
  throw new Error(`ssh -L ${remotes.join(" -L ")} ${host}: the forwards never opened`);
}
