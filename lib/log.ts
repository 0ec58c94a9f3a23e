/**
 * Human-readable progress on stderr. stdout is reserved for the export line.
 *
 * On a terminal, a status line ("connecting to HOST…", "forwarding 3/12
 * endpoints") is rewritten in place below the permanent lines; elsewhere (a
 * pipe, a log file) only the permanent lines are written, which already say the
 * same thing one fact a line. No colour is used, so `NO_COLOR` holds trivially.
 *
 * @example
 * ```ts
 * import { stderrLogger } from "./log.ts";
 *
 * const logger = stderrLogger("normal");
 * logger.progress("connecting to login.example.org…");
 * logger.info("forwarding 127.0.0.1:41001 → info:31206");
 * logger.progress(""); // clear the status line before printing anything else
 * ```
 *
 * @module
 */

/** Verbosity of a {@link Logger}: `verbose` shows `debug`, `quiet` shows nothing. */
export type Verbosity = "quiet" | "normal" | "verbose";

/** Where the library reports what it does: the one channel, passed once. */
export interface Logger {
  /**
   * What this logger shows; producers elsewhere (the proxy child) skip sending
   * `debug` lines unless it is `verbose`.
   */
  readonly level: Verbosity;
  /** Detail for `--verbose`: ssh command lines, each RPC. */
  debug(message: string): void;
  /** Normal progress: host, server, each forward. */
  info(message: string): void;
  /** Something the user should know about; shown unless `--quiet`. */
  warn(message: string): void;
  /**
   * A transient status ("forwarding 3/12 endpoints"), replaced by the next one;
   * `""` clears it. Shown in place on a terminal only.
   */
  progress(status: string): void;
}

/** A logger that says nothing (library default). */
export const silentLogger: Logger = {
  level: "quiet",
  debug() {},
  info() {},
  warn() {},
  progress() {},
};

/** Options of {@link stderrLogger}. */
export interface StderrLoggerOptions {
  /** Line prefix. @default {"arrakis-proxy"} */
  prefix?: string;
  /** Draw the status line in place. @default {Deno.stderr.isTerminal()} */
  terminal?: boolean;
  /** Where the text goes. @default {stderr} */
  write?: (text: string) => void;
}

// Carriage return, then erase to the end of the line.
const CLEAR_LINE = "\r\x1b[K";

/** Writes lines to stderr, prefixed with the program name; see the module doc. */
export function stderrLogger(
  verbosity: Verbosity = "normal",
  options: StderrLoggerOptions | string = {},
): Logger {
  const { prefix = "arrakis-proxy", terminal = Deno.stderr.isTerminal(), write = writeStderr } =
    typeof options === "string" ? { prefix: options } : options;
  let status = "";
  const line = (message: string) => {
    // A permanent line goes above the status line, which is then drawn again.
    const redraw = status ? `${prefix}: ${status}` : "";
    write(`${status ? CLEAR_LINE : ""}${prefix}: ${message}\n${redraw}`);
  };
  const progress = (next: string) => {
    if (!terminal || verbosity === "quiet" || next === status) return;
    write(next ? `${CLEAR_LINE}${prefix}: ${next}` : CLEAR_LINE);
    status = next;
  };
  return {
    level: verbosity,
    debug: verbosity === "verbose" ? line : () => {},
    info: verbosity === "quiet" ? () => {} : line,
    warn: verbosity === "quiet" ? () => {} : (message) => line(`warning: ${message}`),
    progress,
  };
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}
