/**
 * The command line of background proxies: `arrakis-proxy -f SSH_HOST` (eval
 * lines on stdout), `arrakis-proxy status [--json]` and
 * `arrakis-proxy stop [SSH_HOST | --all]`.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { UsageError, UserError } from "../errors.ts";
import { parseCommandLine } from "../command_line.ts";
import { type BackgroundOptions, startBackgroundProxy } from "./starter.ts";
import { listBackgroundProxies, stopBackgroundProxy } from "./running.ts";
import type { ProxyRecord } from "./state.ts";
import { chooseShell, evalLines, type ShellSyntax, unsetLines } from "./shell.ts";

/** The variables `-f` sets and `stop` unsets. */
const PROXY_VARIABLES = ["ARRAKIS_SERVER", "ARRAKIS_PROXY_PID"] as const;

/** The lines `eval` takes: ARRAKIS_SERVER and ARRAKIS_PROXY_PID. */
export function proxyEvalLines(record: ProxyRecord, shell: ShellSyntax, quiet = false): string {
  const [server, pid] = PROXY_VARIABLES;
  return evalLines(
    shell,
    { [server]: record.url, [pid]: String(record.pid) },
    quiet ? undefined : `Proxy pid ${record.pid}`,
  );
}

/** `arrakis-proxy -f …`: starts (or finds) the background proxy and prints its eval lines. */
export async function backgroundMain(
  sshHost: string,
  options: BackgroundOptions & { shell: ShellSyntax; logger: Logger },
): Promise<number> {
  const proxy = await startBackgroundProxy(sshHost, options);
  if (proxy.alreadyRunning) {
    const found = `a background proxy for ${sshHost} is already running (pid ${proxy.pid}, since ` +
      `${proxy.started})`;
    if (proxy.state === "reconnecting") {
      // Its URL is handed out all the same: calls fail UNAVAILABLE until SSH is back.
      options.logger.warn(
        `${found}, but its SSH connection is down and it is reconnecting` +
          `${proxy.lastError ? ` (${proxy.lastError})` : ""}; its log: ${proxy.log}`,
      );
    } else {
      options.logger.info(`${found}; stop it with: arrakis-proxy stop ${sshHost}`);
    }
  } else {
    options.logger.info(`running in the background; log: ${proxy.log}`);
  }
  await writeStdout(proxyEvalLines(proxy, options.shell, options.logger.level === "quiet"));
  return 0;
}

/** Help text of `arrakis-proxy status`. */
export const STATUS_HELP = `Usage: arrakis-proxy status [--json]

One line per background proxy (started with -f): host, local URL, remote
server, forwards, up since, reconnects, last error, log file. Records of
proxies that are gone are removed.

Options:
      --json                one JSON array of the proxies' records
  -h, --help                show this help
`;

/** Help text of `arrakis-proxy stop`. */
export const STOP_HELP = `Usage: arrakis-proxy stop [SSH_HOST | --all]

Stops background proxies as Ctrl-C stops a foreground one: the proxy, its
forwards and the SSH connection close, and its record and log are removed.
Without SSH_HOST: the proxy named by $ARRAKIS_PROXY_PID, else the only one.
When the proxy this shell's $ARRAKIS_PROXY_PID names is stopped, stdout gets
lines that unset ARRAKIS_SERVER and ARRAKIS_PROXY_PID, as \`ssh-agent -k\`
prints them: eval "$(arrakis-proxy stop)".

Options:
      --all                 stop every background proxy
      --sh                  unset lines in sh syntax (default: from $SHELL)
  -c, --csh                 unset lines in csh syntax
      --fish                unset lines in fish syntax
  -h, --help                show this help
`;

/** `arrakis-proxy status [--json]`. */
export async function statusMain(args: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseCommandLine({
    args,
    options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  }, "status --help");
  if (values.help) {
    await writeStdout(STATUS_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`status takes no argument (got ${JSON.stringify(positionals[0])})`);
  }
  const { records, problems } = await listBackgroundProxies();
  for (const problem of problems) logger.warn(problem);
  if (values.json) {
    await writeStdout(JSON.stringify(records, null, 2) + "\n");
  } else if (records.length === 0) {
    if (problems.length === 0) logger.info("no background proxy is running");
  } else {
    await writeStdout(records.map(statusLine).join("\n") + "\n");
  }
  return problems.length > 0 ? 1 : 0;
}

/** One line of `status`. */
export function statusLine(record: ProxyRecord): string {
  return [
    record.host,
    `${record.url} → ${record.server}`,
    `pid ${record.pid}`,
    record.state,
    `forwards ${record.forwards.length}`,
    `up since ${record.started}`,
    `reconnects ${record.reconnects}`,
    `last error ${record.lastError ? JSON.stringify(record.lastError) : "none"}`,
    `log ${record.log}`,
  ].join("  ");
}

/** `arrakis-proxy stop [SSH_HOST | --all]`. */
export async function stopMain(args: string[], logger: Logger): Promise<number> {
  const { values, positionals } = parseCommandLine({
    args,
    options: {
      all: { type: "boolean" },
      sh: { type: "boolean" },
      csh: { type: "boolean", short: "c" },
      fish: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  }, "stop --help");
  if (values.help) {
    await writeStdout(STOP_HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError("stop takes one SSH_HOST");
  if (values.all && positionals.length > 0) {
    throw new UsageError("stop: SSH_HOST and --all conflict");
  }
  const shell = chooseShell(values);
  const ours = Number(Deno.env.get(PROXY_VARIABLES[1]));
  const { records, problems } = await listBackgroundProxies();
  for (const problem of problems) logger.warn(problem);
  let chosen: ProxyRecord[];
  if (values.all) {
    chosen = records;
  } else if (positionals.length === 1) {
    chosen = records.filter((record) => record.host === positionals[0]);
    if (chosen.length === 0) {
      throw new UserError(`no background proxy for ${positionals[0]} is running`);
    }
  } else {
    const named = records.filter((record) => record.pid === ours);
    if (named.length > 0) chosen = named;
    else if (records.length === 1) chosen = records;
    else if (records.length === 0) throw new UserError("no background proxy is running");
    else {
      throw new UsageError(
        `${records.length} background proxies are running; name one: stop SSH_HOST, or --all`,
      );
    }
  }
  for (const record of chosen) {
    await stopBackgroundProxy(record);
    logger.info(`stopped the proxy for ${record.host} (pid ${record.pid}, ${record.url})`);
  }
  // Only the shell whose variables name a stopped proxy loses them.
  if (chosen.some((record) => record.pid === ours)) {
    await writeStdout(unsetLines(shell, [...PROXY_VARIABLES]));
  }
  if (values.all && chosen.length === 0) logger.info("no background proxy is running");
  return problems.length > 0 ? 1 : 0;
}

async function writeStdout(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}
