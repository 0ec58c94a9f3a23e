/**
 * What the parent and the proxy child say to each other: JSON lines over the
 * child's stdin and stdout, the messages' shapes, and the table of requests
 * still waiting for an answer (each side has one).
 *
 * @example
 * ```ts
 * import { jsonLines, Pending, writeMessage } from "./protocol.ts";
 *
 * const pending = new Pending<string>();
 * const { id, promise } = pending.open();
 * pending.settle(id, { value: "127.0.0.1:41002" });
 * await promise; // "127.0.0.1:41002"
 * ```
 *
 * @module
 */
import type { Discovery } from "../flight/discovery.ts";
import type { SampleFetch } from "../flight/client.ts";
import type { ProxyToken } from "../flight/proxy.ts";
import type { ServerInfo } from "../flight/server_info.ts";
import type { Verbosity } from "../log.ts";
import type { KafkaAddress, KafkaMode } from "../flight/kafka_locations.ts";
import { readLines } from "../lines.ts";

/** First argument that makes `main.ts` (or the compiled binary) run as a proxy child. */
export const PROXY_CHILD_FLAG = "--internal-proxy-child";

/**
 * grpc-js channel options as plain data (they cross the pipe as JSON); the
 * parent names no grpc-js type, so that it never loads grpc-js.
 */
export type ChannelOptions = Record<string, string | number>;

/**
 * What the parent asks the child to do over gRPC, by name: its arguments and
 * what it answers. A run asks `discover`; doctor also asks `probe` (one
 * ListActions round trip to a forward, in ms) and `fetch` (a small Stream
 * through the child's own proxy, at the URL clients use); `serverInfo` learns
 * whether reads need a token.
 */
export interface ChildCalls {
  discover: { args: { timeoutMs?: number }; result: Discovery };
  serverInfo: { args: { timeoutMs?: number }; result: ServerInfo };
  probe: { args: { url: string; timeoutMs: number }; result: number };
  fetch: { args: { url: string; channels: string[]; timeoutMs: number }; result: SampleFetch };
}

/** One request to the child: its name and arguments. */
export type ChildCall = {
  [K in keyof ChildCalls]: { method: K; args: ChildCalls[K]["args"] };
}[keyof ChildCalls];

/** Parent → child. */
export type ToChild =
  | {
    type: "start";
    backend: string;
    listen: string;
    locations: [string, string][];
    channelOptions?: ChannelOptions;
    unavailable?: string;
    /** The parent logger's level: the child sends debug lines only at `verbose`. */
    level: Verbosity;
    remoteClients?: boolean;
    /** `--kafka`; left out, kafka:// locations pass unchanged. */
    kafka?: KafkaMode;
    /** `--split-streams K`; left out, FlightInfo endpoints are not split. */
    splitStreams?: number;
    /** The user's token, in place before the first call. */
    token?: ProxyToken;
  }
  /**
   * The user's token changed (renewed, expired, none fits any more): the pipe
   * is the only place it travels, and nothing logs this message.
   */
  | { type: "token"; token?: ProxyToken }
  | { type: "resolved"; id: number; local?: string; error?: string }
  /** A Kafka broker's local listener; neither field when the broker cannot be forwarded. */
  | { type: "kafkaResolved"; id: number; local?: KafkaAddress; error?: string }
  | { type: "unavailable"; reason?: string }
  | { type: "set"; remote: string; local: string }
  | { type: "call"; id: number; call: ChildCall };

/** Child → parent. */
export type FromChild =
  | { type: "ready"; address: string }
  | { type: "failed"; message: string }
  | { type: "resolve"; id: number; host: string; port: number; netloc: string }
  /** A kafka:// location's broker, to be forwarded (`--kafka forward`). */
  | { type: "resolveKafka"; id: number; host: string; port: number }
  | { type: "log"; level: "debug" | "info" | "warn"; message: string }
  | { type: "answer"; id: number; value?: unknown; error?: string };

/** The parsed messages of a JSON-lines stream; blank lines are skipped. */
export async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  for await (const line of readLines(stream)) if (line.trim() !== "") yield JSON.parse(line);
}

const encoder = new TextEncoder();

/** One message as a JSON line. */
export function encodeMessage(message: ToChild | FromChild): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/** Writes one message to a synchronous writer (the child's stdout) in full. */
export function writeMessage(
  writer: { writeSync(bytes: Uint8Array): number },
  message: FromChild,
): void {
  const bytes = encodeMessage(message);
  for (let written = 0; written < bytes.length;) {
    written += writer.writeSync(bytes.subarray(written));
  }
}

/** Requests sent and not yet answered, by id. */
export class Pending<T> {
  #waiters = new Map<number, PromiseWithResolvers<T>>();
  #nextId = 0;

  /** A new request id and the promise its answer settles. */
  open(): { id: number; promise: Promise<T> } {
    const id = this.#nextId++;
    const waiter = Promise.withResolvers<T>();
    this.#waiters.set(id, waiter);
    return { id, promise: waiter.promise.finally(() => this.#waiters.delete(id)) };
  }

  /** Answers request `id` with a value, or fails it with an error message. */
  settle(id: number, answer: { value: T } | { error: string }): void {
    const waiter = this.#waiters.get(id);
    if ("value" in answer) waiter?.resolve(answer.value);
    else waiter?.reject(new Error(answer.error));
  }

  /** Fails every request still waiting (the other side is gone). */
  failAll(error: Error): void {
    for (const waiter of this.#waiters.values()) waiter.reject(error);
  }
}
