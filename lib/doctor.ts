/**
 * `arrakis-proxy doctor SSH_HOST`: a proxy run's own stages (`ssh_proxy.ts`), one
 * at a time, each timed and reported on its own line, so that a user can paste
 * the report into a help request and whoever reads it sees where things stop.
 *
 * Steps: ssh connect → remote server → its forward → the proxy process on a free
 * loopback port → a ListActions round trip to the server → discovery → a forward
 * and a round trip per data server → a small Find and Stream through the proxy,
 * decoded with apache-arrow. As in a run, every gRPC call is made by the proxy
 * child, never by this process.
 *
 * @module
 */
import type { SshSupervisor } from "./ssh/supervisor.ts";
import type { IsolatedProxy } from "./isolated_proxy.ts";
import { LocationMap } from "./flight/locations.ts";
import { formatNetloc } from "./netloc.ts";
import type { DataSummary } from "./flight/client.ts";
import { type Logger, silentLogger } from "./log.ts";
import {
  connect,
  discover,
  findServer,
  forwardAll,
  type ForwardedEndpoint,
  forwardServer,
  type SshOptions,
  startProxy,
} from "./ssh_proxy.ts";
import { userSshArgs } from "./ssh/args.ts";
import { withTimeout } from "./async.ts";
import { carryToken, type TokenOptions, tokenReport } from "./proxy_process/token.ts";

/** Options of {@link doctor}: a run's ssh options, plus the test fetch's. */
export interface DoctorOptions extends SshOptions, TokenOptions {
  /** Channels for the test fetch; default: the first ones a Find lists. */
  channels?: string[];
  /** Time limit of each network step, in milliseconds. @default {20000} */
  timeoutMs?: number;
  /** Program version for the report header. */
  version?: string;
}

/** One checked step. */
export interface DoctorCheck {
  /** Step name, e.g. `ssh connect`, `endpoint data-a:40001`. */
  name: string;
  /** Whether the step worked. */
  ok: boolean;
  /** What was found, or what went wrong. */
  detail: string;
  /** How long the step took, when it was timed. */
  ms?: number;
}

/** Everything {@link doctor} found. */
export interface DoctorReport {
  /** Whether every step worked and data came back. */
  healthy: boolean;
  /** Every step, in the order they ran. */
  checks: DoctorCheck[];
  /** The test fetch's data, when it got that far. */
  data?: DataSummary;
}

