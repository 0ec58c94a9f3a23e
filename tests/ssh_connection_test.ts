/**
 * SshConnection against a real sshd inside a private network namespace.
 * Needs root; run with `deno test -A tests/ssh_connection_test.ts`.
 */

import { dirname } from "node:path";
import { assert, assertEquals, assertMatch, assertNotEquals, assertRejects } from "./assert.ts";
import { UserError } from "../lib/errors.ts";
import { SshConnection } from "../lib/ssh/connection.ts";
import { createNetns, type Netns } from "./fixtures/netns.ts";
import { findProcesses, killAll, waitFor } from "./fixtures/processes.ts";
import { startSshd } from "./fixtures/sshd.ts";

const FIXTURES = `${import.meta.dirname}/fixtures`;

/** Echo servers inside `ns`, one per address; stopped on dispose. */
async function startEcho(ns: Netns, addresses: string[]): Promise<AsyncDisposable> {
  const child = ns.spawn(
    [Deno.execPath(), "run", "-A", `${FIXTURES}/echo_server.ts`, ...addresses],
    { stdin: "piped", stdout: "piped", stderr: "inherit" },
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await lines.read();
  assertEquals(value?.trim(), "ready");
  const input = child.stdin.getWriter();
  return {
    async [Symbol.asyncDispose]() {
      await input.close().catch(() => undefined);
      await lines.cancel();
      await child.status;
    },
  };
}

/** Sends a line through 127.0.0.1:port and returns what comes back. */
async function echoThrough(port: number, text: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(text));
  const buffer = new Uint8Array(text.length);
  let read = 0;
  while (read < buffer.length) {
    const n = await conn.read(buffer.subarray(read));
    if (n === null) break;
    read += n;
  }
  return new TextDecoder().decode(buffer.subarray(0, read));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("connect, exec printenv, and close leave no ssh process and no temp dir", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({
    netns: ns,
    env: { ARRAKIS_SERVER: "grpc://info:31206" },
  });
  const conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  try {
    assertEquals(conn.state, "open");
    assert(conn.controlPath.length < 80, conn.controlPath);
    assertEquals((await Deno.stat(dirname(conn.controlPath))).mode! & 0o777, 0o700);
    // The master and the keepalive session both carry our control path.
    assert(findProcesses(conn.controlPath).length >= 2);
    const result = await conn.exec(["printenv", "ARRAKIS_SERVER"]);
    assertEquals(result, { code: 0, stdout: "grpc://info:31206\n", stderr: "" });
  } finally {
    await conn.close();
  }
  await conn.close(); // idempotent
  assertEquals(conn.state, "closed");
  assertEquals(await conn.closed, {
    lost: false,
    reason: "ssh connection to arrakis-test closed",
  });
  assertEquals(findProcesses(conn.controlPath), []);
  assertEquals(await exists(dirname(conn.controlPath)), false);
});

Deno.test("forward reaches a server known only by its in-namespace name", async () => {
  await using ns = await createNetns();
  await ns.addHosts({ "echo-a": "127.0.0.21" });
  await using _echo = await startEcho(ns, ["127.0.0.21:7000"]);
  await using sshd = await startSshd({ netns: ns });
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  const local = await conn.forward("echo-a", 7000);
  assertEquals(local.host, "127.0.0.1");
  assertEquals(await echoThrough(local.port, "hello through ssh\n"), "hello through ssh\n");
  assertEquals(await conn.forward("echo-a", 7000), local, "same target, same forward");
});

Deno.test("ten forwards opened at once get distinct working ports", async () => {
  await using ns = await createNetns();
  const names = Array.from({ length: 10 }, (_, i) => `echo-${i}`);
  await ns.addHosts(Object.fromEntries(names.map((name, i) => [name, `127.0.0.${30 + i}`])));
  await using _echo = await startEcho(ns, names.map((_, i) => `127.0.0.${30 + i}:7000`));
  await using sshd = await startSshd({ netns: ns });
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  const started = performance.now();
  // Each target twice: duplicates must share one forward, not race for two.
  const locals = await Promise.all([...names, ...names].map((name) => conn.forward(name, 7000)));
  const elapsed = performance.now() - started;
  const ports = new Set(locals.map((local) => local.port));
  assertEquals(ports.size, 10);
  const replies = await Promise.all(names.map((name, i) => echoThrough(locals[i].port!, name)));
  assertEquals(replies, names);
  console.log(`10 concurrent forwards in ${elapsed.toFixed(0)} ms`);
});

