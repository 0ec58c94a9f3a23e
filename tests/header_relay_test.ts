/**
 * The header relay between pyarrow's real Flight client and a real pyarrow
 * Flight server that records the authorization header of every call: the
 * client reaches the relay at `grpc+unix://`, as rewritten locations name it.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { pythonJson, requirePython } from "./fixtures/python.ts";
import { serveHeaderRelay } from "../lib/http2/relay.ts";
import { makeControlDir } from "../lib/ssh/control_dir.ts";
import { stopChild } from "../lib/process.ts";
import type { Logger } from "../lib/log.ts";

const SCRIPT = new URL("./fixtures/py/auth_recorder.py", import.meta.url).pathname;

type Call = { rows: number; sum: number; seen: (string | null)[] };

async function recorder(): Promise<{ port: number } & AsyncDisposable> {
  const child = new Deno.Command(requirePython().python, {
    args: [SCRIPT, "serve"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the recorder server exited");
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    port: JSON.parse(text).port,
    [Symbol.asyncDispose]: async () => {
      await stopChild(child, { ask: () => child.stdin.close() });
    },
  };
}

function recordingLogger(lines: string[]): Logger {
  return {
    level: "normal",
    debug() {},
    info: (line) => lines.push(line),
    warn: (line) => lines.push(line),
    progress() {},
  };
}

Deno.test("the relay adds the token to calls without one, passes others' own, and keeps serving after garbage", async () => {
  await using server = await recorder();
  const dir = await makeControlDir();
  await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
  const lines: string[] = [];
  let token: string | undefined = "Bearer from-the-relay";
  await using _relay = serveHeaderRelay(Deno.listen({ transport: "unix", path: `${dir}/relay` }), {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    authorization: () => token,
    logger: recordingLogger(lines),
    name: "recorder",
  });
  const url = `grpc+unix://${dir}/relay`;
  // 3 Mi rows: 24 MiB of Arrow data back through the relay, byte for byte.
  const rows = 3 << 20;
  const bare = await pythonJson<Call>([SCRIPT, "call", url, "-", String(rows)]);
  assertEquals(bare.rows, rows);
  assertEquals(bare.sum, rows * (rows - 1) / 2);
  assertEquals(bare.seen, ["Bearer from-the-relay", "Bearer from-the-relay"]);

  const own = await pythonJson<Call>([SCRIPT, "call", url, "mine", "10"]);
  assertEquals(own.seen.slice(2), ["Bearer mine", "Bearer mine"]);

  // Not HTTP/2: one line, that connection closed, the relay still serves.
  const garbage = await Deno.connect({ transport: "unix", path: `${dir}/relay` });
  await garbage.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  // (The server's own SETTINGS may come first: the relay copies them as they are.)
  for await (const _ of garbage.readable) { /* until the relay closes it */ }
  assertEquals(lines.length, 1);
  assertStringIncludes(lines[0], "bad client preface");

  token = undefined;
  const none = await pythonJson<Call>([SCRIPT, "call", url, "-", "10"]);
  assertEquals(none.seen.slice(4), [null, null]);
  assert(!lines.some((line) => line.includes("from-the-relay")), "a token reached the log");
});
