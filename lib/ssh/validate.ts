/**
 * Checks for words that end up on an ssh command line or in a forward spec.
 *
 * Host names and ports come from the user and from the remote side (the
 * remote `ARRAKIS_SERVER`, Flight locations); anything that could be read as
 * an option or split into several words is refused here, before ssh runs.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { isIPv6Literal, isValidHost, isValidPort, unbracket } from "../netloc.ts";

// Whitespace, C0/C1 controls and DEL: each could split or disguise an argument.
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\s\x00-\x1f\x7f-\x9f]/u;

/**
 * Refuses an ssh destination (`host`, `user@host`, an alias from ssh_config)
 * that ssh could read as an option or that contains whitespace or control
 * characters. `--` is also passed before the host; this check makes the
 * refusal explicit and the message clear.
 *
 * @throws {UserError} when the destination is unsafe.
 */
export function assertSshDestination(host: string): void {
  if (host === "") throw new UserError("ssh host is empty");
  if (host.startsWith("-")) {
    throw new UserError(`refusing ssh host ${JSON.stringify(host)}: it starts with "-"`);
  }
  if (UNSAFE_CHARS.test(host)) {
    throw new UserError(
      `refusing ssh host ${JSON.stringify(host)}: it contains whitespace or control characters`,
    );
  }
}

/** Validates a forward target and returns the host without IPv6 brackets. */
export function checkForwardTarget(remoteHost: string, remotePort: number): string {
  const bare = unbracket(remoteHost);
  if (remoteHost !== bare && !isIPv6Literal(bare)) {
    throw new UserError(
      `refusing to forward to ${JSON.stringify(remoteHost)}: not an IPv6 address`,
    );
  }
  if (!isValidHost(bare)) {
    throw new UserError(
      `refusing to forward to ${JSON.stringify(remoteHost)}: not a host name or IP address`,
    );
  }
  if (!isValidPort(remotePort)) {
    throw new UserError(`refusing to forward to port ${remotePort}: not in 1..65535`);
  }
  return bare;
}
