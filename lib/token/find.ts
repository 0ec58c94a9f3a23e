/**
 * Where a user's SciToken is, looked for as the real client looks for it
 * (igwn-auth-utils `find_token`, then scitokens' WLCG bearer token discovery),
 * but for the remote server's audience rather than the proxy's `localhost`:
 *
 * 1. `$SCITOKEN` (the token itself), 2. the file `$SCITOKEN_FILE`,
 * 3. every `*.use` file in `$_CONDOR_CREDS`, then the first of these that
 * exists: 4. `$BEARER_TOKEN`, 5. the file `$BEARER_TOKEN_FILE`,
 * 6. `$XDG_RUNTIME_DIR/bt_u<uid>` (or `/tmp/bt_u<uid>` when `XDG_RUNTIME_DIR`
 * is unset).
 *
 * The first token that fits (see `fit.ts`) is chosen. Every place looked at is
 * recorded with why its token did not fit, so that a refusal can say so. A
 * token file that others can read is refused, as ssh refuses such a private key.
 *
 * @example
 * ```ts
 * import { findToken } from "./find.ts";
 *
 * const search = findToken({ audience: "https://arrakis.example.org" });
 * console.log(search.chosen?.where ?? search.looked.map((c) => `${c.where}: ${c.problem}`));
 * ```
 *
 * @module
 */
import { decodeClaims, type TokenClaims, TokenFormatError } from "./claims.ts";
import { type Misfit, misfits } from "./fit.ts";

/** Options of {@link findToken}. */
export interface FindTokenOptions {
  /** The audience the token must name (or `ANY`): `https://<host of the server URL>`. */
  audience: string;
  /** `--token-file`: look only here. */
  file?: string;
  /** The environment to read. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** The user id in `bt_u<uid>`. @default {Deno.uid()} */
  uid?: number;
  /** The current time in ms. @default {Date.now()} */
  now?: number;
}

/** One place looked at: what was there and why its token was not chosen. */
export interface Candidate {
  /** Where, in words: `$BEARER_TOKEN`, `$BEARER_TOKEN_FILE (/path)`, `/tmp/bt_u1000`. */
  where: string;
  /** The file, when the place is one. */
  path?: string;
  /** The token's claims, when one was read. */
  claims?: TokenClaims;
  /** Why nothing usable was there: not set, no such file, readable by others, not a JWT. */
  problem?: string;
  /** When the file is refused for its permissions: the mode, e.g. `0644`. */
  openMode?: string;
  /** Why the token there does not fit; empty when it fits. */
  misfits: Misfit[];
}

/** What {@link findToken} found: the token chosen (if any) and every place looked at. */
export interface TokenSearch {
  /** The audience searched for. */
  audience: string;
  /** The token itself: only ever sent to the server, never shown. */
  token?: string;
  /** Where the chosen token came from (one of {@link TokenSearch.looked}). */
  chosen?: Candidate;
  /** Every place looked at, in order. */
  looked: Candidate[];
  /** `--token-file` was given. */
  explicitFile: boolean;
}

const TOO_OPEN = 0o044;

type Read = { text: string } | { problem: string; openMode?: string };

/** Reads one token file; a problem instead when it is missing, unreadable or too open. */
function readTokenFile(path: string): Read {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { problem: "no such file" };
    return { problem: `cannot read it (${(error as Error).message})` };
  }
  if (!info.isFile) return { problem: "not a file" };
  const mode = (info.mode ?? 0) & 0o777;
  if (mode & TOO_OPEN) {
    const octal = mode.toString(8).padStart(4, "0");
    return {
      problem: `refused: readable by others (mode ${octal}), as ssh refuses such a private ` +
        `key; chmod 600 ${path}`,
      openMode: octal,
    };
  }
  try {
    return { text: Deno.readTextFileSync(path) };
  } catch (error) {
    return { problem: `cannot read it (${(error as Error).message})` };
  }
}

/** The `*.use` files of `$_CONDOR_CREDS`, in directory order (as Python's iterdir gives them). */
function condorCredFiles(dir: string): string[] | undefined {
  try {
    const files: string[] = [];
    for (const entry of Deno.readDirSync(dir)) {
      // Path.suffix: a name that is only ".use" has none.
      if (/.\.use$/.test(entry.name)) files.push(`${dir}/${entry.name}`);
    }
    return files;
  } catch {
    return undefined;
  }
}

