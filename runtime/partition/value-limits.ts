/**
 * How large the values of orchestration instances may be, and how they are measured. Every value
 * user code hands to the engine ends up in a commit record, which must fit in one JetStream
 * message (`max_payload`); a record that does not fit can never be committed, and a partition
 * that retried it would stop for good (a "poison pill", issue 8). So values are measured where
 * they enter an instance — a task result, event data, a step's output, custom status and command
 * payloads — and one over its limit fails its task or its instance with
 * {@link PayloadTooLargeError} instead of reaching a record.
 *
 * The limits derive from the record limit (half of `max_payload`, see runtime/partition/partition.ts): a
 * single value of an instance may take a quarter of the value limit, because the instance record
 * holds a value twice (as a field and in its history tail) beside its input, output and custom
 * status; one step together may add the whole value limit (its commands and history events).
 */
import { PayloadTooLargeError, toErrorInfo } from '../../actors/index.ts'
import type { ActivityOutcome, ActivityTask } from '../../actors/wire/index.ts'
import { encode, encodeChecked, unencodable } from '../nats/index.ts'

/** Limits of one partition, from the server's `max_payload`. */
export interface ValueLimits {
  /** Size a round stops taking work at (half of `max_payload`, less room for headers). */
  record: number
  /** Largest single encoded value of an entity (state, result, signal): half a record. */
  value: number
  /** Largest single value of an instance (input, output, result, event data, custom status). */
  instanceValue: number
  /** Largest total of the values one orchestration step adds (history events and commands). */
  step: number
}

/** The limits for a server's `max_payload`. */
export function valueLimits(maxPayload: number): ValueLimits {
  const record = Math.floor(maxPayload / 2) - 4096
  const value = Math.floor(record / 2)
  return { record, value, instanceValue: Math.floor(value / 4), step: value }
}

/**
 * The encoded size of a value, or at least how it compares to `limit`: strings and scalars are
 * sized without encoding (a string of n UTF-16 units takes at most 3n + 5 bytes); other values
 * are encoded, and `encoded` (when given) receives the bytes, so that a caller storing a large
 * value need not encode it again. Throws `CodecError` for a value that cannot be encoded; with
 * `strict`, also for one holding a function (else written as undefined), which is what values
 * of orchestration instances are measured with: a function dropped from a value the code still
 * holds would make replay see another value than the live step did.
 */
export function sizeOf(
  value: unknown,
  limit: number,
  encoded?: (bytes: Uint8Array) => void,
  strict = false,
): number {
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'number':
    case 'bigint':
      return 9
    case 'string':
      return value.length * 3 + 5 <= limit ? value.length + 5 : measured(value, encoded, strict)
    default:
      return value === null ? 1 : measured(value, encoded, strict)
  }
}

function measured(
  value: unknown,
  encoded: ((bytes: Uint8Array) => void) | undefined,
  strict: boolean,
): number {
  const bytes = strict ? encodeChecked(value) : encode(value)
  encoded?.(bytes)
  return bytes.length
}

/**
 * Checks one value against `limit`; returns its size. Throws {@link PayloadTooLargeError} naming
 * the value (`what()` is only called when it is over) and both sizes.
 */
export function checkSize(value: unknown, limit: number, what: () => string): number {
  const size = sizeOf(value, limit)
  if (size > limit) throw new PayloadTooLargeError(what(), size, limit)
  return size
}

/**
 * An activity's outcome as the instance may take it: a result over `limit` goes by reference
 * through `store` (which returns the reference, or throws over the ceiling); without `store`, or
 * when it throws, it becomes a failure naming the activity, the task and both sizes; a result that
 * cannot be encoded (or holds a function: strict {@link sizeOf}) becomes a failure naming it.
 * `measure` sizes the result instead of {@link sizeOf} (one that keeps the bytes for `store`).
 */
export function boundOutcome(
  task: ActivityTask,
  outcome: ActivityOutcome,
  limit: number,
  store?: (value: unknown, what: () => string) => unknown,
  measure?: (value: unknown) => number,
): ActivityOutcome {
  if (outcome.ok !== 1) return outcome
  let size: number
  try {
    size = measure === undefined ? sizeOf(outcome.value, limit, undefined, true) : measure(outcome.value)
  } catch (err) {
    return { ok: 0, error: toErrorInfo(unencodable(outcome.value, describeResult(task), err)) }
  }
  if (size <= limit) return outcome
  // (named only here: the common case above, every activity's, makes no closure)
  const what = () => describeResult(task)
  try {
    if (store === undefined) checkSize(outcome.value, limit, what)
    return { ok: 1, value: store!(outcome.value, what) }
  } catch (err) {
    return { ok: 0, error: toErrorInfo(err) }
  }
}

/** Names an activity's result in an error. */
function describeResult(task: ActivityTask): string {
  return `result of activity '${task.name}' (task ${task.seq} of instance '${task.instanceId}')`
}
