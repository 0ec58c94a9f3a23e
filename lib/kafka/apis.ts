/**
 * The Kafka APIs a broker listener relays, and in which versions: the one table
 * the relay checks every request against and caps ApiVersions answers to.
 *
 * Audited against the message schemas of Apache Kafka 4.3.2
 * (`kafka-clients-4.3.2.jar`, `common/message/*Response.json`): every response
 * field that names a broker address (`Host`/`Port`, `NodeEndpoints`,
 * `Listeners`, `Endpoint*`) was looked for.
 * - Metadata (v0–v13) and FindCoordinator (v0–v6) carry broker addresses in
 *   every version: the relay rewrites them (`rewrite.ts`).
 * - Fetch ≥ v16 and Produce ≥ v10 add KIP-951 `NodeEndpoints` (a new leader's
 *   address in a tagged field): capped at v15 and v9, whose answers carry none,
 *   so they stream through untouched at any size.
 * - DescribeCluster, DescribeQuorum, ShareFetch, ShareAcknowledge and the
 *   Streams-group APIs answer with addresses that are not rewritten, and the
 *   KRaft controller and inter-broker APIs have no business on a client's
 *   listener: absent from the table, so dropped from ApiVersions answers and
 *   refused if sent anyway.
 * - Every other API here answers without an address; each is capped at the
 *   newest version audited, since a later version may add one (as Fetch v16 did).
 * - SaslHandshake starts at v1: after v0 the client sends raw SASL bytes
 *   without a Kafka request header, which the relay could not follow.
 *
 * @module
 */

/** One API the relay lets through. */
export interface KafkaApi {
  /** The API key. */
  readonly key: number;
  /** Its name in the Kafka protocol guide. */
  readonly name: string;
  /** The lowest version relayed. */
  readonly minVersion: number;
  /** The highest version relayed. */
  readonly maxVersion: number;
  /** The first flexible (tagged-field) version, if any. */
  readonly flexibleFrom?: number;
}

/** API keys the relay parses the answers of. */
export const ApiKey = {
  PRODUCE: 0,
  FETCH: 1,
  METADATA: 3,
  FIND_COORDINATOR: 10,
  SASL_HANDSHAKE: 17,
  API_VERSIONS: 18,
} as const;

// [key, name, max version, first flexible version (-1: none), min version]
const TABLE: [number, string, number, number, number?][] = [
  [0, "Produce", 9, 9],
  [1, "Fetch", 15, 12],
  [2, "ListOffsets", 11, 6],
  [3, "Metadata", 13, 9],
  [8, "OffsetCommit", 10, 8],
  [9, "OffsetFetch", 10, 6],
  [10, "FindCoordinator", 6, 3],
  [11, "JoinGroup", 9, 6],
  [12, "Heartbeat", 4, 4],
  [13, "LeaveGroup", 5, 4],
  [14, "SyncGroup", 5, 4],
  [15, "DescribeGroups", 6, 5],
  [16, "ListGroups", 5, 3],
  [17, "SaslHandshake", 1, -1, 1],
  [18, "ApiVersions", 4, 3],
  [19, "CreateTopics", 7, 5],
  [20, "DeleteTopics", 6, 4],
  [21, "DeleteRecords", 2, 2],
  [22, "InitProducerId", 6, 2],
  [23, "OffsetForLeaderEpoch", 4, 4],
  [24, "AddPartitionsToTxn", 5, 3],
  [25, "AddOffsetsToTxn", 4, 3],
  [26, "EndTxn", 5, 3],
  [28, "TxnOffsetCommit", 5, 3],
  [29, "DescribeAcls", 3, 2],
  [30, "CreateAcls", 3, 2],
  [31, "DeleteAcls", 3, 2],
  [32, "DescribeConfigs", 4, 4],
  [33, "AlterConfigs", 2, 2],
  [34, "AlterReplicaLogDirs", 2, 2],
  [35, "DescribeLogDirs", 5, 2],
  [36, "SaslAuthenticate", 2, 2],
  [37, "CreatePartitions", 3, 2],
  [38, "CreateDelegationToken", 3, 2],
  [39, "RenewDelegationToken", 2, 2],
  [40, "ExpireDelegationToken", 2, 2],
  [41, "DescribeDelegationToken", 3, 2],
  [42, "DeleteGroups", 2, 2],
  [43, "ElectLeaders", 2, 2],
  [44, "IncrementalAlterConfigs", 1, 1],
  [45, "AlterPartitionReassignments", 1, 0],
  [46, "ListPartitionReassignments", 0, 0],
  [47, "OffsetDelete", 0, -1],
  [48, "DescribeClientQuotas", 1, 1],
  [49, "AlterClientQuotas", 1, 1],
  [50, "DescribeUserScramCredentials", 0, 0],
  [51, "AlterUserScramCredentials", 0, 0],
  [57, "UpdateFeatures", 2, 0],
  [61, "DescribeProducers", 0, 0],
  [65, "DescribeTransactions", 0, 0],
  [66, "ListTransactions", 2, 0],
  [68, "ConsumerGroupHeartbeat", 1, 0],
  [69, "ConsumerGroupDescribe", 1, 0],
  [71, "GetTelemetrySubscriptions", 0, 0],
  [72, "PushTelemetry", 0, 0],
  [74, "ListConfigResources", 1, 0],
  [75, "DescribeTopicPartitions", 0, 0],
  [76, "ShareGroupHeartbeat", 1, 0],
  [77, "ShareGroupDescribe", 1, 0],
  [90, "DescribeShareGroupOffsets", 1, 0],
  [91, "AlterShareGroupOffsets", 0, 0],
  [92, "DeleteShareGroupOffsets", 0, 0],
];

