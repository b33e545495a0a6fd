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
 * Logs to stderr with a prefix, from `level` up (`true`: warnings and errors only, as `'warn'`).
 * @example Node.start({ ..., logger: consoleLogger('basalt', 'warn') })
 */
export function consoleLogger(prefix = 'basalt', level: LogLevel | boolean = 'info'): Logger {
  const least = LOG_LEVELS.indexOf(level === true ? 'warn' : level === false ? 'info' : level)
  const line = (level: string, message: string, fields?: Record<string, unknown>) =>
    `${prefix} ${level} ${message}${fields ? ' ' + JSON.stringify(fields) : ''}`
  const writer =
    (at: LogLevel) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (LOG_LEVELS.indexOf(at) >= least) console.error(line(at, message, fields))
    }
  return { info: writer('info'), warn: writer('warn'), error: writer('error') }
}

/** A logger that drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} }
