/**
 * The package's public entry (`basalt`): what an application needs to define entities,
 * orchestrations and activities, run nodes and talk to them through a client — each name exported
 * explicitly. Everything else is internal: the benchmark, the CLI and the tests reach engine
 * internals through `basalt/internal` (runtime/internal.ts), which makes no stability promise.
 */

// Running nodes and connecting clients
export { Node, type NodeOptions, type RegistryItem } from './node/index.ts'
export {
  Client,
  type ClientOptions,
  type EntityHandle,
  type EntityPage,
  type EntityState,
  type InstanceFilter,
  type InstanceId,
  type InstancePage,
  type InstanceQuery,
  type InstanceStatus,
  type ScheduledSignal,
  type StartOptions,
  type StatusOptions,
  type WaitOptions,
} from './client/index.ts'
export type { HubOptions } from './nats/index.ts'
export {
  CONNECTION_ENV,
  CONNECTION_FLAGS,
  connectionFromEnv,
  connectionFromFlags,
  redactUrl,
  type ConnectionOptions,
  type TlsConnectionOptions,
} from './nats/index.ts'
// What a hub's nodes and clients may publish and subscribe to, as nats-server permission blocks
// (docs/SECURITY.md, "Permission blocks")
export {
  clientPermissions,
  nodePermissions,
  renderPermissions,
  type SubjectPermissions,
} from './nats/index.ts'
export { consoleLogger, silentLogger, type Logger, type LogLevel } from './util/index.ts'
export type { MetricsOptions, NodeStats, PartitionStats, StatsCounters } from './metrics/index.ts'
export type { TracingOptions, TracerLike } from './metrics/index.ts'

// Entities
export {
  Entity,
  type ArgumentSchema,
  type CallProxy,
  type EntityClass,
  type EntityContext,
  type OperationName,
  type OperationSchemas,
  type SignalProxy,
  type StandardSchemaV1,
  type StateOf,
} from '../entities/index.ts'

// Orchestrations and activities
export {
  activity,
  externalEvent,
  orchestration,
  type ActivityContext,
  type ActivityDefinition,
  type ActivityFunction,
  type ActivityOptions,
  type CallActivityOptions,
  type CallSubOrchestrationOptions,
  type ContinueAsNewOptions,
  type EntityCallProxy,
  type EntityRef,
  type EntitySignalProxy,
  type EventDefinition,
  type EventOptions,
  type HistoryEvent,
  type LockHandle,
  type OrchestrationContext,
  type OrchestrationDefinition,
  type OrchestrationFunction,
  type OrchestrationOptions,
  type ReplaySafeLogger,
  type RetryPolicy,
  type StartOrchestrationOptions,
  type Task,
  type TimerTask,
  type WaitForEventOptions,
} from '../actors/orchestration/index.ts'
export { RuntimeStatus, isTerminal } from './instances/index.ts'

// Errors (each with a stable `code` and `name`)
export {
  AuthorizationError,
  BadInputError,
  BasaltError,
  ClientClosedError,
  CodecError,
  ConnectionError,
  ErrorCode,
  FencedError,
  HubNotFoundError,
  IllegalStateError,
  PartitionUnavailableError,
  PayloadTooLargeError,
  PoisonMessageError,
  StorageFullError,
  RemoteError,
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
  type ErrorDetails,
  type ErrorInfo,
} from '../actors/index.ts'
export { NonDeterminismError, TaskFailedError } from '../actors/orchestration/index.ts'
export { InstanceExistsError, InstanceNotFoundError } from './instances/index.ts'
