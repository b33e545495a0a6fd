/**
 * Making orchestration and activity definitions (a name bound to a function, typed by input and
 * output; the types are part of the contract in types.ts), telling them apart, and retry policies.
 */
import { BadInputError } from '../errors.ts'
import { checkName } from '../ids.ts'
import { checkKnownKeys, keysOf } from '../options.ts'
import { isStandardSchema, type StandardSchemaV1 } from '../../entities/index.ts'
import type {
  ActivityDefinition,
  ActivityFunction,
  ActivityOptions,
  EventDefinition,
  OrchestrationDefinition,
  OrchestrationFunction,
  OrchestrationOptions,
  RetryPolicy,
} from './types.ts'

/**
 * The keys each options object of the orchestration API takes: anything else is refused with a
 * `BadInputError` naming it and these (a misspelt `retyr` or `maxAttempt` was dropped without a
 * word, and the call ran without the retries its author wrote).
 */
export const OPTION_KEYS = {
  orchestration: keysOf<OrchestrationOptions>({ version: true, input: true }),
  activity: keysOf<ActivityOptions>({ timeoutMs: true, retry: true, input: true }),
  event: keysOf<EventOptions<unknown>>({ schema: true }),
  retry: keysOf<RetryPolicy>({
    firstRetryIntervalMs: true,
    backoffCoefficient: true,
    maxRetryIntervalMs: true,
    maxAttempts: true,
    totalTimeoutMs: true,
    isRetryable: true,
  }),
} as const

/**
 * Defines an orchestration. Its code runs as a generator that awaits tasks with `yield*`; it is
 * re-run from the start over its history after a restart, so it must be deterministic. Throws
 * {@link BadInputError} for an empty name, or for an async function or async generator function.
 * A plain function that returns anything but a generator (an async iterator, a promise) cannot be
 * told apart here: its instances fail at their first step, with a `BadInputError` saying so.
 *
 * @example
 * ```ts
 * const hello = orchestration('hello', function* (ctx, cities: string[]) {
 *   const out: string[] = []
 *   for (const city of cities) out.push(yield* ctx.callActivity(sayHello, city))
 *   return out
 * })
 * ```
 */
export function orchestration<I, O>(
  name: string,
  fn: OrchestrationFunction<I, O>,
  options: OrchestrationOptions<I> = {},
): OrchestrationDefinition<I, O> {
  checkName(name, 'orchestration')
  checkKnownKeys(options, `orchestration('${name}')`, 'options', OPTION_KEYS.orchestration)
  if (typeof fn !== 'function') throw new BadInputError(`orchestration '${name}' needs a generator function`)
  // an async function or async generator yields promises the engine cannot replay (its node would
  // spin on them): refused here, where the mistake is made
  const kind = (fn as { constructor?: { name?: string } }).constructor?.name
  if (kind === 'AsyncFunction' || kind === 'AsyncGeneratorFunction') {
    throw new BadInputError(
      `orchestration '${name}' must be a generator function (function*), not an async ${kind === 'AsyncFunction' ? 'function' : 'generator'}: await tasks with yield*`,
    )
  }
  if (options.version !== undefined && typeof options.version !== 'string') {
    throw new BadInputError(`the version of orchestration '${name}' must be a string`)
  }
  const input = checkedSchema(options.input, `the input schema of orchestration '${name}'`)
  return Object.freeze({
    kind: 'orchestration' as const,
    name,
    fn,
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(input === undefined ? {} : { input }),
  })
}

/**
 * Defines an activity: a function orchestrations call with `ctx.callActivity(def, input)`. It runs
 * at least once per attempt; `timeoutMs` bounds each attempt and `retry` is the default retry
 * policy. Throws {@link BadInputError} for an empty name or a bad timeout or policy.
 *
 * @example const sayHello = activity('sayHello', async (city: string) => `Hello ${city}`)
 */
export function activity<I, O>(
  name: string,
  fn: ActivityFunction<I, O>,
  options: ActivityOptions<I> = {},
): ActivityDefinition<I, O> {
  checkName(name, 'activity')
  if (typeof fn !== 'function') throw new BadInputError(`activity '${name}' needs a function`)
  const { timeoutMs, retry } = checkKnownKeys(options, `activity('${name}')`, 'options', OPTION_KEYS.activity)
  const input = checkedSchema(options.input, `the input schema of activity '${name}'`)
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new BadInputError(
      `the timeout of activity '${name}' must be a positive number of ms (got ${timeoutMs})`,
    )
  }
  if (retry !== undefined) checkRetryPolicy(retry, `activity '${name}'`)
  return Object.freeze({
    kind: 'activity' as const,
    name,
    fn,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(retry === undefined ? {} : { retry }),
    ...(input === undefined ? {} : { input }),
  })
}

