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
import { FlightProxy } from "./flight/proxy.ts";
import { LocationMap, type ParsedLocation } from "./flight/locations.ts";
import { discoverEndpoints } from "./flight/discovery.ts";
import type { grpc } from "./flight/grpc.ts";
import { type Logger, silentLogger } from "./log.ts";
import { UserError } from "./errors.ts";
import { readLines } from "./lines.ts";
import { Backoff } from "./backoff.ts";
import { delay as sleep } from "./async.ts";
import { stopChild } from "./process.ts";

/** First argument that makes `main.ts` (or the compiled binary) run as a proxy child. */
export const PROXY_CHILD_FLAG = "--internal-proxy-child";

/** Options of {@link IsolatedProxy.start}; the same as FlightProxy's. */
export interface IsolatedProxyOptions {
  /**
   * The Flight server to forward to, `grpc://host:port`. A promise lets the child
   * load while the SSH connection is still being set up.
   */
  backend: string | Promise<string>;
  /** `HOST:PORT` to listen on; port 0 picks one, kept across restarts. */
  listen: string;
  /** Remote → local endpoint map; its resolver opens forwards for the child. */
  locations: LocationMap;
  /** Progress and warnings, the child's included. */
  logger?: Logger;
  /** grpc-js options for the backend channel. */
  channelOptions?: grpc.ChannelOptions;
  /** Pass the child's per-call detail to `logger.debug` (otherwise the child drops it). */
  verbose?: boolean;
  /**
   * The command that runs a child; by default this program with
   * {@link PROXY_CHILD_FLAG} (the compiled binary itself, or `deno run main.ts`).
   */
  childCommand?: string[];
}

type StartedOptions = IsolatedProxyOptions & { backend: string };

type ToChild =
  | {
    type: "start";
    backend: string;
    listen: string;
    locations: [string, string][];
    channelOptions?: grpc.ChannelOptions;
    unavailable?: string;
    verbose?: boolean;
  }
  | { type: "resolved"; id: number; local?: string; error?: string }
  | { type: "unavailable"; reason?: string }
  | { type: "set"; remote: string; local: string }
  | { type: "discover"; id: number };

type FromChild =
  | { type: "ready"; address: string }
  | { type: "failed"; message: string }
  | { type: "resolve"; id: number; host: string; port: number; netloc: string }
  | { type: "log"; level: keyof Logger; message: string }
  | { type: "discovered"; id: number; endpoints?: ParsedLocation[]; error?: string };

/** The argv that runs this program as a proxy child. */
function defaultChildCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), PROXY_CHILD_FLAG];
  // This module is its own entry point (see the end of the file): less to load than main.ts.
  const main = import.meta.url;
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    main,
    PROXY_CHILD_FLAG,
  ];
}

const encoder = new TextEncoder();

