/**
 * Where background proxies are written down: one small JSON record per proxy
 * (and its log) in a private directory — `$XDG_RUNTIME_DIR/arrakis-proxy`, else
 * `arrakis-proxy-UID` under the temp directory — mode 0700, files 0600, owned by
 * the user. A record is trusted only while its process is alive with the same
 * start time (a reused pid is not the proxy); anything else is removed.
 *
 * @example
 * ```ts
 * import { listRecords, openStateDir } from "./state.ts";
 *
 * const dir = await openStateDir();
 * const { records, problems } = await listRecords(dir);
 * for (const record of records) console.log(record.host, record.url, record.pid);
 * for (const problem of problems) console.error(problem);
 * ```
 *
 * @module
 */
import { UserError } from "../errors.ts";
import { endLeftoverSsh, type MasterAddress } from "../ssh_proxy.ts";

/** The record format this program writes; a larger one is from a newer version. */
export const RECORD_FORMAT = 1;

/** What a running background proxy writes about itself (rewritten on changes). */
export interface ProxyRecord {
  /** {@link RECORD_FORMAT} of the program that wrote it. */
  format: number;
  /** Program version that wrote it. */
  version: string;
  /** The background process. */
  pid: number;
  /** Its start time as the OS tells it (detects a reused pid). */
  startTime: string;
  /** ssh destination. */
  host: string;
  /** Remote Arrakis server. */
  server: string;
  /** `--server` as asked for, if it was. */
  requestedServer?: string;
  /** What clients use, e.g. `grpc://localhost:31206`. */
  url: string;
  /** The listen address, `HOST:PORT`. */
  listen: string;
  /** Open SSH forwards: local → remote. */
  forwards: { local: string; remote: string; purpose?: "reuse-connection" | "kafka" }[];
  /** When it became ready (ISO 8601). */
  started: string;
  /** `up`, or `reconnecting` while the SSH connection is down. */
  state: "up" | "reconnecting";
  /** SSH reconnects so far. */
  reconnects: number;
  /** The last warning or error, if any. */
  lastError?: string;
  /** Its log file. */
  log: string;
  /** Its SSH master, ended when the record is found stale (the proxy killed). */
  master?: MasterAddress;
}

/** The private state directory (created if missing), after checking it is safe. */
export async function openStateDir(env: (name: string) => string | undefined = Deno.env.get) {
  const runtime = env("XDG_RUNTIME_DIR");
  const dir = runtime
    ? `${runtime}/arrakis-proxy`
    : `${env("TMPDIR") || "/tmp"}/arrakis-proxy-${Deno.uid()}`;
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw new UserError(`cannot create state directory ${dir}: ${(error as Error).message}`);
    }
  }
  const info = await Deno.lstat(dir);
  if (!info.isDirectory) throw new UserError(`refusing state directory ${dir}: not a directory`);
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) {
    throw new UserError(`refusing state directory ${dir}: owned by uid ${info.uid}, not ${uid}`);
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new UserError(
      `refusing state directory ${dir}: mode ${(info.mode & 0o777).toString(8)} lets others in ` +
        `(want 700)`,
    );
  }
  return dir;
}

/** Record path of the proxy with process id `pid`. */
export function recordPath(dir: string, pid: number): string {
  return `${dir}/${pid}.json`;
}

/** Log path of the proxy with process id `pid`. */
export function logPath(dir: string, pid: number): string {
  return `${dir}/${pid}.log`;
}

/**
 * Where a caller asks the proxy `pid` to take over an SSH master it just
 * authenticated (the master's control socket path, one line); see `daemon.ts`.
 */
export function handOverPath(dir: string, pid: number): string {
  return `${dir}/${pid}.master`;
}

/**
 * Where the server last read from the login host behind ssh destination `key`
 * (a digest of how it is reached) is remembered; see `ssh/remembered_server.ts`.
 */
export function rememberedServerPath(dir: string, key: string): string {
  return `${dir}/server-${key}.json`;
}

/** Writes `value` as JSON atomically (temp file, then rename), readable by the user only. */
export async function writePrivateJson(path: string, value: unknown): Promise<void> {
  const temp = `${path}.tmp`;
  try {
    await Deno.writeTextFile(temp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => undefined);
    throw error;
  }
}

