/**
 * Whether a token's claims are ones the Arrakis server will accept for reads,
 * by the rules it applies (arrakis-server's `SciTokenAuthPolicy.require_read`,
 * scitokens' `Enforcer`) and the client's discovery filter (igwn-auth-utils
 * `is_valid_token` with ≥ 60 s left): the audience (or `ANY`), the scope
 * `arrakis.read` on the path `/`, the time window, an issuer and a subject.
 * The signature is the server's to check.
 *
 * @example
 * ```ts
 * import { misfits } from "./fit.ts";
 *
 * const claims = { issuer: "https://iss", subject: "u", audience: ["https://other"], scopes: ["arrakis.read:/"] };
 * misfits(claims, { audience: "https://info", now: Date.now() });
 * // [{ kind: "audience", text: "is for audience https://other, not https://info" }]
 * ```
 *
 * @module
 */
import type { TokenClaims } from "./claims.ts";

/** The scope every read needs (arrakis-server requires it on the path `/` exactly). */
export const READ_SCOPE = "arrakis.read:/";
/** Seconds a token must have left to be chosen (the client's `timeleft`). */
export const MIN_SECONDS_LEFT = 60;
/** The audience that matches every server. */
export const ANY_AUDIENCE = "ANY";
/** The signing algorithms the server verifies (scitokens decodes with these only). */
const ALGORITHMS = new Set(["RS256", "ES256"]);
/** `ver` values scitokens understands. */
const VERSIONS = new Set<unknown>([1, "scitoken:2.0"]);

/** Why a token does not fit, by kind (what to fix) and in words (never the token). */
export interface Misfit {
  kind: "format" | "audience" | "scope" | "expired" | "expiring" | "not-yet" | "claims";
  /** A phrase that follows "the token …", e.g. "expired 5 min ago (10:02:00Z)". */
  text: string;
}

/** Options of {@link misfits}. */
export interface FitOptions {
  /** The audience the server is known by, e.g. `https://arrakis.example.org`. */
  audience: string;
  /** The current time, in ms. */
  now: number;
}

/**
 * A duration in words, for people: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
 *
 * @example
 * ```ts
 * formatSeconds(3 * 3600 + 5 * 60); // "3 h 5 min"
 * ```
 */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** A Unix time in seconds as UTC `YYYY-MM-DD HH:MM:SSZ`. */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/**
 * A scope's path normalized as scitokens does it (`.` and empty segments
 * dropped, `..` resolved); undefined when it is relative or climbs above `/`.
 */
function normalizePath(path: string): string | undefined {
  if (!path.startsWith("/")) return undefined;
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") return undefined;
    segments.push(segment);
  }
  return "/" + segments.join("/");
}

/**
 * Whether `scopes` grant reads of `/` as the server's enforcer tests them: in
 * order, the first `arrakis.read` on `/` grants; a malformed scope before it
 * fails the whole token, as scitokens raises on it.
 */
function grantsRead(scopes: readonly string[]): "yes" | "no" | "malformed" {
  const [authz] = READ_SCOPE.split(":");
  for (const scope of scopes) {
    const colon = scope.indexOf(":");
    const name = colon < 0 ? scope : scope.slice(0, colon);
    // scitokens wants a path on read/write; other names default to "/".
    if (colon < 0 && (name === "read" || name === "write")) return "malformed";
    const path = colon < 0 ? "/" : normalizePath(scope.slice(colon + 1));
    if (path === undefined) return "malformed";
    if (name === authz && path === "/") return "yes";
  }
  return "no";
}

/**
 * Every reason the server (or the client's filter) would not take this token
 * for reads at `options.audience`; empty when it fits.
 */
export function misfits(claims: TokenClaims, options: FitOptions): Misfit[] {
  const out: Misfit[] = [];
  const now = options.now / 1000;
  if (claims.algorithm === undefined || !ALGORITHMS.has(claims.algorithm)) {
    out.push({
      kind: "format",
      text: `is signed with ${claims.algorithm ?? "no algorithm"}, not RS256 or ES256`,
    });
  }
  if (claims.audience === undefined) {
    if (claims.version === "scitoken:2.0") {
      out.push({ kind: "audience", text: "names no audience, which a scitoken:2.0 token must" });
    }
  } else if (
    !claims.audience.includes(ANY_AUDIENCE) && !claims.audience.includes(options.audience)
  ) {
    const named = claims.audience.length ? claims.audience.join(", ") : "none";
    out.push({ kind: "audience", text: `is for audience ${named}, not ${options.audience}` });
  }
  const scopes = claims.scopes;
  const granted = scopes === undefined ? "no" : grantsRead(scopes);
  if (granted !== "yes") {
    const has = scopes === undefined || scopes.length === 0 ? "none" : scopes.join(" ");
    out.push({
      kind: "scope",
      text: granted === "malformed"
        ? `has a malformed scope (${has})`
        : `lacks the scope ${READ_SCOPE} (has ${has})`,
    });
  }
  if (claims.expires !== undefined) {
    const left = claims.expires - now;
    if (left < 0) {
      out.push({
        kind: "expired",
        text: `expired ${formatSeconds(-left)} ago (${formatTime(claims.expires)})`,
      });
    } else if (left < MIN_SECONDS_LEFT) {
      out.push({
        kind: "expiring",
        text: `expires in ${formatSeconds(left)}, under the ${MIN_SECONDS_LEFT} s required`,
      });
    }
  }
  if (claims.notBefore !== undefined && claims.notBefore > now) {
    out.push({ kind: "not-yet", text: `is not valid before ${formatTime(claims.notBefore)}` });
  } else if (claims.issuedAt !== undefined && claims.issuedAt > now) {
    out.push({
      kind: "not-yet",
      text: `was issued in the future (${formatTime(claims.issuedAt)})`,
    });
  }
  if (claims.issuer === undefined) out.push({ kind: "claims", text: "names no issuer (iss)" });
  if (claims.subject === undefined) {
    out.push({ kind: "claims", text: "names no subject (sub), which the server requires" });
  }
  if (claims.version !== undefined && !VERSIONS.has(claims.version)) {
    out.push({ kind: "claims", text: `has an unknown version ${JSON.stringify(claims.version)}` });
  }
  return out;
}

/**
 * The audience a client derives from a server URL, as the real client does
 * (`arrakis.auth._audience_from_url`): `https://` and the URL's host name,
 * lower case, without port or IPv6 brackets.
 *
 * @example
 * ```ts
 * serverAudience("grpc://Arrakis.Example.org:31206"); // "https://arrakis.example.org"
 * ```
 */
export function serverAudience(url: string): string {
  const rest = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, "").replace(/[/?#].*$/, "");
  const host = rest.slice(rest.lastIndexOf("@") + 1);
  const bracketed = /^\[([^\]]*)\]/.exec(host);
  const name = bracketed ? bracketed[1] : host.replace(/:\d*$/, "");
  return `https://${name.toLowerCase()}`;
}
