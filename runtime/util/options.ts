/**
 * The checks of option objects that users write by hand (the options of `Client.connect`,
 * `Node.start`, `startDashboard`, the client's methods, and the objects nested in them such as
 * `tls`): each returns the value it checked or throws `BadInputError` naming the option, what it
 * got and what it expects. Shared here so that every entry point refuses an unknown key, and says
 * so, the same way.
 */
import { BadInputError, describeValue } from '../../actors/index.ts'

/** Checks an options argument (`what` names it): an object or undefined. */
export function checkOptions<T extends object>(value: T | undefined, what: string): T {
  if (value === undefined) return {} as T
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadInputError(`${what} must be an object (got ${describeValue(value)})`)
  }
  return value
}

/**
 * The keys of an options type `T`, listed as `{ key: true, … }`: the compiler checks the list
 * against the type both ways (a key missing, a key the type lacks), so a field added to an options
 * type cannot be forgotten here and then refused at run time.
 *
 * @example const START_KEYS = keysOf<StartOptions>({ instanceId: true, startAt: true, replace: true })
 */
export function keysOf<T>(keys: Record<keyof T & string, true>): ReadonlyArray<keyof T & string> {
  return Object.keys(keys) as Array<keyof T & string>
}

/**
 * Checks an options argument of `method` as {@link checkOptions} does, and that it has none but
 * the `known` keys. `kind` says what it is: `options`, `filter`, `query`, or the option a nested
 * object is given as (`tls`, `metrics`). An unknown key is most often a misspelt one, which would
 * otherwise be ignored: `purgeInstances({ status: 'Failed' })` purged every finished instance, and
 * `Node.start({ partitons: 8 })` made a hub of 32. Throws `BadInputError` naming the method, the
 * unknown keys and the known ones, e.g. `purgeInstances: unknown filter key 'status' (known:
 * statuses, …)` or `Node.start: unknown tls key 'cetr' (known: ca, cert, key)`.
 */
export function checkKnownKeys<T extends object>(
  value: T | undefined,
  method: string,
  kind: string,
  known: readonly string[],
): T {
  const options = checkOptions(value, `the ${kind} of ${method}`)
  const unknown = Object.keys(options).filter((key) => !known.includes(key))
  if (unknown.length > 0) {
    const noun = kind === 'options' ? 'option' : `${kind} key`
    throw new BadInputError(
      `${method}: unknown ${noun}${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} ` +
        `(known: ${known.join(', ')})`,
    )
  }
  return options
}

/** Checks an optional string option (`what` names it). */
export function checkOptionalString(value: unknown, what: string): string | undefined {
  if (value !== undefined && typeof value !== 'string') {
    throw new BadInputError(`${what} must be a string (got ${describeValue(value)})`)
  }
  return value
}

/** Checks an optional boolean option (`what` names it). */
export function checkOptionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new BadInputError(`${what} must be true or false (got ${describeValue(value)})`)
  }
  return value
}

/**
 * Checks an optional count option (`what` names it): a whole number, `min` or more (`'8'` is
 * refused: a string from a config file would otherwise compare and add as text).
 */
export function checkOptionalCount(value: unknown, what: string, min: number): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < min)) {
    throw new BadInputError(`${what} must be a whole number, ${min} or more (got ${describeValue(value)})`)
  }
  return value as number | undefined
}

/**
 * Checks an optional duration option in ms (`what` names it): a positive number, or 0 too when
 * `zero` says what 0 means (e.g. `0: never`). Infinity is refused: a timer cannot run that long.
 */
export function checkOptionalMs(value: unknown, what: string, zero?: string): number | undefined {
  if (value === undefined) return undefined
  const ok =
    typeof value === 'number' && Number.isFinite(value) && (value > 0 || (zero !== undefined && value === 0))
  if (!ok) {
    const expected = zero === undefined ? 'a positive number of ms' : `a number of ms, 0 or more (${zero})`
    throw new BadInputError(`${what} must be ${expected} (got ${describeValue(value)})`)
  }
  return value
}

/** Checks an optional option that takes one of a few strings (`what` names it). */
export function checkOptionalOneOf<S extends string>(
  value: unknown,
  what: string,
  allowed: readonly S[],
): S | undefined {
  if (value !== undefined && !allowed.includes(value as S)) {
    throw new BadInputError(
      `${what} must be ${allowed.map((a) => `'${a}'`).join(' or ')} (got ${describeValue(value)})`,
    )
  }
  return value as S | undefined
}

/** Checks an optional list of strings (`what` names it), such as a list of host names. */
export function checkOptionalStrings(value: unknown, what: string): readonly string[] | undefined {
  if (value !== undefined && (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))) {
    const bad = Array.isArray(value)
      ? `an element ${describeValue(value.find((v) => typeof v !== 'string'))}`
      : describeValue(value)
    throw new BadInputError(`${what} must be an array of strings (got ${bad})`)
  }
  return value as readonly string[] | undefined
}
