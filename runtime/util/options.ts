/**
 * The checks of option objects that users write by hand (the options of `Client.connect`,
 * `Node.start`, `startDashboard`, the client's methods, and the objects nested in them such as
 * `tls`): each returns the value it checked or throws `BadInputError` naming the option, what it
 * got and what it expects. Shared here so that every entry point refuses an unknown key, and says
 * so, the same way.
 */
import { BadInputError, describeValue } from '../../actors/index.ts'

// the unknown-key check lives in actors/ (the orchestration API uses it too); shared from here
export { checkKnownKeys, checkOptions, keysOf } from '../../actors/index.ts'

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
