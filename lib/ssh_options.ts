/**
 * How to reach the login host and the server behind it, as a run and doctor
 * both take it, and the SSH connection's options it makes. Apart from
 * `stages.ts` so that a run can begin the ssh login before loading the rest.
 *
 * @module
 */
import type { ConnectOptions } from "./ssh/connection.ts";
import type { KafkaMode } from "./flight/kafka_locations.ts";
import { type Logger, silentLogger } from "./log.ts";

/** How to reach the login host and the server behind it: what a run and doctor share. */
export interface SshOptions {
  /** Remote Arrakis server URL; default: the remote `$ARRAKIS_SERVER`. */
  server?: string;
  /** ssh_config file, passed to ssh as `-F`. */
  sshConfig?: string;
  /** ssh options, each passed as `-o`. */
  sshOptions?: string[];
  /** ssh executable. @default {"ssh"} */
  sshBinary?: string;
  /** Let ssh prompt on the terminal. @default {true} */
  interactive?: boolean;
  /** Progress and warnings; at `verbose`, ssh command lines and (in a run) each RPC. */
  logger?: Logger;
  /**
   * What becomes of `kafka://` locations (`--kafka`): `forward` each broker over
   * SSH to a local Kafka listener, `flight` (through the Arrakis server), or
   * `direct` (unchanged). @default {"forward"}
   */
  kafka?: KafkaMode;
  /**
   * `--split-streams K`: each bounded Stream endpoint of a FlightInfo becomes K
   * over its channels (K SSH channel windows; lib/flight/split_streams.ts).
   */
  splitStreams?: number;
}

/** The connection options of a run (and of doctor, which makes the same connection). */
export function connectOptions(sshHost: string, options: SshOptions): ConnectOptions {
  return {
    host: sshHost,
    sshConfig: options.sshConfig,
    sshOptions: options.sshOptions,
    sshBinary: options.sshBinary,
    interactive: options.interactive ?? true,
    logger: options.logger ?? silentLogger,
  };
}
