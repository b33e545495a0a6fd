/**
 * Reading command-line option values, shared by the `basalt` commands. Kept free of NATS and of
 * the runtime so that `main.ts` can import it without slowing `basalt help` down.
 */
import { BadInputError } from '../../actors/errors.ts'
import { connectionFromFlags, type ConnectionOptions } from '../nats/connection-options.ts'

/** Parsed arguments handed to a command. */
export interface CommandArgs {
  /** Option values by name. */
  values: Record<string, string | boolean | Array<string | boolean> | undefined>
  /** Arguments after the command name that are not options. */
  positionals: string[]
}

/** Where a command writes; the defaults are the process's stdout and stderr. */
export interface CommandOutput {
  /** Writes one line of normal output. */
  out(line: string): void
}

/**
 * The command line itself is wrong (a required option missing, a malformed value). `main` prints
 * the message and the command's usage on stderr and exits with 2.
 *
 * @example throw new UsageError('missing --hub')
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/**
 * The string value of option `--name`. Throws {@link UsageError} when it is required and missing
 * (or empty); returns undefined when it is optional and missing.
 *
 * @example const hub = stringOption(values, 'hub', true)
 */
export function stringOption(values: CommandArgs['values'], name: string, required: true): string
export function stringOption(
  values: CommandArgs['values'],
  name: string,
  required?: false,
): string | undefined
export function stringOption(
  values: CommandArgs['values'],
  name: string,
  required = false,
): string | undefined {
  const value = values[name]
  if (typeof value === 'string' && value.trim() !== '') return value.trim()
  if (value !== undefined && typeof value !== 'string') throw new UsageError(`--${name} expects a value`)
  if (required || value !== undefined) throw new UsageError(`missing --${name}`)
  return undefined
}

/**
 * The value of integer option `--name`, at least `min` (default 1); undefined when not given.
 * Throws {@link UsageError} on anything but a plain decimal integer in range.
 *
 * @example const partitions = intOption(values, 'partitions') // '--partitions 8' -> 8
 */
export function intOption(values: CommandArgs['values'], name: string, min = 1): number | undefined {
  const text = stringOption(values, name)
  if (text === undefined) return undefined
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} expects an integer of at least ${min} (got ${JSON.stringify(text)})`)
  }
  return n
}

/**
 * The NATS server URLs of `--servers`: a comma-separated list. Throws {@link UsageError} when the
 * option is missing or lists nothing.
 *
 * @example serverList(values) // '--servers nats://a:4222,nats://b:4222' -> ['nats://a:4222', 'nats://b:4222']
 */
export function serverList(values: CommandArgs['values']): string[] {
  const servers = stringOption(values, 'servers', true)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (servers.length === 0) throw new UsageError('--servers lists no URL')
  return servers
}

/**
 * The NATS connection options of a command: `--servers` and the security flags (`--creds`,
 * `--user`, `--password`, `--token`, `--nkey`, `--tls-ca`, `--tls-cert`, `--tls-key`), each
 * falling back on its `NATS_*` environment variable (see `connectionFromFlags`). Throws
 * {@link UsageError} when no server is given or a flag lacks its value.
 *
 * @example const connection = connectionOptions(values) // { servers: ['nats://127.0.0.1:4222'], credsFile: './me.creds' }
 */
export function connectionOptions(
  values: CommandArgs['values'],
  env: Record<string, string | undefined> = process.env,
): ConnectionOptions {
  try {
    return connectionFromFlags(values, env)
  } catch (err) {
    if (err instanceof BadInputError) throw new UsageError(err.message)
    throw err
  }
}

/** `parseArgs` options of the connection flags read by {@link connectionOptions}. */
export const CONNECTION_OPTIONS = {
  servers: { type: 'string' },
  creds: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  nkey: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const

/** Usage text of the security flags (after `--servers`, which `$NATS_URL` may replace). */
export const CONNECTION_USAGE =
  '[--creds FILE | --user U --password P | --token T | --nkey SEED|FILE] ' +
  '[--tls-ca FILE] [--tls-cert FILE --tls-key FILE]'

/**
 * One line describing a failure, for stderr: the message with line breaks folded, prefixed by the
 * error's name unless it is a plain `Error` or one of Basalt's own (whose messages say it all).
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err).replace(/\s*\n\s*/g, ' ')
  const message = err.message.replace(/\s*\n\s*/g, ' ')
  const generic = err.name === 'Error' || typeof (err as { code?: unknown }).code === 'string'
  return generic ? message : `${err.name}: ${message}`
}
