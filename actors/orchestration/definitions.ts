/**
 * Making orchestration and activity definitions (a name bound to a function, typed by input and
 * output; the types are part of the contract in types.ts), telling them apart, and retry policies.
 */
import { BadInputError } from '../errors.ts'
import { checkName } from '../ids.ts'
import { checkKnownKeys, keysOf } from '../options.ts'
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
  orchestration: keysOf<OrchestrationOptions>({ version: true }),
  activity: keysOf<ActivityOptions>({ timeoutMs: true, retry: true }),
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
  options: OrchestrationOptions = {},
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
  return Object.freeze({
    kind: 'orchestration' as const,
    name,
    fn,
    ...(options.version === undefined ? {} : { version: options.version }),
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
  options: ActivityOptions = {},
): ActivityDefinition<I, O> {
  checkName(name, 'activity')
  if (typeof fn !== 'function') throw new BadInputError(`activity '${name}' needs a function`)
  const { timeoutMs, retry } = checkKnownKeys(options, `activity('${name}')`, 'options', OPTION_KEYS.activity)
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
  })
}

/**
 * Defines an external event by name and payload type, for typed waits and raises. Throws
 * {@link BadInputError} for an empty name. Plain names keep working where types do not matter.
 *
 * @example
 * ```ts
 * const approval = externalEvent<{ by: string }>('approval')
 * const { by } = yield* ctx.waitForEvent(approval)        // in the orchestration
 * await client.raiseEvent(id, approval, { by: 'ana' })    // checked against { by: string }
 * ```
 */
export function externalEvent<T = unknown>(name: string): EventDefinition<T> {
  checkName(name, 'event')
  return Object.freeze({ kind: 'event' as const, name })
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
