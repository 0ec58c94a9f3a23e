/**
 * What arrakis-proxy writes while it connects: on a terminal, a status line
 * rewritten in place ("connecting to HOST…", "forwarding 2/3 endpoints") and
 * gone once the export line is printed; into a pipe, plain lines only; with
 * `--quiet`, the export line and errors only.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { stderrLogger } from "../lib/log.ts";
import { startCluster } from "./fixtures/cluster.ts";
import { proxyCommand, runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { shellQuote, startTerminal } from "./fixtures/terminal.ts";
import { waitFor } from "./fixtures/processes.ts";

const CLEAR = "\r\x1b[K";

function recorded(options: { terminal: boolean; verbosity?: "quiet" | "normal" | "verbose" }) {
  let text = "";
  const logger = stderrLogger(options.verbosity ?? "normal", {
    terminal: options.terminal,
    write: (chunk) => text += chunk,
  });
  return { logger, text: () => text };
}

Deno.test("logger on a terminal: the status line is redrawn below each permanent line", () => {
  const { logger, text } = recorded({ terminal: true });
  logger.progress("connecting to h…");
  logger.info("forwarding 127.0.0.1:1 → info:31206");
  logger.progress("forwarding 1/2 endpoints");
  logger.progress("");
  assertEquals(
    text(),
    `${CLEAR}arrakis-proxy: connecting to h…` +
      `${CLEAR}arrakis-proxy: forwarding 127.0.0.1:1 → info:31206\narrakis-proxy: connecting to h…` +
      `${CLEAR}arrakis-proxy: forwarding 1/2 endpoints` +
      CLEAR,
  );
});

Deno.test("logger into a pipe: plain lines, no status line, no escape codes", () => {
  const { logger, text } = recorded({ terminal: false });
  logger.progress("connecting to h…");
  logger.info("forwarding 127.0.0.1:1 → info:31206");
  logger.progress("");
  assertEquals(text(), "arrakis-proxy: forwarding 127.0.0.1:1 → info:31206\n");
});

Deno.test("logger --quiet: nothing at all, not even on a terminal", () => {
  const { logger, text } = recorded({ terminal: true, verbosity: "quiet" });
  logger.progress("connecting to h…");
  logger.info("forwarding");
  logger.warn("careful");
  assertEquals(text(), "");
});

Deno.test("CLI into pipes: plain progress lines on stderr; --quiet leaves only the export line", async () => {
  await using cluster = await startCluster();
  const args = ["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost];
  {
    await using proxy = await startProxy(args);
    const stderr = proxy.stderr();
    assertStringIncludes(stderr, `arrakis-proxy: connecting to ${cluster.sshHost}\n`);
    assertMatch(stderr, /^arrakis-proxy: forwarding \/\S+\/f-[0-9a-f]{8} → data-a:40001$/m);
    assertEquals(stderr.includes("\r") || stderr.includes("\x1b"), false, "escape codes in a pipe");
    assertEquals(/\d+\/\d+ endpoints/.test(stderr), false, "a status line in a pipe");
  }
  {
    await using proxy = await startProxy(["--quiet", ...args]);
    await proxy.stop();
    assertMatch(proxy.stdout(), /^export ARRAKIS_SERVER=grpc:\/\/localhost:\d+\n$/);
    assertEquals(proxy.stderr(), "");
  }
  // Errors still come through --quiet (ssh's own, then ours as one line); progress does not.
  const failed = await runProxy([
    "--quiet",
    "-F",
    cluster.sshConfigPath,
    "-o",
    "Port=1",
    cluster.sshHost,
  ]);
  assertEquals(failed.code, 1);
  assertEquals(failed.stdout, "");
  assertMatch(failed.stderr, /^arrakis-proxy: ssh to .* failed[^\n]*\n$/m);
  assertEquals(failed.stderr.includes("connecting to"), false, failed.stderr);
});

Deno.test("CLI on a terminal (tmux): the status line is rewritten in place, then cleared", async () => {
  await using cluster = await startCluster();
  const dir = await Deno.makeTempDir({ prefix: "arrakis-tmux-" });
  const raw = `${dir}/raw.txt`;
  const argv = proxyCommand(["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost]);
  try {
    // The command waits for a key, so the recording below misses none of its output.
    await using terminal = await startTerminal(
      dir,
      `read _ && exec ${argv.map(shellQuote).join(" ")}`,
      { columns: 200 },
    );
    await terminal.record(raw);
    await terminal.sendKeys("Enter");
    await waitFor(
      async () => /export ARRAKIS_SERVER=grpc:\/\/localhost:\d+/.test(await terminal.screen()),
      60_000,
      "the export line",
    );
    const output = await Deno.readTextFile(raw);
    // Drawn in place: each status starts with carriage return + erase line.
    assertStringIncludes(output, `${CLEAR}arrakis-proxy: connecting to ${cluster.sshHost}…`);
    assertStringIncludes(output, `${CLEAR}arrakis-proxy: forwarding 3/3 endpoints`);
    // What stays on screen: the permanent lines and the export line, no status.
    const screen = await terminal.screen();
    assertMatch(screen, /arrakis-proxy: forwarding \/\S+\/f-[0-9a-f]{8} → data-b:40001/);
    assertEquals(/\d+\/\d+ endpoints|connecting to .*…/.test(screen), false, screen);
    await terminal.sendKeys("C-c");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
