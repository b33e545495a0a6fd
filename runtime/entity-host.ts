/**
 * The entities of one partition: their operations, their in-memory cache, the locks orchestrations
 * hold on them, and the queries that read them. The partition (runtime/partition.ts) owns the
 * loop, the rounds and the storage; this host acts only through {@link EntityPort}, as the
 * orchestration host does through its port (runtime/instances.ts).
 */
import { BadInputError, PayloadTooLargeError, UnknownEntityError, toErrorInfo } from '../actors/errors.ts'
import { checkKey, checkTypeName } from '../actors/ids.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type DoneMessage,
  type EntityOp,
  type LockMessage,
  type Query,
  type QueryAnswer,
  type ReplyTo,
  type UnlockMessage,
} from '../actors/messages.ts'
import { isThenable, type EntityContext, type EntityRegistry } from '../entities/index.ts'
import { decode, encode } from './codec.ts'
import type { Logger } from './logger.ts'
import type { ItemWrite, RoundReply } from './round.ts'
import { entityItemKey, parseEntityItemKey } from './snapshot.ts'

/** What the entity host needs from its partition. */
export interface EntityPort {
  readonly p: number
  readonly logger: Logger
  /** Largest encoded value a round accepts (half a record). */
  readonly valueLimit: number
  /** Number of the round being built. */
  readonly roundNumber: number
  /** Counts bytes against the open round. */
  charge(bytes: number): void
  /** Writes an item in the open round (its bytes were charged when encoded: no charge here). */
  writeCharged(key: string, bytes: Uint8Array | null): void
  replyTo(to: ReplyTo, reply: RoundReply): void
  /** Encodes and routes a message (to an orchestration). */
  send(msg: ActorMessage): void
  /** Routes an encoded message: within the partition at once, else through the outbox. */
  route(msg: ActorMessage, bytes: Uint8Array): void
  /** Puts messages at the front of the partition's local queue (they run next, in order). */
  runNext(msgs: ActorMessage[]): void
  /** The committed-or-snapshotted value of an item. */
  readItem(key: string): Promise<Uint8Array | null>
  /** Whether an item has writes not yet in the state bucket (it cannot be evicted). */
  isPinned(key: string): boolean
  /** Forgets a clean item's snapshot bookkeeping (evicted). */
  forget(key: string): void
  /** Runs `fn` once everything processed so far is durable (and one more record appended). */
  afterCommit(fn: () => void): void
  /** Stored entity keys of a type. */
  listStoredKeys(type: string): Promise<string[]>
  /** Writes not yet in the state bucket, oldest first, under a key prefix. */
  dirtyWrites(prefix: string): Iterable<[string, ItemWrite]>
  /** Whether `name` (`e:Type`, `o:name`) is not run on this node but known to the hub. */
  knownElsewhere(name: string): boolean
  /** Keeps a message for a type known only elsewhere, to be tried again (runtime/unknown-types.ts). */
  defer(msg: ActorMessage): void
}

/** A cached entity: decoded state plus its last good encoding (null: does not exist). */
interface Entry {
  type: string
  key: string
  state: unknown
  bytes: Uint8Array | null
  /** Touched since the eviction hand last passed. */
  used: boolean
}

interface Lock {
  owner: string
  queue: ActorMessage[]
}

/** The context of the operation being run; one per partition, reused (no allocation per op). */
class OpContext implements EntityContext {
  type = ''
  key = ''
  state: unknown = undefined
  deleted = false
  readonly sends: Array<[ActorMessage, Uint8Array]> = []
  #msg: EntityOp | undefined

  constructor(readonly host: EntityHost) {}

  reset(msg: EntityOp, state: unknown): void {
    this.#msg = msg
    this.type = msg.t
    this.key = msg.key
    this.state = state
    this.deleted = false
  }