/** The APIs relayed, by key; see the module doc for what is left out and why. */
export const KAFKA_APIS: ReadonlyMap<number, KafkaApi> = new Map(
  TABLE.map(([key, name, maxVersion, flexibleFrom, minVersion = 0]) => [
    key,
    { key, name, minVersion, maxVersion, ...(flexibleFrom >= 0 ? { flexibleFrom } : {}) },
  ]),
);

// APIs left out on purpose (see the module doc), named for error messages.
const NOT_RELAYED: Record<number, string> = {
  27: "WriteTxnMarkers",
  52: "Vote",
  53: "BeginQuorumEpoch",
  54: "EndQuorumEpoch",
  55: "DescribeQuorum",
  56: "AlterPartition",
  58: "Envelope",
  59: "FetchSnapshot",
  60: "DescribeCluster",
  62: "BrokerRegistration",
  63: "BrokerHeartbeat",
  64: "UnregisterBroker",
  67: "AllocateProducerIds",
  70: "ControllerRegistration",
  73: "AssignReplicasToDirs",
  78: "ShareFetch",
  79: "ShareAcknowledge",
  80: "AddRaftVoter",
  81: "RemoveRaftVoter",
  82: "UpdateRaftVoter",
  83: "InitializeShareGroupState",
  84: "ReadShareGroupState",
  85: "WriteShareGroupState",
  86: "DeleteShareGroupState",
  87: "ReadShareGroupStateSummary",
  88: "StreamsGroupHeartbeat",
  89: "StreamsGroupDescribe",
};

/** The name of an API key, relayed or not (`ApiKey 12064` when unknown). */
export function apiName(key: number): string {
  return KAFKA_APIS.get(key)?.name ?? NOT_RELAYED[key] ?? `ApiKey ${key}`;
}

/** Whether `version` of `api` uses the flexible (tagged-field) encoding. */
export function isFlexible(api: KafkaApi, version: number): boolean {
  return api.flexibleFrom !== undefined && version >= api.flexibleFrom;
}

/**
 * The response header version of `version` of `api`: 1 (correlation id and
 * tagged fields) for flexible versions, else 0 — except ApiVersions, whose
 * answer header is always version 0 so that a client of any version can read it.
 */
export function responseHeaderVersion(api: KafkaApi, version: number): 0 | 1 {
  return api.key !== ApiKey.API_VERSIONS && isFlexible(api, version) ? 1 : 0;
}

/** The request header version: 2 (tagged fields) for flexible versions, else 1. */
export function requestHeaderVersion(api: KafkaApi, version: number): 1 | 2 {
  return isFlexible(api, version) ? 2 : 1;
}
