/**
 * One OpenSSH master connection to the login host, with local port forwards
 * and remote commands multiplexed over it.
 *
 * The master runs in the foreground until authentication is done (so
 * password, OTP and passphrase prompts reach the user's terminal), then
 * backgrounds itself (`-f`). One long-lived session channel (`cat` reading
 * our pipe) is kept open through it, because:
 *
 * - sshd enables TCP_NODELAY only once a session channel has been opened;
 *   without one every small gRPC reply stalls ~40 ms (Nagle + delayed ACK);
 * - with a short `ControlPersist` the master exits soon after its last
 *   session closes, so if this process dies (even by SIGKILL) the pipe
 *   closes, `cat` ends, and the master does not outlive us.
 *
 * @example Usage
 * ```ts
 * import { SshConnection } from "./connection.ts";
 * await using conn = await SshConnection.connect({ host: "ldas-grid" });
 * const local = await conn.forward("info", 31206);
 * console.log(`127.0.0.1:${local.port} → info:31206`);
 * ```
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { stopChild } from "../process.ts";
import { formatNetloc } from "../netloc.ts";
import { lastLine, runSsh, spawnSsh, type SshResult, type SshRunner } from "./command.ts";
import { forwardSpec, muxArgs, unixForwardSpec } from "./args.ts";
import { type MasterLogin, startLogin } from "./login.ts";
import { isAddressFree, reserveFreePort } from "../net/free_port.ts";
import { readSessionEnv, sessionEnvCommand } from "./session_env.ts";
import { assertSshDestination, checkForwardTarget } from "./validate.ts";

export type { SshResult } from "./command.ts";
export type { MasterLogin } from "./login.ts";

/** Options for {@link SshConnection.connect}. */
export interface ConnectOptions {
  /** ssh destination: a host, `user@host` or an alias from ssh_config. */
  host: string;
  /** ssh_config file passed as `-F`. */
  sshConfig?: string;
  /** Extra ssh options, each passed as `-o OPTION`. */
  sshOptions?: string[];
  /** ssh executable. @default {"ssh"} */
  sshBinary?: string;
  /** Progress and warnings; each ssh command line is a debug line. */
  logger?: Logger;
  /**
   * Let ssh talk to the user's terminal (prompts, host-key questions, its
   * messages on stderr). When false, ssh runs with `BatchMode=yes` unless
   * `sshOptions` says otherwise. @default {true}
   */
  interactive?: boolean;
  /**
   * Seconds the master lingers after its last session closes; this bounds
   * how long it can outlive a killed owner. @default {30}
   */
  controlPersistSeconds?: number;
  /**
   * `ServerAliveInterval` unless `sshOptions` sets one. With
   * {@link serverAliveCountMax} it bounds how long a silently vanished peer
   * (laptop sleep, network change) goes unnoticed: interval × (count + 1).
   * @default {1}
   */
  serverAliveIntervalSeconds?: number;
  /** `ServerAliveCountMax` unless `sshOptions` sets one. @default {3} */
  serverAliveCountMax?: number;
  /** Aborting stops a connect in progress (the foreground ssh is killed). */
  signal?: AbortSignal;
  /** Extra environment for every ssh process (for example `SSH_ASKPASS`). */
  env?: Record<string, string>;
  /**
   * Remote environment variables for the keepalive session to report as it starts
   * (see {@link SshConnection.sessionEnv}): the session every connection opens
   * anyway, so reading them costs no second remote shell.
   */
  sessionEnv?: string[];
  /**
   * Control socket of a master that another process started and authenticated
   * (`arrakis-proxy -f` prompts in the foreground, then a background process
   * takes over): use it instead of starting one. Its directory becomes this
   * connection's and is removed on {@link SshConnection.close}.
   */
  adopt?: string;
  /**
   * Where forwards listen. Anything but loopback lets other machines through:
   * only for a proxy that listens there too (`--allow-remote-clients`).
   * @default {"127.0.0.1"}
   */
  bindAddress?: string;
  /**
   * A private (0700) directory: forwards then listen on Unix sockets in it
   * (`-L PATH:host:port`, mode 0600), which no other user can reach, instead of
   * on TCP ports. It outlives the connection (its owner removes it), so a
   * reconnect re-creates each forward at the same path.
   */
  socketDir?: string;
  /**
   * Return once the new master has logged in, and learn its pid (`ssh -O check`)
   * alongside what the caller does next: {@link SshConnection.checked} settles
   * when it is known. Saves one ssh process on the way to the first forward.
   * An adopted master is always checked before connect returns. @default {false}
   */
  checkLater?: boolean;
  /**
   * The master's login, begun before this connect (see `login.ts`): taken over
   * instead of starting one. Its options must be these. Not with {@link adopt}.
   */
  login?: MasterLogin;
}

