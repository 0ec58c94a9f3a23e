/**
 * `deno doc --lint` over every entry of deno.json's `exports`, together (a type
 * one entry exports may appear in another's signatures), so that a new export
 * is linted without anyone listing it: part of `deno task check`.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

const root = new URL("..", import.meta.url);
const entries = Object.values(denoJson.exports);
const { code } = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--quiet", "--lint", ...entries],
  cwd: root,
  stdin: "null",
}).spawn().status;
Deno.exit(code);
