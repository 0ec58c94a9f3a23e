/**
 * The private directory that holds a master's control socket.
 *
 * @example
 * ```ts
 * import { makeControlDir } from "./control_dir.ts";
 *
 * const dir = await makeControlDir(); // mode 0700; the socket goes in `${dir}/ctl`
 * ```
 *
 * @module
 */

// sun_path is 104 bytes on macOS (108 on Linux) and ssh first binds
// "<ControlPath>.<16 random chars>", so keep the path well below that.
const MAX_CONTROL_PATH = 80;

/** A private (0700) directory with a path short enough for a Unix socket `ctl` inside it. */
export async function makeControlDir(): Promise<string> {
  let dir = await Deno.makeTempDir({ prefix: "arrakis-" });
  if (`${dir}/ctl`.length > MAX_CONTROL_PATH) {
    await Deno.remove(dir);
    dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "arrakis-" });
  }
  await Deno.chmod(dir, 0o700);
  return dir;
}