async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  for await (const line of readLines(stream)) if (line.trim() !== "") yield JSON.parse(line);
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
  /** Bound `host:port`, kept across restarts. */
  readonly address: string;

  #options: StartedOptions;
  #logger: Logger;
  #child: Child;
  #unavailable: string | undefined;
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
    // Forwards that move (an SSH reconnect could not re-take a port) reach the child.
    this.#unwatch = options.locations.watch((remote, local) =>
      this.#child.send({ type: "set", remote, local })
    );
    this.#supervising = this.#supervise();
  }

  /** The URL clients use: `grpc://host:port`. */
  get url(): string {
    return `grpc://${this.address}`;
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
      const settled = { ...options, backend: await options.backend };
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
  discover(): Promise<ParsedLocation[]> {
    return this.#child.discover();
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
        await child.start(this.#options as StartedOptions, this.address, this.#unavailable);
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
  #discoveries = new Map<number, PromiseWithResolvers<ParsedLocation[]>>();
  #nextId = 0;

  private constructor(process: Deno.ChildProcess, options: IsolatedProxyOptions, logger: Logger) {
    this.process = process;
    this.#input = process.stdin.getWriter();
    this.#messages = jsonLines(process.stdout);
    this.#logger = logger;
    this.#locations = options.locations;
    this.#readErrors(process.stderr);
  }

  static spawn(options: IsolatedProxyOptions, logger: Logger): Child {
    const [program, ...args] = options.childCommand ?? defaultChildCommand();
    const process = new Deno.Command(program, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Child(process, options, logger);
  }

  discover(): Promise<ParsedLocation[]> {
    const id = this.#nextId++;
    const waiter = Promise.withResolvers<ParsedLocation[]>();
    this.#discoveries.set(id, waiter);
    this.send({ type: "discover", id });
    // A child that dies meanwhile never answers.
    this.process.status.then(() => waiter.reject(new Error("the proxy process died")));
    return waiter.promise.finally(() => this.#discoveries.delete(id));
  }

  send(message: ToChild): void {
    this.#input.write(encoder.encode(JSON.stringify(message) + "\n")).catch(() => {
      // The child is gone; the supervisor notices through its exit status.
    });
  }

  /** Sends the configuration and waits for the child to listen; then serves its requests. */
  async start(
    options: StartedOptions,
    listen: string,
    unavailable: string | undefined,
  ): Promise<string> {
    this.send({
      type: "start",
      backend: options.backend,
      listen,
      locations: this.#locations.entries(),
      channelOptions: options.channelOptions,
      unavailable,
      verbose: options.verbose,
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
      case "log":
        this.#logger[message.level]?.(message.message);
        break;
      case "discovered": {
        const waiter = this.#discoveries.get(message.id);
        if (message.endpoints) waiter?.resolve(message.endpoints);
        else waiter?.reject(new Error(message.error ?? "discovery failed"));
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

/**
 * The child's side: read the configuration from stdin, serve a FlightProxy, ask
 * the parent for new forwards, and exit when stdin closes.
 */
export async function runProxyChild(): Promise<number> {
  // Ctrl-C in the terminal reaches the whole process group; the parent decides.
  for (const signal of ["SIGINT", "SIGHUP"] as const) Deno.addSignalListener(signal, () => {});
  const out = (message: FromChild) => {
    const bytes = encoder.encode(JSON.stringify(message) + "\n");
    for (let written = 0; written < bytes.length;) {
      written += Deno.stdout.writeSync(bytes.subarray(written));
    }
  };
  const logger: Logger = {
    debug: (message) => out({ type: "log", level: "debug", message }),
    info: (message) => out({ type: "log", level: "info", message }),
    warn: (message) => out({ type: "log", level: "warn", message }),
  };
  const pending = new Map<number, { resolve(local: string): void; reject(e: Error): void }>();
  let nextId = 0;
  let proxy: FlightProxy | undefined;
  let backend = "";

  for await (const raw of jsonLines(Deno.stdin.readable)) {
    const message = raw as ToChild;
    switch (message.type) {
      case "start": {
        backend = message.backend;
        const locations = new LocationMap(
          message.locations,
          (remote) =>
            new Promise<string>((resolve, reject) => {
              const id = nextId++;
              pending.set(id, { resolve, reject });
              out({ type: "resolve", id, ...remote });
            }),
        );
        try {
          proxy = await FlightProxy.start({
            backend: message.backend,
            listen: message.listen,
            locations,
            // A line per call over the pipe costs; send it only when someone reads it.
            logger: message.verbose ? logger : { ...logger, debug: () => {} },
            channelOptions: message.channelOptions,
          });
        } catch (error) {
          out({ type: "failed", message: (error as Error).message });
          return 1;
        }
        if (message.unavailable) proxy.setUnavailable(message.unavailable);
        out({ type: "ready", address: proxy.address });
        break;
      }
      case "resolved": {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.local !== undefined) waiter?.resolve(message.local);
        else waiter?.reject(new Error(message.error ?? "forward failed"));
        break;
      }
      case "unavailable":
        proxy?.setUnavailable(message.reason);
        break;
      case "set":
        proxy?.locations.set(message.remote, message.local);
        break;
      case "discover": {
        const { id } = message;
        discoverEndpoints(backend).then(
          (endpoints) => out({ type: "discovered", id, endpoints }),
          (error) => out({ type: "discovered", id, error: (error as Error).message }),
        );
        break;
      }
    }
  }
  await proxy?.close();
  return 0;
}

if (import.meta.main && Deno.args[0] === PROXY_CHILD_FLAG) Deno.exit(await runProxyChild());
