/**
 * entities/ — durable entity classes, their typed proxies and the step that runs one operation.
 * May import from actors/ only; knows nothing of NATS.
 */
export {
  EARLIEST_TIME_MS,
  Entity,
  LATEST_TIME_MS,
  entityTypeName,
  operationNames,
  signalProxy,
  toTime,
  type CallProxy,
  type EntityClass,
  type EntityContext,
  type EntitySignaller,
  type InnerSignalProxy,
  type OperationName,
  type SignalProxy,
  type StartableOrchestration,
  type StateOf,
} from './entity.ts'
export {
  DEFAULT_OPERATION_TIMEOUT_MS,
  EntityRegistry,
  isThenable,
  type EntityType,
  type RegistryOptions,
} from './registry.ts'
export {
  checkArguments,
  checkOperation,
  checkValue,
  checkValueNow,
  isStandardSchema,
  operationTable,
  type ArgumentSchema,
  type OperationSchemas,
  type OperationTable,
} from './operations.ts'
export type {
  StandardSchemaIssue,
  StandardSchemaProps,
  StandardSchemaResult,
  StandardSchemaV1,
} from './standard-schema.ts'
