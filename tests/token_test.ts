/**
 * lib/token against real SciTokens (minted by the offline test issuer) in real
 * files: every place the client looks, the claims the server checks, token
 * files others can read, re-reading on change and near expiry, the words used
 * (never the token), and, for the same environments, the same choice as the
 * real client's igwn_auth_utils.find_token.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "./assert.ts";
import { findToken } from "../lib/token/find.ts";
import { serverAudience } from "../lib/token/fit.ts";
import { TokenSource } from "../lib/token/source.ts";
import { decodeClaims, TokenFormatError } from "../lib/token/claims.ts";
import { UsageError, UserError } from "../lib/errors.ts";
import { DOCTOR_HELP, HELP, parseCli, parseDoctorCli } from "../lib/cli.ts";
import { delay } from "../lib/async.ts";
import { type MintSpec, startIssuer, type TestIssuer } from "./fixtures/scitokens.ts";
import { pythonJson } from "./fixtures/python.ts";

const AUDIENCE = "https://info";
const FIND_TOKEN = new URL("./fixtures/py/find_token.py", import.meta.url).pathname;

/** A fresh directory under the issuer's, for one case's files. */
async function caseDir(issuer: TestIssuer, name: string): Promise<string> {
  const dir = `${issuer.dir}/${name}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

async function write(path: string, token: string, mode = 0o600): Promise<string> {
  await Deno.writeTextFile(path, token + "\n", { mode });
  await Deno.chmod(path, mode);
  return path;
}

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("lib/token with real SciTokens", async (t) => {
  await using issuer = await startIssuer();
  const specs: Record<string, MintSpec> = {
    good: { aud: AUDIENCE },
    good2: { aud: AUDIENCE, sub: "second" },
    any: { aud: "ANY" },
    list: { aud: ["https://other", AUDIENCE] },
    other: { aud: "https://other" },
    expired: { aud: AUDIENCE, lifetime: -300 },
    expiring: { aud: AUDIENCE, lifetime: 30 },
    narrow: { aud: AUDIENCE, scope: "arrakis.read:/H1" },
    bare: { aud: AUDIENCE, scope: "arrakis.read" },
    create: { aud: AUDIENCE, scope: "arrakis.create:/" },
    noScope: { aud: AUDIENCE, scope: null },
    noSub: { aud: AUDIENCE, sub: null },
  };
  const names = Object.keys(specs);
  const minted = await issuer.mint(Object.values(specs));
  const tok = Object.fromEntries(names.map((name, i) => [name, minted[i]]));

  await t.step(
    "the claims are read without verifying, the audience as the client derives it",
    () => {
      const claims = decodeClaims(tok.good);
      assertEquals(claims.issuer, issuer.issuer);
      assertEquals(claims.audience, [AUDIENCE]);
      assertEquals(claims.scopes, ["arrakis.read:/"]);
      assertEquals(claims.algorithm, "ES256");
      assert(claims.expires! - Date.now() / 1000 > 3000);
      assertThrows(() => decodeClaims("s3cret-static-token"), TokenFormatError);
      assertEquals(serverAudience("grpc://Info:31206"), "https://info");
      assertEquals(serverAudience("grpc://[::1]:31206"), "https://::1");
      assertEquals(
        serverAudience("grpc+tcp://arrakis.example.org:31206/"),
        "https://arrakis.example.org",
      );
    },
  );

  await t.step("every place the client looks, in its order", async () => {
    const dir = await caseDir(issuer, "places");
    const runtime = await caseDir(issuer, "places-runtime");
    const creds = await caseDir(issuer, "places-creds");
    await write(`${creds}/a.use`, tok.good);
    await write(`${creds}/ignored.txt`, tok.any);
    const cases: [string, Record<string, string>, string][] = [
      ["$SCITOKEN", { SCITOKEN: tok.good }, tok.good],
      ["$SCITOKEN_FILE", { SCITOKEN_FILE: await write(`${dir}/f`, tok.good) }, tok.good],
      ["$_CONDOR_CREDS", { _CONDOR_CREDS: creds }, tok.good],
      ["$BEARER_TOKEN", { BEARER_TOKEN: tok.good }, tok.good],
      ["$BEARER_TOKEN_FILE", { BEARER_TOKEN_FILE: await write(`${dir}/b`, tok.good) }, tok.good],
      [`${runtime}/bt_u4242`, { XDG_RUNTIME_DIR: runtime }, tok.good],
    ];
    await write(`${runtime}/bt_u4242`, tok.good);
    for (const [where, vars, expected] of cases) {
      const search = findToken({ audience: AUDIENCE, env: envOf(vars), uid: 4242 });
      assertEquals(search.token, expected, where);
      assert(search.chosen!.where.startsWith(where), `${search.chosen!.where} ← ${where}`);
    }
    // /tmp when XDG_RUNTIME_DIR is unset.
    const uid = 4_000_000 + Math.floor(Math.random() * 1_000_000);
    const tmp = await write(`/tmp/bt_u${uid}`, tok.good);
    try {
      const search = findToken({ audience: AUDIENCE, env: envOf({}), uid });
      assertEquals(search.chosen?.where, tmp);
    } finally {
      await Deno.remove(tmp);
    }
  });

  await t.step(
    "the first token that fits wins; WLCG discovery stops at the first that exists",
    async () => {
      const dir = await caseDir(issuer, "order");
      const file = await write(`${dir}/f`, tok.good2);
      let search = findToken({
        audience: AUDIENCE,
        env: envOf({ SCITOKEN: tok.other, SCITOKEN_FILE: file }),
      });
      assertEquals(search.token, tok.good2);
      assertEquals(search.looked[0].misfits.map((m) => m.kind), ["audience"]);
      // BEARER_TOKEN exists (expired): the bt_u file after it is never read.
      await write(`${dir}/bt_u4242`, tok.good);
      search = findToken({
        audience: AUDIENCE,
        env: envOf({ BEARER_TOKEN: tok.expired, XDG_RUNTIME_DIR: dir }),
        uid: 4242,
      });
      assertEquals(search.token, undefined);
      assertEquals(search.looked.at(-1)!.where, "$BEARER_TOKEN");
      // A BEARER_TOKEN_FILE that does not exist: on to bt_u.
      search = findToken({
        audience: AUDIENCE,
        env: envOf({ BEARER_TOKEN_FILE: `${dir}/missing`, XDG_RUNTIME_DIR: dir }),
        uid: 4242,
      });
      assertEquals(search.token, tok.good);
    },
  );

  await t.step(
    "the claims the server checks: audience (or ANY), scope arrakis.read:/, time, subject",
    () => {
      const kinds = (token: string) =>
        findToken({ audience: AUDIENCE, env: envOf({ SCITOKEN: token }) }).looked[0].misfits.map(
          (m) => m.kind,
        );
      for (const name of ["good", "any", "list", "bare"]) assertEquals(kinds(tok[name]), [], name);
      assertEquals(kinds(tok.other), ["audience"]);
      assertEquals(kinds(tok.expired), ["expired"]);
      assertEquals(kinds(tok.expiring), ["expiring"]);
      assertEquals(kinds(tok.narrow), ["scope"]);
      assertEquals(kinds(tok.create), ["scope"]);
      assertEquals(kinds(tok.noScope), ["scope"]);
      assertEquals(kinds(tok.noSub), ["claims"]);
      const expired = findToken({ audience: AUDIENCE, env: envOf({ SCITOKEN: tok.expired }) });
      assertMatch(
        expired.looked[0].misfits[0].text,
        /^expired [56] min ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)$/,
      );
      const other = findToken({ audience: AUDIENCE, env: envOf({ SCITOKEN: tok.other }) });
      assertEquals(
        other.looked[0].misfits[0].text,
        "is for audience https://other, not https://info",
      );
    },
  );

  await t.step(
    "a token file others can read is refused with one line, as ssh refuses a key",
    async () => {
      const dir = await caseDir(issuer, "open");
      const open = await write(`${dir}/bt_u4242`, tok.good, 0o644);
      const search = findToken({
        audience: AUDIENCE,
        env: envOf({ XDG_RUNTIME_DIR: dir }),
        uid: 4242,
      });
      assertEquals(search.token, undefined);
      assertEquals(
        search.looked.at(-1)!.problem,
        `refused: readable by others (mode 0644), as ssh refuses such a private key; chmod 600 ${open}`,
      );
      const warnings: string[] = [];
      const logger = {
        level: "normal" as const,
        debug() {},
        info() {},
        progress() {},
        warn: (m: string) => void warnings.push(m),
      };
      using source = TokenSource.open({
        audience: AUDIENCE,
        env: envOf({ XDG_RUNTIME_DIR: dir }),
        uid: 4242,
        logger,
      });
      source.refresh();
      assertEquals(warnings.length, 1, "warned once, not per look");
      assertStringIncludes(warnings[0], "chmod 600");
      // --token-file: refused at once, one line.
      const error = assertThrows(
        () => TokenSource.open({ audience: AUDIENCE, file: open }),
        UserError,
      );
      assertEquals(error.message.split("\n").length, 1);
      assertStringIncludes(
        error.message,
        `--token-file ${open}: refused: readable by others (mode 0644)`,
      );
      assertThrows(
        () => TokenSource.open({ audience: AUDIENCE, file: `${dir}/missing` }),
        UserError,
        "no such file",
      );
    },
  );

  await t.step("re-read when the file changes, and dropped when it nears expiry", async () => {
    const dir = await caseDir(issuer, "reread");
    const file = await write(`${dir}/token`, tok.good);
    let now = Date.now();
    using source = TokenSource.open({ audience: AUDIENCE, file, pollMs: 50, clock: () => now });
    assertEquals(source.authorization(), `Bearer ${tok.good}`);
    let changed = false;
    source.onChange(() => changed = true);
    // Renewed as htgettoken does it: a new file renamed over the old one.
    await write(`${dir}/token.new`, tok.good2);
    await Deno.rename(`${dir}/token.new`, file);
    // The source's own timer does not keep a process alive; this loop does.
    while (!changed) await delay(20);
    assertEquals(source.authorization(), `Bearer ${tok.good2}`);
    // An hour on, the token has under 60 s left: asked for, it is looked for again and dropped.
    now += 3600_000 - 30_000;
    assertEquals(source.authorization(), undefined);
    assertMatch(
      source.describe(),
      /^none for audience https:\/\/info \(looked at .+: token expires in \d+ s, under the 60 s required\)$/,
    );
  });

  await t.step("the words used never contain the token", async () => {
    const dir = await caseDir(issuer, "words");
    const file = await write(`${dir}/token`, tok.good);
    using found = TokenSource.open({ audience: AUDIENCE, file });
    const texts = [
      found.describe(),
      found.refusal("unauthenticated"),
      found.refusal("permission-denied"),
    ];
    assertMatch(
      texts[0],
      new RegExp(
        `^issuer ${issuer.issuer}, audience https://info, scope arrakis.read:/, 59 min left \\(until .+Z\\), from ${file}$`,
      ),
    );
    assertStringIncludes(texts[2], "--token-audience");
    using expired = TokenSource.open({ audience: AUDIENCE, env: envOf({ SCITOKEN: tok.expired }) });
    texts.push(expired.describe(), expired.refusal("unauthenticated"));
    assertMatch(
      texts.at(-1)!,
      /^arrakis-proxy sent no token: none for audience https:\/\/info \(looked at \$SCITOKEN: token expired .+ ago .+; renew it with htgettoken$/,
    );
    using none = TokenSource.open({
      audience: AUDIENCE,
      env: envOf({ XDG_RUNTIME_DIR: dir }),
      uid: 4242,
    });
    texts.push(none.refusal("unauthenticated"));
    assertStringIncludes(texts.at(-1)!, `${dir}/bt_u4242: no such file`);
    assertStringIncludes(texts.at(-1)!, "htgettoken (--audience https://info)");
    for (const text of texts) {
      assertEquals(text.split("\n").length, 1, text);
      for (const token of minted) {
        for (const part of token.split(".")) assertEquals(text.includes(part), false, text);
      }
    }
  });

  await t.step(
    "the same choice as the real client's find_token, environment by environment",
    async () => {
      const dir = await caseDir(issuer, "cross");
      const creds = await caseDir(issuer, "cross-creds");
      await write(`${creds}/a.use`, tok.narrow);
      await write(`${creds}/b.use`, tok.good2);
      const runtime = await caseDir(issuer, "cross-runtime");
      await write(`${runtime}/bt_u${Deno.uid()}`, tok.good);
      const empty = await caseDir(issuer, "cross-empty");
      const envs: Record<string, string>[] = [
        { XDG_RUNTIME_DIR: empty },
        { XDG_RUNTIME_DIR: runtime },
        { SCITOKEN: tok.good2, XDG_RUNTIME_DIR: runtime },
        {
          SCITOKEN: tok.other,
          SCITOKEN_FILE: await write(`${dir}/f`, tok.good2),
          XDG_RUNTIME_DIR: empty,
        },
        { _CONDOR_CREDS: creds, XDG_RUNTIME_DIR: empty },
        { BEARER_TOKEN: tok.expired, XDG_RUNTIME_DIR: runtime },
        { BEARER_TOKEN_FILE: `${dir}/missing`, XDG_RUNTIME_DIR: runtime },
        { BEARER_TOKEN_FILE: await write(`${dir}/b`, tok.good2), XDG_RUNTIME_DIR: runtime },
        ...["any", "list", "bare", "other", "expired", "expiring", "narrow", "create", "noScope"]
          .map((name) => ({ SCITOKEN: tok[name], XDG_RUNTIME_DIR: empty })),
      ];
      const theirs = await pythonJson<(string | null)[]>([
        FIND_TOKEN,
        AUDIENCE,
        JSON.stringify(envs),
      ], {
        env: issuer.env,
      });
      const ours = envs.map((vars) =>
        findToken({ audience: AUDIENCE, env: envOf(vars) }).token ?? null
      );
      const label = (token: string | null) =>
        token === null ? "none" : names[minted.indexOf(token)];
      assertEquals(ours.map(label), theirs.map(label));
      // Not a vacuous agreement: some environments give a token, some none.
      assert(ours.some((t) => t !== null) && ours.some((t) => t === null));
    },
  );
});

