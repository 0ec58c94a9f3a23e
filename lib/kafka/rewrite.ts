/**
 * The parts of Kafka frames the relay reads: request headers, and the three
 * answers it changes — ApiVersions (capped to the versions of `apis.ts`),
 * Metadata v0–v13 and FindCoordinator v0–v6 (broker host and port replaced
 * through a {@link BrokerAddressMapper}).
 *
 * Each answer is parsed only as far as its last field the relay changes; the
 * rest is copied byte for byte, and so are the bytes around each replaced
 * host/port pair (racks, tagged fields, error messages). A Metadata answer's
 * topics come after its brokers, so only its brokers need to be held.
 *
 * @example
 * ```ts
 * import { rewriteAnswerBody } from "./rewrite.ts";
 * import { KAFKA_APIS } from "./apis.ts";
 *
 * declare const body: Uint8Array; // a Metadata v12 answer, after its response header
 * const { bytes, consumed } = await rewriteAnswerBody(KAFKA_APIS.get(3)!, 12, body, () =>
 *   Promise.resolve({ host: "127.0.0.1", port: 40123 }));
 * // the answer's body is now `bytes` followed by body.subarray(consumed)
 * ```
 *
 * @module
 */
import type { HostPort } from "../netloc.ts";
import { isValidPort } from "../netloc.ts";
import { ApiKey, isFlexible, KAFKA_APIS, type KafkaApi, responseHeaderVersion } from "./apis.ts";
import { KafkaProtocolError, KafkaReader, KafkaWriter } from "./codec.ts";

/** A broker as an answer names it. */
export interface KafkaBroker {
  /** The broker's node id. */
  nodeId: number;
  /** The host it advertises. */
  host: string;
  /** The port it advertises. */
  port: number;
}

/**
 * Where the client should reach `broker` instead; may open a forward first.
 * A rejection closes the client's connection (its answer cannot be given).
 */
export type BrokerAddressMapper = (broker: KafkaBroker) => Promise<HostPort>;

/** A request header, as far as the relay reads it. */
export interface KafkaRequestHeader {
  /** The API key. */
  apiKey: number;
  /** The API version. */
  apiVersion: number;
  /** What the answer will carry back. */
  correlationId: number;
  /** Offset just past the header (from the start of the frame body). */
  end: number;
}

/** Reads the fixed start of a request header (key, version, correlation id). */
export function readRequestStart(reader: KafkaReader): Omit<KafkaRequestHeader, "end"> {
  return { apiKey: reader.int16(), apiVersion: reader.int16(), correlationId: reader.int32() };
}

/**
 * Reads the rest of a request header of `api` (client id, then tagged fields
 * when flexible), with `reader` just past its correlation id; returns where it ends.
 */
export function skipRequestHeaderRest(reader: KafkaReader, api: KafkaApi, version: number): number {
  // The client id keeps its int16 length even in flexible headers; passed on, so not decoded.
  reader.skipString();
  if (isFlexible(api, version)) reader.skipTaggedFields();
  return reader.pos;
}

/**
 * Whether a Produce request (body at `reader`) asks for no answer (`acks=0`):
 * the broker then sends none, so none may be waited for.
 */
export function produceWantsNoAnswer(reader: KafkaReader, api: KafkaApi, version: number): boolean {
  reader.flexString(isFlexible(api, version), true); // transactional id
  return reader.int16() === 0;
}

/** The replacement for the first `consumed` bytes of an answer's body. */
export interface BodyRewrite {
  /** New bytes. */
  bytes: Uint8Array;
  /** How many bytes of the original body they replace. */
  consumed: number;
}

/** Whether the relay rewrites answers of `apiKey` (and must hold their start). */
export function rewritesAnswer(apiKey: number): boolean {
  return apiKey === ApiKey.API_VERSIONS || apiKey === ApiKey.METADATA ||
    apiKey === ApiKey.FIND_COORDINATOR;
}

/**
 * Rewrites the body of an answer of `api` v`version` (one of
 * {@link rewritesAnswer}); throws {@link KafkaProtocolError} on malformed bytes
 * (`KafkaTruncatedError` if they end too soon).
 */
export function rewriteAnswerBody(
  api: KafkaApi,
  version: number,
  body: Uint8Array,
  map: BrokerAddressMapper,
): Promise<BodyRewrite> {
  switch (api.key) {
    case ApiKey.API_VERSIONS:
      return Promise.resolve(capApiVersions(body, version));
    case ApiKey.METADATA:
      return replaceAddresses(
        body,
        metadataAddresses(body, version, isFlexible(api, version)),
        map,
      );
    case ApiKey.FIND_COORDINATOR:
      return replaceAddresses(body, coordinatorAddresses(body, version), map);
    default:
      throw new KafkaProtocolError(`answers of ${api.name} are not rewritten`);
  }
}

/**
 * Rewrites the start of an answer frame of `api` v`version`: `held` is the
 * frame from its size prefix on, whole or (when `size` is larger) its first
 * bytes. Returns the new start, size prefix corrected for the whole frame;
 * the bytes after `held` follow unchanged.
 */
export async function rewriteAnswerFrame(
  api: KafkaApi,
  version: number,
  held: Uint8Array,
  map: BrokerAddressMapper,
): Promise<Uint8Array> {
  const reader = new KafkaReader(held);
  const size = reader.int32();
  reader.int32(); // correlation id
  if (responseHeaderVersion(api, version) === 1) reader.skipTaggedFields();
  const bodyStart = reader.pos;
  const { bytes, consumed } = await rewriteAnswerBody(api, version, held.subarray(bodyStart), map);
  return new KafkaWriter().int32(size - consumed + bytes.length).raw(held.subarray(4, bodyStart))
    .raw(bytes).raw(held.subarray(bodyStart + consumed)).finish();
}

