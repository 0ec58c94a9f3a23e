/**
 * The lines `-f` and `stop` print, run through the real shells they are
 * written for: the variables come out set (values with quotes, spaces, `!`
 * and `$` intact), then unset.
 */
import { assertEquals } from "./assert.ts";
import { runCommand } from "./fixtures/processes.ts";
import { evalLines, type ShellSyntax, unsetLines } from "../lib/background/shell.ts";

const SHELLS: Record<ShellSyntax, (lines: string) => string> = {
  // Each prints the two variables, or "unset", after evaluating `lines`.
  sh: (lines) => `eval "$(cat <<'EOF'\n${lines}EOF\n)"; echo "\${A-unset}|\${B-unset}"`,
  csh: (lines) => `${lines}if ($?A) then\necho "$A|$B"\nelse\necho "unset|unset"\nendif`,
  fish: (lines) => `${lines}if set -q A; echo "$A|$B"; else; echo "unset|unset"; end`,
};

async function run(shell: ShellSyntax, script: string): Promise<string> {
  const output = await runCommand(shell, {
    args: ["-c", script],
    env: { SHELL: `/usr/bin/${shell}` },
  });
  assertEquals(output.code, 0, output.stderr);
  return output.stdout.trimEnd();
}

for (const shell of Object.keys(SHELLS) as ShellSyntax[]) {
  Deno.test(`${shell}: evalLines sets, unsetLines unsets`, async () => {
    const odd = `grpc://localhost:31206/it's "odd" $HOME !x`;
    const set = evalLines(shell, { A: odd, B: "1234" });
    assertEquals(await run(shell, SHELLS[shell](set)), `${odd}|1234`);
    const unset = unsetLines(shell, ["A", "B"]);
    assertEquals(await run(shell, SHELLS[shell](set + unset)), "unset|unset");
  });
}
