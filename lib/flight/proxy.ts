/**
 * A Flight server that forwards every RPC to one backend, byte for byte, except
 * that endpoint locations are pointed at local forwards on the way out (and back
 * at the remote servers in the few requests that carry them).
 *
 * Messages travel as raw bytes: the service is registered with identity
 * serializers, so nothing is decoded unless it carries locations, and even then
 * only the fields on the path to a URI (see `rewrite.ts`).
 *
 * @module
 */
import { grpc } from "./grpc.ts";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { FLIGHT_METHODS, type FlightMethod, methodPath } from "./methods.ts";
import { localUrl, LocationMap } from "./locations.ts";
import type { KafkaLocations } from "./kafka_locations.ts";
import {
  checkPublishFlightInfo,
  isPublishDoGet,
  PublishAnswerError,
  publishDoGetTransform,
} from "./publish_answer.ts";
import {
  EndpointUnavailableError,
  LocationRewriter,
  type MessageShape,
  Shapes,
} from "./rewrite.ts";
import { streamSplitter } from "./split_streams.ts";
import { concatBytes, readFields, WireError, WireType } from "./wire.ts";
import { type Logger, silentLogger } from "../log.ts";
import { UserError } from "../errors.ts";
import { formatNetloc, parseNetloc } from "../netloc.ts";
import { flightClient, UNLIMITED } from "./channel.ts";
import type { FlightClient } from "./discovery.ts";

/** grpc-js channel options (`grpc.*` keys), as `@grpc/grpc-js` defines them. */
export type ChannelOptions = grpc.ChannelOptions;

/** Options of {@link FlightProxy.start}. */
export interface FlightProxyOptions {
  /** The Flight server to forward to: `grpc://host:port`, `grpc+tcp://host:port` or `host:port`. */
  backend: string;
  /**
   * Where to listen, `HOST:PORT` (port 0 picks a free one), or `unix:/path` (a
   * Unix socket, behind the parent's guarded TCP port).
   * @default {"localhost:31206"}
   */
  listen?: string;
  /** Remote → local endpoint map; a new empty one when omitted. */
  locations?: LocationMap;
  /** Where warnings and per-call detail go. */
  logger?: Logger;
  /** Extra grpc-js channel options for the backend connection. */
  channelOptions?: ChannelOptions;
  /**
   * Clients on other machines (`--allow-remote-clients`): name local forwards in
   * locations by the host each client dialled (its `:authority`), not by the
   * address the forwards listen on.
   */
  remoteClients?: boolean;
  /**
   * What to do with `kafka://` locations (`--kafka`, with the resolver to the
   * Kafka listeners for `forward`); without it they pass unchanged (`direct`).
   */
  kafka?: KafkaLocations;
  /** The user's token, for deployments whose reads need one (see {@link FlightProxy.setToken}). */
  token?: ProxyToken;
  /** `--split-streams K`: bounded Stream endpoints split in K over their channels (split_streams.ts). */
  splitStreams?: number;
}

/**
 * The user's token as the proxy adds it: to each call that carries no
 * `authorization` of its own, and the one line a call refused for it gets
 * (what was sent, how to fix it; never the token), from the parent process.
 */
export interface ProxyToken {
  /** `Bearer …`; none: the proxy has no token to add (the lines still explain). */
  authorization?: string;
  /**
   * Add it to clients' calls. False (`--allow-remote-clients`): only the
   * proxy's own calls carry it, and clients' refusals pass unexplained.
   * @default {true}
   */
  clients?: boolean;
  /** What a call the server answered UNAUTHENTICATED (16) says first. */
  unauthenticated: string;
  /** What a call the server answered PERMISSION_DENIED (7) says first. */
  permissionDenied: string;
}

/**
 * HTTP/2 flow-control window of the proxy's own receiving side. The 64 KiB default
 * makes every 64 KiB wait a round trip for a WINDOW_UPDATE; the bench measured
 * DoGet through the proxy about twice as fast with 16 MiB (bench/README.md).
 */
const FLOW_CONTROL_WINDOW = 16 << 20;

/** Backend channel defaults; `FlightProxyOptions.channelOptions` override them. */
const BACKEND_CHANNEL: grpc.ChannelOptions = {
  "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW,
};