/** Milliseconds, shortened for a report. */
function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** One report line: a name column, then the detail. */
export function formatCheck(check: DoctorCheck): string {
  const status = check.ok ? "ok" : "FAILED";
  const time = check.ms === undefined ? "" : `, ${formatMs(check.ms)}`;
  return `${check.name.padEnd(28)} ${status}${time}: ${check.detail}`;
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

async function timed<T>(step: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await step();
  return { value, ms: performance.now() - started };
}

/**
 * Runs a proxy run's stages against `sshHost` one at a time (see `ssh_proxy.ts`),
 * calling `report` with each line as soon as it is known (a hang shows where it
 * hangs), and resolves to the full report. Like a run, it speaks gRPC only in
 * the proxy child: the round trips and the sample fetch are asked of it.
 *
 * @example
 * ```ts
 * import { doctor } from "./doctor.ts";
 *
 * const report = await doctor("login.example.org", {}, (line) => console.log(line));
 * Deno.exit(report.healthy ? 0 : 1);
 * ```
 */
export async function doctor(
  sshHost: string,
  options: DoctorOptions = {},
  report: (line: string) => void = () => {},
): Promise<DoctorReport> {
  // The report says what a run's info lines would; progress, warnings and debug stay.
  const logger: Logger = { ...(options.logger ?? silentLogger), info() {} };
  const timeoutMs = options.timeoutMs ?? 20_000;
  const checks: DoctorCheck[] = [];
  const result: DoctorReport = { healthy: false, checks };
  const check = (entry: DoctorCheck) => {
    checks.push(entry);
    report(formatCheck(entry));
    return entry.ok;
  };

  report(`arrakis-proxy doctor report, ${new Date().toISOString()}`);
  report(
    `${"version".padEnd(28)} arrakis-proxy ${options.version ?? "?"}, deno ${Deno.version.deno}, ` +
      `${Deno.build.os} ${Deno.build.arch}`,
  );
  report(`${"ssh client".padEnd(28)} ${await sshVersion(options.sshBinary ?? "ssh")}`);
  const sshArgs = userSshArgs(options);
  report(`${"ssh host".padEnd(28)} ${sshHost}${sshArgs.length ? ` (${sshArgs.join(" ")})` : ""}`);

  await using stack = new AsyncDisposableStack();
  try {
    let ssh: SshSupervisor;
    try {
      const connected = await timed(() => connect(sshHost, { ...options, logger }));
      ssh = stack.use(connected.value);
      check({ name: "ssh connect", ok: true, detail: "master connection up", ms: connected.ms });
    } catch (error) {
      check({ name: "ssh connect", ok: false, detail: errorText(error) });
      return result;
    }

    let server;
    try {
      const found = await timed(() => findServer(ssh, options.server, logger));
      server = found.value;
      const source = options.server ? "--server" : "remote $ARRAKIS_SERVER";
      check({
        name: "arrakis server",
        ok: true,
        detail: `${server.url} (from ${source})`,
        ms: found.ms,
      });
    } catch (error) {
      check({ name: "arrakis server", ok: false, detail: errorText(error) });
      return result;
    }

    const infoRemote = formatNetloc(server.host, server.port);
    const locations = new LocationMap();
    logger.progress(`forwarding ${infoRemote}…`);
    let infoLocal: string;
    try {
      infoLocal = await withTimeout(
        forwardServer(ssh, server, locations, logger),
        timeoutMs,
        "forward",
      );
    } catch (error) {
      check({
        name: `endpoint ${infoRemote}`,
        ok: false,
        detail: `no forward: ${errorText(error)}`,
      });
      return result;
    }

    logger.progress("starting the proxy process…");
    let proxy: IsolatedProxy;
    try {
      const started = await timed(() =>
        startProxy({ backend: `grpc://${infoLocal}`, listen: "127.0.0.1:0", locations, logger })
      );
      proxy = stack.use(started.value);
      check({
        name: "proxy",
        ok: true,
        detail: `${proxy.url} (temporary, for the test fetch)`,
        ms: started.ms,
      });
    } catch (error) {
      check({ name: "proxy", ok: false, detail: errorText(error) });
      return result;
    }

    let healthy = true;
    /** One endpoint's line: its forward and a ListActions round trip, asked of the child. */
    const probe = async ({ endpoint, local, error }: ForwardedEndpoint) => {
      try {
        if (local === undefined) throw error;
        const ms = await proxy.probe(`grpc://${local}`, timeoutMs);
        healthy = check({
          name: `endpoint ${endpoint.netloc}`,
          ok: true,
          detail: `→ ${local}, ListActions answered`,
          ms,
        }) && healthy;
      } catch (error) {
        healthy = check({
          name: `endpoint ${endpoint.netloc}`,
          ok: false,
          detail: `${local ? `→ ${local}, ` : "no forward: "}${errorText(error)}`,
        }) && healthy;
      }
    };
    await probe({ endpoint: { ...server, netloc: infoRemote }, local: infoLocal });

    // As in a run: a deployment whose reads need a token gets the user's on every call below.
    try {
      const carried = await timed(() =>
        carryToken(proxy, server.url, { ...options, logger, timeoutMs })
      );
      const token = stack.use(carried.value);
      healthy = check({ name: "token", ...tokenReport(token), ms: carried.ms }) && healthy;
    } catch (error) {
      healthy = check({ name: "token", ok: false, detail: errorText(error) }) && healthy;
    }

    let endpoints;
    try {
      const listed = await timed(() => discover(proxy, logger, timeoutMs));
      endpoints = listed.value.endpoints;
      check({
        name: "endpoints",
        ok: true,
        detail: `${endpoints.length} data server(s) from the ${
          listed.value.method === "scope-map" ? "scope-map action" : "Count over all channels"
        }: ${endpoints.map((e) => e.netloc).join(", ") || "none"}`,
        ms: listed.ms,
      });
    } catch (error) {
      check({ name: "endpoints", ok: false, detail: errorText(error) });
      return result;
    }

    let forwarded: ForwardedEndpoint[];
    try {
      forwarded = await withTimeout(forwardAll(locations, endpoints, logger), timeoutMs, "forward");
    } catch (error) {
      forwarded = endpoints.map((endpoint) => ({ endpoint, error: error as Error }));
    }
    let done = 0;
    for (const endpoint of forwarded) {
      logger.progress(`checking endpoints ${++done}/${forwarded.length}`);
      await probe(endpoint);
    }

    logger.progress("fetching test data through the proxy…");
    try {
      const fetched = await proxy.sampleFetch(options.channels ?? [], timeoutMs);
      const { data, channels, endpoints } = fetched;
      result.data = data;
      const span = data.span
        ? `, GPS ${data.span.start.toFixed(3)}–${data.span.end.toFixed(3)}`
        : ", no time column";
      healthy = check({
        name: "data fetch",
        ok: data.rows > 0,
        detail: `Stream of ${channels.length} channel(s) from ${endpoints} ` +
          `endpoint(s): ${data.rows} rows, ${data.channels.length} channel column(s)` +
          `${span}${data.rows > 0 ? "" : " (no data came back)"}`,
        ms: fetched.ms,
      }) && healthy;
    } catch (error) {
      healthy = check({ name: "data fetch", ok: false, detail: errorText(error) }) && healthy;
    }
    result.healthy = healthy;
    return result;
  } finally {
    logger.progress("");
    report(`${"result".padEnd(28)} ${result.healthy ? "healthy" : "NOT healthy"}`);
  }
}

async function sshVersion(ssh: string): Promise<string> {
  try {
    const output = await new Deno.Command(ssh, { args: ["-V"], stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    return text.trim().split("\n")[0] || `${ssh} -V printed nothing`;
  } catch (error) {
    return `${ssh} not runnable: ${errorText(error)}`;
  }
}
