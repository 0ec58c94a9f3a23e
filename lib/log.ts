/**
 * Human-readable progress on stderr. stdout is reserved for the export line.
 *
 * @module
 */

/** Where the library reports what it does. */
export interface Logger {
  /** Detail for `--verbose`: ssh command lines, each RPC. */
  debug(message: string): void;
  /** Normal progress: host, server, each forward. */
  info(message: string): void;
  /** Something the user should know about; shown unless `--quiet`. */
  warn(message: string): void;
}

/** A logger that says nothing (library default). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

/** Verbosity of {@link stderrLogger}. */
export type Verbosity = "quiet" | "normal" | "verbose";

/** Writes lines to stderr, prefixed with the program name. */
export function stderrLogger(verbosity: Verbosity = "normal", prefix = "arrakis-proxy"): Logger {
  const encoder = new TextEncoder();
  const write = (line: string) => Deno.stderr.writeSync(encoder.encode(`${prefix}: ${line}\n`));
  return {
    debug: verbosity === "verbose" ? write : () => {},
    info: verbosity === "quiet" ? () => {} : write,
    warn: verbosity === "quiet" ? () => {} : (message) => write(`warning: ${message}`),
  };
}
