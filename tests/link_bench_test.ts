/**
 * The bench over emulated links still runs: `bench/main.ts --link --quick` (one
 * link, 10 ms and a 1 Gbit/s cap, tiny sizes) as a subprocess, checked for a
 * JSON report with every path's figures: the token-checking paths' (whose
 * servers saw the proxy's token on the proxy's path, the client's own on the
 * tunnel) and the Kafka paths' live latency. No timing is judged: quick figures
 * mean nothing. Needs root, the Python venv with the real Arrakis peers and the
 * Kafka broker's jars, as CI has.
 */
import { assert, assertEquals } from "./assert.ts";
import { TOKEN_SUBJECTS } from "../bench/link.ts";

const MAIN = new URL("../bench/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** One link's figures in the report (the parts checked here). */
interface LinkFigures {
  link: { rttMs: number; rateMbit?: number };
  pingP50Ms: number;
  readyMs: { median: Record<string, number> };
  arrakisFetchMBps: { median: Record<string, number> };
  getFlightInfoP50Ms: { median: Record<string, number> };
  dataServersReadyMarginMs: Record<string, Record<string, number>>;
  parallelMBps: Record<string, number>;
  firstCallMs: Record<string, number>;
  startupSteps: { ms: number; step: string }[];
  startupStepsRemoteEnv: { ms: number; step: string }[];
  startupStepsToken: { ms: number; step: string }[];
  kafkaLiveP50Ms: { median: Record<string, number> };
  kafkaLiveP90Ms: { median: Record<string, number> };
  kafkaLiveAddedP50Ms: Record<string, number>;
}

const positive = (value: unknown) => typeof value === "number" && value > 0;

Deno.test("deno task bench --link --quick reports every path over an emulated link", async () => {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, MAIN, "--link", "--quick", "--out", out],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assertEquals(run.code, 0, stderr);
    const report = JSON.parse(await Deno.readTextFile(out));
    assertEquals(report.mode, "link-quick");
    const links = Object.values(report.links) as LinkFigures[];
    assertEquals(links.length, 1);
    const [link] = links;
    assertEquals(link.link, { rttMs: 10, rateMbit: 1000 });
    // The relay delays: a round trip through an SSH session takes at least the link's.
    assert(link.pingP50Ms >= 10, `ping ${link.pingP50Ms} ms over a 10 ms link`);
    for (const path of ["sshTrue", "proxy", "proxyRemoteEnv", "seed", "tokenProxy"]) {
      assert(positive(link.readyMs.median[path]), `readyMs.${path}`);
    }
    for (const key of ["arrakisFetchMBps", "getFlightInfoP50Ms"] as const) {
      for (const path of ["tunnel", "proxy", "seed", "tokenTunnel", "tokenProxy"]) {
        assert(positive(link[key].median[path]), `${key}.${path} = ${link[key].median[path]}`);
      }
    }
    for (const path of ["tunnel", "proxy", "seed", "tokenTunnel", "tokenProxy"]) {
      assert(positive(link.firstCallMs[path]), `firstCallMs.${path}`);
    }
    for (const count of ["1", "10"]) {
      for (const path of ["proxy", "seed"]) {
        assert(
          Number.isFinite(link.dataServersReadyMarginMs[count][path]),
          `${count} data servers, ${path}`,
        );
      }
    }
    for (const value of Object.values(link.parallelMBps)) assert(positive(value));
    // Both token servers check every read (--auth full): each path's calls were
    // made with a token, and the server saw whose: the proxy's where the client
    // sent none (DoGets at the data server through the header relay), the
    // client's own through the tunnel.
    const callers = report.tokenCallers as Record<"info" | "data", Record<string, number>>;
    assert(callers.info[TOKEN_SUBJECTS.proxy] > 0, JSON.stringify(callers));
    assert(callers.data[TOKEN_SUBJECTS.proxy] > 0, JSON.stringify(callers));
    assert(callers.data[TOKEN_SUBJECTS.client] > 0, JSON.stringify(callers));
    assertEquals(
      callers.info[TOKEN_SUBJECTS.client],
      undefined,
      "the tunnel reaches the data server",
    );
    for (const key of ["kafkaLiveP50Ms", "kafkaLiveP90Ms"] as const) {
      for (const path of ["kafkaTunnel", "kafkaForward", "kafkaFlight"]) {
        assert(Number.isFinite(link[key].median[path]), `${key}.${path}`);
      }
    }
    for (const path of ["kafkaForward", "kafkaFlight"]) {
      assert(Number.isFinite(link.kafkaLiveAddedP50Ms[path]), `kafkaLiveAddedP50Ms.${path}`);
    }
    for (const key of ["startupSteps", "startupStepsRemoteEnv", "startupStepsToken"] as const) {
      const steps = link[key];
      assert(steps.some((s) => s.step.startsWith("ready: export ARRAKIS_SERVER=")), key);
      assert(steps.some((s) => s.step === "(proxy child listening)"), key);
    }
    assert(link.startupStepsToken.some((s) => s.step.startsWith("token for reads: issuer ")));
  } finally {
    await Deno.remove(out).catch(() => {});
  }
});
