/**
 * The check of option objects that users write by hand, wherever they are taken: the entry points
 * of the runtime (`Client.connect`, `Node.start`, the client's methods, through runtime/util/) and
 * the orchestration API (`ctx.callActivity`'s options, retry policies, `activity()`, …), so that
 * every one refuses an unknown key, and says so, the same way. Here, under everything, because
 * actors/ may import nothing of the runtime.
 */
import { BadInputError } from './errors.ts'
import { describe as describeValue } from './ids.ts'

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