/** A local end of a forward: a TCP port, or (with {@link ConnectOptions.socketDir}) a Unix socket. */
export type LocalAddress =
  | {
    /** {@link ConnectOptions.bindAddress}: `"127.0.0.1"` unless remote clients are allowed. */
    host: string;
    /** Local TCP port. */
    port: number;
    path?: undefined;
  }
  | {
    /** The Unix socket. */
    path: string;
    host?: undefined;
    port?: undefined;
  };

/** A local end as the location map names it: `host:port`, or the socket's path. */
export function localName(local: LocalAddress): string {
  return local.path ?? formatNetloc(local.host, local.port);
}

/** Lifecycle of a {@link SshConnection}. */
export type ConnectionState = "open" | "closing" | "closed" | "lost";

/** How a connection ended, as reported by {@link SshConnection.closed}. */
export interface ConnectionEnd {
  /** True when the master went away without {@link SshConnection.close}. */
  lost: boolean;
  /** One line saying why. */
  reason: string;
}

/** Options for {@link SshConnection.exec}. */
export interface ExecOptions {
  /**
   * Run through the remote user's login shell (`exec "$SHELL" -lc '…'`), so
   * variables exported by their profile are visible. @default {false}
   */
  login?: boolean;
}

const FORWARD_ATTEMPTS = 5;
// Words that mean the same to every remote shell.
const SAFE_REMOTE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Forwards waiting to go to ssh together. */
type ForwardBatch = { spec: string; done: PromiseWithResolvers<boolean> }[];

/** An OpenSSH master connection; see the module documentation. */
export class SshConnection implements AsyncDisposable {
  /** The ssh destination as given. */
  readonly host: string;
  /** Unix socket of the master (`-S`), inside a private temp directory. */
  readonly controlPath: string;
  /** Resolves once, when the connection is closed or lost. */
  readonly closed: Promise<ConnectionEnd>;

  #state: ConnectionState = "open";
  #runner: SshRunner;
  #options: ConnectOptions;
  #dir: string;
  #masterPid: number | undefined;
  #checked: Promise<void> = Promise.resolve();
  #keepalive: Deno.ChildProcess | undefined;
  #keepaliveInput: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #keepaliveDone: Promise<unknown> = Promise.resolve();
  #sessionEnv: Promise<Map<string, string> | undefined> = Promise.resolve(undefined);
  #batch: ForwardBatch | undefined;
  /** Ports handed out but not yet bound, so concurrent forwards never pick the same one. */
  #reserved = new Set<number>();
  #bind: string;
  #forwards = new Map<string, Promise<LocalAddress>>();
  #closing: Promise<void> | undefined;
  #resolveClosed!: (end: ConnectionEnd) => void;