Deno.test("a local port taken between probe and bind is retried with another", async () => {
  await using ns = await createNetns();
  await ns.addHosts({ "echo-a": "127.0.0.21" });
  await using _echo = await startEcho(ns, ["127.0.0.21:7000"]);
  await using sshd = await startSshd({ netns: ns });
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  // Someone else holds this port; make the first probe "find" it free.
  using squatter = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = squatter.addr.port;
  const realListen = Deno.listen;
  let stubbed = false;
  // deno-lint-ignore no-explicit-any
  (Deno as any).listen = (options: Deno.TcpListenOptions) => {
    if (!stubbed && options.port === 0) {
      stubbed = true;
      const probe = realListen(options);
      probe.close();
      return { addr: { ...probe.addr, port: taken }, close() {}, [Symbol.dispose]() {} };
    }
    return realListen(options);
  };
  try {
    const local = await conn.forward("echo-a", 7000);
    assert(stubbed);
    assertNotEquals(local.port, taken);
    assertEquals(await echoThrough(local.port!, "retried\n"), "retried\n");
  } finally {
    Deno.listen = realListen;
  }
});

Deno.test("a host that looks like an option is refused before anything runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arrakis-refuse-" });
  try {
    const proof = `${dir}/proof`;
    // A stand-in ssh that would leave proof it ran; ProxyCommand would too.
    const fakeSsh = `${dir}/ssh`;
    await Deno.writeTextFile(fakeSsh, `#!/bin/sh\ntouch ${proof}\n`, { mode: 0o755 });
    for (const host of [`-oProxyCommand=touch ${proof}`, "-oProxyCommand=sh", "a b", "x\ny"]) {
      const error = await assertRejects(
        () => SshConnection.connect({ host, sshBinary: fakeSsh, interactive: false }),
        UserError,
      );
      assertMatch(error.message, /^refusing ssh host /);
    }
    assertEquals(await exists(proof), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("invalid forward targets are refused", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({ netns: ns });
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  for (const [host, port] of [["-R1:x:2", 1], ["a/b", 1], ["a b", 1], ["a:b", 1], ["ok", 0]]) {
    await assertRejects(() => conn.forward(host as string, port as number), UserError);
  }
  // IPv6 literals are fine, bracketed or not, and share one forward.
  const v6 = await conn.forward("::1", 22);
  assertEquals(await conn.forward("[::1]", 22), v6);
});

Deno.test("a failed connect says which host and why, in one line", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({ netns: ns });
  // The user's -o wins over the config file: nothing listens on port 1.
  const error = await assertRejects(
    () =>
      SshConnection.connect({
        host: sshd.hostAlias,
        sshConfig: sshd.sshConfigPath,
        sshOptions: ["Port=1"],
        interactive: false,
      }),
    UserError,
  );
  assertEquals(
    error.message,
    `ssh to arrakis-test failed (exit 255): ssh: connect to host ${sshd.host} port 1: Connection refused`,
  );
  // No ssh (master or otherwise) was left running with this config.
  assertEquals(findProcesses(sshd.sshConfigPath), []);
});

Deno.test("a missing ssh binary is a UserError that says what to do", async () => {
  const error = await assertRejects(
    () =>
      SshConnection.connect({
        host: "example",
        sshBinary: "/nonexistent/ssh",
        interactive: false,
      }),
    UserError,
  );
  assertMatch(error.message, /^ssh not found \(\/nonexistent\/ssh\): install OpenSSH/);
});

