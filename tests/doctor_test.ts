/**
 * `arrakis-proxy doctor SSH_HOST` against the namespaced cluster, through the
 * real command line: a report on stdout, exit 0 when healthy and 1 otherwise.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { runProxy } from "./fixtures/proxy_cli.ts";
import { DOCTOR_HELP, HELP, parseDoctorCli } from "../lib/cli.ts";

Deno.test("doctor: a healthy cluster, every step reported with its time", async () => {
  await using cluster = await startCluster();
  const result = await runProxy(["doctor", "-F", cluster.sshConfigPath, cluster.sshHost]);
  assertEquals(result.code, 0, `${result.stdout}\n${result.stderr}`);
  const out = result.stdout;
  assertMatch(out, /^ssh client\s+OpenSSH/m);
  assertMatch(out, /^ssh connect\s+ok, [\d.]+ ms/m);
  assertMatch(
    out,
    /^arrakis server\s+ok, [\d.]+ ms: grpc:\/\/info:31206 \(from remote \$ARRAKIS_SERVER\)/m,
  );
  assertMatch(
    out,
    /^endpoints\s+ok, [\d.]+ ms: 2 data server\(s\) from the Count over all channels: data-a:40001, data-b:40001/m,
  );
  // The client port is guarded, the child serves on a socket in the private directory.
  assertMatch(
    out,
    /^proxy\s+ok, [\d.]+ ms: grpc:\/\/127\.0\.0\.1:\d+ → \/\S+\/proxy, only uid \d+ admitted \(temporary/m,
  );
  // The stages a run runs, the reuse-connection forward included (the default path of a
  // fetch), with a run's forwards: Unix sockets in the private directory.
  assertMatch(out, /^server forward\s+ok, [\d.]+ ms: \/\S+\/f-[0-9a-f]{8} → info:31206$/m);
  assertMatch(
    out,
    /^reuse forward\s+ok, [\d.]+ ms: \/\S+\/f-[0-9a-f]{8} → info:31206, for reuse-connection/m,
  );
  assertMatch(out, /^endpoint forwards\s+ok, [\d.]+ ms: 2 data endpoint\(s\) forwarded$/m);
  for (const server of ["info:31206", "data-a:40001", "data-b:40001"]) {
    assertMatch(
      out,
      new RegExp(`^endpoint ${server}\\s+ok, [\\d.]+ ms: → /\\S+/f-[0-9a-f]{8}, ListActions`, "m"),
    );
  }
  // Two channels from a Find, streamed through the proxy (its child) from three endpoints.
  assertMatch(
    out,
    /^data fetch\s+ok, [\d.]+ ms: Stream of 2 channel\(s\) from 3 endpoint\(s\): 96 rows, 2 channel column\(s\), GPS \d+\.\d{3}–\d+\.\d{3}/m,
  );
  assertMatch(out, /^result\s+healthy$/m);
});

Deno.test("doctor: a real info server and its real data servers, healthy", async () => {
  await using cluster = await startCluster({ deployment: "real-info" });
  const result = await runProxy(["doctor", "-F", cluster.sshConfigPath, cluster.sshHost]);
  assertEquals(result.code, 0, `${result.stdout}\n${result.stderr}`);
  const out = result.stdout;
  assertMatch(
    out,
    /^endpoints\s+ok, [\d.]+ ms: 2 data server\(s\) from the scope-map action: data-a:40001, data-b:40001/m,
  );
  // The real server's Find and Stream, through the proxy child: its schema wants every field.
  assertMatch(
    out,
    /^data fetch\s+ok, [\d.]+ ms: Stream of 2 channel\(s\) from \d endpoint\(s\): \d+ rows/m,
  );
  assertMatch(out, /^result\s+healthy$/m);
});

Deno.test("doctor: a data server down makes it unhealthy (exit 1) and names it", async () => {
  await using cluster = await startCluster();
  await cluster.stopDataServer("data-b");
  const result = await runProxy([
    "doctor",
    "-F",
    cluster.sshConfigPath,
    "-c",
    "X1:MOCK-CHAN_A",
    cluster.sshHost,
  ]);
  assertEquals(result.code, 1, `${result.stdout}\n${result.stderr}`);
  assertMatch(result.stdout, /^endpoint data-a:40001\s+ok/m);
  assertMatch(result.stdout, /^endpoint data-b:40001\s+FAILED: → \/\S+\/f-[0-9a-f]{8}, /m);
  assertMatch(result.stdout, /^result\s+NOT healthy$/m);
});

Deno.test("doctor: ssh failure is the first failed step, exit 1", async () => {
  await using cluster = await startCluster();
  const result = await runProxy([
    "doctor",
    "-F",
    cluster.sshConfigPath,
    "-o",
    "Port=1",
    cluster.sshHost,
  ]);
  assertEquals(result.code, 1);
  assertMatch(result.stdout, /^ssh connect\s+FAILED: /m);
  assertEquals(/^endpoint /m.test(result.stdout), false);
  assertMatch(result.stdout, /^result\s+NOT healthy$/m);
});

Deno.test("doctor: options, help and usage errors", () => {
  assertEquals(
    parseDoctorCli(["-s", "grpc://info:31206", "-F", "cfg", "-o", "A=b", "-c", "X", "h"]),
    {
      sshHost: "h",
      server: "grpc://info:31206",
      sshConfig: "cfg",
      sshOptions: ["A=b"],
      channels: ["X"],
      verbose: false,
    },
  );
  assertEquals(parseDoctorCli(["--help"]), "help");
  assertStringIncludes(HELP, "doctor SSH_HOST");
  for (const option of ["--server", "--ssh-config", "--ssh-option", "--channel"]) {
    assertStringIncludes(DOCTOR_HELP, option);
  }
});

Deno.test("doctor: usage errors exit 2 with one line", async () => {
  const result = await runProxy(["doctor"]);
  assertEquals(result.code, 2);
  assertEquals(result.stderr.trim(), "arrakis-proxy: doctor: missing SSH_HOST");
});
