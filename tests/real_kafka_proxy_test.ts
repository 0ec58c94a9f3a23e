/**
 * End to end through the real `arrakis-proxy` command on a Kafka-backed
 * deployment: a real broker (`kafka:9092`, named only inside the namespace),
 * `arrakis-server` with the Kafka backend and a `direct_read` scope map, the
 * real `arrakis.Publisher` producing live blocks, the real client outside the
 * namespace, and real OpenSSH as a plain account.
 *
 * The proof that data crossed the proxy's Kafka listener is not the values
 * (the flight mode gives the same ones): it is the broker's connections, whose
 * reading end is the login host's sshd (the proxy's SSH forward) rather than
 * the Arrakis server, with the listener's own debug line for the client, and
 * no Stream DoGet on the server.
 *
 * One broker for the whole file (the last step restarts its JVM once). Needs root, the pinned Python peers
 * (`bash .ci/python-venv`) and the broker's jars (`bash .ci/kafka-jars`).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type Cluster, startCluster } from "./fixtures/cluster.ts";
import { runProxy, startProxy } from "./fixtures/proxy_cli.ts";
import { findProcesses, runCommand, waitFor } from "./fixtures/processes.ts";
import { pythonEnv, requirePython } from "./fixtures/python.ts";
import {
  KAFKA_BROKER,
  KAFKA_CHANNELS,
  KAFKA_STRIDE_NS,
  kafkaScopeMap,
} from "./fixtures/real_kafka.ts";
import { startKafkaPublisher } from "./fixtures/kafka_publisher.ts";
import {
  checkKafkaBlocks,
  type KafkaClientBlock,
  REAL_KAFKA_CLIENT,
} from "./fixtures/real_kafka_client.ts";
import { lastJson } from "./fixtures/real_client.ts";
import type { KafkaBroker } from "./fixtures/kafka_broker.ts";
import { otherUser } from "./fixtures/other_user.ts";

/** Sends ApiVersions v0 to 127.0.0.1:argv[1] and prints how many answer bytes came back (0: closed). */
const API_VERSIONS = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
body = struct.pack(">hhih", 18, 0, 7, 1) + b"x"
s.sendall(struct.pack(">i", len(body)) + body)
try:
    print(len(s.recv(4)))
except ConnectionResetError:
    print(0)
`;

const python = requirePython();
const CHANNELS = KAFKA_CHANNELS.map((channel) => channel.name);
const BROKER = `${KAFKA_BROKER.name}:${KAFKA_BROKER.port}`;
const INFO = { name: "info", port: 31206 };
/** The proxy's Kafka listener's `-v` line for a client it relays. */
const SERVED = new RegExp(`kafka ${BROKER}: client 127\\.0\\.0\\.1:\\d+ connected`);

function sshArgs(cluster: Cluster): string[] {
  return ["-F", cluster.sshConfigPath, "-l", "localhost:0", cluster.sshHost];
}

/** GPS seconds as the client script takes them. */
function seconds(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`;
}

/** The server's Stream DoGets (its relay of data): `request=Stream`, not the `info:Stream` planning. */
function streamDoGets(log: string): number {
  return log.split("\n").filter((line) => / request=Stream peer=/.test(line)).length;
}

/** Whether a process is an sshd (the login host's end of an SSH forward). */
function isSshd(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).startsWith("sshd");
  } catch {
    return false;
  }
}

