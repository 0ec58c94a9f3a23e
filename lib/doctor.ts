/**
 * `arrakis-proxy doctor SSH_HOST`: a proxy run's own stages (`stages.ts`'s
 * `STAGES`, the list `sshProxy` runs), one at a time, each timed and reported on
 * its own line, so that a user can paste the report into a help request and
 * whoever reads it sees where things stop.
 *
 * The proxy listens on a free loopback port. Between the stages doctor checks
 * more: a ListActions round trip to the server once the proxy serves, one per
 * data server once they are forwarded, and at the end a small Find and Stream
 * through the proxy, decoded with apache-arrow. As in a run, every gRPC call is
 * made by the proxy child, never by this process.
 *
 * @module
 */
import type { DataSummary } from "./flight/client.ts";
import { type Logger, silentLogger } from "./log.ts";
import {
  dialUrl,
  forwardAllStage,
  type ForwardedEndpoint,
  openRun,
  type Run,
  runStages,
  serveStage,
  type SshOptions,
  type Stage,
} from "./stages.ts";
import { formatNetloc } from "./netloc.ts";
import { userSshArgs } from "./ssh/args.ts";
import type { TokenOptions } from "./proxy_process/token.ts";

/** Options of {@link doctor}: a run's ssh and token options, plus the test fetch's. */
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

/** doctor's proxy: a free loopback port, for the test fetch only. */
const LISTEN = { host: "127.0.0.1", port: 0 };

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

/**
 * Runs a proxy run's stages against `sshHost` one at a time (see `stages.ts`),
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
  const run = await openRun(sshHost, { ...options, logger, listen: LISTEN, timeoutMs }, stack);
  let healthy = true;
  /** One endpoint's line: its forward and a ListActions round trip, asked of the child. */
  const probe = async ({ endpoint, local, error }: ForwardedEndpoint) => {
    try {
      if (local === undefined) throw error;
      const ms = await run.proxy!.probe(dialUrl(local), timeoutMs);
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
  /** What doctor checks once a stage is done, before the next one runs. */
  const after = new Map<Stage, (run: Run) => Promise<void>>([
    [serveStage, async ({ server, serverLocal }) => {
      const netloc = formatNetloc(server!.host, server!.port);
      await probe({ endpoint: { ...server!, netloc }, local: serverLocal! });
    }],
    [forwardAllStage, async ({ forwarded = [] }) => {
      let done = 0;
      for (const endpoint of forwarded) {
        logger.progress(`checking endpoints ${++done}/${forwarded.length}`);
        await probe(endpoint);
      }
    }],
  ]);
  try {
    try {
      await runStages(run, {
        report: async ({ stage, detail, error, ms }) => {
          const note = stage === serveStage ? " (temporary, for the test fetch)" : "";
          healthy = (error
            ? check({ name: stage.name, ok: false, detail: errorText(error) })
            : check({ name: stage.name, ok: true, detail: `${detail}${note}`, ms })) && healthy;
          await after.get(stage)?.(run);
        },
      });
    } catch {
      return result; // reported as the stage's FAILED line
    }

    logger.progress("fetching test data through the proxy…");
    try {
      // At the port clients use, as a client would.
      const fetched = await run.proxy!.sampleFetch(
        `grpc://${run.clientAddress}`,
        options.channels ?? [],
        timeoutMs,
      );
      const { data, channels, endpoints, kafka } = fetched;
      result.data = data;
      const span = data.span
        ? `, GPS ${data.span.start.toFixed(3)}–${data.span.end.toFixed(3)}`
        : ", no time column";
      healthy = check({
        name: "data fetch",
        ok: data.rows > 0,
        detail: `Stream of ${channels.length} channel(s) from ${endpoints} ` +
          `endpoint(s): ${data.rows} rows, ${data.channels.length} channel column(s)` +
          `${span}${data.rows > 0 ? "" : " (no data came back)"}` +
          (kafka.length ? `; Kafka-backed endpoints read at their Flight fallback` : ""),
        ms: fetched.ms,
      }) && healthy;
      healthy = checkKafka(run, kafka, check) && healthy;
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
 * One line per broker the test fetch's answer named (`kafka` its kafka://
 * locations, as the proxy rewrote them): in forward mode, its listener and
 * the ApiVersions round trip through its SSH forward; else the mode.
 */
function checkKafka(run: Run, kafka: string[], check: (entry: DoctorCheck) => boolean): boolean {
  if (kafka.length === 0) return true;
  const mode = run.options.kafka ?? "forward";
  if (!run.kafka) {
    return check({
      name: "kafka",
      ok: true,
      detail: `${mode} mode: endpoints at ${kafka.join(", ")}` +
        (mode === "flight" ? ", read through the Arrakis server" : ", passed to clients unchanged"),
    });
  }
  let ok = true;
  for (const broker of run.kafka.brokers) {
    ok = check({
      name: `kafka broker ${broker.remote}`,
      ok: true,
      detail: `→ ${broker.local} (SSH forward ${broker.forward}), ApiVersions answered ` +
        `(${broker.apis} APIs)`,
      ms: broker.probeMs,
    }) && ok;
  }
  for (const { remote, error } of run.kafka.refused) {
    ok = check({
      name: `kafka broker ${remote}`,
      ok: false,
      detail: `no ApiVersions answer through its SSH forward (${error}): a run reads its ` +
        `endpoints through the Arrakis server`,
    }) && ok;
  }
  return ok;
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
