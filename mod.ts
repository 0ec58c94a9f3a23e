/**
 * arrakis-proxy as a library: reach an Arrakis (Arrow Flight) server behind an
 * SSH login host from TypeScript.
 *
 * @example Everything in one call
 * ```ts
 * import { sshProxy } from "./mod.ts";
 *
 * await using proxy = await sshProxy("login.example.org");
 * console.log(`ARRAKIS_SERVER=${proxy.url}`);
 * // … use any Flight client against proxy.url; everything closes at the end of scope.
 * ```
 *
 * @example Composing the pieces
 * ```ts
 * import { FlightProxy, LocationMap, SshConnection } from "./mod.ts";
 *
 * await using ssh = await SshConnection.connect({ host: "login.example.org" });
 * const info = await ssh.forward("arrakis.cluster", 31206);
 * const locations = new LocationMap([], async (remote) => {
 *   const local = await ssh.forward(remote.host, remote.port);
 *   return `${local.host}:${local.port}`;
 * });
 * await using proxy = await FlightProxy.start({
 *   backend: `grpc://${info.host}:${info.port}`,
 *   listen: "localhost:0",
 *   locations,
 * });
 * ```
 *
 * @module
 */
export { type SshProxy, sshProxy, type SshProxyOptions } from "./lib/ssh_proxy.ts";
export { FlightProxy, type FlightProxyOptions } from "./lib/flight/proxy.ts";
export {
  classifyLocation,
  LocationMap,
  type LocationResolver,
  REUSE_CONNECTION,
} from "./lib/flight/locations.ts";
export { LocationRewriter, Shapes } from "./lib/flight/rewrite.ts";
export { discoverEndpoints } from "./lib/flight/discovery.ts";
export { type ConnectOptions, SshConnection } from "./lib/ssh/connection.ts";
export { type Logger, stderrLogger } from "./lib/log.ts";
export { UsageError, UserError } from "./lib/errors.ts";
