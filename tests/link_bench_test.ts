/**
 * The bench over emulated links still runs: `bench/main.ts --link --quick` (one
 * link, 10 ms and a 1 Gbit/s cap, tiny sizes) as a subprocess, checked for a
 * JSON report with every path's figures. No timing is judged: quick figures mean
 * nothing. Needs root and the Python venv with the real Arrakis peers, as CI has.
 */
import { assert, assertEquals } from "./assert.ts";

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
    for (const path of ["sshTrue", "proxy", "proxyRemoteEnv", "seed"]) {
      assert(positive(link.readyMs.median[path]), `readyMs.${path}`);
    }
    for (const key of ["arrakisFetchMBps", "getFlightInfoP50Ms"] as const) {
      for (const path of ["tunnel", "proxy", "seed"]) {
        assert(positive(link[key].median[path]), `${key}.${path} = ${link[key].median[path]}`);
      }
    }
    for (const path of ["tunnel", "proxy", "seed"]) {
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
    for (const key of ["startupSteps", "startupStepsRemoteEnv"] as const) {
      const steps = link[key];
      assert(steps.some((s) => s.step.startsWith("ready: export ARRAKIS_SERVER=")), key);
      assert(steps.some((s) => s.step === "(proxy child listening)"), key);
    }
  } finally {
    await Deno.remove(out).catch(() => {});
  }
});
