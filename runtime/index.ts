/**
 * runtime/ — wires entities and actors to NATS JetStream: hub layout, the partition loop, commit
 * log, snapshots, recovery, the node and the client. This is the package's main entry point.
 */
export { Client, type ClientOptions, type EntityPage, type EntityState } from './client/client.ts'
export type { EntityHandle } from './client/handles.ts'
export type { InstanceStatus } from './client/status.ts'
export { RuntimeStatus, isTerminal } from './instances/instance-model.ts'
export { InstanceExistsError } from './instances/instance-host.ts'
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
export { Node, type NodeOptions } from './node/node.ts'
export { connectTo } from './nats/connect.ts'
export {
  CONNECTION_ENV,
  CONNECTION_FLAGS,
  connectionFromEnv,
  connectionFromFlags,
  redactUrl,
  type ConnectionOptions,
  type TlsConnectionOptions,
} from './nats/connection-options.ts'
export {
  DEFAULT_PARTITIONS,
  HubNames,
  deleteHub,
  ensureHub,
  openHub,
  type Hub,
  type HubMeta,
  type HubOptions,
} from './nats/hub.ts'
export { consoleLogger, silentLogger, type Logger } from './util/logger.ts'
export { decode, encode } from './nats/codec.ts'
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
  AuthorizationError,
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
