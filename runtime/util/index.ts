/**
 * runtime/util/ — small helpers every runtime layer may use: the logger, one semaphore, one batch
 * worker ("kicked while running, run again"), one retry-with-backoff and event-driven waits on
 * conditions. Imports nothing of Basalt and nothing of NATS, so any folder (placement/ included)
 * may import it.
 */
export { BatchWorker, type BatchWorkerOptions } from './batch-worker.ts'
export { Conditions } from './conditions.ts'
export {
  consoleLogger,
  LOG_LEVELS,
  silentLogger,
  throttledWarning,
  type Logger,
  type LogLevel,
} from './logger.ts'
export { retryWithBackoff, type RetryOptions } from './retry.ts'
export { Semaphore } from './semaphore.ts'
