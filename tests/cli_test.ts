import { assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { DOCTOR_HELP, DOCTOR_OPTIONS, HELP, OPTIONS, parseCli } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";
import { isLoopbackHost, parseListenAddress } from "../lib/netloc.ts";

Deno.test("options, host and command split at --", () => {
  const cli = parseCli([
    "-s",
    "grpc://info:31206",
    "-l",
    "localhost:4000",
    "-F",
    "cfg",
    "-o",
    "Port=2222",
    "--ssh-option",
    "User=me",
    "login",
    "-v",
    "--",
    "python",
    "-c",
    "print(1)",
  ]);
  assertEquals(cli, {
    sshHost: "login",
    command: ["python", "-c", "print(1)"],
    server: "grpc://info:31206",
    listen: "localhost:4000",
    sshConfig: "cfg",
    sshOptions: ["Port=2222", "User=me"],
    allowRemoteClients: false,
    reuseThroughProxy: false,
    verbosity: "verbose",
  });
});

Deno.test("--kafka names a mode; forward when left out", () => {
  assertEquals((parseCli(["--kafka", "flight", "login"]) as { kafka?: string }).kafka, "flight");
  assertEquals((parseCli(["login"]) as { kafka?: string }).kafka, undefined);
});

Deno.test("--split-streams takes a count of parts; no split when left out", () => {
  assertEquals(
    (parseCli(["--split-streams", "4", "login"]) as { splitStreams?: number }).splitStreams,
    4,
  );
  assertEquals((parseCli(["login"]) as { splitStreams?: number }).splitStreams, undefined);
});

Deno.test("help and version win over everything else", () => {
  assertEquals(parseCli(["--help", "host"]), "help");
  assertEquals(parseCli(["-V"]), "version");
});

Deno.test("bad usage is a UsageError with one clear line", () => {
  for (
    const [args, message] of [
      [[], "missing SSH_HOST"],
      [["--bogus", "host"], "--bogus"],
      [["host", "python"], "put a command after --"],
      [["host", "--"], "missing COMMAND"],
      [["-v", "-q", "host"], "conflict"],
      [["-s"], "--server"],
      [["--kafka", "carrier-pigeon", "host"], "--kafka"],
      [["--split-streams", "1", "host"], "--split-streams"],
      [["--split-streams", "17", "host"], "--split-streams"],
      [["--split-streams", "4x", "host"], "--split-streams"],
      [["--split-streams", "-2", "host"], "--split-streams"],
    ] as const
  ) {
    const error = assertThrows(() => parseCli([...args]), UsageError);
    assertStringIncludes(error.message, message);
    assertEquals(error.message.includes("\n"), false);
    assertEquals(error.exitCode, 2);
  }
});

Deno.test("help lists every option the parser accepts", () => {
  const listed = (help: string, options: Record<string, { type: string; short?: string }>) => {
    for (const [name, { short }] of Object.entries(options)) {
      assertStringIncludes(help, short ? `-${short}, --${name}` : `--${name}`);
    }
  };
  listed(HELP, OPTIONS);
  listed(DOCTOR_HELP, DOCTOR_OPTIONS);
});

Deno.test("listen addresses parse, IPv6 in brackets; only loopback counts as loopback", () => {
  assertEquals(parseListenAddress("localhost:31206"), { host: "localhost", port: 31206 });
  assertEquals(parseListenAddress("[::1]:0"), { host: "::1", port: 0 });
  assertThrows(() => parseListenAddress("31206"), UsageError);
  assertThrows(() => parseListenAddress("host:70000"), UsageError);
  assertEquals(isLoopbackHost("127.0.0.1"), true);
  assertEquals(isLoopbackHost("::1"), true);
  assertEquals(isLoopbackHost("0.0.0.0"), false);
  assertEquals(isLoopbackHost("192.0.2.1"), false);
});

/** The modules `root` loads before it runs: its static (not dynamic, not type-only) imports. */
async function staticGraph(root: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, import.meta.url).pathname],
    stdout: "piped",
    stderr: "null",
  }).output();
  const { modules } = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const bySpecifier = new Map(modules.map((module) => [module.specifier, module]));
  const seen = new Set<string>();
  const visit = (specifier: string) => {
    if (seen.has(specifier)) return;
    seen.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) visit(dependency.code.specifier);
    }
  };
  visit(new URL(root, import.meta.url).href);
  return [...seen];
}

Deno.test("a run's ssh login starts before the rest loads: cli.ts loads no stages, HTTP/2 or npm", async () => {
  // What main.ts loads before sshProxy spawns `ssh -M` (it imports stages.ts only after).
  const loaded = await staticGraph("../lib/cli.ts");
  const heavy = loaded.filter((specifier) =>
    /\/lib\/(stages|doctor)\.ts$|\/lib\/(http2|session|flight\/(proxy|discovery|grpc))\b|\/background\/(starter|daemon_|running)|^npm:/
      .test(specifier)
  );
  assertEquals(heavy, []);
  assertEquals(loaded.some((specifier) => specifier.endsWith("/lib/ssh/login.ts")), true);
});
