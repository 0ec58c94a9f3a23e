/**
 * Load through the real `arrakis-proxy` command against the namespace cluster
 * (loopback and the test's own namespace only; every run is bounded), at sizes
 * that keep the suite quick; `deno task bench load` runs the same scenarios
 * (tests/fixtures/load.ts) at full size:
 *
 * - 1,000 concurrent GetFlightInfo through the proxy;
 * - 8 concurrent 16 MiB DoGets on each path (data-server forwards, the reuse
 *   forward, the proxy): every stream complete and byte for byte what the
 *   server sent — streams of one server identical, the proxy's the same as the
 *   forward's;
 * - 1,000 sequential GetFlightInfo: the proxy's open descriptors do not grow
 *   (the resident-memory judgement needs 100,000 calls: the bench).
 *
 * Figures are printed (console.log) so they can be quoted; timings are not asserted.
 * Needs root; run with `deno task test tests/load_test.ts`.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  concurrentInfos,
  doGetPaths,
  type DoGetSizes,
  sequentialInfos,
  startLoadRig,
} from "./fixtures/load.ts";

const MiB = 1 << 20;
const CONCURRENT_INFOS = 1_000;
// 16 bytes a row (time and one channel per endpoint): 4 MiB batches, 16 MiB DoGets,
// far past every HTTP/2 and SSH channel window on the way.
const DOGETS: DoGetSizes = { concurrent: 8, rowsPerBatch: 262_144, batches: 4, digest: true };
const SEQUENTIAL = { warmUp: 200, calls: 1_000 };

Deno.test("under load through the real command", async (t) => {
  await using rig = await startLoadRig();

  const passed: boolean[] = [];
  passed.push(
    await t.step(`${CONCURRENT_INFOS} concurrent GetFlightInfo`, async () => {
      const { ms, results } = await concurrentInfos(rig.proxy.url, CONCURRENT_INFOS);
      console.log(`${CONCURRENT_INFOS} concurrent GetFlightInfo: ${ms.toFixed(0)} ms`);
      assertEquals(results.length, CONCURRENT_INFOS);
      for (const locations of results) {
        assertEquals(locations.length, 2);
        // Data-server forwards are Unix sockets in the proxy's private directory.
        for (const uri of locations) assertMatch(uri, /^grpc\+unix:\/\/\/\S+\/f-[0-9a-f]{8}$/);
      }
    }),
  );

  passed.push(
    await t.step("concurrent large DoGets on every path arrive whole and unchanged", async () => {
      const paths = await doGetPaths(rig.proxy.url, DOGETS);
      assertEquals(paths.length, 3);
      const expectedRows = DOGETS.rowsPerBatch * DOGETS.batches;
      const digestOf = new Map<string, string>();
      for (const { label, run } of paths) {
        const { ms, results } = await run();
        const bytes = results.reduce((sum, result) => sum + result.bytes, 0);
        console.log(
          `${DOGETS.concurrent} concurrent DoGets through ${label}: ` +
            `${(bytes / MiB).toFixed(0)} MiB in ${(ms / 1000).toFixed(1)} s`,
        );
        assertEquals(results.length, DOGETS.concurrent);
        for (const result of results) {
          assertEquals(result.rows, expectedRows, label);
          assert(result.bytes >= expectedRows * 16, `${label}: ${result.bytes} bytes`);
          // Every stream from one server is the same bytes, whichever way it came.
          const first = digestOf.get(result.server) ?? result.sha256!;
          digestOf.set(result.server, first);
          assertEquals(result.sha256, first, `${label}: a stream from ${result.server} differs`);
        }
      }
      // Both replicas and the info server served: three different streams were compared.
      assertEquals(digestOf.size, 3);
    }),
  );

  passed.push(
    await t.step(`${SEQUENTIAL.calls} sequential GetFlightInfo: no descriptor growth`, async () => {
      const { ms, results } = await sequentialInfos(rig.proxy, SEQUENTIAL);
      console.log(`${SEQUENTIAL.calls} sequential GetFlightInfo: ${(ms / 1000).toFixed(1)} s`);
      for (const { name, before, after } of results) {
        console.log(
          `  ${name}: VmRSS ${(before.rss / MiB).toFixed(1)} → ${
            (after.rss / MiB).toFixed(1)
          } MiB, ` +
            `fds ${before.fds} → ${after.fds}`,
        );
        assert(after.fds <= before.fds, `${name}: open descriptors grew to ${after.fds}`);
      }
    }),
  );
  // A failure here is most often a process of the run dying: say why (the runner
  // reruns a file whose processes printed nghttp2's abort, denoland/deno#36788).
  if (passed.includes(false)) console.log(`the proxy's log:\n${rig.proxy.stderr()}`);
});
