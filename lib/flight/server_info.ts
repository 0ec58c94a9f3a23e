/**
 * What an Arrakis server says about itself: its `server-info` action, which it
 * answers in every auth mode (health checks), unlike the read-gated ones. The
 * proxy reads `auth_mode` to learn whether reads need the user's token.
 *
 * @example
 * ```ts
 * import { serverInfo } from "./server_info.ts";
 *
 * const info = await serverInfo("grpc://127.0.0.1:41001");
 * if (info.authMode === "full") console.log("reads need a token");
 * ```
 *
 * @module
 */
import { doActionBodies } from "./discovery.ts";

/** The Arrakis action that describes the server. */
export const SERVER_INFO_ACTION = "server-info";

/** The parts of a `server-info` answer the proxy uses. */
export interface ServerInfo {
  /**
   * `full` (reads and publishing need a token), `publish` (only publishing),
   * or null (no authentication).
   */
  authMode: "full" | "publish" | null;
  /** The credential mechanisms it accepts (`scitoken`, `static`), when it says. */
  authMethods?: string[];
  /** `server_version`, when it says. */
  version?: string;
}

/**
 * Parses a `server-info` answer (JSON). The remote side is validated: an
 * unknown `auth_mode` is an error rather than a guess.
 */
export function parseServerInfo(body: Uint8Array): ServerInfo {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new Error(`the server-info answer is not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("the server-info answer is not a JSON object");
  }
  const mode = parsed.auth_mode ?? null;
  if (mode !== null && mode !== "full" && mode !== "publish") {
    throw new Error(`the server-info answer has an unknown auth_mode ${JSON.stringify(mode)}`);
  }
  const methods = Array.isArray(parsed.auth_methods)
    ? parsed.auth_methods.filter((m): m is string => typeof m === "string")
    : undefined;
  const version = typeof parsed.server_version === "string" ? parsed.server_version : undefined;
  return { authMode: mode, authMethods: methods, version };
}

/** Asks the Arrakis server at `url` for its `server-info`. */
export async function serverInfo(url: string, timeoutMs?: number): Promise<ServerInfo> {
  const bodies = await doActionBodies(url, SERVER_INFO_ACTION, timeoutMs);
  if (bodies.length !== 1) throw new Error(`server-info: ${bodies.length} results, expected 1`);
  return parseServerInfo(bodies[0]);
}
