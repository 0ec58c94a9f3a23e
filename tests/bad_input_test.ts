/**
 * The real `arrakis-proxy` command given bad or hostile input: each case ends
 * with one clear line on stderr (never a stack trace or "internal error") and
 * the right exit status (2 for usage, 1 at run time), and nothing hostile runs.
 * Needs root (sshd, network namespaces); run with `deno test -A tests/bad_input_test.ts`.
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import { UserError } from "../lib/errors.ts";
import { sshProxy } from "../lib/ssh_proxy.ts";
import { SshConnection } from "../lib/ssh/connection.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { createNetns } from "./fixtures/netns.ts";
import { proxyCommand, type ProxyResult, runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { startSshd } from "./fixtures/sshd.ts";

/** A path that must never come to exist: hostile input tries to `touch` it. */
async function withMarker(test: (marker: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arrakis-marker-" });
  const marker = `${dir}/pwned`;
  try {
    await test(marker);
    assertEquals(await exists(marker), false, `${marker} was created: a command ran`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The run failed with `code` and exactly one line of ours on stderr, including `part`. */
function assertOneLine(result: ProxyResult, code: number, part: string | RegExp): string {
  const ours = result.stderr.split("\n").filter((line) => line.startsWith("arrakis-proxy:"));
  assertEquals(ours.length, 1, result.stderr);
  const line = ours[0];
  if (typeof part === "string") assertStringIncludes(line, part);
  else assertMatch(line, part);
  for (const bad of ["internal error", "    at ", "Error:", "Uncaught"]) {
    assertEquals(
      result.stderr.includes(bad),
      false,
      `${JSON.stringify(bad)} in:\n${result.stderr}`,
    );
  }
  assertEquals(result.stdout, "", "nothing on stdout");
  assertEquals(result.code, code, result.stderr);
  return line;
}

Deno.test("an SSH_HOST starting with '-' never reaches ssh, however it is passed", async () => {
  await withMarker(async (marker) => {
    const proxyCommandOption = `-oProxyCommand=touch ${marker}`;
    // After "--" it is the COMMAND, so the host is missing.
    assertOneLine(await runProxy(["-q", "--", proxyCommandOption]), 2, "missing SSH_HOST");
    // "-o…" alone is the -o option (the user's own ssh option), with no host.
    assertOneLine(await runProxy(["-q", proxyCommandOption]), 2, "missing SSH_HOST");
    // parseArgs passes a lone "-" as a positional.
    assertOneLine(await runProxy(["-q", "-"]), 2, `invalid SSH_HOST "-"`);
    // Values starting with "-" are refused by parseArgs unless written --opt=value.
    assertOneLine(
      await runProxy(["-q", "-s", proxyCommandOption, "host"]),
      2,
      "'-s' argument is ambiguous",
    );
  });
});

Deno.test("the library refuses an ssh host starting with '-' before ssh runs", async () => {
  await withMarker(async (marker) => {
    for (const host of [`-oProxyCommand=touch ${marker}`, "-Fx", "-", "a\nb", "a b"]) {
      const error = await assertRejects(
        () => sshProxy(host, { listen: "127.0.0.1:0", interactive: false }),
        UserError,
      );
      assertMatch(error.message, /^refusing ssh host .*(starts with "-"|whitespace)/);
      await assertRejects(() => SshConnection.connect({ host, interactive: false }), UserError);
    }
  });
});

Deno.test("a hostile remote ARRAKIS_SERVER is refused with one line", async () => {
  await withMarker(async (marker) => {
    const hostile = [
      `-oProxyCommand=touch ${marker}:22`,
      `grpc://info:31206 -oProxyCommand=touch ${marker}`,
      `grpc://info:31206/$(touch ${marker})`,
      "grpc://user@info:31206",
      "http://info:31206",
      "grpc://info:99999",
      "grpc://-info:31206",
    ];
    for (const value of hostile) {
      await using sshd = await startSshd({ env: { ARRAKIS_SERVER: value } });
      const result = await runProxy([
        "-q",
        "-l",
        "127.0.0.1:0",
        "-F",
        sshd.sshConfigPath,
        sshd.hostAlias,
      ]);
      assertOneLine(result, 1, "invalid Arrakis server");
    }
  });
});

Deno.test("a bad --server is bad usage: one line, exit 2, before ssh runs", async () => {
  await withMarker(async (marker) => {
    const ssh = ["-o", `ProxyCommand=touch ${marker}`, "somehost"];
    for (
      const [server, why] of [
        ["ftp://info:31206", "scheme ftp:// is not grpc:// or grpc+tcp://"],
        ["grpc://info:31206/path", "only host:port is allowed"],
        ["grpc://info", "missing :port"],
        [`--server=-oProxyCommand=touch ${marker}`, "invalid Arrakis server"],
      ]
    ) {
      const args = server.startsWith("--") ? [server] : ["-s", server];
      assertOneLine(await runProxy(["-q", ...args, ...ssh]), 2, why);
      assertOneLine(await runProxy(["doctor", ...args, ...ssh]), 2, why);
    }
  });
});

Deno.test("an unknown option: one short line naming it and the help to read", async () => {
  assertOneLine(
    await runProxy(["--bogus", "h"]),
    2,
    /^arrakis-proxy: unknown option '--bogus'; see --help$/,
  );
  assertOneLine(
    await runProxy(["doctor", "-l", "h"]),
    2,
    /^arrakis-proxy: unknown option '-l'; see doctor --help$/,
  );
  assertOneLine(
    await runProxy(["stop", "--json"]),
    2,
    /^arrakis-proxy: unknown option '--json'; see stop --help$/,
  );
});

Deno.test("--listen on a port in use: one line, exit 1, before ssh runs", async () => {
  await withMarker(async (marker) => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const result = await runProxy([
      "-q",
      "-l",
      `127.0.0.1:${listener.addr.port}`,
      "-o",
      `ProxyCommand=touch ${marker}`,
      "somehost",
    ]);
    assertOneLine(
      result,
      1,
      `cannot listen on 127.0.0.1:${listener.addr.port}: address already in use`,
    );
  });
});

Deno.test("an ssh host that does not resolve: one line, exit 1", async () => {
  // Inside an empty namespace: the lookup cannot leave the machine.
  await using ns = await createNetns();
  const output = await ns.spawn(
    proxyCommand(["-q", "-l", "127.0.0.1:0", "-F", "/dev/null", "no-such-host.invalid"]),
    { stdin: "null", stdout: "piped", stderr: "piped" },
  ).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const result = {
    code: output.code,
    stdout: decode(output.stdout),
    stderr: decode(output.stderr),
  };
  assertOneLine(result, 1, /ssh to no-such-host\.invalid failed \(exit 255\): .*resolve/i);
});

Deno.test("a refused ssh connection: one line, exit 1", async () => {
  const port = getFreePort("127.0.0.1");
  const result = await runProxy([
    "-q",
    "-l",
    "127.0.0.1:0",
    "-F",
    "/dev/null",
    "-o",
    `Port=${port}`,
    "-o",
    "BatchMode=yes",
    "127.0.0.1",
  ]);
  assertOneLine(result, 1, /ssh to 127\.0\.0\.1 failed \(exit 255\): .*Connection refused/);
});

Deno.test("no ssh on PATH: one line, exit 1", async () => {
  const result = await runProxy(["-q", "-l", "127.0.0.1:0", "somehost"], {
    env: { PATH: "/nonexistent" },
  });
  const line = assertOneLine(result, 1, "ssh not found");
  assertEquals(line.includes("--ssh "), false, "the CLI has no --ssh option to suggest");
});

Deno.test("--listen 0.0.0.0 needs --allow-remote-clients, and then warns", async () => {
  const refused = await runProxy(["-q", "-l", "0.0.0.0:0", "somehost"]);
  assertOneLine(refused, 2, "--allow-remote-clients");

  await using sshd = await startSshd();
  // A server that is not there: the proxy still starts (forwards open on demand).
  await using proxy = await startProxy([
    "-l",
    "0.0.0.0:0",
    "--allow-remote-clients",
    "-s",
    `grpc://127.0.0.1:${getFreePort("127.0.0.1")}`,
    "-F",
    sshd.sshConfigPath,
    sshd.hostAlias,
  ]);
  assertMatch(proxy.url, /^grpc:\/\/0\.0\.0\.0:\d+$/);
  assertMatch(proxy.stderr(), /warning: listening on 0\.0\.0\.0: anyone who can reach it/);
  assert(!proxy.stderr().includes("internal error"));
});