/**
 * Looks for a token for `options.audience` in the client's places (or only in
 * `options.file`), and chooses the first that fits. Reads files synchronously:
 * they are small, and a re-read must not interleave with another.
 */
export function findToken(options: FindTokenOptions): TokenSearch {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const now = options.now ?? Date.now();
  const looked: Candidate[] = [];
  const search: TokenSearch = {
    audience: options.audience,
    looked,
    explicitFile: options.file !== undefined,
  };

  /** Records a place; true when its token was chosen (the search ends). */
  const consider = (where: string, read: Read, path?: string) => {
    const candidate: Candidate = { where, path, misfits: [] };
    looked.push(candidate);
    if ("problem" in read) {
      candidate.problem = read.problem;
      if (read.openMode) candidate.openMode = read.openMode;
      return false;
    }
    const token = read.text.trim();
    try {
      candidate.claims = decodeClaims(token);
    } catch (error) {
      if (!(error instanceof TokenFormatError)) throw error;
      candidate.problem = token === "" ? "empty" : error.message;
      return false;
    }
    candidate.misfits = misfits(candidate.claims, { audience: options.audience, now });
    if (candidate.misfits.length > 0) return false;
    search.token = token;
    search.chosen = candidate;
    return true;
  };
  const unset = (name: string) =>
    looked.push({ where: `$${name}`, problem: "not set", misfits: [] });
  const file = (where: string, path: string) => consider(where, readTokenFile(path), path);

  if (options.file !== undefined) {
    file(options.file, options.file);
    return search;
  }

  // igwn-auth-utils find_token: each of these is tried, the first valid one wins.
  const scitoken = env("SCITOKEN");
  if (scitoken === undefined) unset("SCITOKEN");
  else if (consider("$SCITOKEN", { text: scitoken })) return search;
  const scitokenFile = env("SCITOKEN_FILE");
  if (scitokenFile === undefined) unset("SCITOKEN_FILE");
  else if (file(`$SCITOKEN_FILE (${scitokenFile})`, scitokenFile)) return search;
  const creds = env("_CONDOR_CREDS");
  if (creds === undefined) unset("_CONDOR_CREDS");
  else {
    const files = condorCredFiles(creds);
    if (files === undefined) {
      looked.push({
        where: `$_CONDOR_CREDS (${creds})`,
        problem: "no such directory",
        misfits: [],
      });
    } else if (files.length === 0) {
      looked.push({ where: `$_CONDOR_CREDS (${creds})`, problem: "no *.use file", misfits: [] });
    }
    for (const path of files ?? []) if (file(`$_CONDOR_CREDS file ${path}`, path)) return search;
  }

  // scitokens' WLCG discovery: only the first source that exists is read.
  const bearer = env("BEARER_TOKEN");
  if (bearer) {
    consider("$BEARER_TOKEN", { text: bearer });
    return search;
  }
  unset("BEARER_TOKEN");
  const bearerFile = env("BEARER_TOKEN_FILE");
  if (bearerFile && isFile(bearerFile)) {
    file(`$BEARER_TOKEN_FILE (${bearerFile})`, bearerFile);
    return search;
  }
  if (bearerFile) {
    looked.push({
      where: `$BEARER_TOKEN_FILE (${bearerFile})`,
      path: bearerFile,
      problem: "no such file",
      misfits: [],
    });
  } else unset("BEARER_TOKEN_FILE");
  const runtime = env("XDG_RUNTIME_DIR");
  const path = `${runtime ? runtime : "/tmp"}/bt_u${options.uid ?? Deno.uid() ?? 0}`;
  file(path, path);
  return search;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * What is wrong with a token file before anything uses it (`--token-file`):
 * missing, unreadable, readable by others, or not a token. Undefined when it
 * holds a JWT; whether it fits is decided later, for the server's audience.
 */
export function tokenFileProblem(path: string): string | undefined {
  const read = readTokenFile(path);
  if ("problem" in read) return read.problem;
  try {
    decodeClaims(read.text.trim());
  } catch (error) {
    if (!(error instanceof TokenFormatError)) throw error;
    return read.text.trim() === "" ? "empty" : error.message;
  }
  return undefined;
}
