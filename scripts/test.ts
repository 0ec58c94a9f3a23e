/**
 * `deno task test`: runs each test file in its own `deno test` process, two at a
 * time, and prints one summary line
 * (`N passed, N failed, N skipped, N rerun after a runtime crash`).
 *
 * Why not one `deno test --parallel`: Deno 2.9.6 can abort the whole process
 * inside nghttp2 when an HTTP/2 session receives GOAWAY (denoland/deno#36788).
 * The tests run real gRPC servers and clients in-process, so now and then a
 * runner dies that way with every file in it (or a fixture's server process
 * does, taking the file's tests with it; a fixture's server can also segfault
 * under load, which only its `sayIfCrashed` line tells). Here a file whose
 * runner is killed by SIGABRT/SIGSEGV, or that failed while printing nghttp2's
 * abort or a fixture's crash line, is run
 * again (at most twice), says so loudly, and each rerun is counted in the
 * summary line, so a crash cannot hide behind a green rerun; an assertion that
 * fails is never retried. The product itself survives that crash by design
 * (lib/proxy_process/parent.ts).
 *
 * Startup: a `deno test` process type-checks the graph of its files, ~8 s on a
 * fresh machine, and Deno caches that check per set of roots, so thirty
 * processes paid it thirty times. The runner checks everything once, with the
 * roots of `deno task check` (whose check then finds it cached), and the files
 * run with `--no-check`; if that check fails, each file checks itself as before,
 * so the failure lands on the file that has it. Pure unit-test files (no
 * servers, no gRPC in-process) share one process: `UNIT`.
 *
 * Usage: deno task test [FILE...] [-- DENO_TEST_ARGS...]
 *
 * @module
 */

const JOBS = Number(Deno.env.get("TEST_JOBS") ?? 2);
/** Runs of a file whose runner crashed in nghttp2; assertion failures get one. */
const MAX_ATTEMPTS = 3;
const SLOW = [
  "tests/e2e_test.ts",
  "tests/reliability_test.ts",
  "tests/load_test.ts",
  "tests/real_arrakis_test.ts",
  "tests/real_kafka_proxy_test.ts",
  "tests/arrakis_proxy_module_test.ts",
];
/**
 * Files whose failures are not yet understood, with why: a failure is run again
 * (up to {@link MAX_ATTEMPTS} in all), loudly, and counted apart in the last line.
 */
const QUARANTINED = new Map<string, string>([]);
/** Pure unit tests (no servers, no in-process gRPC to crash): one `deno test` for them all. */
const UNIT = [
  "tests/arrow_ipc_test.ts",
  "tests/cli_test.ts",
  "tests/free_port_test.ts",
  "tests/kafka_session_test.ts",
  "tests/methods_test.ts",
  "tests/rewrite_test.ts",
  "tests/shell_lines_test.ts",
  "tests/ssh_args_test.ts",
];
const root = new URL("../", import.meta.url).pathname;

const separator = Deno.args.indexOf("--");
const named = separator < 0 ? Deno.args : Deno.args.slice(0, separator);
const extra = separator < 0 ? [] : Deno.args.slice(separator + 1);
const files = named.length > 0 ? named : [...Deno.readDirSync(`${root}tests`)]
  .filter((entry) => entry.isFile && entry.name.endsWith("_test.ts"))
  .map((entry) => `tests/${entry.name}`)
  // The longest first, so that the two workers finish together.
  .sort((a, b) => (SLOW.indexOf(b) - SLOW.indexOf(a)) || a.localeCompare(b));

/** One `deno test` process: a file, or the unit-test files together. */
interface Job {
  label: string;
  files: string[];
}

interface Outcome {
  file: string;
  passed: number;
  failed: number;
  ignored: number;
  /** Runs after the first one, each because the one before crashed. */
  reruns: number;
  /** Runs after the first one of a {@link QUARANTINED} file, each because the one before failed. */
  flakyReruns: number;
  ok: boolean;
  seconds: number;
}

const decoder = new TextDecoder();
/** What Deno prints when nghttp2 aborts it on GOAWAY (denoland/deno#36788). */
const NGHTTP2_ABORT = /nghttp2_session\.c:\d+: .* Assertion .* failed/;
/**
 * What a fixture prints when its Deno server died of a crash signal
 * (`sayIfCrashed` in tests/fixtures/processes.ts): Deno 2.9.6 segfaults now and
 * then in a grpc-js server streaming under load, silently.
 */
const FIXTURE_CRASH = /^runtime crash: .* died of SIG[A-Z]+$/m;

function counts(output: string) {
  // "ok | 17 passed (6 steps) | 0 failed | 1 ignored (12s)" or "FAILED | …"
  const summary = [...output.matchAll(/^(?:ok|FAILED) \|.*$/gm)].at(-1)?.[0] ?? "";
  const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(summary)?.[1] ?? 0);
  return {
    found: summary !== "",
    passed: count("passed"),
    failed: count("failed"),
    ignored: count("ignored"),
  };
}

/**
 * Type-checks what the files need in one process; whole runs use `deno task
 * check`'s roots (deno.json), so that check is then cached. True when it passed.
 */