  private constructor(options: ConnectOptions, dir: string) {
    this.host = options.host;
    this.#options = options;
    this.#dir = dir;
    this.#bind = options.bindAddress ?? "127.0.0.1";
    this.controlPath = options.adopt ?? `${dir}/ctl`;
    this.#runner = {
      binary: options.sshBinary ?? "ssh",
      env: options.env,
      logger: options.logger ?? silentLogger,
    };
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Starts the master connection and its keepalive session.
   *
   * @throws {UserError} for an unsafe host, a missing ssh, or when ssh
   * cannot connect (`ssh to HOST failed (exit 255): <ssh's last line>`).
   */
  static async connect(options: ConnectOptions): Promise<SshConnection> {
    const { adopt } = options;
    if (adopt !== undefined) assertSshDestination(options.host);
    options.signal?.throwIfAborted();
    // Ours (begun by the caller, or here), unless another process's master is adopted.
    const login = adopt === undefined ? options.login ?? await startLogin(options) : undefined;
    login?.take();
    const conn = new SshConnection(options, login?.dir ?? adopt!.slice(0, adopt!.lastIndexOf("/")));
    try {
      await login?.done;
      conn.#checked = conn.#checkMaster();
      if (adopt !== undefined || !options.checkLater) await conn.#checked;
      else conn.#checked.catch(() => {/* the caller awaits checked */});
      options.signal?.throwIfAborted();
      conn.#startKeepalive();
    } catch (error) {
      await conn.close();
      throw error;
    }
    return conn;
  }

  /** Where the connection is in its lifecycle. */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Settles once the master's pid is known ({@link masterPid}); rejects, as
   * connect would have, when the master did not stay up. At once unless
   * {@link ConnectOptions.checkLater}.
   */
  get checked(): Promise<void> {
    return this.#checked;
  }

  /** Process id of the backgrounded ssh master, once known. */
  get masterPid(): number | undefined {
    return this.#masterPid;
  }

