/**
 * arrakis-proxy as a library: reach an Arrakis (Arrow Flight) server behind an
 * SSH login host from TypeScript. Import it from a checkout or straight from a
 * URL (`import { sshProxy } from "https://…/arrakis-proxy/mod.ts"`): it needs no
 * deno.json, its npm packages are pinned as `npm:` specifiers
 * in one small module each (`lib/flight/grpc.ts`, `arrow.ts`, `protobuf.ts`).
 *
 * @example `sshProxy`: everything in one call, closed at the end of the scope
 * ```ts
 * import { sshProxy } from "./mod.ts";
 *
 * await using proxy = await sshProxy("login.example.org");
 * console.log(`export ARRAKIS_SERVER=${proxy.url}`); // grpc://localhost:31206
 * ```
 *
 * @example `SshProxyOptions`: the command line's options, plus a logger
 * ```ts
 * import { sshProxy, stderrLogger } from "./mod.ts";
 *
 * await using proxy = await sshProxy("login.example.org", {
 *   server: "grpc://arrakis.cluster:31206", // else the remote $ARRAKIS_SERVER
 *   listen: "localhost:0", // a free port; see proxy.url
 *   sshOptions: ["User=alice"],
 *   logger: stderrLogger("normal"),
 * });
 * ```
 *
 * @example `fetchArrakis` and `summarizeTables`: read data through the proxy
 * ```ts
 * import { fetchArrakis, sshProxy, summarizeTables } from "./mod.ts";
 *
 * await using proxy = await sshProxy("login.example.org", { listen: "localhost:0" });
 * const fetched = await fetchArrakis(proxy.url, {
 *   request: "Stream",
 *   args: { channels: ["H1:GDS-CALIB_STRAIN"], start: 1400000000e9, end: 1400000001e9 },
 * });
 * const { rows, channels } = summarizeTables(fetched.map((endpoint) => endpoint.table));
 * ```
 *
 * @example `doctor`: the step-by-step check behind `arrakis-proxy doctor`
 * ```ts
 * import { doctor } from "./mod.ts";
 *
 * const report = await doctor("login.example.org", {}, (line) => console.log(line));
 * if (!report.healthy) Deno.exit(1);
 * ```
 *
 * @example `SshConnection`, `LocationMap` and `FlightProxy`: composing the pieces
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
 * @example `discoverEndpoints`: every data server an info server knows
 * ```ts
 * import { discoverEndpoints } from "./mod.ts";
 *
 * for (const endpoint of await discoverEndpoints("grpc://127.0.0.1:41001")) {
 *   console.log(endpoint.netloc); // data-a:40001, …
 * }
 * ```
 *
 * @example `classifyLocation` and `REUSE_CONNECTION`: what a location names
 * ```ts
 * import { classifyLocation, REUSE_CONNECTION } from "./mod.ts";
 *
 * classifyLocation("grpc://data-a:40001"); // { kind: "endpoint", location: { host: "data-a", … } }
 * classifyLocation(REUSE_CONNECTION).kind; // "reuse-connection"
 * ```
 *
 * @example `LocationRewriter` and `Shapes`: rewrite locations in raw FlightInfo bytes
 * ```ts
 * import { LocationMap, LocationRewriter, Shapes } from "./mod.ts";
 *
 * const rewriter = new LocationRewriter(new LocationMap([["data-a:40001", "127.0.0.1:41002"]]));
 * declare const flightInfoBytes: Uint8Array;
 * const local = await rewriter.toLocal(flightInfoBytes, Shapes.FlightInfo);
 * ```
 *
 * @example `UserError` and `UsageError`: failures meant for the user, one line each
 * ```ts
 * import { sshProxy, UserError } from "./mod.ts";
 *
 * try {
 *   await using proxy = await sshProxy("login.example.org");
 * } catch (error) {
 *   if (!(error instanceof UserError)) throw error;
 *   console.error(error.message); // e.g. "remote ARRAKIS_SERVER is not set on …; pass --server URL"
 *   Deno.exit(error.exitCode);
 * }
 * ```
 *
 * @module
 */
export { type SshProxy, sshProxy, type SshProxyOptions } from "./lib/ssh_proxy.ts";
export { FlightProxy, type FlightProxyOptions } from "./lib/flight/proxy.ts";
export { IsolatedProxy, type IsolatedProxyOptions } from "./lib/isolated_proxy.ts";
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
export { doctor, type DoctorOptions, type DoctorReport } from "./lib/doctor.ts";
export {
  type DataSummary,
  fetchArrakis,
  pingFlight,
  summarizeTables,
} from "./lib/flight/client.ts";
