/**
 * runtime/ — wires entities and actors to NATS JetStream: hub layout, the partition loop, commit
 * log, snapshots, recovery, the node and the client. This is the package's main entry point.
 */
export { Client, type ClientOptions, type EntityPage, type EntityState } from './client/client.ts'
export type { EntityHandle } from './client/handles.ts'
export type { InstanceStatus } from './client/status.ts'
export type {
  InstanceFilter,
  InstanceId,
  InstancePage,
  InstanceQuery,
  StartOptions,
  StatusOptions,
  WaitOptions,
} from './client/options.ts'
export { RuntimeStatus, isTerminal } from './instances/instance-model.ts'
export { InstanceExistsError } from './instances/instance-host.ts'
export {
  NonDeterminismError,
  TaskFailedError,
  activity,
  externalEvent,
  orchestration,
  type ActivityContext,
  type ActivityDefinition,
  type ActivityFunction,
  type EntityRef,
  type EventDefinition,
  type HistoryEvent,
  type LockHandle,
  type OrchestrationContext,
  type OrchestrationDefinition,
  type OrchestrationFunction,
  type RetryPolicy,
  type Task,
} from '../actors/orchestration/index.ts'
export { Node, type NodeOptions, type RegistryItem } from './node/node.ts'
export { connectTo } from './nats/connect.ts'
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
