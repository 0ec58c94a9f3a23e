/**
 * The `arrakis-proxy` command line: parse arguments, run a proxy, print the
 * export line, optionally run a command with it, and tear down on exit.
 *
 * Arguments are parsed with `node:util`'s parseArgs (the JSR registry that serves
 * `@std/cli` cannot be reached from the machines we build on).
 *
 * @module
 */
import { parseCommandLine } from "./command_line.ts";
import { parseServerUrl } from "./netloc.ts";
import { type KafkaMode, parseKafkaMode } from "./flight/kafka_locations.ts";
import denoJson from "../deno.json" with { type: "json" };
import { sshProxy } from "./ssh_proxy.ts";
import { stderrLogger, type Verbosity } from "./log.ts";
import { UsageError, UserError } from "./errors.ts";
import { chooseShell, type ShellSyntax } from "./background/shell.ts";
import { DAEMON_FLAG } from "./background/daemon.ts";
import { sendSignal } from "./process.ts";
import { signalWaiter } from "./signals.ts";
import { tokenFileProblem } from "./token/find.ts";
import type { TokenOptions } from "./proxy_process/token.ts";

/** The program's version, from deno.json. */
export const VERSION: string = denoJson.version;

/** The options {@link parseCli} accepts (the help text must list each). */
export const OPTIONS = {
  server: { type: "string", short: "s" },
  listen: { type: "string", short: "l" },
  "ssh-config": { type: "string", short: "F" },
  "ssh-option": { type: "string", short: "o", multiple: true },
  "allow-remote-clients": { type: "boolean" },
  "reuse-through-proxy": { type: "boolean" },
  kafka: { type: "string" },
  "split-streams": { type: "string" },
  "token-file": { type: "string" },
  "token-audience": { type: "string" },
  "no-token": { type: "boolean" },
  // Background proxies (lib/background/).
  background: { type: "boolean", short: "f" },
  sh: { type: "boolean" },
  csh: { type: "boolean", short: "c" },
  fish: { type: "boolean" },
  "give-up-after": { type: "string" },
  verbose: { type: "boolean", short: "v" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** Help text; lists every option. */
export const HELP = `Usage: arrakis-proxy [options] SSH_HOST [-- COMMAND [ARGS...]]
       arrakis-proxy -f [options] SSH_HOST
       arrakis-proxy status [--json]
       arrakis-proxy stop [SSH_HOST | --all]
       arrakis-proxy doctor [options] SSH_HOST

Reach an Arrakis (Arrow Flight) server behind an SSH login host. Opens one
OpenSSH connection, forwards the remote server and every data server it hands
out, and serves a local Flight proxy that points clients at those forwards.
When ready, prints \`export ARRAKIS_SERVER=grpc://HOST:PORT\` on stdout; with a
COMMAND, runs it with ARRAKIS_SERVER set and exits with its status.

Options:
  -s, --server URL          remote Arrakis server (default: remote $ARRAKIS_SERVER)
  -l, --listen HOST:PORT    local proxy address (default localhost:31206, or a
                            free port when that one is taken)
  -F, --ssh-config FILE     passed to ssh as -F
  -o, --ssh-option OPTION   passed to ssh as -o (repeatable)
      --allow-remote-clients
                            allow a non-loopback --listen address (no authentication!)
      --reuse-through-proxy data the info server serves itself flows through the proxy
                            (default: a forward straight to it, off the proxy)
      --kafka MODE          data the server hands out at kafka:// brokers: forward
                            (default: each broker over SSH to a local Kafka listener),
                            flight (through the Arrakis server), direct (unchanged)
      --split-streams K     fetches of past data: split each server's stream into K
                            over its channels, K SSH channels at once (faster from
                            ~30 ms round trips; K times the server's requests)
      --token-file FILE     protected servers: read the token only from FILE
                            (default: where the arrakis client looks, for the
                            remote server's audience)
      --token-audience AUD  the token's audience (default https://<server host>)
      --no-token            never add a token to calls that carry none
  -f, --background          prompt here, then run in the background and print lines
                            for eval: eval "$(arrakis-proxy -f SSH_HOST)"; a proxy
                            already running for SSH_HOST is found, not started again
                            (and logged in again here if it is reconnecting)
      --sh                  -f: print sh syntax (default: from $SHELL, as ssh-agent does)
  -c, --csh                 -f: print csh syntax
      --fish                -f: print fish syntax
      --give-up-after SECONDS
                            -f: exit when SSH stays down this long (default 300)
  -v, --verbose             show ssh command lines and each forwarded call
  -q, --quiet               print only the export line and errors
  -h, --help                show this help
  -V, --version             show the version

Commands:
  status [--json]           list the background proxies (host, URL, server,
                            forwards, up since, reconnects, last error, log)
  stop [SSH_HOST | --all]   stop background proxies; nothing is left behind;
                            eval "$(arrakis-proxy stop)" also unsets the variables
  doctor SSH_HOST           check every step (ssh, server, each endpoint, a data
                            fetch) and print a report to paste into a help request;
                            see \`arrakis-proxy doctor --help\`

Examples:
  eval "$(arrakis-proxy -f login.example.org)"
  arrakis-proxy login.example.org            # then paste the export line in another shell
  arrakis-proxy login.example.org -- python analysis.py
  arrakis-proxy -s grpc://arrakis.cluster:31206 login.example.org
  arrakis-proxy doctor login.example.org
`;

/** The options {@link parseDoctorCli} accepts (its help text must list each). */
export const DOCTOR_OPTIONS = {
  server: { type: "string", short: "s" },
  "ssh-config": { type: "string", short: "F" },
  "ssh-option": { type: "string", short: "o", multiple: true },
  kafka: { type: "string" },
  channel: { type: "string", short: "c", multiple: true },
  "token-file": { type: "string" },
  "token-audience": { type: "string" },
  "no-token": { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

/** Help text of `arrakis-proxy doctor`. */
export const DOCTOR_HELP = `Usage: arrakis-proxy doctor [options] SSH_HOST

Checks each step of a proxy run and prints a report on stdout: ssh connect
time, the remote Arrakis server, every endpoint with its forward and a
ListActions round trip, and a small data fetch through a temporary proxy
(rows, channels, time span). Exits 0 when everything works, 1 otherwise.
Paste the report into a help request.

Options:
  -s, --server URL          remote Arrakis server (default: remote $ARRAKIS_SERVER)
  -F, --ssh-config FILE     passed to ssh as -F
  -o, --ssh-option OPTION   passed to ssh as -o (repeatable)
      --kafka MODE          the run's Kafka mode: forward (default; each broker the
                            test fetch names is checked through its forward), flight, direct
  -c, --channel NAME        channel for the test fetch (repeatable; default: from a Find)
      --token-file FILE     protected servers: read the token only from FILE
                            (default: where the arrakis client looks, for the
                            remote server's audience)
      --token-audience AUD  the token's audience (default https://<server host>)
      --no-token            never add a token to calls that carry none
  -v, --verbose             show ssh command lines
  -h, --help                show this help
`;

/** Parsed `doctor` command line. */
export interface DoctorArgs extends TokenOptions {
  sshHost: string;
  server?: string;
  sshConfig?: string;
  sshOptions: string[];
  kafka?: KafkaMode;
  channels: string[];
  verbose: boolean;
}

/** Parses the arguments after `doctor`. */
export function parseDoctorCli(args: string[]): DoctorArgs | "help" {
  const { values, positionals } = parseCommandLine(
    { args, options: DOCTOR_OPTIONS, allowPositionals: true },
    "doctor --help",
  );
  if (values.help) return "help";
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? "doctor: missing SSH_HOST" : "doctor takes one SSH_HOST",
    );
  }
  return {
    sshHost: positionals[0],
    server: checkedServer(values.server),
    sshConfig: values["ssh-config"],
    sshOptions: values["ssh-option"] ?? [],
    ...(values.kafka !== undefined && { kafka: parseKafkaMode(values.kafka) }),
    channels: values.channel ?? [],
    verbose: values.verbose ?? false,
    ...parseTokenOptions(values),
  };
}

/**
 * `--token-file`, `--token-audience`, `--no-token`, checked before anything
 * connects: a file that cannot be used is one line, as ssh says of a key.
 */
function parseTokenOptions(
  values: { "token-file"?: string; "token-audience"?: string; "no-token"?: boolean },
): TokenOptions {
  const file = values["token-file"];
  const audience = values["token-audience"];
  if (values["no-token"] && (file !== undefined || audience !== undefined)) {
    throw new UsageError("--no-token conflicts with --token-file and --token-audience");
  }
  if (audience !== undefined && !/^[\x21-\x7e]+$/.test(audience)) {
    throw new UsageError(`invalid --token-audience ${JSON.stringify(audience)}`);
  }
  let tokenFile: string | undefined;
  if (file !== undefined) {
    // Absolute: a background proxy runs elsewhere (its cwd is /).
    tokenFile = file.startsWith("/") ? file : `${Deno.cwd()}/${file}`;
    const problem = tokenFileProblem(tokenFile);
    if (problem) throw new UserError(`--token-file ${file}: ${problem}`);
  }
  return {
    ...(tokenFile !== undefined && { tokenFile }),
    ...(audience !== undefined && { tokenAudience: audience }),
    ...(values["no-token"] && { noToken: true }),
  };
}

/** `arrakis-proxy doctor …`: prints the report; 0 when healthy, 1 otherwise. */
async function doctorMain(args: string[]): Promise<number> {
  let cli;
  try {
    cli = parseDoctorCli(args);
  } catch (error) {
    return reportError(error);
  }
  if (cli === "help") {
    console.log(DOCTOR_HELP);
    return 0;
  }
  const logger = stderrLogger(cli.verbose ? "verbose" : "normal");
  try {
    // Loaded here: only doctor needs its report code.
    const { doctor } = await import("./doctor.ts");
    const report = await doctor(cli.sshHost, {
      server: cli.server,
      sshConfig: cli.sshConfig,
      sshOptions: cli.sshOptions,
      kafka: cli.kafka,
      channels: cli.channels,
      tokenFile: cli.tokenFile,
      tokenAudience: cli.tokenAudience,
      noToken: cli.noToken,
      logger,
      version: VERSION,
    }, (line) => console.log(line));
    return report.healthy ? 0 : 1;
  } catch (error) {
    logger.progress("");
    return reportError(error, cli.verbose);
  }
}

/** Parsed command line. */
export interface CliArgs extends TokenOptions {
  sshHost: string;
  command: string[];
  server?: string;
  listen?: string;
  sshConfig?: string;
  sshOptions: string[];
  allowRemoteClients: boolean;
  reuseThroughProxy: boolean;
  /** `--kafka`; left out, the default (`forward`). */
  kafka?: KafkaMode;
  /** `--split-streams K`; left out, streams are not split. */
  splitStreams?: number;
  verbosity: Verbosity;
  /** `-f`: run in the background (see lib/background/). */
  background?: { shell: ShellSyntax; giveUpAfterSeconds?: number };
}

/** Parses the command line; `help`/`version` requests come back as such. */
export function parseCli(args: string[]): CliArgs | "help" | "version" {
  const { values, tokens } = parseCommandLine(
    { args, options: OPTIONS, allowPositionals: true, tokens: true },
    "--help",
  );
  if (values.help) return "help";
  if (values.version) return "version";
  const terminator = tokens.find((t) => t.kind === "option-terminator")?.index ?? args.length;
  const positionals = tokens.filter((t) => t.kind === "positional" && t.index < terminator)
    .map((t) => (t as { value: string }).value);
  const command = args.slice(terminator + 1);
  if (positionals.length === 0) throw new UsageError("missing SSH_HOST; see --help");
  // parseArgs only lets a lone "-" through as a positional; ssh must never see it.
  if (positionals[0].startsWith("-")) {
    throw new UsageError(`invalid SSH_HOST ${JSON.stringify(positionals[0])}: it starts with "-"`);
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(positionals[1])}; put a command after --`,
    );
  }
  if (terminator < args.length && command.length === 0) {
    throw new UsageError("missing COMMAND after --");
  }
  if (values.verbose && values.quiet) throw new UsageError("--verbose and --quiet conflict");
  const background = parseBackground(values, command);
  return {
    sshHost: positionals[0],
    command,
    server: checkedServer(values.server),
    listen: values.listen,
    sshConfig: values["ssh-config"],
    sshOptions: values["ssh-option"] ?? [],
    allowRemoteClients: values["allow-remote-clients"] ?? false,
    reuseThroughProxy: values["reuse-through-proxy"] ?? false,
    ...(values.kafka !== undefined && { kafka: parseKafkaMode(values.kafka) }),
    ...(values["split-streams"] !== undefined &&
      { splitStreams: parseSplitStreams(values["split-streams"]) }),
    verbosity: values.verbose ? "verbose" : values.quiet ? "quiet" : "normal",
    ...parseTokenOptions(values),
    ...(background && { background }),
  };
}

/** Most parts a stream is split in: one TCP connection and one client thread each. */
const MAX_SPLIT_STREAMS = 16;

/** `--split-streams K`: a whole number from 2 to {@link MAX_SPLIT_STREAMS}. */
function parseSplitStreams(value: string): number {
  const parts = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(parts >= 2 && parts <= MAX_SPLIT_STREAMS)) {
    throw new UsageError(
      `invalid --split-streams ${
        JSON.stringify(value)
      }: expected a count from 2 to ${MAX_SPLIT_STREAMS}`,
    );
  }
  return parts;
}

/** `--server` as given, once it parses: a bad URL is bad usage, found before connecting. */
function checkedServer(server: string | undefined): string | undefined {
  if (server === undefined) return undefined;
  try {
    parseServerUrl(server, "--server");
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return server;
}

/** The `-f` options, checked. */
function parseBackground(
  values: { background?: boolean; sh?: boolean; csh?: boolean; fish?: boolean } & {
    "give-up-after"?: string;
  },
  command: string[],
): CliArgs["background"] {
  const giveUp = values["give-up-after"];
  if (!values.background) {
    if (values.sh || values.csh || values.fish || giveUp !== undefined) {
      throw new UsageError("--sh, --csh, --fish and --give-up-after go with -f (--background)");
    }
    return undefined;
  }
  if (command.length > 0) throw new UsageError("-f and a COMMAND conflict");
  if (giveUp !== undefined && !(/^\d+$/.test(giveUp) && Number(giveUp) > 0)) {
    throw new UsageError(`invalid --give-up-after ${JSON.stringify(giveUp)}: expected seconds`);
  }
  return {
    shell: chooseShell(values),
    giveUpAfterSeconds: giveUp === undefined ? undefined : Number(giveUp),
  };
}

/** Runs the command line; resolves to the process exit status. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "doctor") return await doctorMain(args.slice(1));
  // The background proxies' modules are loaded only for them: a run's ssh login starts sooner.
  if (args[0] === DAEMON_FLAG) {
    const { runDaemon } = await import("./background/daemon.ts");
    return await runDaemon(args[1]);
  }
  if (args[0] === "status" || args[0] === "stop") {
    const { statusMain, stopMain } = await import("./background/cli.ts");
    const run = args[0] === "status" ? statusMain : stopMain;
    return await run(args.slice(1), stderrLogger()).catch((error) => reportError(error));
  }
  let cli;
  try {
    cli = parseCli(args);
  } catch (error) {
    return reportError(error);
  }
  if (cli === "help") {
    console.log(HELP);
    return 0;
  }
  if (cli === "version") {
    console.log(`arrakis-proxy ${VERSION}`);
    return 0;
  }
  const logger = stderrLogger(cli.verbosity);
  using signals = signalWaiter();
  try {
    if (cli.background) {
      const { backgroundMain } = await import("./background/cli.ts");
      return await backgroundMain(cli.sshHost, {
        ...cli,
        ...cli.background,
        logger,
        signal: signals.signal,
      });
    }
    await using proxy = await sshProxy(cli.sshHost, {
      server: cli.server,
      listen: cli.listen,
      allowRemoteClients: cli.allowRemoteClients,
      reuseThroughProxy: cli.reuseThroughProxy,
      kafka: cli.kafka,
      splitStreams: cli.splitStreams,
      sshConfig: cli.sshConfig,
      sshOptions: cli.sshOptions,
      tokenFile: cli.tokenFile,
      tokenAudience: cli.tokenAudience,
      noToken: cli.noToken,
      logger,
      signal: signals.signal,
    });
    signals.signal.throwIfAborted();
    if (cli.command.length === 0) {
      console.log(`export ARRAKIS_SERVER=${proxy.url}`);
      logger.info("ready; press Ctrl-C to stop");
      // A lost SSH connection does not end the run: the proxy reconnects by itself.
      const signal = await signals.received;
      logger.info(`${signal}: shutting down`);
      return 0;
    }
    logger.info(`ARRAKIS_SERVER=${proxy.url}; running ${cli.command[0]}`);
    return await runCommand(cli.command, proxy.url);
  } catch (error) {
    logger.progress("");
    return reportError(error, cli.verbosity === "verbose");
  }
}

/** Runs the user's command with ARRAKIS_SERVER set; its exit status becomes ours. */
async function runCommand(command: string[], url: string): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command[0], {
      args: command.slice(1),
      env: { ARRAKIS_SERVER: url },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(`command not found: ${command[0]}`, { exitCode: 127 });
    }
    throw new UserError(`cannot run ${command[0]}: ${(error as Error).message}`, {
      exitCode: 126,
    });
  }
  // The terminal's Ctrl-C reaches the child too; a SIGTERM sent to us alone is passed on.
  const forward = () => sendSignal(child, "SIGTERM");
  Deno.addSignalListener("SIGTERM", forward);
  try {
    const status = await child.status;
    return status.signal ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGTERM", forward);
  }
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 1;
}

/**
 * Prints `error` as one line and returns the exit status. A {@link UserError}
 * is its message; anything else is a bug: one line saying so (its stack with
 * `-v`), exit 1 as for any runtime failure.
 */
function reportError(error: unknown, verbose = false): number {
  if (error instanceof UserError) {
    console.error(`arrakis-proxy: ${error.message}`);
    return error.exitCode;
  }
  const message = (error instanceof Error ? error.message : String(error)).split("\n")[0];
  if (verbose) {
    console.error(`arrakis-proxy: internal error (please report it): ${message}`);
    console.error(error instanceof Error && error.stack ? error.stack : String(error));
  } else {
    console.error(
      `arrakis-proxy: internal error (please report it): ${message}; run with -v for details`,
    );
  }
  return 1;
}