// Headers grpc-js manages itself on each hop; forwarding them would duplicate or contradict.
const HOP_HEADERS = new Set([
  "content-type",
  "user-agent",
  "te",
  "host",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
]);

/** A call's metadata as the backend gets it; `ours` when the proxy's token (or none) stands for it. */
interface Outgoing {
  metadata: grpc.Metadata;
  ours: boolean;
}

function forwardable(metadata: grpc.Metadata): grpc.Metadata {
  const out = metadata.clone();
  for (const key of Object.keys(out.getMap())) {
    if (HOP_HEADERS.has(key) || key.startsWith(":")) out.remove(key);
  }
  return out;
}

/** The trailer in which an Arrow Flight server sends its status message (C++ reads it first). */
const ARROW_STATUS_MESSAGE = "x-arrow-status-message-bin";

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const passBytes = (bytes: Uint8Array): Buffer => toBuffer(bytes);

/** Raw-bytes service definition: the real method paths and streaming kinds, no codecs. */
function rawFlightService(): grpc.ServiceDefinition {
  const service: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const [name, { requestStream, responseStream }] of Object.entries(FLIGHT_METHODS)) {
    service[name] = {
      path: methodPath(name as FlightMethod),
      requestStream,
      responseStream,
      requestSerialize: passBytes,
      requestDeserialize: passBytes,
      responseSerialize: passBytes,
      responseDeserialize: passBytes,
      originalName: name,
    };
  }
  return service;
}

/** Rewrites one message; `clientHost` as in {@link FlightProxyOptions.remoteClients}. */
type Transform = (message: Uint8Array, clientHost?: string) => Promise<Uint8Array> | Uint8Array;
type ServiceError = Partial<grpc.StatusObject> & { code: grpc.status };

/** A running proxy. Dispose of it (or call {@link FlightProxy.close}) to stop it. */
export class FlightProxy implements AsyncDisposable {
  /** Remote endpoint → local forward map used for rewriting; grows at run time. */
  readonly locations: LocationMap;
  /** The address it listens on, `host:port` with the real port, or `unix:/path`. */
  readonly address: string;

  #server: grpc.Server;
  #client: grpc.Client;
  #rewriter: LocationRewriter;
  #logger: Logger;
  #unavailable: string | undefined;
  #closed = false;
  #remoteClients: boolean;
  #kafka?: KafkaLocations;
  #token: ProxyToken | undefined;
  // Each refusal line is logged once, not per call.
  #explained = new Set<string>();
  #split: (info: Uint8Array) => Uint8Array = (info) => info;

