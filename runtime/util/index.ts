/**
 * runtime/util/ — small helpers every runtime layer may use: the logger, one semaphore, one batch
 * worker ("kicked while running, run again"), one retry-with-backoff, event-driven waits on
 * conditions and the checks of option objects (the unknown-key check is actors/options.ts's, shared
 * here). Imports nothing of Basalt but actors/ (whose `BadInputError` the option checks throw, and
 * which imports nothing of the runtime) and nothing of NATS, so any folder (placement/ included)
 * may import it.
 */
export { BatchWorker, type BatchWorkerOptions } from './batch-worker.ts'
export { Conditions, whenSlow } from './conditions.ts'
export {
  consoleLogger,
  LOG_LEVELS,
  silentLogger,
  throttledWarning,
  type Logger,
  type LogLevel,
} from './logger.ts'
export {
  checkKnownKeys,
  checkOptionalBoolean,
  checkOptionalCount,
  checkOptionalMs,
  checkOptionalOneOf,
  checkOptionalString,
  checkOptionalStrings,
  checkOptions,
  keysOf,
} from './options.ts'
export { retryWithBackoff, type RetryOptions } from './retry.ts'
export { Semaphore } from './semaphore.ts'
export { describeTypeName, operationName } from './registry-names.ts'
export { during } from './during.ts'