/** Polls the broker until `done` settles: whether some connection's reading end was an sshd. */
async function sawSshdReader(broker: KafkaBroker, done: Promise<unknown>): Promise<boolean> {
  let finished = false;
  done.finally(() => finished = true).catch(() => {});
  while (!finished) {
    const connections = await broker.connections();
    if (connections.some((connection) => connection.pids.some(isSshd))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** `forwarding 127.0.0.1:P → kafka:9092 (Kafka)` lines: the listeners, by broker. */
function kafkaListeners(stderr: string): string[] {
  return [...stderr.matchAll(/forwarding (\S+) → (\S+) \(Kafka\)/g)].map((m) => `${m[1]} ${m[2]}`);
}

/**
 * The blocks of `arrakis stream --json` (one SeriesBlock a line), as the client
 * script prints them: `time_ns` taken from the text, beyond a double's precision.
 */
function cliBlocks(stdout: string): KafkaClientBlock[] {
  return stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => {
    const time = /"time_ns": (\d+)/.exec(line)?.[1];
    assert(time, line.slice(0, 200));
    return { time_ns: time, data: JSON.parse(line).data };
  });
}

/** Runs the client through `arrakis-proxy … -- python …` and returns its JSON and stderr. */
async function throughProxy(cluster: Cluster, proxyArgs: string[], clientArgs: string[]) {
  const result = await runProxy(
    [
      "-v",
      ...proxyArgs,
      ...sshArgs(cluster),
      "--",
      python.python,
      REAL_KAFKA_CLIENT,
      ...clientArgs,
    ],
    { env: await pythonEnv(), timeoutMs: 120_000 },
  );
  assertEquals(result.code, 0, `${result.stderr}\n${cluster.real?.log()}`);
  return { json: lastJson(result.stdout, result.stderr), stderr: result.stderr };
}

/**
 * Starts the client streaming `blocks` blocks through the proxy at `url`; its
 * output, when it ends (in an object: awaiting this must not wait for it).
 */
async function streamThrough(url: string, blocks: number) {
  const client = new Deno.Command(python.python, {
    args: [REAL_KAFKA_CLIENT, "stream", String(blocks), ...CHANNELS],
    env: { ...await pythonEnv(), ARRAKIS_SERVER: url },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { output: client.output() };
}

/**
 * The same client call made inside the namespace, without the proxy (or, given
 * `server`, through a proxy that serves other machines).
 */
async function inside(
  cluster: Cluster,
  clientArgs: string[],
  server = `grpc://${INFO.name}:${INFO.port}`,
) {
  const child = cluster.netns.spawn([python.python, REAL_KAFKA_CLIENT, ...clientArgs], {
    env: { ...await pythonEnv(), ARRAKIS_SERVER: server, HOME: "/nonexistent" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const output = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert(output.success, `the client inside failed:\n${decode(output.stderr)}`);
  return lastJson(decode(output.stdout), decode(output.stderr));
}

Deno.test("the real client through arrakis-proxy to a Kafka-backed deployment", async (t) => {
  await using cluster = await startCluster({ deployment: "real-kafka" });
  assert(cluster.sshd.user !== "root", "the login account is a plain one");
  const real = cluster.real!;
  const broker = real.kafka!;
  // Stopped early by the Publisher step, so stopped once whichever way the test ends.
  const inner = await startKafkaPublisher(cluster.netns);
  let stopping: PromiseLike<void> | undefined;
  const stopInner = () => stopping ??= inner[Symbol.asyncDispose]();
  await using _inner = { [Symbol.asyncDispose]: stopInner };
  let publisher = inner;
  /** A past interval of four blocks, published already. */
  const pastInterval = async () => {
    const already = publisher.published.length;
    await publisher.waitForBlocks(already + 6);
    const start = publisher.published[already];
    return [seconds(start), seconds(start + 4n * KAFKA_STRIDE_NS)];
  };

  /** Makes the server's scope map name `directRead`, and waits until its FlightInfos do. */
  const nameBroker = async (directRead: string) => {
    await real.reloadScopeMap(
      kafkaScopeMap({ name: INFO.name, host: "", port: INFO.port }, { directRead }),
    );
    await waitFor(
      async () => {
        const seen = await inside(cluster, ["flight-info", ...CHANNELS]);
        return JSON.stringify(seen.locations).includes(`"${directRead}"`);
      },
      20_000,
      `the server to name ${directRead}`,
    );
  };

  try {
    await t.step("a live stream reads blocks from Kafka through the proxy's listener", async () => {
      const first = await publisher.waitForBlocks(publisher.published.length + 1);
      const relayed = streamDoGets(real.log());
      const run = throughProxy(cluster, [], ["stream", "12", ...CHANNELS]);
      const sshdRead = await sawSshdReader(broker, run);
      const { json, stderr } = await run;
      const blocks = json.blocks as KafkaClientBlock[];
      assertEquals(blocks.length, 12);
      assert(BigInt(blocks[0].time_ns) >= first - KAFKA_STRIDE_NS * 8n, "an old block");
      checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      // The proof: the broker's reader was the login host's sshd (our forward), the
      // proxy's listener served the client, and the server relayed nothing.
      assert(sshdRead, "no broker connection came from the login host's sshd");
      const listeners = kafkaListeners(stderr);
      assertEquals(listeners.length, 1, stderr);
      assertMatch(listeners[0], new RegExp(`^127\\.0\\.0\\.1:\\d+ ${BROKER}$`));
      assertMatch(stderr, SERVED);
      assertEquals(streamDoGets(real.log()), relayed, "the server relayed the stream");
    });

    await t.step(
      "--allow-remote-clients: a client on another machine reads Kafka through the listener",
      async () => {
        // The test's namespace is the other machine; it reaches the proxy at the
        // root end of its veth pair, the proxy's listen address.
        const address = cluster.netns.hostAddress;
        await using proxy = await startProxy([
          "-v",
          "--allow-remote-clients",
          "-l",
          `${address}:0`,
          "-F",
          cluster.sshConfigPath,
          cluster.sshHost,
        ]);
        await publisher.waitForBlocks(publisher.published.length + 1);
        // The proxy's log goes with a failure: the client alone would not say why.
        const json = await inside(cluster, ["stream", "4", ...CHANNELS], proxy.url)
          .catch((error) => {
            throw new Error(`${error.message}\n${proxy.stderr()}`);
          });
        checkKafkaBlocks(json.blocks as KafkaClientBlock[], KAFKA_CHANNELS);
        // Its listener listens where the proxy does, and served the other machine's client
        // (inside, `kafka` names the broker itself: a location left alone would also work).
        const escape = (address: string) => address.replaceAll(".", "\\.");
        const listeners = kafkaListeners(proxy.stderr());
        assertEquals(listeners.length, 1, proxy.stderr());
        assertMatch(listeners[0], new RegExp(`^${escape(address)}:\\d+ ${BROKER}$`));
        const served = `kafka ${BROKER}: client ${escape(cluster.netns.nsAddress)}:\\d+ connected`;
        assertMatch(proxy.stderr(), new RegExp(served));
      },
    );

    await t.step("the arrakis CLI's stream, run with the printed export line", async () => {
      await using proxy = await startProxy(["-v", ...sshArgs(cluster)], { env: await pythonEnv() });
      const url = /^export ARRAKIS_SERVER=(\S+)$/.exec(await proxy.exportLine)?.[1];
      assert(url, proxy.stdout());
      const relayed = streamDoGets(real.log());
      const run = runCommand(python.arrakis, {
        args: ["stream", "--json", "--duration", "3", ...CHANNELS],
        env: { ...await pythonEnv(), ARRAKIS_SERVER: url },
        signal: AbortSignal.timeout(120_000),
      });
      const sshdRead = await sawSshdReader(broker, run);
      const result = await run;
      assertEquals(result.code, 0, `${result.stderr}\n${proxy.stderr()}`);
      const blocks = cliBlocks(result.stdout);
      assertEquals(blocks.length, 12, result.stdout);
      checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      assert(sshdRead, "no broker connection came from the login host's sshd");
      assertEquals(kafkaListeners(proxy.stderr()).length, 1, proxy.stderr());
      assertMatch(proxy.stderr(), SERVED);
      assertEquals(streamDoGets(real.log()), relayed, "the server relayed the stream");
    });

    await t.step("past data: arrakis.fetch equals the same call made inside", async (t) => {
      const interval = await pastInterval();
      const direct = await inside(cluster, ["fetch", ...interval, ...CHANNELS]);
      const relayed = streamDoGets(real.log());
      const { json, stderr } = await throughProxy(cluster, [], ["fetch", ...interval, ...CHANNELS]);
      assertEquals(json, direct);
      checkKafkaBlocks(json.blocks as KafkaClientBlock[], KAFKA_CHANNELS);
      assertEquals(kafkaListeners(stderr).length, 1);
      assertEquals(streamDoGets(real.log()), relayed, "the server relayed the fetch");

      await t.step("--kafka flight: the same values, through the Arrakis server", async () => {
        const flight = await throughProxy(cluster, ["--kafka", "flight"], [
          "fetch",
          ...interval,
          ...CHANNELS,
        ]);
        assertEquals(flight.json, direct);
        assertEquals(kafkaListeners(flight.stderr), []);
        assert(streamDoGets(real.log()) > relayed, "the server did not relay the fetch");
      });
    });

    await t.step(
      "past data: a bounded arrakis.stream equals the same call made inside",
      async () => {
        const interval = await pastInterval();
        const direct = await inside(cluster, ["stream-span", ...interval, ...CHANNELS]);
        const relayed = streamDoGets(real.log());
        const { json, stderr } = await throughProxy(cluster, [], [
          "stream-span",
          ...interval,
          ...CHANNELS,
        ]);
        assertEquals(json, direct);
        const blocks = json.blocks as KafkaClientBlock[];
        assertEquals(blocks.length, 4);
        checkKafkaBlocks(blocks, KAFKA_CHANNELS);
        assertEquals(kafkaListeners(stderr).length, 1);
        assertMatch(stderr, SERVED);
        assertEquals(streamDoGets(real.log()), relayed, "the server relayed the stream");
      },
    );

    await t.step("the SSH master killed mid-stream: the listener keeps its port", async () => {
      await using proxy = await startProxy(["-v", ...sshArgs(cluster)], { env: await pythonEnv() });
      const { output } = await streamThrough(proxy.url, 40);
      await waitFor(() => kafkaListeners(proxy.stderr()).length === 1, 60_000, "the listener");
      // A few blocks in, the master dies (as a dropped connection would end it).
      await publisher.waitForBlocks(publisher.published.length + 8);
      const controlPath = /-S (\/\S+\/ctl)/.exec(proxy.stderr())?.[1];
      assert(controlPath, "the -v output names the control socket");
      // The master, and maybe a short-lived mux client of it (gone by now: skipped).
      let killed = 0;
      for (const pid of findProcesses(controlPath)) {
        try {
          Deno.kill(pid, "SIGKILL");
          killed++;
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
      assert(killed > 0, "no ssh master found");
      await waitFor(() => /reconnected to /.test(proxy.stderr()), 60_000, "the reconnect");
      const done = await output;
      const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      assert(done.success, `the client failed:\n${decode(done.stderr)}\n${proxy.stderr()}`);
      const blocks = lastJson(decode(done.stdout), decode(done.stderr))
        .blocks as KafkaClientBlock[];
      assertEquals(blocks.length, 40);
      checkKafkaBlocks(blocks, KAFKA_CHANNELS);
      const times = blocks.map((block) => BigInt(block.time_ns));
      for (let i = 1; i < times.length; i++) {
        assertEquals(times[i] - times[i - 1], KAFKA_STRIDE_NS, `a gap after block ${i - 1}`);
      }
      // One listener for the whole run, on one port: the client's bootstrap stays good,
      // and librdkafka connected to it again after the drop.
      assertEquals(kafkaListeners(proxy.stderr()).length, 1, proxy.stderr());
      const after = proxy.stderr().slice(proxy.stderr().indexOf("reconnected to "));
      assertMatch(after, SERVED);
    });

    await t.step(
      "a broker the login host cannot reach: one line, then the Flight fallback",
      async () => {
        const interval = await pastInterval();
        const direct = await inside(cluster, ["fetch", ...interval, ...CHANNELS]);
        await nameBroker("kafka://kafka-gone:9092");
        const { json, stderr } = await throughProxy(cluster, [], [
          "fetch",
          ...interval,
          ...CHANNELS,
        ]);
        assertEquals(json, direct);
        const lines = stderr.split("\n").filter((line) =>
          /kafka-gone:9092 cannot be forwarded/.test(line)
        );
        assertEquals(lines.length, 1, stderr);
        assertEquals(kafkaListeners(stderr), []);
        await nameBroker(`kafka://${BROKER}`);
      },
    );

    await t.step(
      "arrakis.Publisher through the proxy produces through the listener, ours alone",
      async () => {
        await stopInner();
        await using proxy = await startProxy(["-v", ...sshArgs(cluster)], {
          env: await pythonEnv(),
        });
        await using outside = await startKafkaPublisher(undefined, { url: proxy.url }).catch(
          (error) => {
            throw new Error(`${error.message}\nthe proxy said:\n${proxy.stderr()}`);
          },
        );
        publisher = outside;
        await outside.waitForBlocks(8);
        assertEquals(kafkaListeners(proxy.stderr()).length, 1, proxy.stderr());
        assertMatch(
          proxy.stderr(),
          SERVED,
        );
        assert(
          (await broker.connections()).some((connection) => connection.pids.some(isSshd)),
          "the producer's connection did not come from the login host's sshd",
        );
        // The listener is ours alone: another account on this machine gets no answer.
        const port = /^127\.0\.0\.1:(\d+) /.exec(kafkaListeners(proxy.stderr())[0])![1];
        await using other = await otherUser();
        assertEquals((await other.python(API_VERSIONS, port)).stdout.trim(), "0");
        const mine = await new Deno.Command("/usr/bin/python3", {
          args: ["-c", API_VERSIONS, port],
          stdout: "piped",
        }).output();
        assertEquals(new TextDecoder().decode(mine.stdout).trim(), "4");
        await waitFor(
          () => proxy.stderr().includes(`uid ${other.uid}, not this proxy's user`),
          10_000,
          "the refusal line",
        );
        // What it published is there for a reader inside, with the values it gave them.
        const interval = await pastInterval();
        const read = await inside(cluster, ["fetch", ...interval, ...CHANNELS]);
        checkKafkaBlocks(read.blocks as KafkaClientBlock[], KAFKA_CHANNELS);
      },
    );

    await t.step("doctor: the broker through its forward, and the test fetch", async () => {
      await real.reloadScopeMap(kafkaScopeMap({ name: INFO.name, host: "", port: INFO.port }));
      await waitFor(
        async () => {
          const seen = await inside(cluster, ["flight-info", ...CHANNELS]);
          return JSON.stringify(seen.locations).includes(`kafka://${BROKER}`);
        },
        20_000,
        "the server to name the broker again",
      );
      // doctor fetches a second a minute ago: the first publisher was publishing then.
      const gpsNowNs = () => (BigInt(Date.now()) - 315_964_800_000n + 18_000n) * 1_000_000n;
      await waitFor(
        () => gpsNowNs() - 62_000_000_000n > inner.published[0],
        90_000,
        "a minute of published data",
      );
      const result = await runProxy(["doctor", "-F", cluster.sshConfigPath, cluster.sshHost], {
        env: await pythonEnv(),
      });
      assertEquals(result.code, 0, result.stdout + result.stderr);
      assertMatch(
        result.stdout,
        new RegExp(`kafka broker ${BROKER} +ok, [\\d.]+ ms: → 127\\.0\\.0\\.1:\\d+ .*ApiVersions`),
      );
      assertMatch(result.stdout, /data fetch +ok.*Kafka-backed endpoints read at their Flight/);
    });

    await t.step("-f: the background proxy's status counts its Kafka listener", async () => {
      const runtime = await Deno.makeTempDir({ prefix: "arrakis-bg-" });
      await Deno.chmod(runtime, 0o700);
      const env = { ...await pythonEnv(), XDG_RUNTIME_DIR: runtime, SHELL: "/bin/sh" };
      await using _background = {
        [Symbol.asyncDispose]: async () => {
          await runProxy(["stop", "--all"], { env }).catch(() => undefined);
          await Deno.remove(runtime, { recursive: true });
        },
      };
      const started = await runProxy(["-f", "--sh", ...sshArgs(cluster)], { env });
      assertEquals(started.code, 0, started.stderr);
      const url = /ARRAKIS_SERVER=([^;\s]+)/.exec(started.stdout)?.[1]?.replaceAll("'", "");
      assert(url, started.stdout);
      await using live = await startKafkaPublisher(cluster.netns);
      const client = await new Deno.Command(python.python, {
        args: [REAL_KAFKA_CLIENT, "stream", "4", ...CHANNELS],
        env: { ...env, ARRAKIS_SERVER: url },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(client.success, new TextDecoder().decode(client.stderr));
      checkKafkaBlocks(
        lastJson(new TextDecoder().decode(client.stdout)).blocks as KafkaClientBlock[],
        KAFKA_CHANNELS,
      );
      assert(live.published.length > 0);
      type Forward = { remote: string; local: string; purpose?: string };
      let forwards: Forward[] = [];
      await waitFor(
        async () => {
          const status = await runProxy(["status", "--json"], { env });
          forwards = JSON.parse(status.stdout)[0]?.forwards ?? [];
          return forwards.some((forward) => forward.purpose === "kafka");
        },
        20_000,
        "status to list the Kafka listener",
      );
      const kafka = forwards.filter((forward) => forward.purpose === "kafka");
      assertEquals(kafka.map((forward) => forward.remote), [BROKER]);
      assertMatch(kafka[0].local, /^127\.0\.0\.1:\d+$/);
    });
    await t.step("the broker restarted mid-stream through the real command", async () => {
      await using live = await startKafkaPublisher(cluster.netns);
      await using proxy = await startProxy(["-v", ...sshArgs(cluster)], { env: await pythonEnv() });
      const { output } = await streamThrough(proxy.url, 60);
      await waitFor(() => SERVED.test(proxy.stderr()), 60_000, "the listener's client");
      await live.waitForBlocks(live.published.length + 8);
      const before = proxy.stderr().length;
      const relayed = streamDoGets(real.log());
      const stoppedAt = live.published.at(-1)!;
      await broker.stop();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await broker.start();
      const done = await output;
      const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      assert(done.success, `the client failed:\n${decode(done.stderr)}\n${proxy.stderr()}`);
      const blocks = lastJson(decode(done.stdout)).blocks as KafkaClientBlock[];
      assertEquals(blocks.length, 60);
      const times = blocks.map((block) => BigInt(block.time_ns));
      for (let i = 1; i < times.length; i++) {
        assertEquals(times[i] - times[i - 1], KAFKA_STRIDE_NS, `a gap after block ${i - 1}`);
      }
      // The outage comes back as masked (gap-filled) blocks; every whole block holds
      // what was published, and the stream ends on data read after the restart.
      const whole = blocks.filter((block) =>
        Object.values(block.data).every((samples) => !samples.includes(null))
      );
      checkKafkaBlocks(whole, KAFKA_CHANNELS);
      assert(whole.includes(blocks.at(-1)!), "the stream did not recover after the restart");
      assert(times.at(-1)! > stoppedAt, "the stream ended before the broker stopped");
      // The same listener, and librdkafka reached the restarted broker through it.
      assertEquals(kafkaListeners(proxy.stderr()).length, 1, proxy.stderr());
      assertMatch(proxy.stderr().slice(before), SERVED);
      assertEquals(streamDoGets(real.log()), relayed, "the server relayed the stream");
    });
  } catch (error) {
    console.error(`server log:\n${real.log()}\npublisher:\n${publisher.log()}`);
    throw error;
  }
});
