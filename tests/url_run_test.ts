/**
 * `deno run -A <url>/main.ts` with nothing else local: the checkout is served
 * over HTTP on 127.0.0.1 and run from an empty directory with a fresh DENO_DIR
 * (the npm cache is shared, so no package is downloaded twice), so no deno.json,
 * import map or local path can help. The end-to-end runs need root (namespaced
 * cluster).
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { isolatedDenoEnv, serveCheckout } from "./fixtures/served_checkout.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { isAlive, waitFor } from "./fixtures/processes.ts";
import {
  arrakisCommand,
  endpointLocations,
  FlightTestClient,
  streamRowsVia,
} from "./fixtures/flight_client.ts";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = new URL("../", import.meta.url);

/** Every `.ts` file a user's `deno run <url>/main.ts` or `import <url>/mod.ts` may load. */
async function shippedModules(): Promise<string[]> {
  const files = ["main.ts", "mod.ts"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) await walk(`${path}/`);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  await walk("lib/");
  return files;
}

Deno.test("shipped modules import only relative paths, node: and pinned npm: specifiers", async () => {
  const bare: string[] = [];
  for (const file of await shippedModules()) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    const code = text.replace(/\/\*\*[\s\S]*?\*\//g, ""); // examples in JSDoc are not imports
    for (const [, specifier] of code.matchAll(/\bfrom\s+"([^"]+)"/g)) {
      const ok = specifier.startsWith("./") || specifier.startsWith("../") ||
        specifier.startsWith("node:") || /^npm:(@[^/]+\/)?[^@/]+@\d+\.\d+\.\d+$/.test(specifier);
      if (!ok) bare.push(`${file}: ${specifier}`);
    }
  }
  assertEquals(bare, [], "a remote main.ts cannot resolve these (there is no import map)");
});