  send(type: string, key: string, op: string, args: unknown[], at?: number): void {
    checkTypeName(type)
    checkKey(key)
    const m: EntityOp = { k: 'op', t: type, key, op, a: args }
    if (at !== undefined) m.at = at
    this.sends.push([m, this.host.encodeBounded(m, 'signal', this.#msg!)])
  }
}

function describeValue(what: 'state' | 'result' | 'signal', msg: EntityOp): string {
  if (what === 'signal') return `a signal sent by ${msg.t}@${msg.key}.${msg.op}`
  return `${what} of ${msg.t}@${msg.key}${what === 'result' ? '.' + msg.op : ''}`
}

/** The entities of one partition (see the module comment); one per partition. */
export class EntityHost {
  readonly #cache = new Map<string, Entry>()
  readonly #locks = new Map<string, Lock>()
  readonly #ctx = new OpContext(this)

  constructor(
    readonly port: EntityPort,
    readonly registry: EntityRegistry,
    /** Most entities kept in memory. */
    readonly cacheSize: number,
  ) {}

  /** Number of entities in memory. */
  get cached(): number {
    return this.#cache.size
  }

  /** Handles an entity message: an operation, or a lock taken or released by an orchestration. */
  handle(msg: EntityOp | LockMessage | UnlockMessage): void | Promise<void> {
    if (msg.k === 'op') return this.#runOperation(msg)
    if (msg.k === 'lock') return this.#lock(msg)
    return this.#unlock(msg)
  }

  /** Adds the entity a message addresses to `into` when it is not in memory (for preloading). */
  want(msg: ActorMessage, into: Map<string, [type: string, key: string]>): boolean {
    if (msg.k !== 'op') return false
    if (msg.at !== undefined && msg.at > Date.now()) return true
    if (!this.registry.has(msg.t) || msg.key.length === 0) return true
    const itemKey = entityItemKey(this.port.p, msg.t, msg.key)
    if (!this.#cache.has(itemKey)) into.set(itemKey, [msg.t, msg.key])
    return true
  }

  /** Loads the entities {@link want} collected, in parallel. */
  async preload(missing: Map<string, [type: string, key: string]>): Promise<void> {
    await Promise.all([...missing].map(([itemKey, [t, key]]) => this.#load(itemKey, t, key)))
  }

  /** Rebuilds a lock from its item `l.*` (at recovery). */
  replayLock(key: string, value: Uint8Array | null): void {
    const itemKey = 'e' + key.slice(1)
    if (value === null) this.#locks.delete(itemKey)
    else {
      const [owner, queue] = decode(value, `lock ${key}`) as [string, ActorMessage[]]
      this.#locks.set(itemKey, { owner, queue })
    }
  }

  /**
   * Encodes a value, rejecting it when it would not fit in a commit record, and counts it against
   * the round. `what` and `msg` name the value in the error (the text is only built when there is
   * one).
   */
  encodeBounded(value: unknown, what: 'state' | 'result' | 'signal', msg: EntityOp): Uint8Array {
    let bytes: Uint8Array
    try {
      bytes = encode(value)
    } catch (err) {
      throw new BadInputError(`${describeValue(what, msg)} cannot be serialised: ${(err as Error).message}`)
    }
    const limit = this.port.valueLimit
    if (bytes.length > limit) throw new PayloadTooLargeError(describeValue(what, msg), bytes.length, limit)
    this.port.charge(bytes.length + 16)
    return bytes
  }

  /**
   * Drops entities whose state is already in the snapshot store, least recently used first
   * (CLOCK: a used entry gets a second chance and moves to the back).
   */
  evict(): void {
    let excess = this.#cache.size - this.cacheSize
    if (excess <= 0) return
    let budget = this.#cache.size
    for (const [key, entry] of this.#cache) {
      if (excess <= 0 || budget-- <= 0) break
      if (this.port.isPinned(key)) continue
      this.#cache.delete(key)
      if (entry.used) {
        entry.used = false
        this.#cache.set(key, entry)
        continue
      }
      this.port.forget(key)
      excess--
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Operations

  #runOperation(msg: EntityOp): void | Promise<void> {
    if (!this.registry.has(msg.t)) {
      // another node runs this type (a rolling deploy): keep the operation for it
      if (this.port.knownElsewhere(`e:${msg.t}`)) return this.port.defer(msg)
      return this.#reject(msg, new UnknownEntityError(msg.t))
    }
    let itemKey: string
    try {
      itemKey = entityItemKey(this.port.p, msg.t, checkKey(msg.key))
    } catch (err) {
      return this.#reject(msg, err as Error)
    }
    const lock = this.#locks.get(itemKey)
    if (lock !== undefined && lock.owner !== msg.ro?.[0]) {
      // inside another orchestration's critical section: wait for its unlock
      lock.queue.push(msg)
      this.#writeLock(itemKey, lock)
      return
    }
    const cached = this.#cache.get(itemKey)
    if (cached !== undefined) return this.#runOn(cached, itemKey, msg)
    return this.#load(itemKey, msg.t, msg.key).then((entry) => this.#runOn(entry, itemKey, msg))
  }

  /** Runs an operation on a loaded entity; a promise only when the operation is asynchronous. */
  #runOn(entry: Entry, itemKey: string, msg: EntityOp): void | Promise<void> {
    entry.used = true
    const ctx = this.#ctx
    ctx.reset(msg, entry.state)
    let result: unknown
    try {
      result = this.registry.run(ctx, msg.op, msg.a)
    } catch (err) {
      return this.#undo(entry, msg, err as Error)
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => this.#finishOp(entry, itemKey, msg, value),
        (err: unknown) => this.#undo(entry, msg, err as Error),
      )
    }
    return this.#finishOp(entry, itemKey, msg, result)
  }

  /** The operation failed: its state change and its signals are discarded. */
  #undo(entry: Entry, msg: EntityOp, err: Error): void {
    // the entity keeps its last committed-or-speculative state
    entry.state =
      entry.bytes === null ? this.registry.initialState(msg.t) : decode(entry.bytes, 'entity state')
    this.#ctx.sends.length = 0
    this.#reject(msg, err)
  }

  #finishOp(entry: Entry, itemKey: string, msg: EntityOp, result: unknown): void {
    const ctx = this.#ctx
    let bytes: Uint8Array | null
    let resultBytes: Uint8Array | undefined
    try {
      bytes = ctx.deleted ? null : this.encodeBounded(ctx.state, 'state', msg)
      if (msg.r !== undefined) resultBytes = this.encodeBounded(result, 'result', msg)
    } catch (err) {
      return this.#undo(entry, msg, err as Error)
    }
    entry.state = ctx.state
    entry.bytes = bytes
    this.port.writeCharged(itemKey, bytes)
    if (ctx.sends.length > 0) {
      for (const [m, b] of ctx.sends) this.port.route(m, b)
      ctx.sends.length = 0
    }
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, resultBytes!])
    if (msg.ro !== undefined) this.port.send({ k: 'done', i: msg.ro[0], s: msg.ro[1], ok: 1, v: result })
  }

  #reject(msg: EntityOp, err: Error): void {
    if (msg.r !== undefined) {
      this.port.replyTo(msg.r, [msg.r[1], 0, toErrorInfo(err)])
    } else {
      this.port.logger.warn('signal failed', {
        p: this.port.p,
        entity: `${msg.t}@${msg.key}`,
        op: msg.op,
        error: `${err.name}: ${err.message}`,
      })
    }
  }

