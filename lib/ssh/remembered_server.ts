/**
 * The remote `$ARRAKIS_SERVER` as last read, per way of reaching the login host
 * (ssh destination, `-F`, `-o`): a run without `--server` starts with it at once
 * while the keepalive session reads the value again (`stages.ts`). One small
 * JSON file per destination in the user's private state directory
 * (`background/state.ts`), mode 0600. Read back like anything from the remote
 * side: a file that is not ours alone or does not parse to a valid server URL
 * is ignored, with one line.
 *
 * @example
 * ```ts
 * import { recallServer, rememberServer, serverMemoryFor } from "./remembered_server.ts";
 *
 * const memory = await serverMemoryFor({ host: "ldas-grid", sshOptions: [] });
 * const last = await recallServer(memory, (line) => console.error(line)); // undefined the first time
 * await rememberServer(memory, "grpc://arrakis.cluster:31206");
 * ```
 *
 * @module
 */
import { parseServerUrl, type RemoteServer } from "../netloc.ts";
import { openStateDir, rememberedServerPath, writePrivateJson } from "../background/state.ts";

/** The format {@link rememberServer} writes. */
const FORMAT = 1;

/** How the login host is reached: what a remembered server is kept for. */
export interface ServerMemoryKey {
  /** ssh destination. */
  host: string;
  /** `-F`, as given. */
  sshConfig?: string;
  /** `-o` options, as given. */
  sshOptions: readonly string[];
}

/** Where one destination's server is remembered ({@link serverMemoryFor}). */
export interface ServerMemory {
  /** The file. */
  readonly path: string;
  /** What it is kept for. */
  readonly key: ServerMemoryKey;
}

/** What the file holds. */
interface RememberedServer {
  format: number;
  key: ServerMemoryKey;
  server: string;
}

/** The memory of `key`'s server, in the state directory (created if missing). */
export async function serverMemoryFor(
  key: ServerMemoryKey,
  env?: (name: string) => string | undefined,
): Promise<ServerMemory> {
  const normal: ServerMemoryKey = {
    host: key.host,
    ...(key.sshConfig !== undefined && { sshConfig: key.sshConfig }),
    sshOptions: [...key.sshOptions],
  };
  const text = JSON.stringify(normal);
  // Names the file only (the key inside is compared on reading): a hash, not a digest.
  const hex = [0x811c9dc5, 0x050c5d1f].map((seed) =>
    fnv1a(text, seed).toString(16).padStart(8, "0")
  )
    .join("");
  return { path: rememberedServerPath(await openStateDir(env), hex), key: normal };
}

/**
 * The server remembered for `memory`'s destination, or undefined when there is
 * none that can be trusted (each such file said once, through `warn`).
 */
export async function recallServer(
  memory: ServerMemory,
  warn: (line: string) => void,
): Promise<RemoteServer | undefined> {
  const { path } = memory;
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    return undefined; // none yet
  }
  const ignore = (why: string) => {
    warn(`ignoring the remembered server in ${path}: ${why}`);
    return undefined;
  };
  if (!info.isFile) return ignore("not a regular file");
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) return ignore(`owned by uid ${info.uid}, not ${uid}`);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    return ignore(`mode ${(info.mode & 0o777).toString(8)} lets others in (want 600)`);
  }
  let saved: Partial<RememberedServer>;
  try {
    saved = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    return ignore(`unreadable (${(error as Error).message.split("\n")[0]})`);
  }
  if (saved?.format !== FORMAT || typeof saved.server !== "string") {
    return ignore("not in the format this version writes");
  }
  if (JSON.stringify(saved.key) !== JSON.stringify(memory.key)) {
    return ignore(`written for another destination`);
  }
  try {
    return parseServerUrl(saved.server, "the file");
  } catch (error) {
    return ignore((error as Error).message);
  }
}

/** Remembers `server` (a URL already validated) for `memory`'s destination. */
export async function rememberServer(memory: ServerMemory, server: string): Promise<void> {
  const saved: RememberedServer = { format: FORMAT, key: memory.key, server };
  await writePrivateJson(memory.path, saved);
}

/** 32-bit FNV-1a of `text` from `seed`: sync and cheap (crypto.subtle's first digest took ~20 ms). */
function fnv1a(text: string, seed: number): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
