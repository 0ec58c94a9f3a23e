/**
 * The proxy child's main: read the configuration from the parent, serve a
 * FlightProxy, ask the parent for new forwards, make the calls it asks for
 * (discovery; doctor's probes and sample fetch), and exit when stdin closes. All of the program's gRPC runs here (see
 * `parent.ts` for why), so this is the only entry point that loads
 * grpc-js.
 *
 * @example
 * ```ts
 * import { runProxyChild } from "./child.ts";
 *
 * Deno.exit(await runProxyChild()); // what `main.ts --internal-proxy-child` does
 * ```
 *
 * @module
 */
import { FlightProxy, type ProxyToken } from "../flight/proxy.ts";
import { LocationMap } from "../flight/locations.ts";
import { type KafkaAddress, KafkaLocations } from "../flight/kafka_locations.ts";
import { CallError, type CallTarget, discoverEndpoints } from "../flight/discovery.ts";
import { serverInfo } from "../flight/server_info.ts";
import type { Logger, Verbosity } from "../log.ts";
import {
  type ChildCall,
  type ChildCalls,
  type FromChild,
  jsonLines,
  Pending,
  PROXY_CHILD_FLAG,
  type ToChild,
  writeMessage,
} from "./protocol.ts";

/**
 * The child's side: read the configuration from stdin, serve a FlightProxy, ask
 * the parent for new forwards, and exit when stdin closes.
 */
export async function runProxyChild(): Promise<number> {
  // Ctrl-C in the terminal reaches the whole process group; the parent decides.
  for (const signal of ["SIGINT", "SIGHUP"] as const) Deno.addSignalListener(signal, () => {});
  const out = (message: FromChild) => writeMessage(Deno.stdout, message);
  // The status line is the parent's; a line per call over the pipe costs, so
  // debug lines go only to a parent that shows them.
  const childLogger = (level: Verbosity): Logger => ({
    level,
    debug: level === "verbose"
      ? (message) => out({ type: "log", level: "debug", message })
      : () => {},
    info: (message) => out({ type: "log", level: "info", message }),
    warn: (message) => out({ type: "log", level: "warn", message }),
    progress() {},
  });
  const forwards = new Pending<string>();
  const brokers = new Pending<KafkaAddress | undefined>();
  let proxy: FlightProxy | undefined;
  let backend = "";
  let token: ProxyToken | undefined;

  for await (const raw of jsonLines(Deno.stdin.readable)) {
    const message = raw as ToChild;
    switch (message.type) {
      case "start": {
        backend = message.backend;
        token = message.token;
        const locations = new LocationMap(
          message.locations,
          (remote) => {
            const { id, promise } = forwards.open();
            out({ type: "resolve", id, ...remote });
            return promise;
          },
        );
        const logger = childLogger(message.level);
        // The parent owns SSH and the Kafka listeners: brokers are asked of it.
        const kafka = message.kafka && new KafkaLocations({
          mode: message.kafka,
          resolver: ({ host, port }) => {
            const { id, promise } = brokers.open();
            out({ type: "resolveKafka", id, host, port });
            return promise;
          },
          warn: (line) => logger.warn(line),
        });
        try {
          proxy = await FlightProxy.start({
            backend: message.backend,
            listen: message.listen,
            locations,
            logger,
            channelOptions: message.channelOptions,
            remoteClients: message.remoteClients,
            kafka,
            token,
            splitStreams: message.splitStreams,
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
        forwards.settle(
          message.id,
          message.local !== undefined
            ? { value: message.local }
            : { error: message.error ?? "forward failed" },
        );
        break;
      }
      case "kafkaResolved":
        brokers.settle(
          message.id,
          message.error === undefined ? { value: message.local } : { error: message.error },
        );
        break;
      case "token":
        token = message.token;
        proxy?.setToken(token);
        break;
      case "unavailable":
        proxy?.setUnavailable(message.reason);
        break;
      case "set":
        proxy?.locations.set(message.remote, message.local);
        break;
      case "call": {
        const { id } = message;
        // A call made before the parent said anything of a token (discovery beside
        // server-info) was not refused because of one: no token line for it.
        const told = token !== undefined;
        answer(message.call, proxy?.backendClient ?? backend, token?.authorization).then(
          (value) => out({ type: "answer", id, value }),
          (error) =>
            out({
              type: "answer",
              id,
              error: told ? explained(error, proxy) : (error as Error).message,
            }),
        );
        break;
      }
    }
  }
  await proxy?.close();
  return 0;
}

/**
 * An own call's error as the parent gets it: a refusal of the user's token is
 * said once, in the proxy's warning, and this points at it.
 */
function explained(error: unknown, proxy: FlightProxy | undefined): string {
  const message = (error as Error).message;
  if (!(error instanceof CallError) || proxy?.explainRefusal(error.code) === undefined) {
    return message;
  }
  return `refused, see the token warning: ${message}`;
}

/**
 * Makes one call the parent asked for; `backend` is the server (the proxy's
 * channel to it, once it runs), `authorization` the user's token (the proxy's
 * own calls carry it too).
 */
async function answer(
  call: ChildCall,
  backend: CallTarget,
  authorization: string | undefined,
): Promise<ChildCalls[ChildCall["method"]]["result"]> {
  switch (call.method) {
    case "discover":
      return await discoverEndpoints(backend, call.args.timeoutMs, authorization);
    case "serverInfo":
      return await serverInfo(backend, call.args.timeoutMs);
    // Loaded on first use: a run never probes, and the client brings apache-arrow.
    case "probe": {
      const { pingFlight } = await import("../flight/client.ts");
      return await pingFlight(call.args.url, call.args.timeoutMs, authorization);
    }
    case "fetch": {
      const { sampleFetch } = await import("../flight/client.ts");
      return await sampleFetch(call.args.url, { ...call.args, authorization });
    }
  }
}

// Run directly (see defaultChildCommand in parent.ts): less to load than main.ts.
if (import.meta.main && Deno.args[0] === PROXY_CHILD_FLAG) Deno.exit(await runProxyChild());
