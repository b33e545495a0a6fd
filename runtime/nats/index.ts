/**
 * runtime/nats/ — the only runtime folder that talks to NATS: connecting, the hub's streams and
 * buckets (names, creation, opening), the codec, the lean JetStream publish path, a partition's
 * fenced storage (commit log, checkpoint, snapshot items) and connection health. May import
 * `@nats-io/*`, actors/ (errors, ids, the wire model) and runtime/util/; nothing else of the
 * runtime. Everything above it reaches NATS through these exports.
 */
export { closeConnection, connectTo, toNatsOptions } from './connect.ts'
export {
  CONNECTION_ENV,
  CONNECTION_FLAGS,
  checkConnectionOptions,
  connectionFromEnv,
  connectionFromFlags,
  pickConnection,
  redactUrl,
  type ConnectionOptions,
  type TlsConnectionOptions,
} from './connection-options.ts'
export { copyOf, decode, decodeEnvelope, encode, encodeChecked, unencodable, unsendableIn } from './codec.ts'
export { isReachable, whileConnected } from './connection-health.ts'
export { fastJetStream, type FastJetStream, type PublishAck } from './fast-js.ts'
export { replyBatch, type ReplyBatch } from './reply-batch.ts'
export {
  CONNECTION_LOST,
  PERMISSION_DENIED,
  LeanPublishError,
  STORAGE_FULL_HINT,
  ServerCodes,
  describeNatsError,
  withStorageHint,
  isStorageFull,
  isConnectionLost,
  isPermissionDenied,
  permissionViolation,
  type Violation,
  isNoMessage,
  isNoResponders,
  isStreamNameInUse,
  isTransient,
  isUnavailable,
  isWrongLastSequence,
} from './errors.ts'
export {
  ItemKind,
  entityTypeFilter,
  entityTypePrefix,
  isDeferredTimer,
  isEager,
  isWriteOnce,
  itemKey,
  kindOf,
  parseItemKey,
  partitionFilter,
  partitionPrefix,
  type ParsedItemKey,
} from './item-keys.ts'
export {
  DEFAULT_PARTITIONS,
  HUB_NAME,
  HubNames,
  MAX_PARTITIONS,
  bucketKeys,
  deleteHub,
  checkHubOptions,
  ensureHub,
  fateOf,
  fateOfRecord,
  hubFate,
  hubNow,
  readHubRecord,
  isStreamNotFound,
  latestKvEntry,
  openHub,
  purgesReplaySafely,
  serverWarnings,
  type Hub,
  type HubFate,
  type HubMeta,
  type HubOptions,
  type LatestEntry,
} from './hub.ts'
export {
  clientPermissions,
  nodePermissions,
  renderPermissions,
  type SubjectPermissions,
} from './permissions.ts'
export { PartitionStorage, nextOnSubject, type Checkpoint } from './storage.ts'
export { trimSharedStreams, trimPoint, type TrimOutcome } from './stream-trim.ts'
export { consumeFrom, consumeTasks } from './consumers.ts'
export { BlobRef, isUnloaded, unloadedOf, valueOf } from './blob-ref.ts'
export {
  BlobStore,
  DEFAULT_BLOB_THRESHOLD,
  DEFAULT_MAX_VALUE_BYTES,
  blobLimits,
  checkedBlobLimits,
  type BlobLimits,
} from './blobs.ts'

// The NATS client library's types (and one helper) that the layers above hold or pass on, so that
// only this folder imports `@nats-io/*`.
export {
  createInbox,
  type NatsConnection,
  type QueuedIterator,
  type Subscription,
} from '@nats-io/transport-node'
export { AckPolicy, DeliverPolicy, jetstream } from '@nats-io/jetstream'
export type {
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  StoredMsg,
} from '@nats-io/jetstream'
export type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv'
