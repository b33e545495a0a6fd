/**
 * Small pure helpers of the orchestration context: how decisions read in error messages (and what
 * replay compares), failure wrapping, entity keys and operation checks, log line formatting.
 */
import { BadInputError, TaskFailedError, UnknownOperationError } from '../errors.ts'
import { checkKey } from '../ids.ts'
import { entityTypeName, operationNames, type EntityClass } from '../../entities/index.ts'
import { Task } from './task.ts'
import { list } from './locks.ts'
import type { EntityKey, FailedEvent, PatchEvent, RetryPolicy, ScheduledEvent } from './types.ts'

/** Thrown by `ctx.continueAsNew` to unwind the generator; the executor ends the execution. */
export class ContinueAsNewSignal extends Error {
  constructor() {
    super('continueAsNew ends the execution (this is not an error; do not catch it)')
    this.name = 'ContinueAsNewSignal'
  }
}

/** A decision recorded in history: a scheduled command or a patch marker. */
export type Decision = PatchEvent | ScheduledEvent

const operationCache = new WeakMap<EntityClass, Set<string>>()

/** Whether the policy wants another attempt after this failure (a throwing predicate means no). */
export function retryable(policy: RetryPolicy, ev: FailedEvent): boolean {
  if (policy.isRetryable === undefined) return true
  try {
    return policy.isRetryable(ev.error) === true
  } catch {
    return false
  }
}

/** The error a task fails with: names the task and seq, carries the failure. */
export function taskFailed(what: string, ev: FailedEvent): TaskFailedError {
  return new TaskFailedError(`${what} failed (seq ${ev.seq}): ${ev.error.message}`, ev.error)
}

/**
 * Checks an entity class and key; returns `[type name, key]`. A bad key is refused naming the type
 * and the context method it was given to (`use`): `key of entity 'Inventory' given to
 * ctx.entityRef must be a non-empty string (got undefined)`.
 */
export function entityKeyOf(type: EntityClass, key: string, use: string): EntityKey {
  const name = entityTypeName(type)
  return [name, checkKey(key, `key of entity '${name}' given to ctx.${use}`)]
}

/** Throws {@link UnknownOperationError} when the entity class has no such operation. */
export function checkOperation(type: EntityClass, name: string, op: string): void {
  let ops = operationCache.get(type)
  if (ops === undefined) operationCache.set(type, (ops = operationNames(type)))
  if (!ops.has(op)) throw new UnknownOperationError(name, op)
}

/** Throws {@link BadInputError} unless `tasks` is an array of tasks. */
export function checkTasks(tasks: readonly unknown[], what: string): void {
  if (!Array.isArray(tasks) || !tasks.every((t) => t instanceof Task)) {
    throw new BadInputError(`${what} takes an array of tasks`)
  }
}

/** Whether re-run code made the decision the history recorded (same kind, name and target). */
export function sameDecision(a: ScheduledEvent, b: ScheduledEvent): boolean {
  return describe(a) === describe(b)
}

/** How a decision reads in error messages (and what replay compares: kind, name and target). */
export function describe(d: Decision): string {
  if (d.e === 'patch') return `patch marker '${d.id}'`
  switch (d.kind) {
    case 'activity':
      return `activity '${d.name}'`
    case 'timer':
      return 'timer'
    case 'cancelTimer':
      return `cancel of timer ${d.timer}`
    case 'sub':
      return `sub-orchestration '${d.name}'`
    case 'call':
      return `call of ${d.entity[0]}@${d.entity[1]}.${d.op}`
    case 'signal':
      return `signal of ${d.entity[0]}@${d.entity[1]}.${d.op}`
    case 'start':
      return `start of '${d.name}'`
    case 'lock':
      return `lock on ${list(d.entities)}`
    case 'unlock':
      return `unlock of ${list(d.entities)}`
    default: {
      const never: never = d
      return String(never)
    }
  }
}

/** One part of a log line: strings as they are, errors with their stack, the rest as JSON. */
export function format(part: unknown): string {
  if (typeof part === 'string') return part
  if (part instanceof Error) return part.stack ?? `${part.name}: ${part.message}`
  try {
    return JSON.stringify(part) ?? String(part)
  } catch {
    return String(part)
  }
}
