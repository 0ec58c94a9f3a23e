/**
 * Lines a shell can `eval`, the way ssh-agent writes them: sh syntax by
 * default, csh when `$SHELL` ends in `csh`, fish when it ends in `fish`.
 *
 * @example
 * ```ts
 * import { evalLines, shellFromEnv } from "./shell.ts";
 *
 * const text = evalLines(shellFromEnv(Deno.env.get("SHELL")), {
 *   ARRAKIS_SERVER: "grpc://localhost:31206",
 *   ARRAKIS_PROXY_PID: "1234",
 * }, "Proxy pid 1234");
 * // ARRAKIS_SERVER=grpc://localhost:31206; export ARRAKIS_SERVER; …
 *
 * unsetLines("sh", ["ARRAKIS_SERVER", "ARRAKIS_PROXY_PID"]);
 * // unset ARRAKIS_SERVER;\nunset ARRAKIS_PROXY_PID;\n (what `ssh-agent -k` does)
 * ```
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Which shell's syntax to write. */
export type ShellSyntax = "sh" | "csh" | "fish";

/** The syntax for a login shell path, as ssh-agent decides it (`$SHELL`). */
export function shellFromEnv(shell: string | undefined): ShellSyntax {
  if (shell?.endsWith("csh")) return "csh";
  if (shell?.endsWith("fish")) return "fish";
  return "sh";
}

// Words every one of the three shells takes as they are.
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

function quote(value: string, syntax: ShellSyntax): string {
  if (PLAIN.test(value)) return value;
  if (syntax === "fish") return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  // csh expands `!` even inside single quotes.
  const quoted = `'${value.replaceAll("'", `'\\''`)}'`;
  return syntax === "csh" ? quoted.replaceAll("!", "\\!") : quoted;
}

/** Sets each variable (exported), then echoes `message`, one statement a line. */
export function evalLines(
  syntax: ShellSyntax,
  variables: Record<string, string>,
  message?: string,
): string {
  const lines = Object.entries(variables).map(([name, raw]) => {
    const value = quote(raw, syntax);
    if (syntax === "csh") return `setenv ${name} ${value};`;
    if (syntax === "fish") return `set -gx ${name} ${value};`;
    return `${name}=${value}; export ${name};`;
  });
  if (message !== undefined) lines.push(`echo ${quote(message, syntax)};`);
  return lines.join("\n") + "\n";
}

/** Unsets each variable, one statement a line (what `ssh-agent -k` prints). */
export function unsetLines(syntax: ShellSyntax, names: string[]): string {
  const unset = syntax === "csh" ? "unsetenv" : syntax === "fish" ? "set -e" : "unset";
  return names.map((name) => `${unset} ${name};\n`).join("");
}

/** Picks the eval syntax from `--sh`/`--csh`/`--fish`, else from `$SHELL`. */
export function chooseShell(flags: { sh?: boolean; csh?: boolean; fish?: boolean }): ShellSyntax {
  const forced = (["sh", "csh", "fish"] as const).filter((name) => flags[name]);
  if (forced.length > 1) throw new UsageError(`--${forced.join(" and --")} conflict`);
  return forced[0] ?? shellFromEnv(Deno.env.get("SHELL"));
}
