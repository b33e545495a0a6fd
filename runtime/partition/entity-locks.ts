/**
 * The locks of a partition's entities: the critical sections orchestrations take (`ctx.lock`).
 * A lock is the item `l.*` beside its entity (written in the round that changes it, replayed at
 * recovery); operations of others wait in its queue and run next, in order, when it is released.
 * Lock requests travel from entity to entity in sorted order, so sections never deadlock. Apart
 * from the entity host (entity-host.ts), which asks {@link EntityLocks.holds} before each operation.
 */
import { PayloadTooLargeError, checkKey, toErrorInfo } from '../../actors/index.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type DoneMessage,
  type EntityOp,
  type LockMessage,
  type Query,
  type QueryAnswer,
  type UnlockMessage,
} from '../../actors/wire/index.ts'
import { decode, encode, itemKey as itemKeys } from '../nats/index.ts'
import type { HostPort } from './host-port.ts'

/** A held lock: its owner (an instance id) and the messages waiting for it. */
interface Lock {
  owner: string
  queue: ActorMessage[]
}

/** What the locks use of the partition's port. */
export type LockPort = Pick<
  HostPort,
  'p' | 'logger' | 'send' | 'replyTo' | 'runNext' | 'roundNumber' | 'afterCommit' | 'charge' | 'writeCharged'
>

/** The entity locks of one partition. */
export class EntityLocks {
  readonly #held = new Map<string, Lock>()

  constructor(readonly port: LockPort) {}

  /**
   * Whether another orchestration's critical section holds the entity `itemKey`: then the
   * operation waits in the lock's queue for the unlock (and true is returned).
   */
  holds(itemKey: string, msg: EntityOp): boolean {
    const lock = this.#held.get(itemKey)
    if (lock === undefined || lock.owner === msg.ro?.[0]) return false
    lock.queue.push(msg)
    this.#write(itemKey, lock)
    return true
  }

  /** Rebuilds a lock from its item `l.*` (at recovery). */
  replay(key: string, value: Uint8Array | null): void {
    const itemKey = itemKeys.entityOf(key)
    if (value === null) this.#held.delete(itemKey)
    else {
      const [owner, queue] = decode(value, `lock ${key}`) as [string, ActorMessage[]]
      this.#held.set(itemKey, { owner, queue })
    }
  }

  /** Locks an entity for an orchestration, then passes the request on (sorted order: no deadlock). */
  lock(msg: LockMessage): void {
    const itemKey = itemKeys.entity(this.port.p, msg.t, msg.key)
    const lock = this.#held.get(itemKey)
    if (lock !== undefined && lock.owner !== msg.o[0]) {
      lock.queue.push(msg)
      this.#write(itemKey, lock)
      return
    }
    if (lock === undefined) {
      const fresh = { owner: msg.o[0], queue: [] }
      this.#held.set(itemKey, fresh)
      this.#write(itemKey, fresh)
    }
    // what goes on from here: the request to the next entity, or the grant at the last one (which
    // names the whole section, so an instance that no longer wants it can give it back); outcomes
    // of calls that ran at the entities before ride along
    const [next, ...rest] = msg.rest
    let onward: LockMessage | DoneMessage
    if (next === undefined) {
      onward = { k: 'done', i: msg.o[0], s: msg.o[1], ok: 1 }
      if (msg.all !== undefined) onward.lk = msg.all
    } else {
      onward = { k: 'lock', t: next[0], key: next[1], o: msg.o, rest }
      if (msg.all !== undefined) onward.all = msg.all
    }
    if (msg.res !== undefined) onward.res = msg.res
    // calls made with the request run now, before anything else (the entity is the caller's); the
    // request goes on once this entity's call completed, with its outcome (see sendOutcome), so the
    // instance gets every outcome and the grant in one message
    const mine = msg.ops?.filter((op) => op.t === msg.t && op.key === msg.key) ?? []
    if (msg.ops !== undefined && mine.length < msg.ops.length && onward.k === 'lock') {
      onward.ops = msg.ops.filter((op) => op.t !== msg.t || op.key !== msg.key)
    }
    const last = mine.pop()
    if (last === undefined) return this.port.send(onward)
    if (mine.length > 0) {
      // never from this runtime (a section calls an entity at most once at a time, and checkMessage
      // refuses such a request): the earlier calls answer on their own
      this.port.logger.warn('a lock request carries more than one call to an entity', {
        p: this.port.p,
        entity: `${msg.t}@${msg.key}`,
        instance: msg.o[0],
      })
    }
    this.port.runNext([...mine, { ...last, fw: onward }])
  }

  /**
   * Releases an entity (its holder's, or a forced release by hand); operations that waited for it
   * run next, in order. A forced release answers a call with the holder it released, or null —
   * or `unknownType` when given (the type is registered nowhere) and the entity is not locked, so
   * that a misspelt type does not read as an entity that was not locked.
   */
  unlock(msg: UnlockMessage, unknownType?: Error): void {
    const itemKey = itemKeys.entity(this.port.p, msg.t, msg.key)
    const lock = this.#held.get(itemKey)
    const forced = msg.f === 1
    if (forced && msg.r !== undefined) {
      this.port.replyTo(
        msg.r,
        lock === undefined && unknownType !== undefined
          ? [msg.r[1], 0, toErrorInfo(unknownType)]
          : [msg.r[1], 1, encode(lock?.owner ?? null)],
      )
    }
    if (lock === undefined || (lock.owner !== msg.o && !forced)) return
    if (forced) {
      this.port.logger.warn('lock released by hand', {
        p: this.port.p,
        entity: `${msg.t}@${msg.key}`,
        holder: lock.owner,
      })
    }
    this.#held.delete(itemKey)
    this.#write(itemKey, null)
    this.port.runNext(lock.queue)
  }

  /** Answers who holds an entity's lock, and how many messages wait for it (after the commit). */
  holder(query: Extract<Query, { k: 'lock' }>, respond: (answer: QueryAnswer) => void): void {
    checkKey(query.key)
    const lock = this.#held.get(itemKeys.entity(this.port.p, query.t, query.key))
    const holder = lock?.owner ?? null
    const queued = lock?.queue.length ?? 0
    const n = this.port.roundNumber - 1
    this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, holder, queued, n }))
  }

  #write(itemKey: string, lock: Lock | null): void {
    const bytes = lock === null ? null : encode([lock.owner, lock.queue])
    this.port.charge((bytes?.length ?? 0) + 16)
    this.port.writeCharged(itemKeys.lockOf(itemKey), bytes)
  }
}

/**
 * Sends the outcome of an orchestration's call: a call that travelled in a lock request (`fw`
 * set, see {@link EntityLocks.lock}) sends the request on, or the grant, with the outcome added to
 * its `res`; any other call sends its `done` on its own. Called in the round in which the call
 * completed (its state change, its outcome and the onward message commit together). Should the
 * outcomes collected outgrow a message, this one goes on its own beside the onward message (the
 * instance takes it in a step of its own): a section never fails for the size of its outcomes.
 */
export function sendOutcome(port: Pick<HostPort, 'send'>, op: EntityOp, done: DoneMessage): void {
  if (op.fw === undefined) return port.send(done)
  try {
    port.send({ ...op.fw, res: [...(op.fw.res ?? []), done] })
  } catch (err) {
    if (!(err instanceof PayloadTooLargeError)) throw err
    port.send(done)
    port.send(op.fw)
  }
}
