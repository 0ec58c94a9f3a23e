/**
 * Background proxies through the real command over a real sshd: `-f` hands
 * the shell lines to eval (sh, csh, fish), a second start finds the first,
 * `status` lists them, `stop` tears them down with nothing left behind, a
 * killed one's record is cleaned up, and bad input gets one line and the right
 * exit code. Each test uses its own state directory (XDG_RUNTIME_DIR), so the
 * user's real proxies are never seen.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { proxyCommand, runProxy } from "./fixtures/proxy_cli.ts";
import { shellQuote, startTerminal } from "./fixtures/terminal.ts";
import { descendants, findProcesses, isAlive, runCommand, waitFor } from "./fixtures/processes.ts";
import { pingFlight } from "../lib/flight/client.ts";
import { requirePython } from "./fixtures/python.ts";
import { streamRowsVia } from "./fixtures/flight_client.ts";

/** A private state directory, as XDG_RUNTIME_DIR for the command. */
async function stateEnv(): Promise<{ env: Record<string, string>; dir: string } & AsyncDisposable> {
  const runtime = await Deno.makeTempDir({ prefix: "arrakis-bg-" });
  await Deno.chmod(runtime, 0o700);
  const env = { XDG_RUNTIME_DIR: runtime, SHELL: "/bin/sh" };
  return {
    env,
    dir: `${runtime}/arrakis-proxy`,
    // A failed test must not leave its proxies running (declare after the cluster).
    [Symbol.asyncDispose]: async () => {
      await runProxy(["stop", "--all"], { env }).catch(() => undefined);
      await Deno.remove(runtime, { recursive: true });
    },
  };
}

function sshArgs(cluster: Cluster): string[] {
  return ["-F", cluster.sshConfigPath, cluster.sshHost];
}

/** Runs `script` in `shell` with `$CMD` standing for the quoted arrakis-proxy command line. */
async function inShell(
  shell: "sh" | "csh" | "fish",
  script: string,
  args: string[],
  env: Record<string, string>,
) {
  const command = proxyCommand(args).map(shellQuote).join(" ");
  return await runCommand(shell, {
    args: ["-c", script.replace("$CMD", command)],
    env: { ...env, SHELL: `/usr/bin/${shell}` },
    signal: AbortSignal.timeout(90_000),
  });
}

/** `S=<ARRAKIS_SERVER> P=<ARRAKIS_PROXY_PID>` as the eval left them. */
function evaluated(stdout: string): { url: string; pid: number } {
  const match = /S=(grpc:\/\/\S+) P=(\d+)/.exec(stdout);
  assert(match, `no variables after eval: ${stdout}`);
  return { url: match[1], pid: Number(match[2]) };
}

/** What a proxy left in the state directory: records, logs, hand-overs (not the remembered servers). */
async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!/^server-[0-9a-f]+\.json$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/** The proxy process, its children, and the ssh master (found by the test's ssh_config). */
function proxyProcesses(pid: number, cluster: Cluster): number[] {
  return [pid, ...descendants(pid), ...findProcesses(cluster.sshConfigPath)].filter(isAlive);
}