  private constructor(
    server: grpc.Server,
    client: grpc.Client,
    address: string,
    locations: LocationMap,
    logger: Logger,
    remoteClients: boolean,
    kafka?: KafkaLocations,
  ) {
    this.#remoteClients = remoteClients;
    this.#kafka = kafka;
    this.#server = server;
    this.#client = client;
    this.address = address;
    this.locations = locations;
    this.#logger = logger;
    this.#rewriter = new LocationRewriter(
      locations,
      (message) => logger.warn(message),
      (message) => logger.debug(message),
      kafka,
    );
  }

  /**
   * The channel to the backend the proxied calls use; the proxy's own calls
   * (discovery, server-info) go on it too, so that a client's first call finds
   * its connection open. Closed with the proxy.
   */
  get backendClient(): FlightClient {
    return this.#client;
  }

  /** The URL clients use: `grpc://host:port`, or `grpc+unix:///path`. */
  get url(): string {
    return localUrl(this.address);
  }

  /**
   * Starts a proxy listening on `options.listen` that forwards to `options.backend`.
   *
   * @example
   * ```ts
   * await using proxy = await FlightProxy.start({ backend: "grpc://127.0.0.1:40000", listen: "localhost:0" });
   * console.log(proxy.url);
   * ```
   */
  static async start(options: FlightProxyOptions): Promise<FlightProxy> {
    const listen = options.listen ?? "localhost:31206";
    const logger = options.logger ?? silentLogger;
    const client = flightClient(options.backend, {
      ...BACKEND_CHANNEL,
      ...options.channelOptions,
    });
    const server = new grpc.Server(UNLIMITED);
    const locations = options.locations ?? new LocationMap();
    let port: number;
    const socket = listen.startsWith("unix:") ? listen.slice("unix:".length) : undefined;
    // A socket left by a proxy process that died (restarts listen at the same path).
    if (socket !== undefined) await Deno.remove(socket).catch(() => undefined);
    try {
      port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(
          listen,
          grpc.ServerCredentials.createInsecure(),
          (error, port) => error ? reject(error) : resolve(port),
        )
      );
    } catch (error) {
      client.close();
      server.forceShutdown();
      const reason = /in use|EADDRINUSE/i.test(String(error))
        ? "address already in use"
        : String((error as Error).message ?? error);
      throw new UserError(`cannot listen on ${listen}: ${reason}`, { cause: error });
    }
    const host = parseNetloc(listen)?.host ?? "localhost";
    const proxy = new FlightProxy(
      server,
      client,
      socket !== undefined ? listen : formatNetloc(host, port),
      locations,
      logger,
      options.remoteClients ?? false,
      options.kafka,
    );
    proxy.setToken(options.token);
    proxy.#split = streamSplitter(options.splitStreams, (line) => logger.debug(line));
    server.addService(rawFlightService(), proxy.#handlers());
    return proxy;
  }

  /**
   * While set, every call is answered UNAVAILABLE with this message at once
   * (the SSH layer sets it while the connection is down).
   */
  setUnavailable(reason: string | undefined): void {
    this.#unavailable = reason;
  }

  /**
   * The user's token from now on (undefined: add none, explain nothing). A
   * call that carries its own `authorization` always passes untouched.
   */
  setToken(token: ProxyToken | undefined): void {
    // Refusal lines stay logged once each: a new token's lines name it, so they differ.
    this.#token = token;
  }

  /** Stops listening, cancels calls in flight and closes the backend channel. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 1000);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#client.close();
  }

  /** Same as {@link FlightProxy.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #handlers(): grpc.UntypedServiceImplementation {
    const toLocal = (shape: MessageShape): Transform => (bytes, clientHost) =>
      this.#rewriter.toLocal(bytes, shape, clientHost);
    // arrakis.Publisher through the proxy (forward mode): its Publish DoGet must
    // come here, so that the brokers it is told about are the local listeners.
    const publishing = this.#kafka?.mode === "forward" ? this.#kafka : undefined;
    const flightInfo: Transform = (bytes, clientHost) =>
      publishing && checkPublishFlightInfo(bytes)
        ? bytes
        : this.#rewriter.toLocal(this.#split(bytes), Shapes.FlightInfo, clientHost);
    const handlers: Record<FlightMethod, grpc.UntypedHandleCall> = {
      Handshake: this.#bidi("Handshake"),
      ListFlights: this.#serverStream("ListFlights", undefined, () => toLocal(Shapes.FlightInfo)),
      GetFlightInfo: this.#unary("GetFlightInfo", flightInfo),
      PollFlightInfo: this.#unary("PollFlightInfo", toLocal(Shapes.PollInfo)),
      GetSchema: this.#unary("GetSchema"),
      DoGet: this.#serverStream(
        "DoGet",
        undefined,
        (ticket) =>
          publishing && isPublishDoGet(ticket) ? publishDoGetTransform(publishing) : undefined,
      ),
      DoPut: this.#bidi("DoPut"),
      DoExchange: this.#bidi("DoExchange"),
      DoAction: this.#serverStream(
        "DoAction",
        (action, clientHost) => this.#actionToRemote(action, clientHost),
        (action) =>
          actionType(action) === "RenewFlightEndpoint" ? toLocal(RESULT_ENDPOINT) : undefined,
      ),
      ListActions: this.#serverStream("ListActions"),
    };
    return handlers;
  }

  // Clients send locations back in two standard actions; the backend must see its own.
  #actionToRemote(action: Uint8Array, clientHost: string | undefined): Uint8Array {
    switch (actionType(action)) {
      case "CancelFlightInfo":
        return this.#rewriter.toRemote(action, ACTION_CANCEL, clientHost);
      case "RenewFlightEndpoint":
        return this.#rewriter.toRemote(action, ACTION_RENEW, clientHost);
      default:
        return action;
    }
  }

  /** The host a remote client dialled, when locations must name it. */
  #clientHost(call: { getHost(): string }): string | undefined {
    if (!this.#remoteClients) return undefined;
    const authority = call.getHost();
    return parseNetloc(authority)?.host ?? (authority || undefined);
  }

  #callOptions(call: { getDeadline(): grpc.Deadline }): grpc.CallOptions {
    const deadline = call.getDeadline();
    return deadline === Infinity ? {} : { deadline };
  }

  #refusal(): ServiceError | undefined {
    return this.#unavailable === undefined
      ? undefined
      : { code: grpc.status.UNAVAILABLE, details: this.#unavailable };
  }

  /**
   * The line for a call refused with `code` while it carried the proxy's token
   * (or none), logged the first time; undefined when `code` is not 16 or 7, or
   * no token was set.
   */
  explainRefusal(code: number): string | undefined {
    const line = code === grpc.status.UNAUTHENTICATED
      ? this.#token?.unauthenticated
      : code === grpc.status.PERMISSION_DENIED
      ? this.#token?.permissionDenied
      : undefined;
    if (line !== undefined && !this.#explained.has(line)) {
      this.#explained.add(line);
      this.#logger.warn(line);
    }
    return line;
  }

  /** The metadata to send on: the client's, with the user's token when it carries none. */
  #outgoing(metadata: grpc.Metadata): Outgoing {
    const out = forwardable(metadata);
    const token = this.#token;
    if (token === undefined || token.clients === false || out.get("authorization").length > 0) {
      return { metadata: out, ours: false };
    }
    if (token.authorization) out.set("authorization", token.authorization);
    return { metadata: out, ours: true };
  }

  /** A backend status as the client gets it: a refusal of the proxy's token says why first. */
  #explain<S extends { code: grpc.status; details?: string; metadata?: grpc.Metadata }>(
    status: S,
    ours: boolean,
  ): S {
    if (!ours) return status;
    const line = this.explainRefusal(status.code);
    if (line === undefined) return status;
    const details = `${line}; the server said: ${status.details ?? ""}`;
    // Arrow Flight clients read the message from this trailer before grpc-message.
    let metadata = status.metadata;
    if (metadata && metadata.get(ARROW_STATUS_MESSAGE).length > 0) {
      metadata = metadata.clone();
      metadata.set(ARROW_STATUS_MESSAGE, Buffer.from(details));
    }
    return { ...status, details, metadata };
  }

  #failure(error: unknown, method: FlightMethod): ServiceError {
    if (error instanceof PublishAnswerError) {
      this.#logger.warn(error.message);
      return { code: grpc.status.FAILED_PRECONDITION, details: error.message };
    }
    if (error instanceof EndpointUnavailableError) {
      return { code: grpc.status.UNAVAILABLE, details: error.message };
    }
    if (error instanceof WireError) {
      this.#logger.warn(`malformed ${method} response from the server: ${error.message}`);
      return {
        code: grpc.status.INTERNAL,
        details: `arrakis-proxy: malformed ${method} response from the server: ${error.message}`,
      };
    }
    this.#logger.warn(`${method}: ${error instanceof Error ? error.message : error}`);
    return { code: grpc.status.INTERNAL, details: `arrakis-proxy: ${error}` };
  }

  #unary(method: FlightMethod, transform?: Transform): grpc.handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      const refusal = this.#refusal();
      if (refusal) return callback(refusal);
      this.#logger.debug(`${method}`);
      let response: Buffer | undefined;
      const outgoing = this.#outgoing(call.metadata);
      // The request's headers and message in one write to the backend (one turn: the
      // message goes out on the next tick).
      const flushRequest = cork(channelSocket(this.#client), 1);
      const backend = this.#client.makeUnaryRequest<Buffer, Buffer>(
        methodPath(method),
        passBytes,
        passBytes,
        call.request,
        outgoing.metadata,
        this.#callOptions(call),
        (_error, value) => response = value,
      );
      flushRequest();
      call.on("cancelled", () => backend.cancel());
      // Held until the answer is known: headers, message and trailers then leave together.
      let headers: grpc.Metadata | undefined;
      backend.on("metadata", (metadata) => headers = metadata);
      // The callback above runs just before 'status', so the response is known here.
      backend.on("status", async (status) => {
        const answer = (...args: Parameters<typeof callback>) => {
          // Two turns: the trailers leave from the message write's callback, a turn later.
          const flush = cork(callSocket(call), 2);
          if (headers) call.sendMetadata(forwardable(headers));
          callback(...args);
          flush();
        };
        if (status.code !== grpc.status.OK) return answer(this.#explain(status, outgoing.ours));
        if (response === undefined) {
          return answer({ code: grpc.status.INTERNAL, details: "server sent no response" });
        }
        try {
          const out = transform ? await transform(response, this.#clientHost(call)) : response;
          answer(null, toBuffer(out), status.metadata);
        } catch (error) {
          answer(this.#failure(error, method));
        }
      });
    };
  }

  #serverStream(
    method: FlightMethod,
    requestTransform?: (request: Uint8Array, clientHost?: string) => Uint8Array,
    responseTransform?: (request: Uint8Array) => Transform | undefined,
  ): grpc.handleServerStreamingCall<Buffer, Buffer> {
    return (call) => {
      const refusal = this.#refusal();
      if (refusal) return call.emit("error", refusal);
      this.#logger.debug(`${method}`);
      let request: Uint8Array = call.request;
      let transform: Transform | undefined;
      try {
        if (requestTransform) request = requestTransform(request, this.#clientHost(call));
        transform = responseTransform?.(call.request);
      } catch (error) {
        return call.emit("error", this.#failure(error, method));
      }
      const outgoing = this.#outgoing(call.metadata);
      const backend = this.#client.makeServerStreamRequest<Buffer, Buffer>(
        methodPath(method),
        passBytes,
        passBytes,
        toBuffer(request),
        outgoing.metadata,
        this.#callOptions(call),
      );
      call.on("cancelled", () => backend.cancel());
      this.#pipeResponses(method, backend, call, transform, this.#clientHost(call), outgoing.ours);
    };
  }

  #bidi(method: FlightMethod): grpc.handleBidiStreamingCall<Buffer, Buffer> {
    return (call) => {
      const refusal = this.#refusal();
      if (refusal) return call.emit("error", refusal);
      this.#logger.debug(`${method}`);
      const outgoing = this.#outgoing(call.metadata);
      const backend = this.#client.makeBidiStreamRequest<Buffer, Buffer>(
        methodPath(method),
        passBytes,
        passBytes,
        outgoing.metadata,
        this.#callOptions(call),
      );
      call.on("cancelled", () => backend.cancel());
      // Upstream with backpressure: stop reading the client while the backend is full.
      call.on("data", (message: Buffer) => {
        if (!backend.write(message)) {
          call.pause();
          backend.once("drain", () => call.resume());
        }
      });
      call.on("end", () => backend.end());
      call.on("error", () => backend.cancel());
      this.#pipeResponses(method, backend, call, undefined, undefined, outgoing.ours);
    };
  }

  /** Backend responses → client, in order, with backpressure, then the backend's status. */
  #pipeResponses(
    method: FlightMethod,
    backend: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>,
    call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>,
    transform: Transform | undefined,
    clientHost: string | undefined,
    ours: boolean,
  ): void {
    let finished = false;
    let pending: Promise<void> = Promise.resolve();
    const fail = (error: ServiceError) => {
      if (finished) return;
      finished = true;
      call.emit("error", error);
    };
    const write = (message: Uint8Array) => {
      if (!call.write(toBuffer(message))) {
        backend.pause();
        call.once("drain", () => backend.resume());
      }
    };
    backend.on("metadata", (headers) => call.sendMetadata(forwardable(headers)));
    backend.on("data", (message: Buffer) => {
      if (finished) return;
      if (!transform) return write(message);
      // Keep order: hold the stream while this message is rewritten.
      backend.pause();
      pending = pending.then(async () => {
        try {
          const out = await transform(message, clientHost);
          if (finished) return;
          write(out);
          if (backend.isPaused() && call.writableNeedDrain !== true) backend.resume();
        } catch (error) {
          fail(this.#failure(error, method));
          backend.cancel();
        }
      });
    });
    // 'status' can come before buffered messages were emitted; finish after 'end'.
    const drained = new Promise<void>((resolve) => {
      backend.once("end", resolve);
      backend.once("close", resolve);
    });
    backend.on("error", () => {/* reported through 'status' */});
    backend.once("status", async (status) => {
      await drained;
      await pending;
      if (status.code !== grpc.status.OK) return fail(this.#explain(status, ours));
      if (finished) return;
      finished = true;
      call.end(status.metadata);
    });
  }
}

/**
 * Corks `socket` for `turns` turns of the event loop, so that what is sent
 * meanwhile (each HTTP/2 frame is its own write in Deno's node:http2) goes out
 * in one write, one wake-up of the reader; the returned function schedules the
 * uncork. No socket (grpc-js internals of another shape): nothing corked.
 */
function cork(socket: CorkableSocket | undefined, turns: number): () => void {
  if (typeof socket?.cork !== "function" || typeof socket?.uncork !== "function") return () => {};
  joinWrites(socket);
  socket.cork();
  const later = (left: number): void => {
    setImmediate(() => left > 1 ? later(left - 1) : socket.uncork?.());
  };
  return () => later(turns);
}

/**
 * The connection of a server call, from grpc-js 1.14's internals
 * (call.call.stream.session.socket).
 */
function callSocket(call: object): CorkableSocket | undefined {
  // deno-lint-ignore no-explicit-any
  return (call as any).call?.stream?.session?.socket;
}

/**
 * The backend channel's connection while it has one, from grpc-js 1.14's internals
 * (pick-first: internalChannel.currentPicker.subchannel.child.transport.session.socket).
 */
function channelSocket(client: grpc.Client): CorkableSocket | undefined {
  // deno-lint-ignore no-explicit-any
  const channel = client.getChannel() as any;
  return channel.internalChannel?.currentPicker?.subchannel?.child?.transport?.session?.socket;
}

interface PendingWrite {
  chunk: unknown;
}
interface CorkableSocket {
  cork?: () => void;
  uncork?: () => void;
  _writev?: (chunks: PendingWrite[], callback: (error?: Error | null) => void) => void;
  _write: (chunk: Uint8Array, encoding: string, callback: (error?: Error | null) => void) => void;
}
const joined = new WeakSet<object>();
// Larger batches (bulk DoGet data queued behind a write) go as they are, uncopied.
const JOIN_LIMIT = 64 * 1024;

/**
 * Deno's net.Socket writev sends each buffered chunk with its own syscall: join
 * small batches first, so a corked socket's writes are one.
 */
function joinWrites(socket: CorkableSocket): void {
  if (joined.has(socket) || typeof socket._writev !== "function") return;
  joined.add(socket);
  const writev = socket._writev.bind(socket);
  socket._writev = (chunks, callback) => {
    let size = 0;
    for (const { chunk } of chunks) {
      size = chunk instanceof Uint8Array ? size + chunk.length : Infinity;
    }
    if (size > JOIN_LIMIT) return writev(chunks, callback);
    const bytes = concatBytes(chunks.map(({ chunk }) => chunk as Uint8Array));
    socket._write(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      "buffer",
      callback,
    );
  };
}

const utf8 = new TextDecoder();

/** The `type` of an encoded Action, or undefined when it has none. */
function actionType(action: Uint8Array): string | undefined {
  try {
    for (const field of readFields(action)) {
      if (field.number === 1 && field.wireType === WireType.LEN) {
        return utf8.decode(action.subarray(field.valueStart, field.end));
      }
    }
  } catch {
    // Malformed actions pass through untouched; the server will say what is wrong.
  }
  return undefined;
}

// Action.body (field 2) holds the request message; Result.body (field 1) the endpoint.
const ACTION_CANCEL: MessageShape = { 2: Shapes.CancelFlightInfoRequest };
const ACTION_RENEW: MessageShape = { 2: Shapes.RenewFlightEndpointRequest };
const RESULT_ENDPOINT: MessageShape = { 1: Shapes.FlightEndpoint };
