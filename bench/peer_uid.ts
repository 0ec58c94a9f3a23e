/**
 * What the uid check costs per accepted connection: `peerUid` timed over many
 * loopback connections, with few other sockets open and then with many (the
 * kernel's table is read whole for each check).
 *
 * Usage: `deno run -A bench/peer_uid.ts [CONNECTIONS] [OPEN_SOCKETS]`.
 *
 * @module
 */
import { peerUid } from "../lib/net/peer_uid.ts";
import { median, quantile } from "./stats.ts";

const connections = Number(Deno.args[0] ?? 500);
const extra = Number(Deno.args[1] ?? 4000);
using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });

async function measure(): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < connections; i++) {
    using _client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    using accepted = await listener.accept();
    const start = performance.now();
    if (await peerUid(accepted) !== Deno.uid()) throw new Error("peer uid not found");
    ms.push(performance.now() - start);
  }
  return ms;
}

const report = (label: string, ms: number[]) =>
  console.log(
    `${label}: p50 ${median(ms).toFixed(3)} ms, p90 ${quantile(ms, 0.9).toFixed(3)} ms ` +
      `(${Deno.readTextFileSync("/proc/net/tcp").split("\n").length - 2} IPv4 sockets listed)`,
  );
report("few sockets", await measure());
// Many open connections (two sockets each), as on a busy login node.
const held: Deno.Conn[] = [];
for (let i = 0; i < extra / 2; i++) {
  held.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
  held.push(await listener.accept());
}
report(`${extra} more sockets`, await measure());
for (const conn of held) conn.close();
