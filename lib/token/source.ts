/**
 * The user's token as a running proxy holds it: found once (see `find.ts`),
 * looked for again every few seconds (a file renewed by htgettoken, a token
 * nearing its expiry), handed out fast as an `authorization` value, and
 * described in words that never contain it: for doctor and logs, and for the
 * one line a refused client sees.
 *
 * @example
 * ```ts
 * import { TokenSource } from "./source.ts";
 *
 * using tokens = TokenSource.open({ audience: "https://arrakis.example.org" });
 * tokens.authorization(); // "Bearer eyJ…", or undefined when none fits
 * console.log(tokens.describe()); // issuer, audience, scope, time left, where found
 * ```
 *
 * @module
 */
import { type Candidate, findToken, type FindTokenOptions, type TokenSearch } from "./find.ts";
import { formatSeconds, formatTime, MIN_SECONDS_LEFT, READ_SCOPE } from "./fit.ts";
import { type Logger, silentLogger } from "../log.ts";
import { UserError } from "../errors.ts";

/** Options of {@link TokenSource.open}. */
export interface TokenSourceOptions extends Omit<FindTokenOptions, "now"> {
  /** Warnings (a token file others can read) and, at verbose, each change. */
  logger?: Logger;
  /** How often to look again, in ms. @default {2000} */
  pollMs?: number;
  /** The current time in ms (tests move it). @default {Date.now} */
  clock?: () => number;
}

/** The two refusals the proxy explains: gRPC codes 16 and 7. */
export type Refusal = "unauthenticated" | "permission-denied";

/** One place in words: where, and what was wrong there. */
function lookedAt(candidate: Candidate): string {
  const what = candidate.problem ?? candidate.misfits.map((m) => m.text).join(", ");
  return `${candidate.where}: ${candidate.claims && !candidate.problem ? "token " : ""}${what}`;
}

/** What a search found, in words that never contain the token. */
export function describeSearch(search: TokenSearch, now = Date.now()): string {
  const chosen = search.chosen;
  if (!chosen?.claims) {
    return `none for audience ${search.audience} (looked at ${
      search.looked.map(lookedAt).join("; ")
    })`;
  }
  const { issuer, audience, scopes, expires } = chosen.claims;
  const left = expires === undefined
    ? "no expiry"
    // Rounded down: a fresh one-hour token reads "59 min left" however fast it is looked at.
    : `${formatSeconds(Math.floor(expires - now / 1000))} left (until ${formatTime(expires)})`;
  return `issuer ${issuer}, audience ${audience?.join(" ") ?? "none named"}, scope ${
    scopes?.join(" ")
  }, ${left}, from ${chosen.where}`;
}

/** How to fix a search that found nothing usable, from what was wrong where. */
export function tokenFixes(search: TokenSearch): string {
  const kinds = new Set(search.looked.flatMap((c) => c.misfits.map((m) => m.kind)));
  const out: string[] = [];
  if (kinds.has("expired") || kinds.has("expiring")) out.push("renew it with htgettoken");
  if (kinds.has("audience")) {
    out.push(
      `get one for ${search.audience} (htgettoken --audience ${search.audience}), or pass ` +
        `--token-audience AUD if the server accepts that token's audience`,
    );
  }
  if (kinds.has("scope")) out.push(`get one with the scope ${READ_SCOPE}`);
  if (out.length === 0) {
    out.push(
      `get one with htgettoken (--audience ${search.audience}), or pass --token-file FILE` +
        (search.explicitFile ? "" : " or --token-audience AUD"),
    );
  }
  return out.join("; ");
}

/**
 * The one line a refused call gets when the proxy sent `search`'s token (or
 * none): what was sent, and how to fix it. Never contains the token.
 */
