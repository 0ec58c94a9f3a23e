/**
 * Who owns the other end of an accepted loopback TCP connection, on Linux: the
 * kernel lists every TCP socket of this network namespace in `/proc/net/tcp`
 * and `/proc/net/tcp6`, with its owner's uid. The peer's socket is the entry
 * whose local address is the connection's remote one and whose remote address
 * is the connection's local one.
 *
 * @example
 * ```ts
 * import { peerUid } from "./peer_uid.ts";
 *
 * declare const conn: Deno.TcpConn; // accepted from a loopback listener
 * if (await peerUid(conn) !== Deno.uid()) conn.close();
 * ```
 *
 * @module
 */
import { isIPv4Literal } from "../netloc.ts";

/** The two ends of a connection, as the accepting side sees them. */
export interface ConnectionEnds {
  /** Our end (the listener's address). */
  localAddr: Deno.NetAddr;
  /** The peer's end. */
  remoteAddr: Deno.NetAddr;
}

// The kernel prints each 32-bit word of an address in the machine's byte order.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const hex = (byte: number, digits = 2) => byte.toString(16).toUpperCase().padStart(digits, "0");

/** 16 bytes of an IPv6 address (an IPv4 one v4-mapped), or undefined if not an IP literal. */
function addressBytes(address: string): number[] | undefined {
  if (isIPv4Literal(address)) {
    return [...new Array(10).fill(0), 0xff, 0xff, ...address.split(".").map(Number)];
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return addressBytes(mapped[1]);
  if (!address.includes(":")) return undefined;
  const [head, tail = ""] = address.split("::");
  const words = (part: string) => part === "" ? [] : part.split(":").map((w) => parseInt(w, 16));
  const left = words(head);
  const right = words(tail);
  const all = address.includes("::")
    ? [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
    : left;
  if (all.length !== 8 || all.some((w) => !(w >= 0 && w <= 0xffff))) return undefined;
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

/** A 32-bit word as `/proc/net/tcp*` prints it. */
function word(bytes: number[]): string {
  return (LITTLE_ENDIAN ? [...bytes].reverse() : bytes).map((b) => hex(b)).join("");
}

/**
 * The `address:port` texts of an endpoint as it appears in `/proc/net/tcp`
 * (IPv4 only) and in `/proc/net/tcp6` (IPv6, or IPv4 v4-mapped).
 */
export function procNetKeys(
  addr: { hostname: string; port: number },
): { tcp?: string; tcp6?: string } {
  const bytes = addressBytes(addr.hostname);
  if (bytes === undefined) return {};
  const port = hex(addr.port, 4);
  const v6 = [0, 4, 8, 12].map((i) => word(bytes.slice(i, i + 4))).join("");
  const v4 = bytes.slice(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0))
    ? `${word(bytes.slice(12))}:${port}`
    : undefined;
  return { tcp: v4, tcp6: `${v6}:${port}` };
}

/**
 * The uid in the `/proc/net/tcp*` text `table` of the socket whose local end is
 * `local` and remote end `remote` (both as {@link procNetKeys} gives them).
 */
export function findSocketUid(table: string, local: string, remote: string): number | undefined {
  const at = table.indexOf(` ${local} ${remote} `);
  if (at < 0) return undefined;
  const end = table.indexOf("\n", at);
  // sl local remote st tx:rx tr:when retrnsmt uid …: the uid is the 6th field after `local`.
  const fields = table.slice(at, end < 0 ? undefined : end).trim().split(/\s+/);
  const uid = Number(fields[6]);
  return Number.isInteger(uid) ? uid : undefined;
}

/**
 * The uid owning the peer's socket of an accepted TCP connection from this
 * machine; undefined when the kernel lists none (not Linux, the peer is on
 * another machine or another network namespace, or it already closed).
 */
export async function peerUid(conn: ConnectionEnds): Promise<number | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  const peer = procNetKeys(conn.remoteAddr);
  const ours = procNetKeys(conn.localAddr);
  for (const family of ["tcp", "tcp6"] as const) {
    const local = peer[family];
    const remote = ours[family];
    if (local === undefined || remote === undefined) continue;
    const uid = await scanTable(`/proc/net/${family}`, local, remote);
    if (uid !== undefined) return uid;
  }
  return undefined;
}

const decoder = new TextDecoder("latin1");

/**
 * {@link findSocketUid} over a `/proc/net/tcp*` file read in chunks, stopping at
 * the entry: the kernel formats the table as it is read (a few µs a socket), so
 * stopping early saves half of that on average.
 */
async function scanTable(path: string, local: string, remote: string): Promise<number | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch {
    return undefined; // no IPv6 in this kernel
  }
  using _file = file;
  const buffer = new Uint8Array(64 * 1024);
  let carry = "";
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) return findSocketUid(carry, local, remote);
    const text = carry + decoder.decode(buffer.subarray(0, n));
    const lastLine = text.lastIndexOf("\n");
    const uid = findSocketUid(text.slice(0, lastLine + 1), local, remote);
    if (uid !== undefined) return uid;
    carry = text.slice(lastLine + 1);
  }
}