Deno.test("the token options on the command line: checked before anything connects", async () => {
  await using issuer = await startIssuer();
  const [token] = await issuer.mint([{ aud: AUDIENCE }]);
  const file = await issuer.writeToken("cli", token);
  const open = await issuer.writeToken("cli-open", token, 0o640);
  const run = parseCli(["--token-file", file, "--token-audience", "https://x", "host"]);
  assert(typeof run === "object");
  assertEquals([run.tokenFile, run.tokenAudience, run.noToken], [file, "https://x", undefined]);
  const doctorArgs = parseDoctorCli(["--no-token", "host"]);
  assert(typeof doctorArgs === "object");
  assertEquals(doctorArgs.noToken, true);
  // A relative file is made absolute: a background proxy runs in /.
  const cwd = Deno.cwd();
  Deno.chdir(issuer.dir);
  try {
    const relative = parseCli(["--token-file", "cli", "-f", "host"]);
    assert(typeof relative === "object");
    assertEquals(relative.tokenFile, `${issuer.dir}/cli`);
  } finally {
    Deno.chdir(cwd);
  }
  assertThrows(() => parseCli(["--no-token", "--token-file", file, "host"]), UsageError);
  assertThrows(() => parseCli(["--token-audience", "a b", "host"]), UsageError);
  assertThrows(
    () => parseCli(["--token-file", `${file}.missing`, "host"]),
    UserError,
    "no such file",
  );
  assertThrows(
    () => parseDoctorCli(["--token-file", open, "host"]),
    UserError,
    "refused: readable by others (mode 0640)",
  );
  const notToken = await issuer.writeToken("cli-static", "s3cret-static-token");
  assertThrows(() => parseCli(["--token-file", notToken, "host"]), UserError, "not a JWT");
  for (const option of ["--token-file", "--token-audience", "--no-token"]) {
    assertStringIncludes(HELP, option);
    assertStringIncludes(DOCTOR_HELP, option);
  }
});