  /**
   * Runs a fixed remote command over the master and collects its output.
   *
   * The remote user's shell interprets the command, so only known-safe
   * words are accepted (letters, digits and `_@%+=:,./-`); never pass data
   * that came from the user or the remote side.
   *
   * @throws {TypeError} when a word is not known-safe (a programming error).
   */
  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<SshResult> {
    this.#assertOpen();
    if (argv.length === 0) throw new TypeError("exec needs a command");
    for (const word of argv) {
      if (!SAFE_REMOTE_WORD.test(word)) {
        throw new TypeError(`refusing remote command word ${JSON.stringify(word)}`);
      }
    }
    // The single quotes are safe because every word matched SAFE_REMOTE_WORD.
    const command = options.login ? [`exec "$SHELL" -lc '${argv.join(" ")}'`] : argv;
    return await runSsh(this.#runner, [
      ...muxArgs(this.controlPath),
      "-T",
      "-n",
      "--",
      this.host,
      ...command,
    ]);
  }

  /**
   * Forwards a free local loopback port to `remoteHost:remotePort` as seen
   * from the login host. Asking again for the same target returns the same
   * forward; concurrent calls are safe. `options.localPort` asks for that
   * local port first (to re-create a forward after a reconnect); another
   * free port is used when it is taken.
   *
   * @throws {UserError} for an invalid target or when ssh refuses the forward.
   */
  forward(
    remoteHost: string,
    remotePort: number,
    options: { localPort?: number; localPath?: string; key?: string } = {},
  ): Promise<LocalAddress> {
    this.#assertOpen();
    const host = checkForwardTarget(remoteHost, remotePort);
    // One forward per key: by default the target, so asking twice opens one.
    const key = options.key ?? formatNetloc(host, remotePort);
    let pending = this.#forwards.get(key);
    if (pending === undefined) {
      const socketDir = this.#options.socketDir;
      pending = socketDir !== undefined
        ? this.#openUnix(host, remotePort, options.localPath ?? newSocketPath(socketDir))
        : options.localPort === undefined
        ? this.#openBatched(host, remotePort)
        : this.#openForward(host, remotePort, options.localPort);
      this.#forwards.set(key, pending);
      pending.catch(() => this.#forwards.delete(key));
    }
    return pending;
  }

  /**
   * Stops the master (`-O exit`), ends the keepalive session and removes the
   * temp directory. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Lets go of the master without stopping it, once another process has adopted
   * it ({@link ConnectOptions.adopt}): ends only this process's keepalive session
   * and leaves the control directory to the adopter.
   */
  release(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = "closed";
      if (this.#keepalive) {
        await stopChild(this.#keepalive, { ask: () => this.#keepaliveInput?.close() });
      }
      await this.#keepaliveDone;
      this.#resolveClosed({ lost: false, reason: `ssh connection to ${this.host} handed over` });
    })();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasLost = this.#state === "lost";
    this.#state = "closing";
    await this.#checked.catch(() => undefined);
    if (this.#masterPid !== undefined) {
      await runSsh(this.#runner, [...muxArgs(this.controlPath), "-O", "exit", "--", this.host])
        .catch(() => undefined);
    }
    if (this.#keepalive) {
      await stopChild(this.#keepalive, { ask: () => this.#keepaliveInput?.close() });
    }
    await this.#keepaliveDone;
    // If -O exit did not work (master wedged), it is our process: stop it.
    if (this.#masterPid !== undefined) await stopChild(this.#masterPid);
    await Deno.remove(this.#dir, { recursive: true }).catch(() => undefined);
    this.#forwards.clear();
    this.#state = "closed";
    if (!wasLost) {
      this.#resolveClosed({ lost: false, reason: `ssh connection to ${this.host} closed` });
    }
  }

  #assertOpen(): void {
    if (this.#state !== "open") {
      throw new UserError(`ssh connection to ${this.host} is ${this.#state}`);
    }
  }

  /** Learns the master's pid through its control socket. */
  async #checkMaster(): Promise<void> {
    const check = await runSsh(this.#runner, [
      ...muxArgs(this.controlPath),
      "-O",
      "check",
      "--",
      this.host,
    ]);
    const pid = /pid=(\d+)/.exec(check.stderr)?.[1];
    if (check.code !== 0 || pid === undefined) {
      throw new UserError(
        `ssh to ${this.host} failed: master connection did not stay up (${
          lastLine(check.stderr) || `exit ${check.code}`
        })`,
      );
    }
    this.#masterPid = Number(pid);
  }

  /**
   * The value of a remote environment variable named in `sessionEnv`, as the
   * keepalive session saw it ("" when unset); undefined when the session could
   * not report it (then ask with {@link exec}).
   */
  sessionEnv(name: string): Promise<string | undefined> {
    return this.#sessionEnv.then((values) => values?.get(name));
  }

  #startKeepalive(): void {
    const names = this.#options.sessionEnv ?? [];
    // One remote shell both opens the session (TCP_NODELAY, see the module docs)
    // and reports the variables.
    const command = sessionEnvCommand(names);
    const child = spawnSsh(this.#runner, [
      ...muxArgs(this.controlPath),
      "-T",
      "--",
      this.host,
      command,
    ], {
      stdin: "piped",
      stdout: names.length > 0 ? "piped" : "null",
      stderr: "null",
      // Its own session: Ctrl-C on our terminal is for us (we close cleanly), not
      // for this ssh, whose end would read as a lost connection. It needs no
      // terminal (the master has authenticated) and ends when our end of its stdin does.
      detached: true,
    });
    if (names.length > 0) this.#sessionEnv = readSessionEnv(child.stdout, names);
    this.#keepalive = child;
    this.#keepaliveInput = child.stdin.getWriter();
    this.#keepaliveDone = child.status.then((status) => {
      if (this.#state !== "open") return;
      this.#state = "lost";
      this.#resolveClosed({
        lost: true,
        reason:
          `ssh connection to ${this.host} was lost (keepalive session ended with exit ${status.code})`,
      });
    });
  }

  /**
   * Forwards asked for in the same turn of the event loop go to ssh as one
   * `-O forward -L … -L …` (discovery asks for every data server at once; one
   * ssh process each cost ~30 ms apiece on a busy machine). If the batch fails
   * (a port was taken meanwhile), each forward is asked for on its own, on the
   * same port first: repeating a forward that exists is a no-op for the master.
   */
  #openBatched(host: string, port: number): Promise<LocalAddress> {
    const localPort = reserveFreePort(this.#reserved, this.#bind);
    const request = Promise.withResolvers<boolean>();
    if (!this.#batch) {
      const batch: ForwardBatch = [];
      this.#batch = batch;
      setTimeout(() => this.#sendBatch(batch), 0);
    }
    this.#batch.push({ spec: forwardSpec(this.#bind, localPort, host, port), done: request });
    return request.promise.then(async (ok) => {
      this.#reserved.delete(localPort);
      if (!ok) return await this.#openForward(host, port, localPort);
      const local: LocalAddress = { host: this.#bind, port: localPort };
      return local;
    });
  }

  /**
   * A forward to a Unix socket at `path`, batched like {@link #openBatched}; on
   * its own when the batch fails (StreamLocalBindUnlink replaces a stale socket).
   */
  #openUnix(host: string, port: number, path: string): Promise<LocalAddress> {
    const spec = unixForwardSpec(path, host, port);
    const request = Promise.withResolvers<boolean>();
    if (!this.#batch) {
      const batch: ForwardBatch = [];
      this.#batch = batch;
      setTimeout(() => this.#sendBatch(batch), 0);
    }
    this.#batch.push({ spec, done: request });
    return request.promise.then(async (ok) => {
      if (!ok) {
        const result = await runSsh(this.#runner, [
          ...muxArgs(this.controlPath),
          "-O",
          "forward",
          "-L",
          spec,
          "--",
          this.host,
        ]);
        if (result.code !== 0) {
          throw new UserError(
            `forward ${path} → ${formatNetloc(host, port)} over ${this.host} failed: ${
              lastLine(result.stderr) || `ssh exit ${result.code}`
            }`,
          );
        }
      }
      return { path };
    });
  }

  async #sendBatch(batch: ForwardBatch): Promise<void> {
    this.#batch = undefined;
    let ok = false;
    try {
      const result = await runSsh(this.#runner, [
        ...muxArgs(this.controlPath),
        "-O",
        "forward",
        ...batch.flatMap(({ spec }) => ["-L", spec]),
        "--",
        this.host,
      ]);
      ok = result.code === 0;
    } catch {
      // Reported by the one-by-one attempts that follow.
    }
    for (const { done } of batch) done.resolve(ok);
  }

  async #openForward(
    host: string,
    port: number,
    preferred?: number,
  ): Promise<LocalAddress> {
    for (let attempt = 1;; attempt++) {
      const localPort = attempt === 1 && preferred !== undefined && !this.#reserved.has(preferred)
        ? (this.#reserved.add(preferred), preferred)
        : reserveFreePort(this.#reserved, this.#bind);
      try {
        const result = await runSsh(this.#runner, [
          ...muxArgs(this.controlPath),
          "-O",
          "forward",
          "-L",
          forwardSpec(this.#bind, localPort, host, port),
          "--",
          this.host,
        ]);
        if (result.code === 0) {
          const local: LocalAddress = { host: this.#bind, port: localPort };
          return local;
        }
        // Someone took the port between our probe and ssh's bind: try another.
        const taken = !isAddressFree(this.#bind, localPort);
        if (!taken || attempt >= FORWARD_ATTEMPTS || this.#state !== "open") {
          throw new UserError(
            `forward ${formatNetloc(this.#bind, localPort)} → ${
              formatNetloc(host, port)
            } over ${this.host} failed: ${lastLine(result.stderr) || `ssh exit ${result.code}`}`,
          );
        }
      } finally {
        this.#reserved.delete(localPort);
      }
    }
  }
}

/** A fresh socket name in `dir`: short (sun_path holds ~104 bytes) and without ":". */
function newSocketPath(dir: string): string {
  return `${dir}/f-${crypto.randomUUID().slice(0, 8)}`;
}
