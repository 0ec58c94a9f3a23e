/**
 * Keeps an SSH master connection up: when the one in use is lost (network
 * change, laptop sleep, sshd restart), connects again with backoff (1 s
 * doubling to 30 s) and re-creates every forward, on the same local ports
 * where it can, so addresses already handed out keep working.
 *
 * {@link SshConnection} knows one master; this module knows the succession
 * of them.
 *
 * @example Usage
 * ```ts
 * import { SshSupervisor } from "./supervisor.ts";
 * await using ssh = await SshSupervisor.start({
 *   host: "ldas-grid",
 *   onDown: (reason) => console.error(reason),
 *   onUp: (moved) => console.error(`back; ${moved.length} forward(s) moved`),
 * });
 * const local = await ssh.forward("info", 31206);
 * ```
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { Backoff } from "../backoff.ts";
import { delay } from "../async.ts";
import { type Logger, silentLogger } from "../log.ts";
import { type ConnectOptions, type LocalAddress, SshConnection } from "./connection.ts";
import type { SshResult } from "./command.ts";
import { formatNetloc } from "../netloc.ts";

/** Options for {@link SshSupervisor.start}. */
export interface SupervisorOptions extends Omit<ConnectOptions, "signal"> {
  /** First wait before reconnecting, doubled after each failure. @default {1000} */
  initialBackoffMs?: number;
  /** Longest wait between attempts. @default {30000} */
  maxBackoffMs?: number;
  /** Called once when the connection is lost, with a line for clients. */
  onDown?: (reason: string) => void;
  /**
   * Called when a new connection carries every forward again; `moved` lists
   * the forwards that could not get their old local port back.
   */
  onUp?: (moved: readonly MovedForward[]) => void;
  /** Whether ssh may prompt on reconnect. @default {Deno.stdin.isTerminal()} */
  hasTerminal?: () => boolean;
}

/** A forward re-created on another local port after a reconnect. */
export interface MovedForward {
  /** Remote host as first asked for. */
  host: string;
  /** Remote port. */
  port: number;
  /** The key it was asked for with, when not the target (see {@link SshSupervisor.forward}). */
  key?: string;
  /** The new local end. */
  local: LocalAddress;
}

/** Where a {@link SshSupervisor} is. */
export type SupervisorState = "up" | "reconnecting" | "closed";

// What ssh says when BatchMode stops it from asking the user something.
const NEEDS_PROMPT =
  /permission denied|passphrase|password|verification failed|keyboard-interactive|\/dev\/tty/i;

/** A self-healing SSH master connection; see the module documentation. */
export class SshSupervisor implements AsyncDisposable {
  /** The ssh destination as given. */
  readonly host: string;

  #options: SupervisorOptions;
  #logger: Logger;
  #connection: SshConnection;
  #state: SupervisorState = "up";
  #targets = new Map<
    string,
    { host: string; port: number; key?: string; local?: LocalAddress }
  >();
  #stop = new AbortController();
  #closing: Promise<void> | undefined;
  #loop: Promise<void> = Promise.resolve();
  #warnedNoTerminal = false;
  #adoptNext: string | undefined;
  #wake: AbortController | undefined;

  private constructor(options: SupervisorOptions, connection: SshConnection) {
    this.host = options.host;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#connection = connection;
    this.#watch(connection);
  }

  /**
   * Makes the first connection (prompting as `interactive` says) and starts
   * watching it.
   *
   * @throws {UserError} as {@link SshConnection.connect} does.
   */
  static async start(options: SupervisorOptions): Promise<SshSupervisor> {
    return new SshSupervisor(options, await SshConnection.connect(options));
  }

  /** `up`, `reconnecting` (calls fail until it is back) or `closed`. */
  get state(): SupervisorState {
    return this.#state;
  }

  /** The master connection in use (a new one after each reconnect). */
  get connection(): SshConnection {
    return this.#connection;
  }

  /** The line clients get while the connection is down. */
  get downReason(): string {
    return `SSH connection to ${this.host} lost, reconnecting`;
  }

