/**
 * runtime/util/ — small helpers every runtime layer may use: the logger. Imports nothing of
 * Basalt and nothing of NATS, so any folder (placement/ included) may import it.
 */
export { consoleLogger, silentLogger, type Logger } from './logger.ts'
