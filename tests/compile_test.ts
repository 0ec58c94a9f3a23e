/**
 * The single-binary build (`deno task compile`, scripts/compile.ts).
 *
 * The smoke test builds the host's binary and runs it (`--version`, a full proxy
 * run against the namespaced cluster) whenever a denort runtime is at hand
 * (`DENORT_BIN`). Without one no binary can be built here — `deno compile` would
 * download denort from Deno's download host — and the test is reported as
 * ignored, with the reason printed, never passed silently.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "./assert.ts";
import {
  BuildError,
  denortFor,
  denortVariable,
  HOST_TARGET,
  sha256,
  TARGETS,
} from "../scripts/compile.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { startProxy } from "./fixtures/proxy_cli.ts";
import { arrakisCommand, FlightTestClient } from "./fixtures/flight_client.ts";
import denoJson from "../deno.json" with { type: "json" };

const COMPILE = new URL("../scripts/compile.ts", import.meta.url).pathname;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function runCompile(args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", COMPILE, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("compile: without a denort runtime it fails and says how to provide one", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "arrakis-dist-" });
  try {
    const unset = Object.fromEntries(
      ["DENORT_BIN", ...TARGETS.map(denortVariable)].map((name) => [name, ""]),
    );
    const result = await runCompile(["--out-dir", outDir], unset);
    const stderr = decode(result.stderr);
    assertEquals(result.code, 1, stderr);
    assertStringIncludes(stderr, "no denort runtime");
    assertStringIncludes(stderr, "DENORT_BIN");
    assertStringIncludes(stderr, "--download");
    assertEquals(stderr.includes("    at "), false, "a stack trace instead of a message");
    assertEquals([...Deno.readDirSync(outDir)], [], "nothing is built when a runtime is missing");
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("compile: DENORT_BIN is for the host target only; per-target variables for the rest", () => {
  const other = TARGETS.find((target) => target !== HOST_TARGET)!;
  const self = Deno.execPath(); // any existing file: denortFor only checks that it is one
  assertEquals(denortFor(HOST_TARGET, { DENORT_BIN: self }, false), self);
  assertThrows(
    () => denortFor(other, { DENORT_BIN: self }, false),
    BuildError,
    denortVariable(other),
  );
  assertEquals(denortFor(other, { [denortVariable(other)]: self }, false), self);
  assertEquals(denortFor(other, {}, true), undefined, "--download leaves it to deno compile");
  assertThrows(() => denortFor(HOST_TARGET, { DENORT_BIN: "/no/such/denort" }, false), BuildError);
});

Deno.test("compile: an unknown target is refused", async () => {
  const result = await runCompile(["--target", "riscv64-unknown-linux-gnu"], {});
  assertEquals(result.code, 1);
  assertStringIncludes(decode(result.stderr), "unknown target");
});

const denort = Deno.env.get(denortVariable(HOST_TARGET)) || Deno.env.get("DENORT_BIN");
const smokeName = `compiled binary for ${HOST_TARGET}: --version and a full proxy run`;

if (!denort) {
  const reason = `no denort runtime: set DENORT_BIN to the denort ${Deno.version.deno} binary ` +
    `for ${HOST_TARGET} (deno compile cannot download it here; npm has no denort package)`;
  console.log(`compile_test: NOT RUN: ${smokeName}: ${reason}`);
  Deno.test({ name: `${smokeName} (ignored: ${reason})`, ignore: true, fn() {} });
} else {
  Deno.test(smokeName, async () => {
    const outDir = await Deno.makeTempDir({ prefix: "arrakis-dist-" });
    const elsewhere = await Deno.makeTempDir({ prefix: "arrakis-cwd-" });
    try {
      const build = await runCompile(["--target", HOST_TARGET, "--out-dir", outDir], {
        DENORT_BIN: denort,
      });
      assertEquals(build.code, 0, decode(build.stderr));
      const binary = `${outDir}/arrakis-proxy-${HOST_TARGET}`;
      const sums = await Deno.readTextFile(`${outDir}/SHA256SUMS`);
      assertEquals(sums, `${await sha256(binary)}  arrakis-proxy-${HOST_TARGET}\n`);

      // From another directory, with no checkout beside it: everything is embedded.
      const version = await new Deno.Command(binary, { args: ["--version"], cwd: elsewhere })
        .output();
      assertEquals(decode(version.stdout).trim(), `arrakis-proxy ${denoJson.version}`);

      await using cluster = await startCluster();
      await using proxy = await startProxy(
        ["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost],
        { program: [binary], cwd: elsewhere },
      );
      assertMatch(proxy.url, /^grpc:\/\/localhost:\d+$/);
      {
        // Closed before the proxy stops (GOAWAY, denoland/deno#36788).
        using client = FlightTestClient.connect(proxy.url);
        const info = await client.getFlightInfo(arrakisCommand("Stream", {}));
        const uri = info.endpoint[0].location[0].uri;
        assert(uri.startsWith("grpc://127.0.0.1:"), `location not rewritten: ${uri}`);
        using data = FlightTestClient.connect(uri);
        assertEquals((await data.doGet(info.endpoint[0].ticket!.ticket)).table.numRows, 32);
      }
      assertEquals((await proxy.stop()).code, 0);
    } finally {
      await Deno.remove(outDir, { recursive: true });
      await Deno.remove(elsewhere, { recursive: true });
    }
  });
}
