/**
 * Parsing a command line: `node:util`'s `parseArgs`, with its errors turned into
 * one {@link UsageError} line that says which help to read (`parseArgs` itself
 * explains unknown options at length, in a sentence about `--`).
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./command_line.ts";
 *
 * const { values } = parseCommandLine({
 *   args: ["--json"],
 *   options: { json: { type: "boolean" } },
 * }, "status --help");
 * // values.json === true; ["--bogus"] throws UsageError("unknown option '--bogus'; see status --help")
 * ```
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";

/** `parseArgs(config)`, or a UsageError ending in `; see HELP`. */
export function parseCommandLine<T extends ParseArgsConfig>(
  config: T,
  help: string,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    const option = /'([^']+)'/.exec(message)?.[1];
    const why = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option
      ? `unknown option '${option}'`
      : message.split("\n")[0].replace(/^\w/, (first) => first.toLowerCase());
    throw new UsageError(`${why}; see ${help}`);
  }
}