const UNSUPPORTED_VERSION = 35;

/**
 * Caps each API of an ApiVersions answer to the relayed range and drops the
 * APIs that are not relayed; the throttle time and tagged fields after the
 * list are kept as they are.
 */
function capApiVersions(body: Uint8Array, version: number): BodyRewrite {
  const reader = new KafkaReader(body);
  const errorCode = reader.int16();
  // A broker answers an ApiVersions version it lacks in v0 form (KIP-511).
  const flexible = version >= 3 && errorCode !== UNSUPPORTED_VERSION;
  const count = reader.arrayLength(flexible, 6) ?? 0;
  const kept: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const key = reader.int16();
    const min = reader.int16();
    const max = reader.int16();
    const tagsStart = reader.pos;
    if (flexible) reader.skipTaggedFields();
    const api = KAFKA_APIS.get(key);
    if (!api) continue;
    const low = Math.max(min, api.minVersion);
    const high = Math.min(max, api.maxVersion);
    if (low > high) continue;
    const entry = new KafkaWriter().int16(key).int16(low).int16(high);
    kept.push(entry.raw(body.subarray(tagsStart, reader.pos)).finish());
  }
  const out = new KafkaWriter().int16(errorCode).arrayLength(flexible, kept.length);
  for (const entry of kept) out.raw(entry);
  return { bytes: out.finish(), consumed: reader.pos };
}

/** A host/port pair inside an answer: bytes `[start, end)`, naming `broker`. */
interface AddressField {
  broker: KafkaBroker;
  start: number;
  end: number;
  flexible: boolean;
}

/** Where the parse stopped, and the pairs found before it. */
interface AddressFields {
  fields: AddressField[];
  end: number;
}

// Host then port, adjacent in every schema that carries them.
function readAddress(
  reader: KafkaReader,
  nodeId: number,
  flexible: boolean,
): AddressField {
  const start = reader.pos;
  const host = reader.flexString(flexible);
  const port = reader.int32();
  return { broker: { nodeId, host, port }, start, end: reader.pos, flexible };
}

/** The brokers' addresses of a Metadata answer (they precede its topics). */
function metadataAddresses(body: Uint8Array, version: number, flexible: boolean): AddressFields {
  const reader = new KafkaReader(body);
  if (version >= 3) reader.int32(); // throttle time
  // node id, host (≥ 1 byte), port: at least 9 bytes each
  const count = reader.arrayLength(flexible, 9) ?? 0;
  const fields: AddressField[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = reader.int32();
    fields.push(readAddress(reader, nodeId, flexible));
    if (version >= 1) reader.flexString(flexible, true); // rack
    if (flexible) reader.skipTaggedFields();
  }
  return { fields, end: reader.pos };
}

/** The coordinators' addresses of a FindCoordinator answer, where they are valid. */
function coordinatorAddresses(body: Uint8Array, version: number): AddressFields {
  const reader = new KafkaReader(body);
  const flexible = version >= 3;
  const fields: AddressField[] = [];
  const keep = (field: AddressField, errorCode: number) => {
    // An error answer's node is -1 at host "" port -1: nothing to reach.
    if (errorCode === 0 && field.broker.nodeId >= 0) fields.push(field);
  };
  if (version >= 1) reader.int32(); // throttle time
  if (version <= 3) {
    const errorCode = reader.int16();
    if (version >= 1) reader.flexString(flexible, true); // error message
    const nodeId = reader.int32();
    keep(readAddress(reader, nodeId, flexible), errorCode);
    return { fields, end: reader.pos };
  }
  // key, node id, host, port, error code, error message, tags: at least 14 bytes
  const count = reader.arrayLength(true, 14) ?? 0;
  for (let i = 0; i < count; i++) {
    reader.compactString(); // key
    const nodeId = reader.int32();
    const field = readAddress(reader, nodeId, true);
    const errorCode = reader.int16();
    reader.compactString(true); // error message
    reader.skipTaggedFields();
    keep(field, errorCode);
  }
  return { fields, end: reader.pos };
}

/** Asks `map` for every address at once, then splices the answers into `body`. */
async function replaceAddresses(
  body: Uint8Array,
  { fields, end }: AddressFields,
  map: BrokerAddressMapper,
): Promise<BodyRewrite> {
  const targets = await Promise.all(fields.map(({ broker }) => map(broker)));
  const out = new KafkaWriter();
  let copied = 0;
  fields.forEach(({ start, end, flexible, broker }, i) => {
    const { host, port } = targets[i];
    if (!host || !isValidPort(port)) {
      throw new Error(`no valid address for broker ${broker.nodeId} (${host}:${port})`);
    }
    out.raw(body.subarray(copied, start)).flexString(flexible, host).int32(port);
    copied = end;
  });
  return { bytes: out.raw(body.subarray(copied, end)).finish(), consumed: end };
}

/**
 * The answer a broker limited to ApiVersions v`maxVersion` gives a request of
 * a higher version: v0 form, UNSUPPORTED_VERSION, and its own version range,
 * so the client retries lower (KIP-511). Body only, after the correlation id.
 */
export function unsupportedApiVersionsBody(maxVersion: number): Uint8Array {
  return new KafkaWriter().int16(UNSUPPORTED_VERSION).int32(1)
    .int16(ApiKey.API_VERSIONS).int16(0).int16(maxVersion).finish();
}
