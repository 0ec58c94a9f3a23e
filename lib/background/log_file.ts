/**
 * The log of a background proxy: what it would have printed on stderr, each
 * line stamped with the time ({@link LogLine}, the format `-f` reads back), in a file readable by the user only. When the
 * file passes its cap it becomes `FILE.1` (replacing the previous one) and a new
 * file starts, so a proxy that runs for weeks holds at most twice the cap.
 *
 * @example
 * ```ts
 * import { fileLogger } from "./log_file.ts";
 *
 * using log = fileLogger("/run/user/1000/arrakis-proxy/1234.log", "normal");
 * log.logger.info("forwarding 127.0.0.1:41001 → info:31206");
 * ```
 *
 * @module
 */
import type { Logger, Verbosity } from "../log.ts";

/** Default cap of one log file. */
export const LOG_CAP_BYTES = 1024 * 1024;

/** What a log line is: `error` is the line `-f` shows when the proxy exits before it is ready. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/**
 * One line of a background proxy's log, the format both sides share (the
 * proxy writes it, `-f` reads it back while it waits):
 * `2026-12-01T10:00:00.000Z arrakis-proxy: warning: MESSAGE`; `info` and `debug`
 * lines have no level word.
 */
export interface LogLine {
  /** When it was written, ISO 8601 UTC. */
  time: string;
  /** What kind of line. */
  level: LogLevel;
  /** The message, one line. */
  message: string;
}

const PREFIX = "arrakis-proxy: ";
const LINE = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) arrakis-proxy: (?:(warning|error): )?(.*)$/;

/** A log line as written to the file, without its newline. */
export function formatLogLine({ time, level, message }: LogLine): string {
  const word = level === "warning" || level === "error" ? `${level}: ` : "";
  return `${time} ${PREFIX}${word}${message}`;
}

/**
 * Takes a line of the log apart (`debug` lines read as `info`: the format does
 * not tell them apart); undefined for a line not in the format.
 */
export function parseLogLine(text: string): LogLine | undefined {
  const match = LINE.exec(text);
  if (!match) return undefined;
  return { time: match[1], level: (match[2] as LogLevel | undefined) ?? "info", message: match[3] };
}

/** A logger writing to a capped file; dispose of it to close the file. */
export interface FileLogger extends Disposable {
  /** Writes `info`, `warn` and (at `verbose`) `debug` lines; progress is not logged. */
  readonly logger: Logger;
  /** Writes an `error` line, whatever the verbosity. */
  error(message: string): void;
  /** The log file. */
  readonly path: string;
}

const encoder = new TextEncoder();

/**
 * Opens (appends to) `path` with mode 0600 and logs there at `verbosity`
 * (`quiet` logs as `normal`: the log is read when something went wrong).
 */
export function fileLogger(
  path: string,
  verbosity: Verbosity,
  capBytes: number = LOG_CAP_BYTES,
): FileLogger {
  const open = () => Deno.openSync(path, { write: true, append: true, create: true, mode: 0o600 });
  let file = open();
  let size = file.statSync().size;
  const write = (level: LogLevel, text: string) => {
    const time = new Date().toISOString();
    const lines = text.split("\n").map((message) => formatLogLine({ time, level, message }) + "\n");
    const bytes = encoder.encode(lines.join(""));
    if (size > 0 && size + bytes.length > capBytes) {
      file.close();
      Deno.renameSync(path, `${path}.1`);
      file = open();
      size = 0;
    }
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    size += bytes.length;
  };
  const level = verbosity === "quiet" ? "normal" : verbosity;
  return {
    logger: {
      level,
      debug: level === "verbose" ? (message) => write("debug", message) : () => {},
      info: (message) => write("info", message),
      warn: (message) => write("warning", message),
      progress() {},
    },
    error: (message) => write("error", message),
    path,
    [Symbol.dispose]: () => file.close(),
  };
}
