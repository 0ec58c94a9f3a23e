/**
 * arrakis-proxy as a library: reach an Arrakis (Arrow Flight) server behind an
 * SSH login host from TypeScript. Import it from a checkout or straight from a
 * URL (`import { sshProxy } from "https://…/arrakis-proxy/mod.ts"`): it needs no
 * deno.json; each npm package is pinned as an `npm:` specifier in one small
 * module (`lib/flight/grpc.ts`, `arrow.ts`, `protobuf.ts`).
 *
 * This root module is what a user calls: {@link sshProxy}, {@link doctor}, the
 * errors and the types they use. The building blocks, for those who compose
 * their own, sit under subpath exports (see deno.json): `./ssh/connection`
 * (`SshConnection`), `./flight/proxy` (`FlightProxy`), `./flight/locations`
 * (`LocationMap`, `classifyLocation`), `./flight/rewrite` (`LocationRewriter`),
 * `./flight/discovery` (`discoverEndpoints`), `./flight/client` (`fetchArrakis`,
 * `summarizeTables`), `./isolated_proxy` (`IsolatedProxy`, in `lib/proxy_process/parent.ts`).
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
 * @example `startBackgroundProxy`: like `arrakis-proxy -f`, a proxy that outlives this program
 * ```ts
 * import { startBackgroundProxy } from "./mod.ts";
 *
 * // ssh prompts on this terminal; the proxy then runs detached (or is found running).
 * const proxy = await startBackgroundProxy("login.example.org");
 * console.log(proxy.url, proxy.pid, proxy.log, proxy.alreadyRunning);
 * ```
 *
 * @example `listBackgroundProxies` and `stopBackgroundProxy`: like `status` and `stop`
 * ```ts
 * import { listBackgroundProxies, stopBackgroundProxy } from "./mod.ts";
 *
 * const { records } = await listBackgroundProxies(); // gone ones are cleaned up
 * for (const proxy of records) {
 *   console.log(`${proxy.host} ${proxy.url} up since ${proxy.started}`);
 *   if (proxy.host === "login.example.org") await stopBackgroundProxy(proxy);
 * }
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
export {
  type BackgroundOptions,
  type BackgroundProxy,
  startBackgroundProxy,
} from "./lib/background/starter.ts";
export { listBackgroundProxies, stopBackgroundProxy } from "./lib/background/running.ts";
export type { ProxyRecord, RecordList } from "./lib/background/state.ts";
export {
  type MasterAddress,
  type SshOptions,
  type SshProxy,
  sshProxy,
  type SshProxyOptions,
  type SshProxyState,
} from "./lib/ssh_proxy.ts";
export { doctor, type DoctorCheck, type DoctorOptions, type DoctorReport } from "./lib/doctor.ts";
export type { ChannelSummary, DataSummary } from "./lib/flight/client.ts";
export { type Logger, stderrLogger, type StderrLoggerOptions, type Verbosity } from "./lib/log.ts";
export { UsageError, UserError } from "./lib/errors.ts";
export type { TokenOptions } from "./lib/proxy_process/token.ts";
