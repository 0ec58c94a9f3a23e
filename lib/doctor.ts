/**
 * `arrakis-proxy doctor SSH_HOST`: the whole set-up of a proxy run, one step at a
 * time, each timed and reported on its own line, so that a user can paste the
 * report into a help request and whoever reads it sees where things stop.
 *
 * Steps: ssh connect → remote server → a forward and a ListActions round trip
 * per server (the info server and every data server it lists) → a temporary
 * Flight proxy on a free loopback port → a small Find and Stream through it,
 * decoded with apache-arrow.
 *
 * @module
 */
import { SshConnection } from "./ssh/connection.ts";
import { resolveRemoteServer } from "./ssh/remote_server.ts";
import { LocationMap } from "./flight/locations.ts";
import { formatNetloc } from "./netloc.ts";
import { discoverEndpoints } from "./flight/discovery.ts";
import { FlightProxy } from "./flight/proxy.ts";
import { type DataSummary, fetchArrakis, pingFlight, summarizeTables } from "./flight/client.ts";
import { silentLogger } from "./log.ts";
import { connectOptions, type SshOptions } from "./ssh_proxy.ts";
import { userSshArgs } from "./ssh/args.ts";
import { withTimeout } from "./async.ts";

/** Options of {@link doctor}: a run's ssh options, plus the test fetch's. */
export interface DoctorOptions extends SshOptions {
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

/** The current GPS time in nanoseconds (GPS = Unix − 315964800 s + 18 leap seconds). */
function gpsNowNs(): bigint {
  return (BigInt(Date.now()) - 315_964_800_000n + 18_000n) * 1_000_000n;
}

/**
 * Runs every step against `sshHost`, calling `report` with each line as soon as
 * it is known (a hang shows where it hangs), and resolves to the full report.
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
  const logger = options.logger ?? silentLogger;
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
    logger.progress(`connecting to ${sshHost}…`);
    let connection: SshConnection;
    try {
      const connected = await timed(() => SshConnection.connect(connectOptions(sshHost, options)));
      connection = stack.use(connected.value);
      check({ name: "ssh connect", ok: true, detail: "master connection up", ms: connected.ms });
    } catch (error) {
      check({ name: "ssh connect", ok: false, detail: errorText(error) });
      return result;
    }

    logger.progress("looking up the Arrakis server…");
    let server;
    try {
      server = await resolveRemoteServer(connection, options.server);
      const source = options.server ? "--server" : "remote $ARRAKIS_SERVER";
      check({ name: "arrakis server", ok: true, detail: `${server.url} (from ${source})` });
    } catch (error) {
      check({ name: "arrakis server", ok: false, detail: errorText(error) });
      return result;
    }

    const forward = async (host: string, port: number) => {
      const local = await connection.forward(host, port);
      return formatNetloc(local.host, local.port);
    };
    const infoRemote = formatNetloc(server.host, server.port);
    let healthy = true;
    const probe = async (remote: string, host: string, port: number) => {
      let local: string | undefined;
      try {
        local = await withTimeout(forward(host, port), timeoutMs, "forward");
        const ms = await pingFlight(`grpc://${local}`, timeoutMs);
        healthy = check({
          name: `endpoint ${remote}`,
          ok: true,
          detail: `→ ${local}, ListActions answered`,
          ms,
        }) && healthy;
      } catch (error) {
        healthy = check({
          name: `endpoint ${remote}`,
          ok: false,
          detail: `${local ? `→ ${local}, ` : "no forward: "}${errorText(error)}`,
        }) && healthy;
      }
      return local;
    };

    logger.progress(`forwarding ${infoRemote}…`);
    const infoLocal = await probe(infoRemote, server.host, server.port);
    if (infoLocal === undefined) return result;

    logger.progress("listing endpoints…");
    let endpoints;
    try {
      const listed = await timed(() => discoverEndpoints(`grpc://${infoLocal}`, timeoutMs));
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
      check({
        name: "endpoints",
        ok: false,
        detail: errorText(error),
      });
      return result;
    }
    const locations = new LocationMap([[infoRemote, infoLocal]]);
    let done = 0;
    for (const endpoint of endpoints) {
      logger.progress(`checking endpoints ${++done}/${endpoints.length}`);
      const local = await probe(endpoint.netloc, endpoint.host, endpoint.port);
      if (local) locations.set(endpoint.netloc, local);
    }
    locations.setResolver((remote) => forward(remote.host, remote.port));

    logger.progress("fetching test data through a temporary proxy…");
    const proxy = stack.use(
      await FlightProxy.start({ backend: `grpc://${infoLocal}`, listen: "127.0.0.1:0", locations }),
    );
    report(`${"proxy".padEnd(28)} ${proxy.url} (temporary, for the test fetch)`);
    try {
      const channels = options.channels?.length
        ? options.channels
        : await withTimeout(findChannels(proxy.url, timeoutMs), timeoutMs, "Find");
      const end = gpsNowNs() - 60_000_000_000n;
      const request = {
        request: "Stream",
        args: { channels, start: (end - 1_000_000_000n).toString(), end: end.toString() },
      };
      const fetched = await timed(() => fetchArrakis(proxy.url, request, { timeoutMs }));
      const data = summarizeTables(fetched.value.map((endpoint) => endpoint.table));
      result.data = data;
      const span = data.span
        ? `, GPS ${data.span.start.toFixed(3)}–${data.span.end.toFixed(3)}`
        : ", no time column";
      healthy = check({
        name: "data fetch",
        ok: data.rows > 0,
        detail: `Stream of ${channels.length} channel(s) from ${fetched.value.length} ` +
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

/**
 * A couple of channel names for the test fetch: from a Find's `channel` column,
 * else (servers that answer Find with stream-shaped data) its non-`time` columns.
 */
async function findChannels(url: string, timeoutMs: number): Promise<string[]> {
  const found = await fetchArrakis(url, {
    request: "Find",
    args: { pattern: ".*", data_type: [], min_rate: 0, max_rate: 4294967295, publisher: [] },
  }, { timeoutMs });
  const names = new Set<string>();
  for (const { table } of found) {
    const column = table.getChild("channel");
    if (column) {
      for (let i = 0; i < column.length && names.size < 2; i++) names.add(String(column.get(i)));
    } else {
      for (const field of table.schema.fields) {
        if (field.name !== "time" && names.size < 2) names.add(field.name);
      }
    }
  }
  if (names.size === 0) throw new Error("Find listed no channels; pass --channel NAME");
  return [...names];
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
