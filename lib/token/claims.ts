/**
 * A SciToken's claims, read without verifying its signature: the proxy cannot
 * (it holds no issuer keys and must not fetch them), the server does. The
 * proxy only chooses, by these claims, a token the server will accept, and
 * explains why it sent none.
 *
 * @example
 * ```ts
 * import { decodeClaims } from "./claims.ts";
 *
 * const claims = decodeClaims(Deno.readTextFileSync("/tmp/bt_u1000").trim());
 * console.log(claims.issuer, claims.audience, claims.scopes, claims.expires);
 * ```
 *
 * @module
 */

/** What the proxy reads from a token: the claims the server checks, and the signing algorithm. */
export interface TokenClaims {
  /** `iss`. */
  issuer?: string;
  /** `aud`, as a list; undefined when the token names none. */
  audience?: string[];
  /** `scope` split on spaces (or `scp`, when there is no `scope`). */
  scopes?: string[];
  /** `exp`, Unix seconds. */
  expires?: number;
  /** `nbf`, Unix seconds. */
  notBefore?: number;
  /** `iat`, Unix seconds. */
  issuedAt?: number;
  /** `sub`: the server refuses a token without one. */
  subject?: string;
  /** `ver`, when present (`scitoken:2.0` makes `aud` required). */
  version?: unknown;
  /** The header's `alg`. */
  algorithm?: string;
}

/** A token that is not a readable JWT; the message says why, never the token. */
export class TokenFormatError extends Error {
  /** `why` is the reason alone, e.g. "not a JWT (expected 3 dot-separated parts)". */
  constructor(why: string) {
    super(why);
    this.name = "TokenFormatError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One base64url JWT part as a JSON object. */
function decodePart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new TokenFormatError(`not a JWT (its ${what} is not base64url JSON)`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TokenFormatError(`not a JWT (its ${what} is not a JSON object)`);
  }
  return value as Record<string, unknown>;
}

/** Claims end up in one-line messages: no control characters, no screenful. */
const clean = (value: string) =>
  // deno-lint-ignore no-control-regex
  value.replace(/[\u0000-\u001f\u007f]/g, "?").slice(0, 200);
const text = (value: unknown) => typeof value === "string" ? clean(value) : undefined;
const texts = (values: unknown[]) =>
  values.filter((v): v is string => typeof v === "string").map(clean);
const seconds = (value: unknown) =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined;

/**
 * The claims of a serialized token (`header.payload.signature`, as scitokens
 * accepts it: also with a fourth part). Does not verify anything.
 *
 * @throws {TokenFormatError} when it is not a JWT.
 */
export function decodeClaims(token: string): TokenClaims {
  const parts = token.split(".");
  if (parts.length !== 3 && parts.length !== 4) {
    throw new TokenFormatError("not a JWT (expected 3 dot-separated parts)");
  }
  const header = decodePart(parts[0], "header");
  const payload = decodePart(parts[1], "payload");
  const scope = payload.scope;
  const scp = payload.scp;
  let scopes: string[] | undefined;
  if (typeof scope === "string") scopes = texts(scope.split(" "));
  else if (scope === undefined && scp !== undefined) {
    scopes = texts(Array.isArray(scp) ? scp : [scp]);
  }
  const aud = payload.aud;
  return {
    issuer: text(payload.iss),
    audience: typeof aud === "string" ? texts([aud]) : Array.isArray(aud) ? texts(aud) : undefined,
    scopes,
    expires: seconds(payload.exp),
    notBefore: seconds(payload.nbf),
    issuedAt: seconds(payload.iat),
    subject: text(payload.sub),
    version: payload.ver,
    algorithm: text(header.alg),
  };
}
