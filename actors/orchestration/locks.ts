/**
 * Critical sections: the entities an orchestration locked, in canonical order, and the rules that
 * hold while it is inside (Durable Functions' rules): no nesting, no sub-orchestrations, calls only
 * to locked entities and one at a time per entity, signals only to entities it did not lock.
 */
import { BadInputError, IllegalStateError } from '../errors.ts'
import type { EntityKey } from './types.ts'

/** `[Type@key, …]` for messages. */
export function list(entities: readonly EntityKey[]): string {
  return `[${entities.map(([t, k]) => `${t}@${k}`).join(', ')}]`
}

/** The entities without duplicates, sorted by `type@key` (code-unit order, the same everywhere). */
export function canonicalOrder(entities: readonly EntityKey[]): EntityKey[] {
  const byId = new Map<string, EntityKey>()
  for (const entity of entities) byId.set(`${entity[0]}@${entity[1]}`, entity)
  const ids = [...byId.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return ids.map((id) => byId.get(id)!)
}

/** The critical section of an execution, from the lock request until release or the end. */
export class CriticalSection {
  /** True once the lock was acquired. */
  held = false
  /**
   * True once the code waited after asking for the lock: from then on a call must wait for the
   * lock (before, calls travel with the lock request, see {@link carries}).
   */
  sealed = false
  readonly #ids: Set<string>
  readonly #calls = new Set<string>()

  constructor(
    /** Seq of the lock command. */
    readonly seq: number,
    /** Locked entities, in acquisition order. */
    readonly entities: EntityKey[],
  ) {
    this.#ids = new Set(entities.map(([t, k]) => `${t}@${k}`))
  }

  /** Refuses a second lock while this one is open. */
  refuseNested(): never {
    throw new IllegalStateError(
      `critical sections cannot nest: this orchestration already holds or awaits a lock on ${list(this.entities)}`,
    )
  }

  /** Refuses a sub-orchestration inside the section. */
  refuseSub(name: string): never {
    throw new IllegalStateError(`a critical section cannot call sub-orchestrations (called '${name}')`)
  }

  /** Checks a call of `id.op` and counts it as in flight; {@link endCall} when it completes. */
  beginCall(id: string, op: string): void {
    if (!this.#ids.has(id)) {
      throw new IllegalStateError(
        `inside a critical section an orchestration may call only the entities it locked (${list(this.entities)}); called ${id}.${op}`,
      )
    }
    if (!this.held && this.sealed) {
      throw new IllegalStateError(
        `await the lock before calling ${id}.${op} (only calls made right after ctx.lock, before any yield, travel with the lock request)`,
      )
    }
    // (the lock chain relies on this: a lock request carries at most one call per entity, whose
    // outcome carries the request on — runtime/partition/entity-locks.ts; checkMessage refuses more)
    if (this.#calls.has(id)) {
      throw new IllegalStateError(
        `a critical section cannot call ${id} again before its previous call completed`,
      )
    }
    this.#calls.add(id)
  }

  /** Whether a call made now travels with the lock request (the lock is asked for, not yet held). */
  get carries(): boolean {
    return !this.held
  }

  /** A call to `id` completed. */
  endCall(id: string): void {
    this.#calls.delete(id)
  }

  /** Refuses a signal to a locked entity. */
  checkSignal(id: string): void {
    if (this.#ids.has(id)) {
      throw new IllegalStateError(`a critical section cannot signal ${id}, which it locked: call it instead`)
    }
  }
}

/** Checks that `ref` looks like an entity ref before it is resolved. */
export function checkRef(ref: unknown): asserts ref is { type: unknown; key: unknown } {
  if (typeof ref !== 'object' || ref === null) {
    throw new BadInputError('lock takes entity refs (ctx.entityRef(Type, key))')
  }
}
