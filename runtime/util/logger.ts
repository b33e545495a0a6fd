/** Minimal structured logger used by nodes; pass your own to route logs elsewhere. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** Logs to stderr with a prefix; `quiet` drops info lines. */
export function consoleLogger(prefix = 'basalt', quiet = false): Logger {
  const line = (level: string, message: string, fields?: Record<string, unknown>) =>
    `${prefix} ${level} ${message}${fields ? ' ' + JSON.stringify(fields) : ''}`
  return {
    info: (m, f) => {
      if (!quiet) console.error(line('info', m, f))
    },
    warn: (m, f) => console.error(line('warn', m, f)),
    error: (m, f) => console.error(line('error', m, f)),
  }
}

/** A logger that drops everything. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} }
