/**
 * Builds single-file `arrakis-proxy` binaries with `deno compile`:
 * `dist/arrakis-proxy-<target>` for each target, plus `dist/SHA256SUMS`.
 * Everything is embedded, the Flight .proto too (it is a text import).
 *
 * `deno compile` needs `denort`, Deno's runtime without the tooling, for each
 * target. It normally downloads it from Deno's download host; this script does
 * not let it do that unless asked (`--download`, for release machines with
 * internet access). Otherwise it uses:
 * - `DENORT_BIN_<TARGET>` (e.g. `DENORT_BIN_AARCH64_APPLE_DARWIN`) for any target;
 * - `DENORT_BIN` for the host's target only (a runtime runs on one platform);
 * and fails with a message saying so when neither is set.
 *
 * Usage: `deno task compile [--target TARGET]... [--out-dir DIR] [--download]`
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The targets a release ships. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
] as const;

/** The host's target triple, as `deno compile --target` spells it. */
export const HOST_TARGET: string = Deno.build.target;

const ROOT = new URL("../", import.meta.url);

/** A failure with a message meant for the person running the build. */
export class BuildError extends Error {}

/** The per-target environment variable naming a denort binary. */
export function denortVariable(target: string): string {
  return `DENORT_BIN_${target.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * The denort binary to use for `target`, or `undefined` to let `deno compile`
 * download it (only with `download`). Throws {@link BuildError} when there is none.
 */
export function denortFor(
  target: string,
  env: Record<string, string | undefined>,
  download: boolean,
): string | undefined {
  const variable = denortVariable(target);
  const path = env[variable] || (target === HOST_TARGET ? env.DENORT_BIN : undefined);
  if (path) {
    let info;
    try {
      info = Deno.statSync(path);
    } catch {
      throw new BuildError(`${env[variable] ? variable : "DENORT_BIN"}=${path}: no such file`);
    }
    if (!info.isFile) throw new BuildError(`${path} is not a file (expected a denort binary)`);
    return path;
  }
  if (download) return undefined;
  throw new BuildError(
    `no denort runtime for ${target}: deno compile would download it from Deno's download ` +
      `host, which this machine may not reach. Set ${
        target === HOST_TARGET ? `DENORT_BIN or ${variable}` : variable
      } to the denort ${Deno.version.deno} binary for ${target} (from ` +
      `denort-${target}.zip of the Deno v${Deno.version.deno} release), or pass --download on ` +
      `a machine with internet access. (npm has no denort package; the "deno" package ships ` +
      `the full deno binary, which is not a runtime for compiled programs.)`,
  );
}

/** SHA-256 of a file, hex. */
export async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Compiles main.ts for one target into `outDir`; resolves to the binary's path. */
export async function compileTarget(
  target: string,
  outDir: string,
  denort: string | undefined,
): Promise<string> {
  const output = `${outDir}/arrakis-proxy-${target}`;
  const env: Record<string, string> = denort ? { DENORT_BIN: denort } : {};
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--allow-all",
      "--config",
      new URL("deno.json", ROOT).pathname,
      "--target",
      target,
      "--output",
      output,
      new URL("main.ts", ROOT).pathname,
    ],
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await command.output();
  if (code !== 0) throw new BuildError(`deno compile for ${target} failed (exit ${code})`);
  return output;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string", multiple: true },
      "out-dir": { type: "string" },
      download: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task compile [--target TARGET]... [--out-dir DIR] [--download]\n" +
        `Targets (default: all): ${TARGETS.join(", ")}`,
    );
    return 0;
  }
  const targets = values.target ?? [...TARGETS];
  for (const target of targets) {
    if (!(TARGETS as readonly string[]).includes(target)) {
      throw new BuildError(`unknown target ${target}; one of ${TARGETS.join(", ")}`);
    }
  }
  const outDir = values["out-dir"] ?? new URL("dist", ROOT).pathname;
  // Check every runtime before building anything: fail early, all at once.
  const env = Deno.env.toObject();
  const runtimes = targets.map((target) => denortFor(target, env, values.download ?? false));
  await Deno.mkdir(outDir, { recursive: true });
  const sums: string[] = [];
  for (const [i, target] of targets.entries()) {
    const binary = await compileTarget(target, outDir, runtimes[i]);
    sums.push(`${await sha256(binary)}  ${binary.slice(binary.lastIndexOf("/") + 1)}`);
    console.error(`built ${binary}`);
  }
  await Deno.writeTextFile(`${outDir}/SHA256SUMS`, sums.join("\n") + "\n");
  console.error(`wrote ${outDir}/SHA256SUMS`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (!(error instanceof BuildError || error instanceof TypeError)) throw error;
    console.error(`compile: ${error.message}`);
    Deno.exit(1);
  }
}
