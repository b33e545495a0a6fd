/**
 * actors/orchestration/ — the orchestration replay engine: definitions, the context orchestration
 * code sees, tasks and the executor that runs steps over a history. Pure: no I/O, no NATS, no
 * clocks, no `node:` imports. Imports actors/ (errors, ids) and the entity class types and names
 * of entities/ (to type entity calls); the runtime wires it to partitions.
 */
export { NonDeterminismError, TaskFailedError } from '../errors.ts'
export {
  activity,
  checkRetryPolicy,
  externalEvent,
  isActivityDefinition,
  type EventOptions,
  isOrchestrationDefinition,
  orchestration,
  retryDelay,
} from './definitions.ts'
export { OrchestrationExecutor, type ExecutorOptions } from './executor.ts'
export { GUID_NAMESPACE, sha1, uuidV5 } from './guid.ts'
export { Task, TimerTask } from './task.ts'
export type {
  ActivityContext,
  ActivityDefinition,
  ActivityFunction,
  ActivityOptions,
  CallActivityOptions,
  CallSubOrchestrationOptions,
  Command,
  CompletedEvent,
  ContinueAsNewOptions,
  CustomStatusEvent,
  EntityCallProxy,
  EntityKey,
  EntityRef,
  EntitySignalProxy,
  EventDefinition,
  ExternalEvent,
  FailedEvent,
  FinishedEvent,
  HistoryEvent,
  LockHandle,
  LogLevel,
  LogSink,
  NewEvent,
  OrchestrationContext,
  OrchestrationDefinition,
  OrchestrationFunction,
  OrchestrationOptions,
  PatchEvent,
  ReplaySafeLogger,
  RetryPolicy,
  ScheduledEvent,
  ScheduledKind,
  StartEvent,
  StartOrchestrationOptions,
  StartedEvent,
  StepEvent,
  StepResult,
  StepStatus,
  TaskResult,
  TimerFiredEvent,
  WaitForEventOptions,
} from './types.ts'