/** Options of {@link externalEvent}. */
export interface EventOptions<T> {
  /**
   * Schema of the payload (any Standard Schema), checked when the event is raised through the
   * definition (synchronous schemas) and when a wait through the definition takes it.
   */
  schema?: StandardSchemaV1<unknown, T>
}

/**
 * Defines an external event by name and payload type, for typed waits and raises. Throws
 * {@link BadInputError} for an empty name, or a `schema` that is not a Standard Schema. Plain
 * names keep working where types do not matter. With a schema, `client.raiseEvent(id, def, data)`
 * refuses data the schema refuses before sending (synchronous schemas), and `ctx.waitForEvent(def)`
 * fails with `BadInputError` naming the issues on an event whose data it refuses (raised by a plain
 * name, or by an older client), or completes with the schema's output. In an orchestration only a
 * synchronous schema can be applied: an asynchronous one fails the wait, saying so.
 *
 * @example
 * ```ts
 * const approval = externalEvent<{ by: string }>('approval')
 * const { by } = yield* ctx.waitForEvent(approval)        // in the orchestration
 * await client.raiseEvent(id, approval, { by: 'ana' })    // checked against { by: string }
 * const checked = externalEvent('approval', { schema: z.object({ by: z.string() }) })
 * ```
 */
export function externalEvent<T = unknown>(name: string, options: EventOptions<T> = {}): EventDefinition<T> {
  checkName(name, 'event')
  checkKnownKeys(options, `externalEvent('${name}')`, 'options', OPTION_KEYS.event)
  const schema = checkedSchema(options.schema, `the schema of event '${name}'`) as
    StandardSchemaV1<unknown, T> | undefined
  return Object.freeze({ kind: 'event' as const, name, ...(schema === undefined ? {} : { schema }) })
}

/** A schema option: undefined, or a Standard Schema; anything else is a {@link BadInputError}. */
function checkedSchema(schema: unknown, what: string): StandardSchemaV1 | undefined {
  if (schema === undefined || isStandardSchema(schema)) return schema
  throw new BadInputError(
    `${what} must be a Standard Schema (an object with '~standard'), such as a zod schema`,
  )
}

/** Whether a value is an orchestration definition made by {@link orchestration}. */
export function isOrchestrationDefinition(x: unknown): x is OrchestrationDefinition<unknown, unknown> {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'orchestration'
}

/** Whether a value is an activity definition made by {@link activity}. */
export function isActivityDefinition(x: unknown): x is ActivityDefinition<unknown, unknown> {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'activity'
}

/**
 * Checks a retry policy; throws {@link BadInputError} naming the bad field, or a key a policy
 * does not have (`maxAttempt`, `backoffCoeficient`), listing those it has.
 */
export function checkRetryPolicy(policy: RetryPolicy, owner: string): void {
  const bad = (field: string, want: string, got: unknown) =>
    new BadInputError(`retry policy of ${owner}: ${field} must be ${want} (got ${String(got)})`)
  if (typeof policy !== 'object' || policy === null) throw bad('the policy', 'an object', policy)
  checkKnownKeys(policy, `retry policy of ${owner}`, 'policy', OPTION_KEYS.retry)
  const { firstRetryIntervalMs, backoffCoefficient, maxRetryIntervalMs, maxAttempts, totalTimeoutMs } = policy
  if (!(Number.isFinite(firstRetryIntervalMs) && firstRetryIntervalMs >= 0)) {
    throw bad('firstRetryIntervalMs', 'a number ≥ 0', firstRetryIntervalMs)
  }
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1))
    throw bad('maxAttempts', 'an integer ≥ 1', maxAttempts)
  if (backoffCoefficient !== undefined && !(Number.isFinite(backoffCoefficient) && backoffCoefficient > 0)) {
    throw bad('backoffCoefficient', 'a number > 0', backoffCoefficient)
  }
  if (maxRetryIntervalMs !== undefined && !(Number.isFinite(maxRetryIntervalMs) && maxRetryIntervalMs >= 0)) {
    throw bad('maxRetryIntervalMs', 'a number ≥ 0', maxRetryIntervalMs)
  }
  if (totalTimeoutMs !== undefined && !(Number.isFinite(totalTimeoutMs) && totalTimeoutMs > 0)) {
    throw bad('totalTimeoutMs', 'a number > 0', totalTimeoutMs)
  }
  if (policy.isRetryable !== undefined && typeof policy.isRetryable !== 'function') {
    throw bad('isRetryable', 'a function', policy.isRetryable)
  }
}

/** The wait before attempt `next` (≥ 2): first interval × coefficient^(next − 2), capped. */
export function retryDelay(policy: RetryPolicy, next: number): number {
  const delay = policy.firstRetryIntervalMs * (policy.backoffCoefficient ?? 2) ** (next - 2)
  return Math.round(Math.min(delay, policy.maxRetryIntervalMs ?? Number.POSITIVE_INFINITY))
}
