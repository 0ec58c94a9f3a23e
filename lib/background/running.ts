/**
 * The background proxies that run: list them (`status`), stop one (`stop`).
 *
 * @example
 * ```ts
 * import { listBackgroundProxies, stopBackgroundProxy } from "./running.ts";
 *
 * const { records } = await listBackgroundProxies();
 * for (const proxy of records) await stopBackgroundProxy(proxy);
 * ```
 *
 * @module
 */
import { UserError } from "../errors.ts";
import { delay } from "../async.ts";
import {
  isLive,
  listRecords,
  openStateDir,
  type ProxyRecord,
  type RecordList,
  removeRecord,
  removeStaleRecord,
} from "./state.ts";

/**
 * Every background proxy of this user that is running; records of proxies that
 * are gone are removed on the way.
 *
 * @example
 * ```ts
 * import { listBackgroundProxies } from "./running.ts";
 *
 * const { records } = await listBackgroundProxies();
 * for (const proxy of records) console.log(`${proxy.host} ${proxy.url} pid ${proxy.pid}`);
 * ```
 */
export async function listBackgroundProxies(): Promise<RecordList> {
  return await listRecords(await openStateDir());
}

/**
 * Stops a background proxy as Ctrl-C stops a foreground one (SIGTERM: the
 * proxy, its forwards and the SSH connection close) and waits until its process
 * is gone and its record removed; SIGKILL after `timeoutMs`.
 *
 * @example
 * ```ts
 * import { listBackgroundProxies, stopBackgroundProxy } from "./running.ts";
 *
 * const { records } = await listBackgroundProxies();
 * for (const proxy of records.filter((p) => p.host === "login.example.org")) {
 *   await stopBackgroundProxy(proxy);
 * }
 * ```
 *
 * @throws {UserError} when the proxy is not running (its stale record is removed).
 */
export async function stopBackgroundProxy(
  record: Pick<ProxyRecord, "pid" | "startTime" | "host" | "master">,
  { timeoutMs = 15_000 }: { timeoutMs?: number } = {},
): Promise<void> {
  const dir = await openStateDir();
  if (!await isLive(record)) {
    await removeStaleRecord(dir, record, record.pid);
    throw new UserError(`no background proxy for ${record.host} is running (pid ${record.pid})`);
  }
  Deno.kill(record.pid, "SIGTERM");
  if (!await exitsWithin(record, timeoutMs)) {
    try {
      Deno.kill(record.pid, "SIGKILL");
    } catch { /* gone */ }
    await exitsWithin(record, 5000);
    await removeStaleRecord(dir, record, record.pid);
  }
  await removeRecord(dir, record.pid);
}

async function exitsWithin(
  record: Pick<ProxyRecord, "pid" | "startTime">,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (await isLive(record)) {
    if (Date.now() > deadline) return false;
    await delay(50);
  }
  return true;
}
