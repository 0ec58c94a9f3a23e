/**
 * `deno task demo`, exactly as the README says to run it (as root: the private
 * cluster lives in a network namespace).
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function demo(env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "demo"],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output();
}

Deno.test("deno task demo: a proxy run against a private cluster, and a table of the data", async () => {
  const result = await demo();
  const stdout = new TextDecoder().decode(result.stdout);
  const stderr = new TextDecoder().decode(result.stderr);
  assertEquals(result.code, 0, `${stdout}\n${stderr}`);
  assertStringIncludes(stdout, "network namespace");
  assertMatch(stdout, /stdout: export ARRAKIS_SERVER=grpc:\/\/localhost:\d+/);
  // Each channel in the table, with 32 samples; one through the data-a forward.
  for (const channel of ["X1:DEMO-SEISMIC_Z", "X1:DEMO-STRAIN_H", "X1:DEMO-TEMPERATURE"]) {
    assertMatch(stdout, new RegExp(`${channel}\\s+.*16 Hz\\s+32\\s`));
  }
  // The table row: the private socket of the data-a forward.
  assertMatch(stdout, /X1:DEMO-\S+\s+\/\S+\/f-[0-9a-f]{8} → data-a:40001/);
  assertStringIncludes(stdout, "96 rows from 3 endpoints");
  assertStringIncludes(stdout, "arrakis-proxy exited with 0");
  assertStringIncludes(stdout, "demo: ok");
});

Deno.test("deno task demo without sshd says how to install it", async () => {
  const result = await demo({ ARRAKIS_DEMO_SSHD: "/nonexistent/sshd" });
  assertEquals(result.code, 1);
  assertStringIncludes(new TextDecoder().decode(result.stderr), "apt-get install openssh-server");
});