Deno.test("closed reports a lost connection when sshd goes away", async () => {
  // Plain loopback sshd (no namespace): also covers that variant.
  await using sshd = await startSshd();
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: false,
  });
  assertEquals((await conn.exec(["true"])).code, 0);
  await sshd.kill();
  const end = await conn.closed;
  assertEquals(end.lost, true);
  assertMatch(end.reason, /^ssh connection to arrakis-test was lost/);
  assertEquals(conn.state, "lost");
  await conn.close();
  assertEquals(findProcesses(conn.controlPath), []);
});

Deno.test("password authentication through SSH_ASKPASS; a wrong password is one clear line", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({ netns: ns, passwordUser: { password: "s3cret-pw" } });
  const askpass = `${sshd.dir}/askpass`;
  await Deno.writeTextFile(askpass, `#!/bin/sh\necho '${sshd.password}'\n`, { mode: 0o755 });
  const env = { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" };
  await using conn = await SshConnection.connect({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    env,
  });
  assertEquals((await conn.exec(["whoami"])).stdout.trim(), sshd.user);

  await Deno.writeTextFile(askpass, "#!/bin/sh\necho wrong\n", { mode: 0o755 });
  const error = await assertRejects(
    () => SshConnection.connect({ host: sshd.hostAlias, sshConfig: sshd.sshConfigPath, env }),
    UserError,
  );
  assertMatch(error.message, /^ssh to arrakis-test failed \(exit 255\): .*Permission denied/);
});

Deno.test("the master does not outlive an owner killed with SIGKILL", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({ netns: ns });
  const owner = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${FIXTURES}/ssh_owner.ts`,
      JSON.stringify({
        host: sshd.hostAlias,
        sshConfig: sshd.sshConfigPath,
        controlPersistSeconds: 2,
      }),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = owner.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { controlPath, masterPid } = JSON.parse((await lines.read()).value!);
  try {
    const before = findProcesses(controlPath);
    assert(before.includes(masterPid), `master ${masterPid} among ${before}`);
    owner.kill("SIGKILL");
    await owner.status;
    const took = await waitFor(
      () => findProcesses(controlPath).length === 0,
      60_000,
      "the orphaned ssh master to exit",
    );
    console.log(`master gone ${took} ms after its owner was killed (ControlPersist=2)`);
  } finally {
    await lines.cancel();
    killAll(findProcesses(controlPath), "SIGKILL");
    await Deno.remove(dirname(controlPath), { recursive: true }).catch(() => undefined);
  }
});

Deno.test("a password prompt reaches the user's terminal (tmux)", async () => {
  await using ns = await createNetns();
  await using sshd = await startSshd({ netns: ns, passwordUser: { password: "tty-pw-42" } });
  const socket = `${sshd.dir}/tmux.sock`;
  const tmux = (...args: string[]) =>
    new Deno.Command("tmux", { args: ["-S", socket, ...args], stdout: "piped", stderr: "piped" })
      .output();
  const pane = async () =>
    new TextDecoder().decode((await tmux("capture-pane", "-p", "-J")).stdout);
  const options = JSON.stringify({
    host: sshd.hostAlias,
    sshConfig: sshd.sshConfigPath,
    interactive: true,
    controlPersistSeconds: 2,
  });
  const owner = [Deno.execPath(), "run", "-A", `${FIXTURES}/ssh_owner.ts`, options];
  const started = await tmux("new-session", "-d", "-x", "300", "-y", "40", "--", ...owner);
  assert(started.success, new TextDecoder().decode(started.stderr));
  let controlPath = "";
  try {
    await waitFor(async () => /password:/.test(await pane()), 30_000, "ssh's password prompt");
    await tmux("send-keys", "tty-pw-42", "Enter");
    await waitFor(async () => /"controlPath"/.test(await pane()), 30_000, "the owner to connect");
    controlPath = JSON.parse(/\{.*"controlPath".*\}/.exec(await pane())![0]).controlPath;
    assert(findProcesses(controlPath).length >= 2);
  } finally {
    await tmux("kill-server");
    if (controlPath !== "") {
      await waitFor(() => findProcesses(controlPath).length === 0, 60_000, "the master to exit");
      await Deno.remove(dirname(controlPath), { recursive: true }).catch(() => undefined);
    }
  }
});