Deno.test("-f: eval in sh, csh and fish; found again; status; stop; nothing left behind", async (t) => {
  await using cluster = await startCluster({ loginProfileEnv: {} });
  await using state = await stateEnv();
  const { env } = state;
  const args = ["-f", "-l", "localhost:0", ...sshArgs(cluster)];
  let first!: { url: string; pid: number };

  await t.step(
    "sh: eval sets ARRAKIS_SERVER and ARRAKIS_PROXY_PID; the command exits 0",
    async () => {
      const run = await inShell(
        "sh",
        `eval "$($CMD)" && echo "S=$ARRAKIS_SERVER P=$ARRAKIS_PROXY_PID"`,
        args,
        env,
      );
      assertEquals(run.code, 0, run.stderr);
      first = evaluated(run.stdout);
      assertMatch(first.url, /^grpc:\/\/localhost:\d+$/);
      assertStringIncludes(run.stdout, `Proxy pid ${first.pid}`);
      assertMatch(run.stderr, /forwarding \/\S+\/f-[0-9a-f]{8} → data-b:40001/);
      // Served by the background process after the command is gone.
      assert(await pingFlight(first.url) >= 0);
    },
  );

  await t.step(
    "the proxy is detached: its own session, no terminal, stdio on /dev/null",
    async () => {
      const stat = await Deno.readTextFile(`/proc/${first.pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      assertEquals(Number(fields[3]), first.pid, "session id"); // field 6: session
      assertEquals(fields[4], "0", "controlling terminal"); // field 7: tty_nr
      for (const fd of [0, 1, 2]) {
        assertEquals(await Deno.readLink(`/proc/${first.pid}/fd/${fd}`), "/dev/null", `fd ${fd}`);
      }
    },
  );

  await t.step("csh and fish: the second start finds the first", async () => {
    const csh = await inShell(
      "csh",
      'eval "`$CMD`" && echo "S=$ARRAKIS_SERVER P=$ARRAKIS_PROXY_PID"',
      ["-f", ...sshArgs(cluster)],
      env,
    );
    assertEquals(csh.code, 0, csh.stderr);
    assertEquals(evaluated(csh.stdout), first);
    assertStringIncludes(csh.stderr, `already running (pid ${first.pid}`);
    const fish = await inShell(
      "fish",
      '$CMD | source; and echo "S=$ARRAKIS_SERVER P=$ARRAKIS_PROXY_PID"',
      ["-f", ...sshArgs(cluster)],
      env,
    );
    assertEquals(fish.code, 0, fish.stderr);
    assertEquals(evaluated(fish.stdout), first);
    // The syntax is the shell's, as ssh-agent writes it; --sh forces sh.
    const printed = await runProxy(["-f", ...sshArgs(cluster)], {
      env: { ...env, SHELL: "/usr/bin/fish" },
    });
    assertEquals(printed.stdout.split("\n")[0], `set -gx ARRAKIS_SERVER ${first.url};`);
    const forced = await runProxy(["-f", "--sh", ...sshArgs(cluster)], {
      env: { ...env, SHELL: "/bin/tcsh" },
    });
    assertEquals(
      forced.stdout.split("\n")[0],
      `ARRAKIS_SERVER=${first.url}; export ARRAKIS_SERVER;`,
    );
  });

  await t.step("the README's notebook snippet finds the running proxy", async () => {
    const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
    const snippet = /```python\n(import os, re, subprocess\n[\s\S]*?)```/.exec(readme)?.[1];
    assert(snippet, "the notebook snippet is in the README");
    // The snippet as written, with the test's command line for `arrakis-proxy` and its host.
    const script = snippet
      .replace(`["arrakis-proxy", "-f", "--sh", "login.example.org"]`, "ARGV")
      .replace(
        "import os, re, subprocess",
        "import json, os, re, subprocess\nARGV = json.loads(os.environ['ARGV'])",
      ) +
      `print(os.environ["ARRAKIS_SERVER"])\n`;
    assert(script.includes("subprocess.run(ARGV,"), script);
    const output = await runCommand(requirePython().python, {
      args: ["-c", script],
      env: { ...env, ARGV: JSON.stringify(proxyCommand(["-f", "--sh", ...sshArgs(cluster)])) },
    });
    assertEquals(output.code, 0, output.stderr);
    assertEquals(output.stdout, `${first.url}\n`);
  });

  await t.step("status: one line, and --json; record, log and directory are private", async () => {
    const text = await runProxy(["status"], { env });
    assertEquals(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split("\n");
    assertEquals(lines.length, 1, text.stdout);
    assertMatch(
      lines[0],
      new RegExp(
        `^${cluster.sshHost}  ${first.url} → grpc://info:31206  pid ${first.pid}  up  ` +
          // info, its reuse-connection forward, data-a, data-b
          `forwards 4  up since \\S+  reconnects 0  last error none  log \\S+\\.log$`,
      ),
    );
    const json = await runProxy(["status", "--json"], { env });
    assertEquals(json.code, 0, json.stderr);
    const [record] = JSON.parse(json.stdout);
    assertEquals(
      [record.host, record.url, record.server, record.pid, record.reconnects],
      [cluster.sshHost, first.url, "grpc://info:31206", first.pid, 0],
    );
    assertEquals(
      record.forwards.map((f: { remote: string }) => f.remote).sort(),
      ["data-a:40001", "data-b:40001", "info:31206", "info:31206"],
    );
    assertEquals((await Deno.stat(state.dir)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(`${state.dir}/${first.pid}.json`)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(record.log)).mode! & 0o777, 0o600);
    assertStringIncludes(await Deno.readTextFile(record.log), "forwarding /");
  });

  await t.step("stop SSH_HOST: exit 0, no process, record or log left", async () => {
    const running = proxyProcesses(first.pid, cluster);
    assert(running.length >= 3, `proxy, its proxy child and the ssh master: ${running}`);
    const masters = findProcesses(cluster.sshConfigPath)
      .map((pid) => Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0"))
      .filter((argv) => argv.includes("-M"));
    assertEquals(masters.length, 1, "one ssh master");
    const socket = masters[0][masters[0].indexOf("-S") + 1];
    const controlDir = socket.slice(0, socket.lastIndexOf("/"));
    const stopped = await inShell(
      "sh",
      `eval "$($CMD)" && echo "S=\${ARRAKIS_SERVER-unset} P=\${ARRAKIS_PROXY_PID-unset}"`,
      ["stop", cluster.sshHost],
      { ...env, ARRAKIS_SERVER: first.url, ARRAKIS_PROXY_PID: String(first.pid) },
    );
    assertEquals(stopped.code, 0, stopped.stderr);
    assertStringIncludes(stopped.stderr, `stopped the proxy for ${cluster.sshHost}`);
    // As `eval "$(ssh-agent -k)"` does: this shell's variables named it, so they go.
    assertEquals(stopped.stdout, "S=unset P=unset\n");
    assertEquals(running.filter(isAlive), [], "processes left behind");
    assertEquals(await Deno.stat(controlDir).then(() => "exists", () => "gone"), "gone");
    assertEquals(await files(state.dir), []);
    const again = await runProxy(["stop", cluster.sshHost], { env });
    assertEquals(again.code, 1);
    assertEquals(
      again.stderr,
      `arrakis-proxy: no background proxy for ${cluster.sshHost} is running\n`,
    );
  });

  await t.step("stop --all stops every proxy; bare stop with two asks which", async () => {
    const started = [];
    for (let i = 0; i < 2; i++) {
      const run = await runProxy(["-f", "-l", "localhost:0", ...sshArgs(cluster)], { env });
      assertEquals(run.code, 0, run.stderr);
      started.push(Number(/ARRAKIS_PROXY_PID=(\d+);/.exec(run.stdout)![1]));
    }
    assertEquals(new Set(started).size, 2, "two proxies (port 0 never matches)");
    const running = started.flatMap((pid) => proxyProcesses(pid, cluster));
    const ambiguous = await runProxy(["stop"], { env });
    assertEquals(ambiguous.code, 2);
    assertMatch(ambiguous.stderr, /^arrakis-proxy: 2 background proxies are running; [^\n]*\n$/);
    // A shell whose variables name another proxy keeps them: nothing on stdout.
    const all = await runProxy(["stop", "--all"], { env: { ...env, ARRAKIS_PROXY_PID: "1" } });
    assertEquals(all.code, 0, all.stderr);
    assertEquals(all.stdout, "");
    assertEquals(running.filter(isAlive), [], "processes left behind");
    assertEquals(await files(state.dir), []);
  });

  await t.step(
    "-f for a second site while the default port is taken: a free port, said",
    async () => {
      // The same sshd under a second name: another record, as for another cluster.
      const secondConfig = `${state.dir}/../ssh_config_second`;
      await Deno.writeTextFile(
        secondConfig,
        (await Deno.readTextFile(cluster.sshConfigPath))
          .replace(`Host ${cluster.sshHost}`, `Host ${cluster.sshHost} second-site`),
      );
      let holder: Deno.Listener | undefined;
      try {
        holder = Deno.listen({ hostname: "localhost", port: 31206 });
      } catch { /* taken already: as good */ }
      try {
        const run = await runProxy(["-f", "-F", secondConfig, "second-site"], { env });
        assertEquals(run.code, 0, run.stderr);
        assertMatch(
          run.stderr,
          /localhost:31206 is in use \(.*\); listening on a free port instead/,
        );
        const url = /ARRAKIS_SERVER=(grpc:\/\/\S+);/.exec(run.stdout)?.[1];
        assert(url && !url.endsWith(":31206"), run.stdout);
        assert(await pingFlight(url) >= 0);
        const stopped = await runProxy(["stop", "second-site"], { env });
        assertEquals(stopped.code, 0, stopped.stderr);
        assertEquals(await files(state.dir), []);
      } finally {
        holder?.close();
      }
    },
  );

  await t.step("a killed proxy's record is cleaned up, never trusted", async () => {
    const run = await runProxy(["-f", ...sshArgs(cluster)], { env });
    assertEquals(run.code, 0, run.stderr);
    const pid = Number(/ARRAKIS_PROXY_PID=(\d+);/.exec(run.stdout)![1]);
    Deno.kill(pid, "SIGKILL");
    await waitFor(() => !isAlive(pid), 10_000, "the killed proxy to exit");
    const status = await runProxy(["status", "--json"], { env });
    assertEquals([status.code, status.stdout], [0, "[]\n"], status.stderr);
    assertEquals(await files(state.dir), []);
  });

  await t.step(
    "nothing of a SIGKILLed proxy is left after the next -f, or after stop --all",
    async () => {
      for (const next of [["-f", ...sshArgs(cluster)], ["stop", "--all"]]) {
        const run = await runProxy(["-f", ...sshArgs(cluster)], { env });
        assertEquals(run.code, 0, run.stderr);
        const pid = Number(/ARRAKIS_PROXY_PID=(\d+);/.exec(run.stdout)![1]);
        const left = proxyProcesses(pid, cluster);
        const master = left.map((p) => Deno.readTextFileSync(`/proc/${p}/cmdline`).split("\0"))
          .find((argv) => argv.includes("-M"));
        assert(master, "the proxy's ssh master");
        const controlPath = master[master.indexOf("-S") + 1];
        const controlDir = controlPath.slice(0, controlPath.lastIndexOf("/"));
        Deno.kill(pid, "SIGKILL");
        await waitFor(() => !isAlive(pid), 10_000, "the killed proxy to exit");
        const after = await runProxy(next, { env });
        assertEquals(after.code, 0, after.stderr);
        // Without clean-up the master lingers for ControlPersist (30 s), its directory for good.
        await waitFor(
          async () =>
            left.every((p) => !isAlive(p)) &&
            !await Deno.lstat(controlDir).then(() => true, () => false),
          5000,
          `the killed proxy's processes (${left.join(", ")}) and ${controlDir} to go`,
        );
        if (next[0] === "-f") {
          const stopped = await runProxy(["stop", "--all"], { env });
          assertEquals(stopped.code, 0, stopped.stderr);
        }
        assertEquals(await files(state.dir), []);
      }
    },
  );

  await t.step(
    "a proxy whose SSH connection is gone for good exits and removes its record",
    async () => {
      const run = await runProxy(["-f", "--give-up-after", "8", ...sshArgs(cluster)], { env });
      assertEquals(run.code, 0, run.stderr);
      const pid = Number(/ARRAKIS_PROXY_PID=(\d+);/.exec(run.stdout)![1]);
      await cluster.sshd.kill();
      // While it reconnects, -f finds it and says that its connection is down.
      const reconnecting = async () => {
        const listed = await runProxy(["status", "--json"], { env });
        return JSON.parse(listed.stdout)[0]?.state === "reconnecting";
      };
      await waitFor(reconnecting, 15_000, "the proxy to notice the lost connection");
      const found = await runProxy(["-f", ...sshArgs(cluster)], { env });
      assertEquals(found.code, 0, found.stderr);
      assertStringIncludes(found.stdout, `ARRAKIS_PROXY_PID=${pid};`);
      assertMatch(
        found.stderr,
        new RegExp(
          `already running \\(pid ${pid}, .*its SSH connection is down and it is reconnecting`,
        ),
      );
      await waitFor(() => !isAlive(pid), 30_000, "the proxy to give up");
      const status = await runProxy(["status"], { env });
      assertEquals([status.code, status.stdout], [0, ""], status.stderr);
      assertEquals(await files(state.dir), [`${pid}.log`], "only the log saying why");
      assertMatch(
        await Deno.readTextFile(`${state.dir}/${pid}.log`),
        /error: ssh connection .* giving up/,
      );
    },
  );
});

Deno.test("-f with a password typed in a terminal (tmux); the proxy outlives the terminal", async () => {
  await using cluster = await startCluster({ passwordUser: { password: "bg-pw-31206" } });
  await using state = await stateEnv();
  const command = proxyCommand(["-f", "-l", "localhost:0", ...sshArgs(cluster)]).map(shellQuote)
    .join(" ");
  const script = `eval "$(${command})"; echo "S=$ARRAKIS_SERVER P=$ARRAKIS_PROXY_PID"; sleep 600`;
  let proxy: { url: string; pid: number };
  {
    await using terminal = await startTerminal(cluster.sshd.dir, script, {
      env: { XDG_RUNTIME_DIR: state.env.XDG_RUNTIME_DIR, SHELL: "/bin/sh" },
    });
    const screen = () => terminal.screen();
    await waitFor(async () => /password:/i.test(await screen()), 60_000, "ssh's password prompt");
    await terminal.sendKeys("bg-pw-31206", "Enter");
    await waitFor(async () => /S=grpc:\S+ P=\d+/.test(await screen()), 60_000, "the eval");
    const shown = await screen();
    assertEquals(shown.includes("bg-pw-31206"), false, "the password is not echoed");
    proxy = evaluated(shown);
  } // the terminal is killed here
  // The terminal is gone; the proxy is not.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert(isAlive(proxy.pid), "the background proxy died with its terminal");
  assert(await pingFlight(proxy.url) >= 0);
  const status = await runProxy(["status"], { env: state.env });
  assertStringIncludes(status.stdout, `pid ${proxy.pid}`);
  const running = proxyProcesses(proxy.pid, cluster);
  const stopped = await runProxy(["stop", "--all"], { env: state.env });
  assertEquals(stopped.code, 0, stopped.stderr);
  assertEquals(running.filter(isAlive), []);
  assertEquals(await files(state.dir), []);

  // Without a terminal ssh cannot ask for the password: one line, exit 1, nothing left.
  const failed = await runProxy(["-f", ...sshArgs(cluster)], { env: state.env });
  assertEquals(failed.code, 1);
  assertEquals(failed.stdout, "");
  assertMatch(failed.stderr, /^arrakis-proxy: ssh to \S+ failed \(exit 255\): [^\n]*\n$/m);
  assertEquals(await files(state.dir), []);
});

Deno.test("-f again from a terminal logs in for a proxy that is reconnecting and cannot prompt", async () => {
  await using cluster = await startCluster({ passwordUser: { password: "bg-pw-31207" } });
  await using state = await stateEnv();
  const terminalEnv = { XDG_RUNTIME_DIR: state.env.XDG_RUNTIME_DIR, SHELL: "/bin/sh" };
  const inTerminal = async (args: string[]) => {
    const command = proxyCommand(args).map(shellQuote).join(" ");
    await using terminal = await startTerminal(
      cluster.sshd.dir,
      `eval "$(${command})"; echo "S=$ARRAKIS_SERVER P=$ARRAKIS_PROXY_PID"; sleep 600`,
      { env: terminalEnv },
    );
    await waitFor(async () => /password:/i.test(await terminal.screen()), 60_000, "the prompt");
    await terminal.sendKeys("bg-pw-31207", "Enter");
    await waitFor(async () => /S=grpc:\S+ P=\d+/.test(await terminal.screen()), 60_000, "eval");
    return { screen: await terminal.screen(), proxy: evaluated(await terminal.screen()) };
  };
  const first = (await inTerminal(["-f", "-l", "localhost:0", ...sshArgs(cluster)])).proxy;

  // The master goes (as when a laptop sleeps); a password login cannot be made again here.
  const masters = findProcesses(cluster.sshConfigPath).filter((pid) =>
    Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").includes("-M")
  );
  assertEquals(masters.length, 1, "one ssh master");
  Deno.kill(masters[0], "SIGKILL");
  const listed = async () => JSON.parse((await runProxy(["status", "--json"], state)).stdout)[0];
  await waitFor(async () => (await listed())?.state === "reconnecting", 20_000, "reconnecting");
  await new Promise((resolve) => setTimeout(resolve, 2000)); // a BatchMode retry or two fail
  assertEquals((await listed())?.state, "reconnecting", "it came back without a password");

  const again = await inTerminal(["-f", ...sshArgs(cluster)]);
  assertEquals(again.proxy, first, "the same proxy, the same URL");
  assertStringIncludes(again.screen, "is reconnecting; logging in again here");
  assertStringIncludes(again.screen, "is connected again");
  const record = await listed();
  assertEquals([record.state, record.reconnects, record.pid], ["up", 1, first.pid]);
  assertEquals(await files(state.dir), [`${first.pid}.json`, `${first.pid}.log`]);
  // The terminal that logged in is gone; the proxy keeps the connection and serves.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assertEquals((await listed())?.state, "up");
  assertEquals(await streamRowsVia(first.url), 3 * 32);
  const running = proxyProcesses(first.pid, cluster);
  const stopped = await runProxy(["stop", "--all"], state);
  assertEquals(stopped.code, 0, stopped.stderr);
  assertEquals(running.filter(isAlive), []);
  assertEquals(await files(state.dir), []);
});

Deno.test("-f: an error the background process meets comes back as -f's one line", async () => {
  // Only the background process reads the remote ARRAKIS_SERVER; its log line is relayed.
  await using cluster = await startCluster({ env: {}, loginProfileEnv: {} });
  await using state = await stateEnv();
  const run = await runProxy(["-f", ...sshArgs(cluster)], { env: state.env });
  assertEquals(run.code, 1, run.stderr);
  assertEquals(run.stdout, "");
  assertMatch(
    run.stderr,
    /\narrakis-proxy: remote ARRAKIS_SERVER is not set on \S+; pass --server URL\n$/,
  );
  assertEquals(await files(state.dir), []);
});

Deno.test("bad input: one line and the right exit code", async (t) => {
  await using state = await stateEnv();
  const { env } = state;
  const oneLine = (result: { stderr: string }) =>
    assertMatch(result.stderr, /^arrakis-proxy: [^\n]+\n$/, result.stderr);

  await t.step("usage errors exit 2", async () => {
    for (
      const args of [
        ["-f", "host", "--", "true"],
        ["-f", "--csh", "--fish", "host"],
        ["--csh", "host"],
        ["-f", "--give-up-after", "soon", "host"],
        ["-f", "-l", "0.0.0.0:31206", "host"],
        ["status", "extra"],
        ["stop", "a", "b"],
        ["stop", "--all", "a"],
      ]
    ) {
      const result = await runProxy(args, { env });
      assertEquals(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      oneLine(result);
    }
  });

  await t.step("stop with no proxy, and an unknown host, exit 1", async () => {
    const none = await runProxy(["stop", "login.example.invalid"], { env });
    assertEquals(none.code, 1);
    assertEquals(
      none.stderr,
      "arrakis-proxy: no background proxy for login.example.invalid is running\n",
    );
    const unknown = await runProxy(["-f", "-o", "BatchMode=yes", "login.example.invalid"], { env });
    assertEquals(unknown.code, 1);
    assertMatch(unknown.stderr, /^arrakis-proxy: ssh to login\.example\.invalid failed/m);
    assertEquals(unknown.stdout, "");
    assertEquals(await files(state.dir), []);
  });

  await t.step("a stale record is removed; a newer version's record is reported", async () => {
    const stale = {
      format: 1,
      pid: 2 ** 22 + 1, // above Linux's pid_max: never a live process
      startTime: "1",
      host: "old",
      started: "2020-01-01T00:00:00Z",
    };
    await Deno.writeTextFile(`${state.dir}/${stale.pid}.json`, JSON.stringify(stale));
    await Deno.writeTextFile(`${state.dir}/${stale.pid}.log`, "old\n");
    const cleaned = await runProxy(["stop", "old"], { env });
    assertEquals(cleaned.code, 1);
    assertEquals(cleaned.stderr, "arrakis-proxy: no background proxy for old is running\n");
    assertEquals(await files(state.dir), []);

    await Deno.writeTextFile(`${state.dir}/4242.json`, JSON.stringify({ format: 2, pid: 4242 }));
    const newer = await runProxy(["status"], { env });
    assertEquals(newer.code, 1);
    assertMatch(
      newer.stderr,
      /^arrakis-proxy: warning: record \S+4242\.json was written by a newer arrakis-proxy/,
    );
    oneLine(newer);
    await Deno.remove(`${state.dir}/4242.json`);
  });

  await t.step(
    "an internal error: one line saying so and how to see more, exit 1; its stack with -v",
    async () => {
      // Two records of live processes that lack `started`: listing them hits a bug, not a user error.
      const sleepers = [0, 1].map(() =>
        new Deno.Command("sleep", { args: ["60"], stdin: "null" }).spawn()
      );
      try {
        for (const sleeper of sleepers) {
          const stat = await Deno.readTextFile(`/proc/${sleeper.pid}/stat`);
          const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
          const record = { format: 1, pid: sleeper.pid, startTime, host: "broken" };
          await Deno.writeTextFile(`${state.dir}/${sleeper.pid}.json`, JSON.stringify(record));
        }
        const plain = await runProxy(["-f", "broken"], { env });
        assertEquals(plain.code, 1, plain.stderr);
        assertMatch(
          plain.stderr,
          /^arrakis-proxy: internal error \(please report it\): [^\n]+; run with -v for details\n$/,
        );
        const verbose = await runProxy(["-f", "-v", "broken"], { env });
        assertEquals(verbose.code, 1, verbose.stderr);
        assertMatch(verbose.stderr, /^arrakis-proxy: internal error \(please report it\): /);
        assertMatch(verbose.stderr, /\n\s+at .*state\.ts/);
      } finally {
        for (const sleeper of sleepers) {
          sleeper.kill();
          await sleeper.status;
          await Deno.remove(`${state.dir}/${sleeper.pid}.json`).catch(() => undefined);
        }
      }
    },
  );

  await t.step("a state directory others can read is refused", async () => {
    await Deno.chmod(state.dir, 0o755);
    const refused = await runProxy(["status"], { env });
    assertEquals(refused.code, 1);
    assertEquals(
      refused.stderr,
      `arrakis-proxy: refusing state directory ${state.dir}: mode 755 lets others in (want 700)\n`,
    );
  });
});
