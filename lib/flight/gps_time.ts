/**
 * GPS time, the clock Arrakis requests are written in.
 *
 * @module
 */

/** The current GPS time in nanoseconds (GPS = Unix − 315964800 s + 18 leap seconds). */
export function gpsNowNs(): bigint {
  return (BigInt(Date.now()) - 315_964_800_000n + 18_000n) * 1_000_000n;
}
