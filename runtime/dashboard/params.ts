/**
 * The dashboard's query parameters, checked: each parser returns the value or throws
 * {@link BadParamError} naming the parameter, what it got and what it expects (answered with 400).
 */
import { RuntimeStatus } from '../instances/index.ts'

/**
 * A query parameter (or, with `where`, a field of an action's JSON body) that does not parse or
 * is not known; the server answers 400 with its message.
 */
export class BadParamError extends Error {
  override name = 'BadParamError'
  constructor(
    readonly param: string,
    message: string,
    where: 'query parameter' | 'body field' = 'query parameter',
  ) {
    super(`bad ${where} '${param}': ${message}`)
  }
}

type Query = Record<string, string | string[] | undefined>

/**
 * Refuses a parameter the route does not take, naming the ones it takes: a misspelt filter
 * (`?stauts=Failed`) must not list everything as if no filter were given.
 */
export function onlyKnown(query: Query, known: readonly string[]): void {
  for (const name of Object.keys(query))
    if (!known.includes(name)) throw new BadParamError(name, `unknown here (known: ${known.join(', ')})`)
}

/** The single value of `name`, or undefined when absent or empty. */
export function text(query: Query, name: string): string | undefined {
  const v = query[name]
  if (Array.isArray(v)) throw new BadParamError(name, 'given more than once')
  return v === undefined || v === '' ? undefined : v
}

/** An integer in `min..max`, or `fallback` when absent. */
export function int(query: Query, name: string, min: number, max: number, fallback: number): number {
  const v = text(query, name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!/^-?\d+$/.test(v) || n < min || n > max)
    throw new BadParamError(name, `expected an integer in ${min}..${max}, got '${v}'`)
  return n
}

/** A time as an ISO date or ms since the epoch, or undefined. */
export function time(query: Query, name: string): number | undefined {
  const v = text(query, name)
  if (v === undefined) return undefined
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  if (!Number.isFinite(n))
    throw new BadParamError(name, `expected an ISO date or ms since the epoch, got '${v}'`)
  return n
}

/** Comma-separated runtime statuses, or undefined. */
export function statuses(query: Query, name: string): RuntimeStatus[] | undefined {
  const v = text(query, name)
  if (v === undefined) return undefined
  const known = Object.values(RuntimeStatus) as string[]
  const list = v.split(',').map((s) => s.trim())
  for (const s of list)
    if (!known.includes(s))
      throw new BadParamError(name, `unknown status '${s}' (one of ${known.join(', ')})`)
  return list as RuntimeStatus[]
}
