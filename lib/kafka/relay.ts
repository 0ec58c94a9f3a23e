/**
 * One client connection relayed to one broker connection, Kafka-aware.
 *
 * Requests cross byte for byte: only their header is read (API key, version,
 * correlation id; for Produce also `acks`, since `acks=0` gets no answer), to
 * check the API and version against `apis.ts` and to remember which answer
 * comes back for which request (a broker answers in request order). Answers of
 * ApiVersions, Metadata and FindCoordinator are rewritten (`rewrite.ts`),
 * holding at most `maxHeldBytes` of each; all others stream through at any
 * size. Anything the relay cannot follow ends this connection with one error
 * ({@link KafkaRelayError}) and never reaches the client half-changed.
 *
 * @example
 * ```ts
 * import { relayKafka } from "./relay.ts";
 *
 * declare const client: Deno.Conn, upstream: Deno.Conn;
 * const result = await relayKafka(client, upstream, {
 *   mapBroker: () => Promise.resolve({ host: "127.0.0.1", port: 40123 }),
 * });
 * if (result.error) console.error(result.error.message);
 * ```
 *
 * @module
 */
import { apiName, KAFKA_APIS, type KafkaApi } from "./apis.ts";
import { ApiKey } from "./apis.ts";
import { KafkaProtocolError, KafkaReader, KafkaTruncatedError, KafkaWriter } from "./codec.ts";
import { ConnReader, writeAll } from "./conn_reader.ts";
import {
  type BrokerAddressMapper,
  produceWantsNoAnswer,
  readRequestStart,
  rewriteAnswerFrame,
  rewritesAnswer,
  skipRequestHeaderRest,
  unsupportedApiVersionsBody,
} from "./rewrite.ts";

/** Options of {@link relayKafka}. */
export interface RelayKafkaOptions {
  /** Where the client should reach each broker an answer names. */
  mapBroker: BrokerAddressMapper;
  /** Most bytes of one rewritten answer held in memory. @default {4 MiB} */
  maxHeldBytes?: number;
  /** Read buffer per direction; also bounds a request header. @default {256 KiB} */
  bufferBytes?: number;
  /** Counts bytes as they cross (for `status`). */
  onBytes?: (direction: "up" | "down", n: number) => void;
  /** Told of each request relayed (API name and version, for `status`). */
  onRequest?: (api: KafkaApi, version: number) => void;
  /** Told of each answer's size (its frame without the size prefix). */
  onAnswer?: (bytes: number) => void;
}

/** Why a relayed connection was closed by the relay: the one line to log. */
export class KafkaRelayError extends Error {
  /** The line to log, and what caused it. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KafkaRelayError";
  }
}

/** How a relayed connection ended. */
export interface RelayResult {
  /** Set when the relay closed it for a reason worth a line; unset on a plain close. */
  error?: KafkaRelayError;
  /** A network error that ended it (a reset, say): detail for `--verbose`. */
  disconnect?: string;
}

/** A request whose answer is awaited, or an answer the relay gives itself. */
interface Pending {
  correlationId: number;
  api: KafkaApi;
  version: number;
  /** An answer made here rather than by the broker (frame without its size). */
  local?: Uint8Array;
}

/** Answers awaited, in request order; wakes the answer loop for local answers. */
class PendingAnswers {
  readonly #queue: Pending[] = [];
  #wake?: () => void;

  push(entry: Pending): void {
    this.#queue.push(entry);
    if (entry.local) this.#wake?.();
  }

  shift(): Pending | undefined {
    return this.#queue.shift();
  }

  peek(): Pending | undefined {
    return this.#queue[0];
  }

