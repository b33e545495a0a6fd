/**
 * Reading command-line values, shared by the `basalt` commands: the usage error that exits with
 * 2, commander argument parsers for integers, JSON and times, and the one-line rendering of a
 * failure. Kept free of NATS and of the runtime so that `basalt --help` stays instant.
 */
import { InvalidArgumentError } from 'commander'

/**
 * The command line itself is wrong (a required option missing, a malformed value). `main` prints
 * the message on stderr, pointing at the command's `--help`, and exits with 2.
 *
 * @example throw new UsageError('missing --hub: give the hub name or set BASALT_HUB')
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/**
 * Runs `check`, one of the client's argument checks (`checkKey`, `checkTypeName`, …, which throw
 * `BadInputError`), before the command connects: a value it refuses is a wrong command line, a
 * {@link UsageError} (exit 2) with the check's message, after `flag: ` when the value came from one.
 *
 * @example checkArgument(() => checkKey(key)) // UsageError: entity key must be a non-empty string (got string "")
 */
export function checkArgument(check: () => unknown, flag?: string): void {
  try {
    check()
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw new UsageError(flag === undefined ? message : `${flag}: ${message}`)
  }
}

/**
 * A commander parser for an integer option of at least `min` (default 1) and at most `max`: plain
 * decimal digits only. A bad value makes commander report the option and exit with 2.
 *
 * @example new Option('--partitions <n>').argParser(intArg(1, 1024))
 */
export function intArg(min = 1, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `expected an integer of at least ${min}`
          : `expected an integer from ${min} to ${max}`,
      )
    }
    return n
  }
}

/** A commander parser for a TCP port, `min` (1, or 0 for any free port) to 65535. */
export function portArg(min = 1): (text: string) => number {
  return intArg(min, 65_535)
}

/**
 * A commander parser for a JSON value (`--input '{"n":3}'`). Text that is not JSON is refused
 * with a hint; a bare word is not taken as a string, so that a typo never starts work with the
 * wrong input.
 *
 * @example jsonArg('[1,2]') // -> [1, 2]
 */
export function jsonArg(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new InvalidArgumentError(`expected JSON (quote strings: '"text"')`)
  }
}

/**
 * A commander parser for a point in time: an ISO date (`2025-01-31`, `2025-01-31T12:00:00Z`), ms
 * since the epoch, or an age before now (`90s`, `15m`, `2h`, `7d`). Returns ms since the epoch.
 *
 * @example timeArg('2h') // -> Date.now() - 7_200_000
 */
export function timeArg(text: string, now = Date.now()): number {
  const t = text.trim()
  const age = /^(\d+)(ms|s|m|h|d)$/.exec(t)
  if (age !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'ms']
    return now - Number(age[1]) * unit
  }
  if (/^\d{10,}$/.test(t)) return Number(t)
  const ms = Date.parse(t)
  if (Number.isNaN(ms)) {
    throw new InvalidArgumentError('expected an ISO date, ms since the epoch, or an age such as 15m, 2h, 7d')
  }
  return ms
}

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
