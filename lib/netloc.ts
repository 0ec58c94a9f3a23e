/**
 * Host and port checks shared by the SSH layer (forward targets, the remote
 * server) and the Flight layer (endpoint locations): both decide whether a
 * name that came from the remote side may reach an ssh command line.
 *
 * @module
 */

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const IPV4 = /^(?:\d{1,3}\.){3}\d{1,3}$/;

/** Whether `port` is an integer in 1..65535. */
export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** Whether `text` is a plain IPv6 literal (no brackets, no zone id). */
export function isIPv6Literal(text: string): boolean {
  if (!text.includes(":") || !/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** Whether `text` is a dotted-quad IPv4 address with every octet 0..255. */
export function isIPv4Literal(text: string): boolean {
  return IPV4.test(text) && text.split(".").every((octet) => Number(octet) <= 255);
}

/**
 * Whether `host` is a DNS name, an IPv4 address or a bare IPv6 literal.
 *
 * Names follow RFC 1123 labels (underscores tolerated, as some clusters use
 * them); nothing may start with "-" and nothing may contain "/", "@", spaces
 * or other characters that would change how ssh reads a forward spec.
 */
export function isValidHost(host: string): boolean {
  if (isIPv6Literal(host)) return true;
  if (IPV4.test(host)) return isIPv4Literal(host);
  if (host.length === 0 || host.length > 253) return false;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  return name.split(".").every((label) => HOST_LABEL.test(label));
}

/**
 * `host:port` for display and for map keys, with IPv6 literals bracketed
 * (`[::1]:31206`).
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
