/**
 * runtime/ — wires entities and actors to NATS JetStream: hub layout, the partition loop, commit
 * log, snapshots, recovery, the node and the client. This is the package's main entry point.
 */
export {
  Client,
  type ClientOptions,
  type EntityPage,
  type EntityState,
  type EntityHandle,
  type InstanceStatus,
} from './client/index.ts'
export { RuntimeStatus, isTerminal, InstanceExistsError } from './instances/index.ts'
export {
  NonDeterminismError,
  TaskFailedError,
  activity,
  orchestration,
  type ActivityContext,
  type ActivityDefinition,
  type HistoryEvent,
  type OrchestrationContext,
  type OrchestrationDefinition,
  type RetryPolicy,
} from '../actors/orchestration/index.ts'
export { Node, type NodeOptions } from './node/index.ts'
export {
  connectTo,
  DEFAULT_PARTITIONS,
  HubNames,
  deleteHub,
  ensureHub,
  openHub,
  type Hub,
  type HubMeta,
  type HubOptions,
  decode,
  encode,
} from './nats/index.ts'
export { consoleLogger, silentLogger, type Logger } from './util/index.ts'
export {
  Entity,
  type CallProxy,
  type ArgumentSchema,
  type EntityClass,
  type OperationSchemas,
  type SignalProxy,
  type StandardSchemaV1,
  type StateOf,
} from '../entities/index.ts'
export {
  BadInputError,
  BasaltError,
  CodecError,
  ConnectionError,
  ErrorCode,
  FencedError,
  HubNotFoundError,
  IllegalStateError,
  PartitionUnavailableError,
  PayloadTooLargeError,
  RemoteError,
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
} from '../actors/index.ts'
