/**
 * The one way this project opens a gRPC channel to a Flight server: a grpc-js
 * client for a `grpc://HOST:PORT` URL, insecure (the path is an SSH forward),
 * with no limit on message sizes (Arrow batches of 64 MiB and more) and without
 * channelz's per-call bookkeeping, which nothing here reads.
 *
 * @example
 * ```ts
 * import { flightClient } from "./channel.ts";
 *
 * const client = flightClient("grpc://127.0.0.1:41001");
 * // client.makeUnaryRequest(…); then:
 * client.close();
 * ```
 *
 * @module
 */
import { grpc } from "./grpc.ts";
import { netlocOfUrl } from "../netloc.ts";
import { UserError } from "../errors.ts";

/** Unlimited message sizes and channelz off: for channels and for the proxy's server. */
export const UNLIMITED: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  "grpc.enable_channelz": 0,
};

/**
 * `grpc://host:port` (or a bare `host:port`) → the grpc-js target `host:port`;
 * `grpc+unix:///path` (a forward's Unix socket) → `unix:/path`.
 */
export function backendTarget(url: string): string {
  if (url.startsWith("grpc+unix:///")) return `unix:${url.slice("grpc+unix://".length)}`;
  const target = netlocOfUrl(url);
  if (!target) throw new UserError(`unsupported backend URL ${url}: expected grpc://HOST:PORT`);
  return target;
}

/** A client for the Flight server at `url`; `options` add to (or override) {@link UNLIMITED}. */
export function flightClient(url: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(backendTarget(url), grpc.credentials.createInsecure(), {
    ...UNLIMITED,
    ...options,
  });
}
