/**
 * Does an HTTP/2 client session that receives GOAWAY still abort Deno
 * (denoland/deno#36788)? Runs a victim process that keeps one grpc-js client
 * open while the mock Arrakis server (its own process) stops gracefully and
 * starts again, round after round, with a call cancelled by its deadline before
 * each stop (the sequence that aborted an in-process proxy in
 * tests/isolated_proxy_test.ts). Counts the victims killed by a signal.
 *
 * Usage: `deno run -A bench/goaway_repro.ts [--deno PATH]... [--runs N] [--rounds N]`.
 * Each `--deno` binary runs the victims (default: this one). Prints JSON.
 *
 * @module
 */
import { arrakisCommand, FlightTestClient } from "../tests/fixtures/flight_client.ts";
import { getFreePort } from "../lib/net/free_port.ts";
import { startMockProcess } from "../tests/fixtures/mock_process.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** The victim: one client across `rounds` graceful server restarts. */
async function victim(rounds: number): Promise<void> {
  const port = getFreePort();
  let backend = await startMockProcess(port);
  const client = FlightTestClient.connect(`grpc://127.0.0.1:${port}`);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 3; i++) {
      await client.getFlightInfo(arrakisCommand("Count", {}), { timeout: 5000 }).catch(() => {});
    }
    await client.doAction("slow", "2000", { timeout: 100 }).catch(() => {});
    await backend.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    backend = await startMockProcess(port);
  }
  client.close();
  await backend.stop();
}

async function main(args: string[]) {
  if (args[0] === "--victim") return await victim(Number(args[1]));
  const denos: string[] = [];
  let runs = 20;
  let rounds = 6;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--deno") denos.push(args[++i]);
    else if (args[i] === "--runs") runs = Number(args[++i]);
    else if (args[i] === "--rounds") rounds = Number(args[++i]);
  }
  if (denos.length === 0) denos.push(Deno.execPath());
  const script = new URL(import.meta.url).pathname;
  const results = [];
  // Alternate the binaries run by run, so load affects them alike.
  const tally = new Map(
    denos.map((deno) => [deno, { crashed: 0, failed: 0, ok: 0, signals: [] as string[] }]),
  );
  for (let run = 0; run < runs; run++) {
    for (const deno of denos) {
      const output = await new Deno.Command(deno, {
        args: ["run", "-A", "--config", CONFIG, script, "--victim", String(rounds)],
        stdout: "null",
        stderr: "piped",
      }).output();
      const t = tally.get(deno)!;
      if (output.signal) {
        t.crashed++;
        const nghttp2 = /nghttp2/.test(new TextDecoder().decode(output.stderr));
        t.signals.push(`${output.signal}${nghttp2 ? " (nghttp2)" : ""}`);
      } else if (output.success) t.ok++;
      else t.failed++;
    }
  }
  for (const deno of denos) {
    const version = new TextDecoder().decode(
      (await new Deno.Command(deno, { args: ["--version"], stdout: "piped" }).output()).stdout,
    ).split("\n")[0];
    results.push({ deno: version, runs, roundsPerRun: rounds, ...tally.get(deno) });
  }
  console.log(JSON.stringify(results, null, 2));
}

if (import.meta.main) await main(Deno.args);