  /** Resolves at the next local answer pushed. */
  localPushed(): Promise<"local"> {
    return new Promise((resolve) => this.#wake = () => resolve("local"));
  }
}

// Read once a frame, so without a DataView of its own.
function int32At(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
}

/**
 * Relays until either side closes or the relay must stop; closes both
 * connections. Never throws: the result says why it stopped.
 */
export async function relayKafka(
  client: Deno.Conn,
  upstream: Deno.Conn,
  options: RelayKafkaOptions,
): Promise<RelayResult> {
  const { mapBroker, maxHeldBytes = 4 * 1024 * 1024, bufferBytes = 256 * 1024 } = options;
  const { onBytes, onRequest, onAnswer } = options;
  const fromClient = new ConnReader(client, bufferBytes, "client");
  const fromUpstream = new ConnReader(upstream, bufferBytes, "broker");
  const pending = new PendingAnswers();
  let failure: KafkaRelayError | undefined;
  let disconnect: string | undefined;
  let closed = false;
  const close = (error?: unknown) => {
    if (closed) return;
    if (isDisconnect(error)) disconnect = (error as Error).message;
    else if (error !== undefined) failure = relayError(error);
    closed = true;
    for (const conn of [client, upstream]) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const toUpstream = async (chunk: Uint8Array) => {
    await writeAll(upstream, chunk);
    onBytes?.("up", chunk.length);
  };
  const toClient = async (chunk: Uint8Array) => {
    await writeAll(client, chunk);
    onBytes?.("down", chunk.length);
  };

  async function relayRequests(): Promise<void> {
    while (await fromClient.ensure(4)) {
      const size = int32At(fromClient.peek(), 0);
      if (size < 8) throw new KafkaProtocolError(`request frame of ${size} bytes`);
      const { header, noAnswer } = await readRequestHeader(fromClient, size);
      const api = KAFKA_APIS.get(header.apiKey);
      const local = api && header.apiKey === ApiKey.API_VERSIONS &&
        header.apiVersion > api.maxVersion;
      if (local) {
        // Answered here as a broker of our maximum would, so the client retries lower.
        await fromClient.pipe(4 + size, () => Promise.resolve());
        const body = unsupportedApiVersionsBody(api.maxVersion);
        const frame = new KafkaWriter().int32(header.correlationId).raw(body).finish();
        pending.push({ correlationId: header.correlationId, api, version: 0, local: frame });
        continue;
      }
      onRequest?.(api!, header.apiVersion);
      if (!noAnswer) {
        pending.push({
          correlationId: header.correlationId,
          api: api!,
          version: header.apiVersion,
        });
      }
      await fromClient.pipe(4 + size, toUpstream);
    }
  }

  async function relayAnswers(): Promise<void> {
    let incoming: Promise<boolean> | undefined;
    while (true) {
      const head = pending.peek();
      if (head?.local) {
        pending.shift();
        const frame = new KafkaWriter().int32(head.local.length).raw(head.local).finish();
        await toClient(frame);
        continue;
      }
      incoming ??= fromUpstream.ensure(8);
      if (await Promise.race([incoming, pending.localPushed()]) === "local") continue;
      const more = await incoming;
      incoming = undefined;
      if (!more) return;
      const frame = fromUpstream.peek();
      const size = int32At(frame, 0);
      const correlationId = int32At(frame, 4);
      if (size < 4) throw new KafkaProtocolError(`answer frame of ${size} bytes`);
      const request = pending.shift();
      if (!request || request.local) {
        throw new KafkaProtocolError(
          `broker sent an answer (correlation id ${correlationId}) to no request`,
        );
      }
      if (correlationId !== request.correlationId) {
        throw new KafkaProtocolError(
          `broker answered correlation id ${correlationId}, expected ${request.correlationId}`,
        );
      }
      onAnswer?.(size);
      if (rewritesAnswer(request.api.key)) await rewriteAnswer(request, size);
      else await fromUpstream.pipe(4 + size, toClient);
    }
  }

  async function rewriteAnswer({ api, version }: Pending, size: number): Promise<void> {
    const held = Math.min(size, maxHeldBytes);
    const frame = await fromUpstream.take(4 + held);
    const what = `${api.name} v${version} answer`;
    let start;
    try {
      start = await rewriteAnswerFrame(api, version, frame, mapBroker);
    } catch (error) {
      if (error instanceof KafkaTruncatedError && held < size) {
        throw new KafkaRelayError(
          `${what} of ${size} bytes: its broker list does not fit in the ${maxHeldBytes} bytes held`,
        );
      }
      if (error instanceof KafkaProtocolError) {
        throw new KafkaRelayError(`malformed ${what}: ${error.message}`);
      }
      throw new KafkaRelayError(`cannot rewrite ${what}: ${(error as Error).message}`);
    }
    await toClient(start);
    if (held < size) await fromUpstream.pipe(size - held, toClient);
  }

  const requests = relayRequests().then(() => close(), close);
  const answers = relayAnswers().then(() => close(), close);
  await Promise.all([requests, answers]);
  return { ...(failure ? { error: failure } : {}), ...(disconnect ? { disconnect } : {}) };
}

/**
 * Reads a request's header from the buffer (it stays buffered, to be passed on
 * whole), reading more while it is incomplete, up to the buffer's capacity.
 */
async function readRequestHeader(
  reader: ConnReader,
  size: number,
): Promise<
  { header: { apiKey: number; apiVersion: number; correlationId: number }; noAnswer: boolean }
> {
  const limit = Math.min(4 + size, reader.capacity);
  while (true) {
    const bytes = reader.peek();
    const end = Math.min(bytes.length, 4 + size);
    try {
      const fields = new KafkaReader(bytes, 4, end);
      const header = readRequestStart(fields);
      const api = KAFKA_APIS.get(header.apiKey);
      const named = `${apiName(header.apiKey)} v${header.apiVersion}`;
      if (!api) throw new KafkaRelayError(`client sent ${named}, an API this proxy does not relay`);
      if (header.apiVersion < api.minVersion) {
        throw new KafkaRelayError(`client sent ${named}; this proxy relays v${api.minVersion}+`);
      }
      if (header.apiVersion > api.maxVersion) {
        if (api.key === ApiKey.API_VERSIONS) return { header, noAnswer: false };
        throw new KafkaRelayError(
          `client sent ${named}, above the v${api.maxVersion} this proxy relays (it capped ApiVersions)`,
        );
      }
      skipRequestHeaderRest(fields, api, header.apiVersion);
      const noAnswer = api.key === ApiKey.PRODUCE &&
        produceWantsNoAnswer(fields, api, header.apiVersion);
      return { header, noAnswer };
    } catch (error) {
      if (!(error instanceof KafkaTruncatedError)) throw error;
      if (end >= 4 + size) {
        throw new KafkaProtocolError(`request frame of ${size} bytes ends inside its header`);
      }
      if (bytes.length >= limit) {
        throw new KafkaRelayError(`request header longer than ${reader.capacity} bytes`);
      }
      await reader.more();
    }
  }
}

// What a peer going away looks like, as opposed to bytes the relay cannot follow.
function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.NotConnected;
}

function relayError(error: unknown): KafkaRelayError {
  if (error instanceof KafkaRelayError) return error;
  if (error instanceof KafkaProtocolError) return new KafkaRelayError(error.message);
  return new KafkaRelayError((error as Error).message ?? String(error), { cause: error });
}