  async #load(itemKey: string, type: string, key: string): Promise<Entry> {
    const bytes = await this.port.readItem(itemKey)
    const cached = this.#cache.get(itemKey)
    if (cached !== undefined) return cached // loaded concurrently
    const state = bytes === null ? this.registry.initialState(type) : decode(bytes, `state of ${type}@${key}`)
    const entry: Entry = { type, key, state, bytes, used: false }
    this.#cache.set(itemKey, entry)
    this.evict()
    return entry
  }

  // ---------------------------------------------------------------------------------------------
  // Locks (critical sections of orchestrations)

  /** Locks an entity for an orchestration, then passes the request on (sorted order: no deadlock). */
  #lock(msg: LockMessage): void {
    const itemKey = entityItemKey(this.port.p, msg.t, msg.key)
    const lock = this.#locks.get(itemKey)
    if (lock !== undefined && lock.owner !== msg.o[0]) {
      lock.queue.push(msg)
      this.#writeLock(itemKey, lock)
      return
    }
    if (lock === undefined) {
      const fresh = { owner: msg.o[0], queue: [] }
      this.#locks.set(itemKey, fresh)
      this.#writeLock(itemKey, fresh)
    }
    const [next, ...rest] = msg.rest
    if (next === undefined) {
      // the grant names the whole section, so an instance that no longer wants it can give it back
      const done: DoneMessage = { k: 'done', i: msg.o[0], s: msg.o[1], ok: 1 }
      if (msg.all !== undefined) done.lk = msg.all
      this.port.send(done)
    } else {
      const forward: LockMessage = { k: 'lock', t: next[0], key: next[1], o: msg.o, rest }
      if (msg.all !== undefined) forward.all = msg.all
      this.port.send(forward)
    }
  }

  /**
   * Releases an entity (its holder's, or a forced release by hand); operations that waited for it
   * run next, in order. A forced release answers a call with the holder it released (or null).
   */
  #unlock(msg: UnlockMessage): void {
    const itemKey = entityItemKey(this.port.p, msg.t, msg.key)
    const lock = this.#locks.get(itemKey)
    const forced = msg.f === 1
    if (forced && msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, encode(lock?.owner ?? null)])
    if (lock === undefined || (lock.owner !== msg.o && !forced)) return
    if (forced) {
      this.port.logger.warn('lock released by hand', {
        p: this.port.p,
        entity: `${msg.t}@${msg.key}`,
        holder: lock.owner,
      })
    }
    this.#locks.delete(itemKey)
    this.#writeLock(itemKey, null)
    this.port.runNext(lock.queue)
  }

  /** Answers who holds an entity's lock, and how many messages wait for it (after the commit). */
  lockHolder(query: Extract<Query, { k: 'lock' }>, respond: (answer: QueryAnswer) => void): void {
    checkKey(query.key)
    const lock = this.#locks.get(entityItemKey(this.port.p, query.t, query.key))
    const holder = lock?.owner ?? null
    const queued = lock?.queue.length ?? 0
    const n = this.port.roundNumber - 1
    this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, holder, queued, n }))
  }

  #writeLock(itemKey: string, lock: Lock | null): void {
    const bytes = lock === null ? null : encode([lock.owner, lock.queue])
    this.port.charge((bytes?.length ?? 0) + 16)
    this.port.writeCharged('l' + itemKey.slice(1), bytes)
  }

  // ---------------------------------------------------------------------------------------------
  // Queries (answered after the commit of what they saw)

  /** Answers a read: the state as the loop has it now (waits only for a load from the store). */
  async read(query: Extract<Query, { k: 'read' }>, respond: (answer: QueryAnswer) => void): Promise<void> {
    checkKey(query.key)
    const itemKey = entityItemKey(this.port.p, query.t, query.key)
    const cached = this.#cache.get(itemKey)
    const bytes = cached !== undefined ? cached.bytes : await this.port.readItem(itemKey)
    const n = this.port.roundNumber - 1 // changes later in this same round are newer
    this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, exists: bytes !== null, state: bytes, n }))
  }

  /**
   * Answers a list page: the stored keys, corrected by the writes not yet stored as they are now.
   * The listing itself runs in the background (the loop does not wait for it).
   */
  list(query: Extract<Query, { k: 'list' }>, respond: (answer: QueryAnswer) => void): void {
    const overlay = this.#overlay(query.t)
    void this.port
      .listStoredKeys(query.t)
      .then((stored) => {
        const keys = new Set(stored)
        for (const [key, exists] of overlay) {
          if (exists) keys.add(key)
          else keys.delete(key)
        }
        const sorted = [...keys].filter((k) => k.startsWith(query.prefix) && k > query.after).sort()
        const page: QueryAnswer = {
          v: WIRE_VERSION,
          ok: 1,
          keys: sorted.slice(0, query.limit),
          more: sorted.length > query.limit,
        }
        this.port.afterCommit(() => respond(page))
      })
      .catch((err: unknown) => respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) }))
  }

  /** Entity keys of `type` written since the last snapshot, with whether they exist now. */
  #overlay(type: string): Map<string, boolean> {
    const overlay = new Map<string, boolean>()
    for (const [itemKey, value] of this.port.dirtyWrites(`e.${this.port.p}.${type}.`)) {
      const parsed = parseEntityItemKey(itemKey)
      if (parsed !== undefined && parsed.type === type) overlay.set(parsed.key, value !== null)
    }
    return overlay
  }
}
