/**
 * Ending the SSH master of a process that died without closing it (a
 * background proxy killed by SIGKILL): its keepalive session ends with it, but
 * the master lingers for `ControlPersist` seconds, its control directory for
 * good. Only a master this program started is touched: a control socket in an
 * `arrakis-*` directory of this user's, and a pid whose command line is an ssh
 * master on that socket.
 *
 * @example
 * ```ts
 * import { endLeftoverMaster } from "./leftover_master.ts";
 *
 * await endLeftoverMaster("login.example.org", { controlPath: "/tmp/arrakis-x1/ctl", pid: 4242 });
 * ```
 *
 * @module
 */
import { type Logger, silentLogger } from "../log.ts";
import { commandLine, stopChild } from "../process.ts";
import { runSsh } from "./command.ts";
import { muxArgs } from "./args.ts";

/** Where an SSH master is: what a record keeps to end it when its owner is gone. */
export interface MasterAddress {
  /** Its control socket, `…/arrakis-XXXX/ctl`. */
  controlPath: string;
  /** Its process id, when known. */
  pid?: number;
}

/** Options of {@link endLeftoverMaster}. */
export interface EndMasterOptions {
  /** ssh executable. @default {"ssh"} */
  sshBinary?: string;
  /** Gets the `ssh -O exit` command line as a debug line. */
  logger?: Logger;
}

/**
 * Ends the master at `master` (for ssh destination `host`): `ssh -O exit`
 * through its socket, else SIGTERM to its pid when that is really the master;
 * then removes its control directory. Anything already gone is fine.
 */
export async function endLeftoverMaster(
  host: string,
  master: MasterAddress,
  { sshBinary = "ssh", logger = silentLogger }: EndMasterOptions = {},
): Promise<void> {
  const dir = controlDirOf(master.controlPath);
  if (dir === undefined) return;
  const socket = await Deno.lstat(master.controlPath).catch(() => undefined);
  let exited = false;
  if (socket?.isSocket) {
    const args = [...muxArgs(master.controlPath), "-O", "exit", "--", host];
    const result = await runSsh({ binary: sshBinary, logger }, args).catch(() => undefined);
    exited = result?.code === 0;
  }
  if (master.pid !== undefined && await isMasterOf(master.pid, master.controlPath)) {
    // Asked to exit: it gets a moment; otherwise (a dead socket) the signal at once.
    await stopChild(master.pid, { graceMs: exited ? 3000 : 0 });
  }
  const info = await Deno.lstat(dir).catch(() => undefined);
  if (info?.isDirectory && info.uid === Deno.uid() && (info.mode! & 0o077) === 0) {
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
  }
}

/** The directory of `controlPath` when it has the form of ours, `/…/arrakis-XXXX/ctl`. */
function controlDirOf(controlPath: string): string | undefined {
  if (controlPath.split("/").includes("..")) return undefined;
  return /^(\/(?:[^/\0]+\/)*arrakis-[^/\0]+)\/ctl$/.exec(controlPath)?.[1];
}

/** Whether process `pid` is an ssh master (`-M`) on `controlPath`, not a reused pid. */
async function isMasterOf(pid: number, controlPath: string): Promise<boolean> {
  const argv = await commandLine(pid);
  if (!argv || !argv.includes("-M")) return false;
  return argv.some((word, i) => word === controlPath && argv[i - 1] === "-S");
}
