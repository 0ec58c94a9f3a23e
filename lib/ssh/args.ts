/**
 * The ssh command lines of a connection, as pure functions of its options: the
 * master's, a multiplexing client's, a `-L` spec, and the user's own `-F`/`-o`
 * (which doctor shows in its report exactly as the master gets them).
 *
 * @example
 * ```ts
 * import { masterArgs, muxArgs } from "./args.ts";
 *
 * masterArgs({ host: "login", controlPath: "/tmp/arrakis-x/ctl", sshOptions: ["User=alice"] });
 * // ["-M", "-S", "/tmp/arrakis-x/ctl", "-o", "ControlPersist=30", …, "-o", "User=alice", …, "--", "login"]
 * muxArgs("/tmp/arrakis-x/ctl"); // ["-F", "none", "-S", "/tmp/arrakis-x/ctl", …]
 * ```
 *
 * @module
 */
import { formatNetloc } from "../netloc.ts";

/** What the user says about ssh: their config file and options. */
export interface UserSshOptions {
  /** ssh_config file passed as `-F`. */
  sshConfig?: string;
  /** Extra ssh options, each passed as `-o OPTION`. */
  sshOptions?: readonly string[];
}

/** Options of {@link masterArgs}. */
export interface MasterArgsOptions extends UserSshOptions {
  /** ssh destination. */
  host: string;
  /** The master's control socket. */
  controlPath: string;
  /** `ControlPersist` seconds. @default {30} */
  controlPersistSeconds?: number;
  /** `ServerAliveInterval` unless `sshOptions` sets one. @default {1} */
  serverAliveIntervalSeconds?: number;
  /** `ServerAliveCountMax` unless `sshOptions` sets one. @default {3} */
  serverAliveCountMax?: number;
  /** When false, `BatchMode=yes` unless `sshOptions` says otherwise. @default {true} */
  interactive?: boolean;
}

const DEFAULT_CONTROL_PERSIST_SECONDS = 30;
// ssh gives up after interval × (count + 1) s without a packet from the server: 4 s.
const DEFAULT_SERVER_ALIVE_SECONDS = 1;
const DEFAULT_SERVER_ALIVE_COUNT = 3;

/** The user's `-F FILE` and `-o OPTION` arguments, in that order. */
export function userSshArgs({ sshConfig, sshOptions = [] }: UserSshOptions): string[] {
  return [
    ...(sshConfig !== undefined ? ["-F", sshConfig] : []),
    ...sshOptions.flatMap((option) => ["-o", option]),
  ];
}

/** The master's arguments: authenticate in the foreground, then background (`-f -N`). */
export function masterArgs(options: MasterArgsOptions): string[] {
  const persist = options.controlPersistSeconds ?? DEFAULT_CONTROL_PERSIST_SECONDS;
  const alive = options.serverAliveIntervalSeconds ?? DEFAULT_SERVER_ALIVE_SECONDS;
  const count = options.serverAliveCountMax ?? DEFAULT_SERVER_ALIVE_COUNT;
  // ssh keeps the first value it sees for an option, command line before
  // config files: ours that must hold go first, the user's -o next, and
  // defaults the user may override last.
  return [
    "-M",
    "-S",
    options.controlPath,
    "-o",
    `ControlPersist=${persist}`,
    // Forwards from the user's ssh_config belong to their own sessions.
    "-o",
    "ClearAllForwardings=yes",
    // Unix-socket forwards are re-created at the same path after a reconnect.
    "-o",
    "StreamLocalBindUnlink=yes",
    ...userSshArgs(options),
    "-o",
    `ServerAliveInterval=${alive}`,
    "-o",
    `ServerAliveCountMax=${count}`,
    ...(options.interactive === false ? ["-o", "BatchMode=yes"] : []),
    "-f",
    "-N",
    "--",
    options.host,
  ];
}

/** Arguments for a client of the master that can never fall back to a fresh connection. */
export function muxArgs(controlPath: string): string[] {
  return [
    // Our own config is irrelevant to a mux client; the user's might run commands.
    "-F",
    "none",
    "-S",
    controlPath,
    "-o",
    "ControlMaster=no",
    "-o",
    "BatchMode=yes",
    // If the master is gone ssh would open a new connection; make that fail at once.
    "-o",
    "ProxyCommand=false",
    "-o",
    "LogLevel=ERROR",
  ];
}

/** `-L` argument: the local end on `bind` (loopback unless remote clients are allowed); IPv6 bracketed. */
export function forwardSpec(bind: string, localPort: number, host: string, port: number): string {
  return `${formatNetloc(bind, localPort)}:${formatNetloc(host, port)}`;
}

/**
 * `-L` argument for a forward whose local end is the Unix socket `path` (which
 * must not contain ":", the spec's separator); ssh creates it mode 0600.
 */
export function unixForwardSpec(path: string, host: string, port: number): string {
  if (path.includes(":")) throw new TypeError(`a forward's socket path cannot hold ":": ${path}`);
  return `${path}:${formatNetloc(host, port)}`;
}
