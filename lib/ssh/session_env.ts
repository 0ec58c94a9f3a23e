/**
 * Reading remote environment variables in the keepalive session every
 * connection opens anyway, so they cost no second remote shell: the session's
 * command prints each value between two marker lines, then `exec cat`.
 *
 * @example
 * ```ts
 * import { readSessionEnv, sessionEnvCommand } from "./session_env.ts";
 *
 * sessionEnvCommand(["ARRAKIS_SERVER"]);
 * // "echo arrakis-proxy-value-of-ARRAKIS_SERVER; printenv ARRAKIS_SERVER; … exec cat"
 * declare const stdout: ReadableStream<Uint8Array>;
 * (await readSessionEnv(stdout, ["ARRAKIS_SERVER"]))?.get("ARRAKIS_SERVER");
 * ```
 *
 * @module
 */
import { readLines } from "../lines.ts";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_BEGIN = "arrakis-proxy-value-of-";
const ENV_END = "arrakis-proxy-end-of-";

/**
 * Reads `echo BEGIN NAME; printenv NAME; echo END NAME` output: a value is what
 * comes between its two markers (whatever a chatty profile printed before is
 * ignored). Resolves undefined if the session ends first.
 */
export async function readSessionEnv(
  stdout: ReadableStream<Uint8Array>,
  names: string[],
): Promise<Map<string, string> | undefined> {
  const values = new Map<string, string>();
  let current: string[] | undefined;
  try {
    // Leaving the loop stops reading: `cat` prints nothing more.
    for await (const line of readLines(stdout)) {
      if (line.startsWith(ENV_BEGIN)) current = [];
      else if (line.startsWith(ENV_END) && current) {
        values.set(line.slice(ENV_END.length), current.join("\n").trim());
        current = undefined;
        if (values.size >= names.length) return values;
      } else current?.push(line);
    }
  } catch {
    // The session ended badly; the caller asks with exec instead.
  }
  return undefined;
}

/**
 * The keepalive session's remote command: report `names`, then keep the session
 * open (`exec cat` until our pipe closes). `;`, printenv, echo and exec mean the
 * same in sh, bash, zsh, csh, tcsh and fish.
 *
 * @throws {TypeError} for a name that is not a variable name (a programming error).
 */
export function sessionEnvCommand(names: readonly string[]): string {
  for (const name of names) {
    if (!ENV_NAME.test(name)) throw new TypeError(`invalid variable name ${name}`);
  }
  return [
    ...names.flatMap((name) => [
      `echo ${ENV_BEGIN}${name};`,
      `printenv ${name};`,
      `echo ${ENV_END}${name};`,
    ]),
    "exec cat",
  ].join(" ");
}