Deno.test("shipped modules pin exactly the versions deno.json maps", async () => {
  const pinned = new Set<string>();
  for (const file of await shippedModules()) {
    const code = (await Deno.readTextFile(new URL(file, ROOT))).replace(/\/\*\*[\s\S]*?\*\//g, "");
    for (const [, specifier] of code.matchAll(/\bfrom\s+"(npm:[^"]+)"/g)) pinned.add(specifier);
  }
  assertEquals([...pinned].sort(), Object.values(denoJson.imports).sort());
});

Deno.test("--help and --version from a URL", async () => {
  await using served = await serveCheckout();
  await using isolated = await isolatedDenoEnv();
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${served.url}main.ts`, ...args],
      cwd: isolated.cwd,
      env: isolated.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  const help = await run(["--help"]);
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assertEquals(help.code, 0, decode(help.stderr));
  assertStringIncludes(decode(help.stdout), "Usage: arrakis-proxy");
  const version = await run(["--version"]);
  assertEquals(decode(version.stdout).trim(), `arrakis-proxy ${denoJson.version}`);
  // The whole graph came over HTTP, the .proto (a text import) and deno.json included.
  for (const path of ["/main.ts", "/lib/cli.ts", "/deno.json", "/proto/flight.proto"]) {
    assert(served.requested.includes(path), `${path} was not fetched: ${served.requested}`);
  }
});

Deno.test("a full proxy run from a URL against the namespaced cluster", async () => {
  await using cluster = await startCluster();
  await using served = await serveCheckout();
  await using isolated = await isolatedDenoEnv();
  await using proxy = await startProxy(
    ["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost],
    {
      program: [Deno.execPath(), "run", "-A", `${served.url}main.ts`],
      cwd: isolated.cwd,
      env: isolated.env,
    },
  );
  assertMatch(proxy.url, /^grpc:\/\/localhost:\d+$/);
  let rows = 0;
  {
    // Closed before the proxy stops: a GOAWAY reaching this process's own
    // client can abort it inside nghttp2 (denoland/deno#36788).
    using client = FlightTestClient.connect(proxy.url);
    const info = await client.getFlightInfo(arrakisCommand("Stream", {}));
    const remote = endpointLocations(info).flat().filter((uri) => /data-[ab]/.test(uri));
    assertEquals(remote, [], "locations still name the cluster's servers");
    for (const endpoint of info.endpoint) {
      const uri = endpoint.location[0]?.uri;
      using data = uri?.startsWith("grpc://127.0.0.1:") ? FlightTestClient.connect(uri) : undefined;
      rows += (await (data ?? client).doGet(endpoint.ticket!.ticket)).table.numRows;
    }
  }
  assertEquals(rows, 3 * 32);
  assertEquals((await proxy.stop()).code, 0);
  assert(served.requested.includes("/lib/ssh_proxy.ts"));
});

Deno.test("mod.ts from a URL: `await using proxy = await sshProxy(host)` as documented", async () => {
  await using cluster = await startCluster();
  await using served = await serveCheckout();
  await using isolated = await isolatedDenoEnv();
  // A user's script: nothing but the URL of mod.ts.
  await Deno.writeTextFile(
    `${isolated.cwd}/script.ts`,
    `import { sshProxy } from "${served.url}mod.ts";
import { fetchArrakis } from "${served.url}lib/flight/client.ts";

let port;
{
  await using proxy = await sshProxy(${JSON.stringify(cluster.sshHost)}, {
    sshConfig: ${JSON.stringify(cluster.sshConfigPath)},
    listen: "localhost:0",
  });
  port = Number(new URL(proxy.url.replace("grpc:", "http:")).port);
  const fetched = await fetchArrakis(proxy.url, { request: "Stream", args: {} });
  console.log(JSON.stringify({
    url: proxy.url,
    rows: fetched.reduce((sum, endpoint) => sum + endpoint.table.numRows, 0),
  }));
}
// Out of scope: the proxy is closed.
let closed = false;
try {
  (await Deno.connect({ hostname: "127.0.0.1", port })).close();
} catch {
  closed = true;
}
console.log(JSON.stringify({ closed }));
`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "script.ts"],
    cwd: isolated.cwd,
    env: isolated.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assertEquals(output.code, 0, stderr);
  const [first, second] = new TextDecoder().decode(output.stdout).trim().split("\n")
    .map((line) => JSON.parse(line));
  assertMatch(first.url, /^grpc:\/\/localhost:\d+$/);
  assertEquals(first.rows, 3 * 32);
  assertEquals(second, { closed: true });
  assert(served.requested.includes("/mod.ts"));
});

Deno.test("-f from a URL: the background proxy runs from the same URL; stop ends it", async () => {
  await using cluster = await startCluster();
  await using served = await serveCheckout();
  await using isolated = await isolatedDenoEnv();
  const runtime = await Deno.makeTempDir({ prefix: "arrakis-url-bg-" });
  await Deno.chmod(runtime, 0o700);
  const program = [Deno.execPath(), "run", "-A", `${served.url}main.ts`];
  const env = { ...isolated.env, XDG_RUNTIME_DIR: runtime, SHELL: "/bin/sh" };
  try {
    const started = await runProxy(
      ["-f", "-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost],
      { program, cwd: isolated.cwd, env },
    );
    assertEquals(started.code, 0, started.stderr);
    const pid = Number(/ARRAKIS_PROXY_PID=(\d+);/.exec(started.stdout)?.[1]);
    const url = /ARRAKIS_SERVER=(grpc:\/\/\S+);/.exec(started.stdout)?.[1];
    assert(pid > 0 && url, started.stdout);
    // The background process is this program again, from the served URL.
    const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
    assert(argv.includes(`${served.url}main.ts`), argv.join(" "));
    assertEquals(await streamRowsVia(url), 3 * 32);
    const stopped = await runProxy(["stop", "--all"], { program, cwd: isolated.cwd, env });
    assertEquals(stopped.code, 0, stopped.stderr);
    await waitFor(() => !isAlive(pid), 10_000, "the background proxy to exit");
  } finally {
    await runProxy(["stop", "--all"], { program, cwd: isolated.cwd, env }).catch(() => undefined);
    await Deno.remove(runtime, { recursive: true });
  }
});