  /**
   * Forwards a local port to `remoteHost:remotePort`; the forward is re-created
   * after every reconnect. Asking twice gives the same forward, unless `key`
   * names a second one to the same target.
   *
   * @throws {UserError} while reconnecting, or as {@link SshConnection.forward}.
   */
  async forward(
    remoteHost: string,
    remotePort: number,
    options: { key?: string } = {},
  ): Promise<LocalAddress> {
    this.#assertUp();
    const { key } = options;
    const local = await this.#connection.forward(remoteHost, remotePort, { key });
    this.#targets.set(key ?? formatNetloc(remoteHost, remotePort), {
      host: remoteHost,
      port: remotePort,
      key,
      local,
    });
    return local;
  }

  /** A variable the current master's session read (see {@link SshConnection.sessionEnv}). */
  sessionEnv(name: string): Promise<string | undefined> {
    return this.#connection.sessionEnv(name);
  }

  /** Runs a fixed remote command over the current master (see {@link SshConnection.exec}). */
  exec(argv: readonly string[], options?: { login?: boolean }): Promise<SshResult> {
    this.#assertUp();
    return this.#connection.exec(argv, options);
  }

  /**
   * While reconnecting: try again at once, over the master at `controlPath`
   * that another process authenticated (it can prompt where this one cannot:
   * see `lib/background/`). A master that turns out dead is closed and the
   * retries go on as before.
   *
   * @throws {UserError} when the connection is not down.
   */
  reconnectWith(controlPath: string): void {
    if (this.#state !== "reconnecting") {
      throw new UserError(`ssh connection to ${this.host} is ${this.#state}, not reconnecting`);
    }
    this.#adoptNext = controlPath;
    this.#wake?.abort();
  }

  /**
   * Lets go of the master in use without ending it, for another connection to
   * adopt at the control socket this resolves to (`ConnectOptions.adopt`): a
   * run that starts over keeps its login. Closed from now on.
   */
  async release(): Promise<string> {
    const connection = this.#connection;
    this.#closing ??= (async () => {
      this.#state = "closed";
      this.#stop.abort();
      await this.#loop;
      await connection.release();
    })();
    await this.#closing;
    return connection.controlPath;
  }

  /** Stops reconnecting and closes the current connection. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = "closed";
      this.#stop.abort();
      await this.#loop;
      await this.#connection.close();
    })();
    return this.#closing;
  }

  /** Same as {@link close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertUp(): void {
    if (this.#state === "reconnecting") throw new UserError(this.downReason);
    if (this.#state === "closed") throw new UserError(`ssh connection to ${this.host} is closed`);
  }

  #watch(connection: SshConnection): void {
    connection.closed.then((end) => {
      if (!end.lost || this.#state === "closed" || connection !== this.#connection) return;
      this.#state = "reconnecting";
      this.#logger.warn(`${end.reason}; reconnecting`);
      this.#options.onDown?.(this.downReason);
      this.#loop = this.#reconnect(connection);
    });
  }

  async #reconnect(lost: SshConnection): Promise<void> {
    await lost.close(); // removes its control directory
    const signal = this.#stop.signal;
    const backoff = new Backoff({
      initialMs: this.#options.initialBackoffMs ?? 1000,
      maxMs: this.#options.maxBackoffMs ?? 30_000,
    });
    let wait = backoff.next();
    while (!signal.aborted) {
      if (this.#adoptNext === undefined) {
        this.#wake = new AbortController();
        await delay(wait, AbortSignal.any([signal, this.#wake.signal]));
        if (signal.aborted) return;
      }
      // A master another process just authenticated (reconnectWith), else one of
      // our own: the one adopted at start (ConnectOptions.adopt) is gone.
      const adopt = this.#adoptNext;
      this.#adoptNext = undefined;
      const interactive = adopt === undefined && (this.#options.interactive ?? true) &&
        (this.#options.hasTerminal ?? (() => Deno.stdin.isTerminal()))();
      let next: SshConnection | undefined;
      try {
        next = await SshConnection.connect({
          ...this.#options,
          adopt,
          // The first login was taken by the first connection.
          login: undefined,
          interactive,
          signal,
        });
        const moved = await this.#restoreForwards(next);
        await next.checked;
        if (signal.aborted) {
          await next.close();
          return;
        }
        this.#connection = next;
        this.#state = "up";
        this.#watch(next);
        this.#logger.info(
          `reconnected to ${this.host}; ${this.#targets.size} forward(s) restored`,
        );
        this.#options.onUp?.(moved);
        return;
      } catch (error) {
        await next?.close();
        if (signal.aborted) return;
        const message = error instanceof Error ? error.message : String(error);
        const wanted = this.#options.interactive ?? true;
        if (adopt !== undefined) {
          this.#logger.warn(`taking over the master at ${adopt} failed: ${message}`);
        } else if (
          wanted && !interactive && NEEDS_PROMPT.test(message) && !this.#warnedNoTerminal
        ) {
          this.#warnedNoTerminal = true;
          this.#logger.warn(
            `reconnecting to ${this.host} needs a prompt (password, passphrase or host key) ` +
              `but there is no terminal; still retrying (${message})`,
          );
        }
        wait = backoff.next();
        this.#logger.info(
          `reconnecting to ${this.host} failed: ${message}; next try in ${wait / 1000} s`,
        );
      }
    }
  }

  /** Re-creates every forward on `connection`, on its old local port where possible. */
  async #restoreForwards(connection: SshConnection): Promise<MovedForward[]> {
    const moved: MovedForward[] = [];
    await Promise.all(
      [...this.#targets.values()].map(async (target) => {
        const local = await connection.forward(target.host, target.port, {
          localPort: target.local?.port,
          localPath: target.local?.path,
          key: target.key,
        });
        if (local.port !== target.local?.port || local.path !== target.local?.path) {
          moved.push({ ...target, local });
        }
        target.local = local;
      }),
    );
    return moved;
  }
}
