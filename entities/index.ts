/**
 * entities/ — durable entity classes, their typed proxies and the step that runs one operation.
 * May import from actors/ only; knows nothing of NATS.
 */
export {
  Entity,
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
  type StateOf,
} from './entity.ts'
export { EntityRegistry, isThenable, type EntityType } from './registry.ts'