/** Writes a record atomically (temp file, then rename), readable by the user only. */
export async function writeRecord(dir: string, record: ProxyRecord): Promise<void> {
  await writePrivateJson(recordPath(dir, record.pid), record);
}

/** The record of the proxy `pid`, when there is a readable one. */
export async function readRecord(dir: string, pid: number): Promise<ProxyRecord | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(recordPath(dir, pid)));
  } catch {
    return undefined;
  }
}

/** Removes a proxy's record and logs; missing files are fine. */
export async function removeRecord(dir: string, pid: number, { log = true } = {}): Promise<void> {
  const paths = [recordPath(dir, pid), `${recordPath(dir, pid)}.tmp`, handOverPath(dir, pid)];
  if (log) paths.push(logPath(dir, pid), `${logPath(dir, pid)}.1`);
  for (const path of paths) await Deno.remove(path).catch(() => undefined);
}

/**
 * Removes the record of a proxy that is gone (killed, say), and ends the SSH
 * master it names, which would otherwise linger.
 */
export async function removeStaleRecord(
  dir: string,
  record: Partial<Pick<ProxyRecord, "host" | "master">>,
  pid: number,
): Promise<void> {
  const { host, master } = record;
  if (typeof host === "string" && typeof master?.controlPath === "string") {
    const masterPid = typeof master.pid === "number" ? master.pid : undefined;
    await endLeftoverSsh(host, { controlPath: master.controlPath, pid: masterPid });
  }
  await removeRecord(dir, pid);
}

/** The start time of process `pid`, or undefined when there is no such process. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (Deno.build.os === "linux") {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields[0] is the state (field 3 of stat); starttime is field 22.
      return fields[0] === "Z" ? undefined : fields[19];
    } catch {
      return undefined;
    }
  }
  const output = await new Deno.Command("ps", {
    args: ["-o", "lstart=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  const text = output?.success ? new TextDecoder().decode(output.stdout).trim() : "";
  return text || undefined;
}

/** Whether the record's process is the one that wrote it and still runs. */
export async function isLive(record: Pick<ProxyRecord, "pid" | "startTime">): Promise<boolean> {
  return (await processStartTime(record.pid)) === record.startTime;
}

/** Live records, and one line for each record that could not be used. */
export interface RecordList {
  /** Proxies that run, oldest first. */
  records: ProxyRecord[];
  /** One line per record that was unreadable (removed) or from a newer version. */
  problems: string[];
}

/**
 * Reads every record; removes those whose process is gone (with their logs) and
 * those that cannot be read; reports records written by a newer version.
 */
export async function listRecords(dir: string): Promise<RecordList> {
  const records: ProxyRecord[] = [];
  const problems: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    await removeOldLog(dir, entry.name);
    const match = /^(\d+)\.json$/.exec(entry.name);
    if (!match || !entry.isFile) continue;
    const pid = Number(match[1]);
    const path = `${dir}/${entry.name}`;
    let record: ProxyRecord;
    try {
      record = JSON.parse(await Deno.readTextFile(path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // removed meanwhile
      problems.push(`removed unreadable record ${path}`);
      await removeRecord(dir, pid, { log: false });
      continue;
    }
    if (typeof record.format === "number" && record.format > RECORD_FORMAT) {
      problems.push(
        `record ${path} was written by a newer arrakis-proxy (format ${record.format}, this one ` +
          `reads ${RECORD_FORMAT}); use that version for it`,
      );
      continue;
    }
    if (record.pid !== pid || typeof record.startTime !== "string" || !await isLive(record)) {
      await removeStaleRecord(dir, record, pid);
      continue;
    }
    records.push(record);
  }
  records.sort((a, b) => a.started.localeCompare(b.started));
  return { records, problems };
}

// The log of a proxy that gave up outlives its record, to say why; for a day.
const KEEP_LOG_MS = 24 * 3600_000;

async function removeOldLog(dir: string, name: string): Promise<void> {
  const match = /^(\d+)\.log$/.exec(name);
  if (!match) return;
  const path = `${dir}/${name}`;
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info?.mtime || Date.now() - info.mtime.getTime() < KEEP_LOG_MS) return;
  const pid = Number(match[1]);
  const alive = await processStartTime(pid) !== undefined;
  const recorded = await Deno.stat(recordPath(dir, pid)).then(() => true, () => false);
  if (!alive && !recorded) await removeRecord(dir, pid);
}