export function refusalLine(search: TokenSearch, refusal: Refusal, now = Date.now()): string {
  if (!search.chosen) {
    return `arrakis-proxy sent no token: ${describeSearch(search, now)}; ${tokenFixes(search)}`;
  }
  const sent = `arrakis-proxy sent a token (${describeSearch(search, now)})`;
  return refusal === "permission-denied"
    ? `${sent} and the server denied it: it may expect another audience (pass ` +
      `--token-audience AUD) or scope than ${READ_SCOPE}; get a token for it with htgettoken`
    : `${sent} and the server did not accept it (an issuer it does not trust, a bad ` +
      `signature, or expired there?): get a new one with htgettoken, or pass --token-file FILE`;
}

/** The line a refused call gets when `--no-token` is in force. */
export const NO_TOKEN_REFUSAL =
  "arrakis-proxy adds no token (--no-token): drop --no-token, or give the client its own token";

/** What identifies a search's outcome: a change of it is worth telling the proxy child. */
function outcome(search: TokenSearch): string {
  return JSON.stringify([
    search.token,
    search.looked.map((c) => [c.where, c.problem, c.misfits.map((m) => m.kind)]),
  ]);
}

/** The user's token for one audience, kept current; dispose of it to stop looking. */
export class TokenSource implements Disposable {
  #options: TokenSourceOptions;
  #clock: () => number;
  #logger: Logger;
  #search: TokenSearch;
  #outcome: string;
  #listeners = new Set<() => void>();
  #warned = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;

  private constructor(options: TokenSourceOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger ?? silentLogger;
    this.#search = this.#find();
    this.#outcome = outcome(this.#search);
    this.#warnOpenFiles();
  }

  /**
   * Looks for the token and keeps looking every `pollMs`.
   *
   * @throws {UserError} when `file` (`--token-file`) is missing, unreadable,
   * readable by others or not a token: one line, before anything connects.
   */
  static open(options: TokenSourceOptions): TokenSource {
    const source = new TokenSource(options);
    const explicit = source.#search.explicitFile ? source.#search.looked[0] : undefined;
    if (explicit?.problem) {
      throw new UserError(`--token-file ${explicit.where}: ${explicit.problem}`);
    }
    const timer = setInterval(() => source.refresh(), options.pollMs ?? 2000);
    Deno.unrefTimer(timer);
    source.#timer = timer;
    return source;
  }

  /** The latest search (its `token` is the secret: never print it). */
  get search(): TokenSearch {
    return this.#search;
  }

  /** The audience looked for. */
  get audience(): string {
    return this.#search.audience;
  }

  /**
   * `Bearer <token>` for an outgoing call, or undefined when no token fits.
   * Cheap: a token past its last usable minute is looked for again first.
   */
  authorization(): string | undefined {
    const expires = this.#search.chosen?.claims?.expires;
    if (expires !== undefined && this.#clock() / 1000 > expires - MIN_SECONDS_LEFT) this.refresh();
    return this.#search.token === undefined ? undefined : `Bearer ${this.#search.token}`;
  }

  /** The token in words (issuer, audience, scope, time left, where), or where it looked. */
  describe(): string {
    return describeSearch(this.#search, this.#clock());
  }

  /** The one line a call refused with `refusal` gets: what was sent and how to fix it. */
  refusal(refusal: Refusal): string {
    return refusalLine(this.#search, refusal, this.#clock());
  }

  /** Looks again now; true when the outcome changed (the listeners were told). */
  refresh(): boolean {
    const search = this.#find();
    const next = outcome(search);
    this.#search = search;
    if (next === this.#outcome) return false;
    this.#outcome = next;
    this.#warnOpenFiles();
    this.#logger.debug(`token: ${this.describe()}`);
    for (const listener of this.#listeners) listener();
    return true;
  }

  /** Calls `listener` after each change of the token or of why none fits; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops looking. */
  [Symbol.dispose](): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }

  #find(): TokenSearch {
    return findToken({ ...this.#options, now: this.#clock() });
  }

  // Once per file, as ssh warns about a private key others can read.
  #warnOpenFiles(): void {
    for (const candidate of this.#search.looked) {
      if (!candidate.openMode || this.#warned.has(candidate.where)) continue;
      this.#warned.add(candidate.where);
      this.#logger.warn(`token file ${candidate.where} ${candidate.problem}`);
    }
  }
}
