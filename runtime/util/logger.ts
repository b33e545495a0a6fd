/** Minimal structured logger used by nodes; pass your own to route logs elsewhere. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** The least severe level a {@link consoleLogger} writes. */
export type LogLevel = 'info' | 'warn' | 'error'

/** The levels of {@link LogLevel}, least severe first. */
export const LOG_LEVELS: readonly LogLevel[] = ['info', 'warn', 'error']

/**
 * Logs to stderr with the time (UTC, ISO 8601) and a prefix, from `level` up (`true`: warnings and
 * errors only, as `'warn'`): `2026-12-01T06:52:00.123Z basalt[demo] warn message {"p":3}`.
 * @example Node.start({ ..., logger: consoleLogger('basalt', 'warn') })
 */
export function consoleLogger(prefix = 'basalt', level: LogLevel | boolean = 'info'): Logger {
  const least = LOG_LEVELS.indexOf(level === true ? 'warn' : level === false ? 'info' : level)
  const line = (level: string, message: string, fields?: Record<string, unknown>) =>
    `${new Date().toISOString()} ${prefix} ${level} ${message}${fields ? ' ' + JSON.stringify(fields) : ''}`
  const writer =
    (at: LogLevel) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (LOG_LEVELS.indexOf(at) >= least) console.error(line(at, message, fields))
    }
  return { info: writer('info'), warn: writer('warn'), error: writer('error') }
}

/** A logger that drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} }

/**
 * A warning that may come often while nothing is wrong: the first is logged, then at most one per
 * `windowMs`, which says how many were left out since the last one (`more`).
 * @example const note = throttledWarning(logger, 'replica differed', 60_000); note({ p: 3 })
 */
export function throttledWarning(
  logger: Logger,
  message: string,
  windowMs: number,
): (fields: Record<string, unknown>) => void {
  let lastLogged = -Infinity
  let left = 0
  return (fields) => {
    const now = Date.now()
    if (now - lastLogged < windowMs) {
      left++
      return
    }
    logger.warn(message, left === 0 ? fields : { ...fields, more: left })
    lastLogged = now
    left = 0
  }
}
