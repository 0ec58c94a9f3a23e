/**
 * The Flight proxy in a child process of its own, restarted when it dies.
 *
 * Why: Deno 2.9.6's node:http2 can abort the whole process inside nghttp2 when
 * a server sends GOAWAY to a client session (denoland/deno#36788) — exactly what
 * an Arrakis server does when it restarts. No JavaScript can catch that, so the
 * gRPC half lives in a child that can die alone: the SSH master, the forwards and
 * the location map stay in the parent, and a new child serves on the same port
 * within a second. Calls in flight at the crash fail with UNAVAILABLE; clients
 * retry as they would for any restart.
 *
 * The parent and the child talk in JSON lines over the child's stdin/stdout. The
 * child exits when its stdin closes, so it never outlives the parent.
 *
 * @module
 */
import { localUrl, type LocationMap } from "../flight/locations.ts";
import type { Discovery } from "../flight/discovery.ts";
import type { SampleFetch } from "../flight/client.ts";
import type { KafkaMode, KafkaResolver } from "../flight/kafka_locations.ts";
import type { ProxyToken } from "../flight/proxy.ts";
import type { ServerInfo } from "../flight/server_info.ts";
import { type Logger, silentLogger } from "../log.ts";
import { UserError } from "../errors.ts";
import { readLines } from "../lines.ts";
import {
  type ChannelOptions,
  type ChildCall,
  type ChildCalls,
  encodeMessage,
  type FromChild,
  jsonLines,
  Pending,
  PROXY_CHILD_FLAG,
  type ToChild,
} from "./protocol.ts";
import { Backoff } from "../backoff.ts";
import { delay as sleep } from "../async.ts";
import { stopChild } from "../process.ts";

export type { ChannelOptions } from "./protocol.ts";
export type { ServerInfo } from "../flight/server_info.ts";

/** Options of {@link IsolatedProxy.start}; the same as FlightProxy's. */
export interface IsolatedProxyOptions {
  /**
   * The Flight server to forward to, `grpc://host:port`. A promise lets the child
   * load while the SSH connection is still being set up.
   */
  backend: string | Promise<string>;
  /** `HOST:PORT` to listen on (port 0 picks one, kept across restarts), or `unix:/path`. */
  listen: string;
  /** Remote → local endpoint map; its resolver opens forwards for the child. */
  locations: LocationMap;
  /** Progress and warnings, the child's included (its per-call detail only at `verbose`). */
  logger?: Logger;
  /** grpc-js options for the backend channel. */
  channelOptions?: ChannelOptions;
  /** Name forwards by the host each client dialled (clients on other machines). */
  remoteClients?: boolean;
  /**
   * `--kafka` and, for `forward`, what answers the child's asks for a broker's
   * local listener; left out, kafka:// locations pass unchanged.
   */
  kafka?: { mode: KafkaMode; resolver?: KafkaResolver };
  /** `--split-streams K`: bounded Stream endpoints split in K (lib/flight/split_streams.ts). */
  splitStreams?: number;
  /**
   * The command that runs a child; by default this program with
   * {@link PROXY_CHILD_FLAG} (the compiled binary itself, or `deno run main.ts`).
   */
  childCommand?: string[];
  /**
   * The first child's process, spawned ahead ({@link spawnProxyChild}) so that it
   * loads while the caller still sets up; restarts spawn their own.
   */
  process?: Deno.ChildProcess;
}

/**
 * Spawns a proxy child's process ahead of {@link IsolatedProxy.start} (its
 * `process`): it loads grpc-js, the slow part, meanwhile, and waits for its
 * configuration on stdin (it exits when stdin closes, so never outlives us).
 */
export function spawnProxyChild(childCommand?: string[]): Deno.ChildProcess {
  const [program, ...args] = childCommand ?? defaultChildCommand();
  return new Deno.Command(program, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    // Its own session: Ctrl-C on our terminal must not kill it mid-shutdown (it
    // would be restarted); it exits when its stdin closes.
    detached: true,
  }).spawn();
}

type StartedOptions = IsolatedProxyOptions & { backend: string };

/** The argv that runs this program as a proxy child. */
function defaultChildCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), PROXY_CHILD_FLAG];
  // The child module is its own entry point: less to load than main.ts.
  const main = new URL("./child.ts", import.meta.url).href;
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    // Connecting to a Unix socket needs write access to it: forwards live in a temp dir.
    `--allow-write=${[...new Set([Deno.env.get("TMPDIR") ?? "/tmp", "/tmp"])].join(",")}`,
    main,
    PROXY_CHILD_FLAG,
  ];
}

/** Restart delays after consecutive crashes: at once first, then 250 ms doubling to 10 s. */
const RESTART_BACKOFF = { initialMs: 250, maxMs: 10_000, immediateFirst: true };
// A child that served this long before dying starts the delays over.
const STABLE_MS = 30_000;

/**
 * A FlightProxy running in a supervised child process; same surface as FlightProxy
 * for what a proxy run needs: `url`, `address`, `locations`, `setUnavailable`, `close`.
 */
