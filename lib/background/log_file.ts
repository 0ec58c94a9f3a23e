/**
 * The log of a background proxy: what it would have printed on stderr, each
 * line stamped with the time, in a file readable by the user only. When the
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
import { type Logger, stderrLogger, type Verbosity } from "../log.ts";

/** Default cap of one log file. */
export const LOG_CAP_BYTES = 1024 * 1024;

/** A logger writing to a capped file; dispose of it to close the file. */
export interface FileLogger extends Disposable {
  readonly logger: Logger;
  readonly path: string;
}

const encoder = new TextEncoder();

/** Opens (appends to) `path` with mode 0600 and logs there at `verbosity`. */
export function fileLogger(
  path: string,
  verbosity: Verbosity,
  capBytes: number = LOG_CAP_BYTES,
): FileLogger {
  const open = () => Deno.openSync(path, { write: true, append: true, create: true, mode: 0o600 });
  let file = open();
  let size = file.statSync().size;
  const write = (text: string) => {
    const stamp = new Date().toISOString();
    // Each line gets its time; the logger writes whole lines (no status line off a terminal).
    const lines = text.split("\n").map((line, i, all) =>
      i === all.length - 1 && line === "" ? "" : `${stamp} ${line}`
    ).join("\n");
    const bytes = encoder.encode(lines);
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
  return {
    logger: stderrLogger(verbosity === "quiet" ? "normal" : verbosity, {
      terminal: false,
      write,
    }),
    path,
    [Symbol.dispose]: () => file.close(),
  };
}

/** Strips the time stamp {@link fileLogger} puts before each line. */
export function unstamp(line: string): string {
  return line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, "");
}