async function typeCheck(files: string[]): Promise<boolean> {
  const task = JSON.parse(Deno.readTextFileSync(`${root}deno.json`)).tasks?.check ?? "";
  const roots = named.length === 0 && /deno check ([^&]+)/.exec(task)?.[1].trim().split(/\s+/);
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", ...(roots || files)],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  if (!output.success) {
    console.log((decoder.decode(output.stdout) + decoder.decode(output.stderr)).trimEnd());
  }
  console.log(
    output.success
      ? `===== type check of ${roots ? roots.join(" ") : "the files"} (${seconds} s): ok =====`
      : `!!!!! type check failed (${seconds} s): each file checks its own types`,
  );
  return output.success;
}

async function runFile({ label: file, files }: Job, check: string[]): Promise<Outcome> {
  let flakyReruns = 0;
  for (let attempt = 1;; attempt++) {
    const started = performance.now();
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", ...check, ...extra, ...files],
      cwd: root,
      env: { NO_COLOR: "1", XDG_RUNTIME_DIR: runtimeDir },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const seconds = (performance.now() - started) / 1000;
    const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
    const runnerCrashed = output.signal === "SIGABRT" || output.signal === "SIGSEGV" ||
      output.code === 134 || output.code === 139;
    // Another Deno process of the file (a fixture server, a proxy child) aborted the
    // same way and took the test with it: it says so on the way out.
    const fixtureCrashed = !output.success &&
      (NGHTTP2_ABORT.test(text) || FIXTURE_CRASH.test(text));
    const crashed = runnerCrashed || fixtureCrashed;
    console.log(`\n===== ${file} (${seconds.toFixed(0)} s, attempt ${attempt}) =====`);
    console.log(text.trimEnd());
    const { found, passed, failed, ignored } = counts(text);
    const flaky = !crashed && !output.success && QUARANTINED.has(file);
    if (flaky && attempt < MAX_ATTEMPTS) {
      console.log(
        `\n!!!!! ${file} failed; it is quarantined (${QUARANTINED.get(file)}): running it again`,
      );
      flakyReruns++;
      continue;
    }
    if (crashed && attempt < MAX_ATTEMPTS) {
      console.log(
        `\n!!!!! ${file}: ${
          runnerCrashed
            ? `the deno test process was killed by ${output.signal ?? `exit ${output.code}`}`
            : `a Deno process of its fixtures crashed (${
              FIXTURE_CRASH.exec(text)?.[0] ?? "nghttp2 abort"
            })`
        }${
          /nghttp2/.test(text) ? " inside nghttp2 (denoland/deno#36788)" : ""
        }; running the file again`,
      );
      continue;
    }
    const ok = output.success && found;
    const reruns = attempt - 1 - flakyReruns;
    return {
      file,
      passed,
      failed: ok ? failed : Math.max(failed, 1),
      ignored,
      reruns,
      flakyReruns,
      ok,
      seconds,
    };
  }
}

const check = await typeCheck(files) ? ["--no-check"] : [];
// The proxy's state (background records, remembered servers) and any token a
// test's discovery could find live under XDG_RUNTIME_DIR: one private one for
// the run, removed at the end, so that the user's own stay out and nothing is left.
const runtimeDir = await Deno.makeTempDir({ prefix: "arrakis-test-runtime-" });
await Deno.chmod(runtimeDir, 0o700);
const unit = files.filter((file) => UNIT.includes(file));
const queue: Job[] = [
  ...files.filter((file) => !UNIT.includes(file)).map((file) => ({ label: file, files: [file] })),
  ...(unit.length ? [{ label: `unit tests (${unit.join(" ")})`, files: unit }] : []),
];
const outcomes: Outcome[] = [];
await Promise.all(
  Array.from({ length: Math.min(JOBS, queue.length) }, async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      outcomes.push(await runFile(job, check));
    }
  }),
);

console.log("\n===== summary =====");
for (const o of outcomes.sort((a, b) => a.file.localeCompare(b.file))) {
  console.log(
    `${o.ok ? "ok    " : "FAILED"} ${o.file}: ${o.passed} passed, ${o.failed} failed, ` +
      `${o.ignored} ignored${o.reruns ? `, ${o.reruns} rerun after a runtime crash` : ""}${
        o.flakyReruns ? `, ${o.flakyReruns} rerun after a quarantined failure` : ""
      } ` +
      `(${o.seconds.toFixed(0)} s)`,
  );
}
const total = (key: "passed" | "failed" | "ignored" | "reruns" | "flakyReruns") =>
  outcomes.reduce((sum, o) => sum + o[key], 0);
console.log(
  `${total("passed")} passed, ${total("failed")} failed, ${total("ignored")} skipped, ` +
    `${total("reruns")} rerun after a runtime crash, ${total("flakyReruns")} rerun after a ` +
    `quarantined failure`,
);
await Deno.remove(runtimeDir, { recursive: true }).catch(() => undefined);
Deno.exit(outcomes.every((o) => o.ok) ? 0 : 1);