export class IsolatedProxy implements AsyncDisposable {
  /** Remote → local endpoint map (lives here, in the parent). */
  readonly locations: LocationMap;
  /** Bound `host:port` (or `unix:/path`), kept across restarts. */
  readonly address: string;

  #options: StartedOptions;
  #logger: Logger;
  #child: Child;
  #unavailable: string | undefined;
  #token: ProxyToken | undefined;
  #closing = false;
  #replacing = false;
  #backoff = new Backoff(RESTART_BACKOFF);
  #restarts = 0;
  #supervising: Promise<void>;
  #unwatch: () => void;

  private constructor(options: StartedOptions, child: Child, address: string) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.locations = options.locations;
    this.address = address;
    this.#child = child;
    // Forwards opened or moved from now on reach the child (and whichever child
    // replaces it)...
    this.#unwatch = options.locations.watch((remote, local) =>
      this.#child.send({ type: "set", remote, local })
    );
    // ...and so do those set while this one started, after its snapshot was sent.
    child.sendLocations();
    this.#supervising = this.#supervise();
  }

  /** The URL clients use: `grpc://host:port`, or `grpc+unix:///path`. */
  get url(): string {
    return localUrl(this.address);
  }

  /** How many times the child was restarted after dying. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Pid of the current child (tests kill it to check the restart). */
  get childPid(): number {
    return this.#child.process.pid;
  }

  /** Starts the child and waits until it listens. */
  static async start(options: IsolatedProxyOptions): Promise<IsolatedProxy> {
    const logger = options.logger ?? silentLogger;
    const child = Child.spawn(options, logger);
    try {
      // Restarts spawn children of their own.
      const settled = { ...options, backend: await options.backend, process: undefined };
      const address = await child.start(settled, options.listen, undefined);
      return new IsolatedProxy(settled, child, address);
    } catch (error) {
      await child.stop();
      throw error;
    }
  }

  /**
   * Points the proxy at another backend address (the forward to the server moved
   * after an SSH reconnect): a new child takes over on the same port.
   */
  async setBackend(backend: string): Promise<void> {
    if (this.#closing || backend === this.#options.backend) return;
    this.#options = { ...this.#options, backend };
    this.#replacing = true;
    await this.#child.stop();
  }

  /**
   * The endpoints the server lists for a Count over every channel (see
   * `discoverEndpoints`), asked by the child: all gRPC stays in the process that
   * may crash, so a GOAWAY during discovery cannot take the SSH side down.
   */
  discover(timeoutMs?: number): Promise<Discovery> {
    return this.#child.call({ method: "discover", args: { timeoutMs } });
  }

  /** The server's `server-info` (whether reads need a token), asked by the child. */
  serverInfo(timeoutMs?: number): Promise<ServerInfo> {
    return this.#child.call({ method: "serverInfo", args: { timeoutMs } });
  }

  /**
   * The user's token from now on, for the child to add to calls (and for every
   * child that replaces it). It travels only over the child's stdin.
   */
  setToken(token: ProxyToken | undefined): void {
    this.#token = token;
    this.#child.send({ type: "token", token });
  }

  /** One ListActions round trip to the Flight server at `url`, in ms, made by the child. */
  probe(url: string, timeoutMs: number): Promise<number> {
    return this.#child.call({ method: "probe", args: { url, timeoutMs } });
  }

  /**
   * A second of `channels` (default: the first ones a Find lists), fetched by the
   * child through this proxy at `url` (where clients reach it), summed up (see
   * `sampleFetch`).
   */
  sampleFetch(url: string, channels: string[], timeoutMs: number): Promise<SampleFetch> {
    return this.#child.call({ method: "fetch", args: { url, channels, timeoutMs } });
  }

  /** While set, every call is answered UNAVAILABLE with this reason. */
  setUnavailable(reason: string | undefined): void {
    this.#unavailable = reason;
    this.#child.send({ type: "unavailable", reason });
  }

  /** Stops the child; the port is free afterwards. */
  async close(): Promise<void> {
    if (this.#closing) return await this.#supervising;
    this.#closing = true;
    this.#unwatch();
    await this.#child.stop();
    await this.#supervising;
  }

  /** Same as {@link IsolatedProxy.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #supervise(): Promise<void> {
    while (true) {
      const startedAt = Date.now();
      const status = await this.#child.process.status;
      if (this.#closing) return;
      let delay = 0;
      if (this.#replacing) {
        this.#replacing = false;
      } else {
        if (Date.now() - startedAt > STABLE_MS) this.#backoff.reset();
        delay = this.#backoff.next();
        const how = status.signal ? `signal ${status.signal}` : `exit ${status.code}`;
        const why = this.#child.lastError ? `: ${this.#child.lastError}` : "";
        this.#logger.warn(
          `the proxy process died (${how}${why}); calls in flight failed; restarting` +
            (delay ? ` in ${delay / 1000} s` : ""),
        );
      }
      await sleep(delay);
      if (this.#closing) return;
      const child = Child.spawn(this.#options, this.#logger);
      this.#child = child;
      try {
        await child.start(
          this.#options as StartedOptions,
          this.address,
          this.#unavailable,
          this.#token,
        );
        this.#restarts++;
        this.#logger.info(`proxy restarted on ${this.address}`);
      } catch (error) {
        this.#logger.warn(`restarting the proxy failed: ${(error as Error).message}`);
        await child.stop();
      }
    }
  }
}

/** One child process and its message channel. */
class Child {
  readonly process: Deno.ChildProcess;
  /** The last line the child printed on stderr (a crash usually says why there). */
  lastError = "";
  #input: WritableStreamDefaultWriter<Uint8Array>;
  #messages: AsyncGenerator<unknown>;
  #logger: Logger;
  #locations: LocationMap;
  #kafka?: KafkaResolver;
  #calls = new Pending<unknown>();

  private constructor(process: Deno.ChildProcess, options: IsolatedProxyOptions, logger: Logger) {
    this.process = process;
    this.#input = process.stdin.getWriter();
    this.#messages = jsonLines(process.stdout);
    this.#logger = logger;
    this.#locations = options.locations;
    this.#kafka = options.kafka?.resolver;
    this.#readErrors(process.stderr);
    // A child that dies never answers what it was asked.
    process.status.then(() => this.#calls.failAll(new Error("the proxy process died")));
  }

  static spawn(options: IsolatedProxyOptions, logger: Logger): Child {
    return new Child(options.process ?? spawnProxyChild(options.childCommand), options, logger);
  }

  /** Asks the child to make `call` and resolves to its answer. */
  call<C extends ChildCall>(call: C): Promise<ChildCalls[C["method"]]["result"]> {
    const { id, promise } = this.#calls.open();
    this.send({ type: "call", id, call });
    return promise as Promise<ChildCalls[C["method"]]["result"]>;
  }

  send(message: ToChild): void {
    this.#input.write(encodeMessage(message)).catch(() => {
      // The child is gone; the supervisor notices through its exit status.
    });
  }

  /** Sends every entry of the map; the child ignores those it has. */
  sendLocations(): void {
    for (const [remote, local] of this.#locations.entries()) {
      this.send({ type: "set", remote, local });
    }
  }

  /** Sends the configuration and waits for the child to listen; then serves its requests. */
  async start(
    options: StartedOptions,
    listen: string,
    unavailable: string | undefined,
    token?: ProxyToken,
  ): Promise<string> {
    this.send({
      token,
      type: "start",
      backend: options.backend,
      listen,
      locations: this.#locations.entries(),
      channelOptions: options.channelOptions,
      unavailable,
      level: this.#logger.level,
      remoteClients: options.remoteClients,
      kafka: options.kafka?.mode,
      splitStreams: options.splitStreams,
    });
    while (true) {
      const next = await this.#messages.next();
      if (next.done) {
        const status = await this.process.status;
        throw new UserError(
          `the proxy process exited before it was ready (exit ${status.code})` +
            (this.lastError ? `: ${this.lastError}` : ""),
        );
      }
      const message = next.value as FromChild;
      if (message.type === "ready") {
        this.#serve();
        // Entries set while it started (after the snapshot above) would be missing.
        this.sendLocations();
        return message.address;
      }
      if (message.type === "failed") throw new UserError(message.message);
      this.#handle(message);
    }
  }

  async stop(): Promise<void> {
    // The child exits when its stdin closes.
    await stopChild(this.process, { ask: () => this.#input.close(), signal: "SIGKILL" });
  }

  async #serve(): Promise<void> {
    try {
      for await (const message of this.#messages) this.#handle(message as FromChild);
    } catch {
      // A child that dies mid-line: the supervisor restarts it.
    }
  }

  #handle(message: FromChild): void {
    switch (message.type) {
      case "resolve": {
        const { id, host, port, netloc } = message;
        this.#locations.resolve({ host, port, netloc }).then(
          (local) => this.send({ type: "resolved", id, local }),
          (error) => this.send({ type: "resolved", id, error: (error as Error).message }),
        );
        break;
      }
      case "resolveKafka": {
        const { id, host, port } = message;
        (this.#kafka?.({ host, port }) ?? Promise.resolve(undefined)).then(
          (local) => this.send({ type: "kafkaResolved", id, local }),
          (error) => this.send({ type: "kafkaResolved", id, error: (error as Error).message }),
        );
        break;
      }
      case "log":
        this.#logger[message.level](message.message);
        break;
      case "answer": {
        this.#calls.settle(
          message.id,
          message.error === undefined ? { value: message.value } : { error: message.error },
        );
        break;
      }
    }
  }

  async #readErrors(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const line of readLines(stream)) {
      if (line.trim() === "") continue;
      this.lastError = line.trim();
      this.#logger.debug(`proxy process: ${line}`);
    }
  }
}
