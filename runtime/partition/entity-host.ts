/**
 * The entities of one partition: their operations and their in-memory cache. The locks
 * orchestrations hold on them are entity-locks.ts, the queries that read them entity-queries.ts,
 * the cached entry and the operation context entity-context.ts, the encoding of states and
 * results (inline or by blob reference) entity-values.ts; this host dispatches to them. The
 * partition (runtime/partition/partition.ts) owns the loop, the rounds and the storage; this host acts only through the partition's one port
 * (host-port.ts), as the orchestration host does (runtime/instances/instance-host.ts).
 *
 * The loop runs one operation at a time, waiting for an asynchronous one to finish (or time out)
 * before the next; so each host keeps one entity object per type and one operation context, and
 * reuses them for every operation of its partition — nothing is allocated per synchronous
 * operation, and no object is shared with another partition. An operation that times out keeps
 * the object and context it had: both are retired (what the operation does later fails or lands
 * nowhere) and the host makes fresh ones.
 *
 * Every entity message gets an outcome: a call gets the result or the error, an orchestration's
 * call a `done` (success or failure; a call that travelled in a lock request sends it inside the
 * request it carries on, see entity-locks.ts), and a signal that cannot run — unknown type or operation,
 * arguments its schema refuses — goes to the dead-letter stream with the reason. A signal whose
 * operation throws is logged (its effects are discarded).
 */
import {
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
  toErrorInfo,
  checkKey,
} from '../../actors/index.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type EntityOp,
  type LockMessage,
  type Query,
  type QueryAnswer,
  type TimerValue,
  type UnlockMessage,
} from '../../actors/wire/index.ts'
import {
  checkArguments,
  isThenable,
  type Entity,
  type EntityRegistry,
  type EntityType,
} from '../../entities/index.ts'
import { decode, BlobRef, unloadedOf, valueOf, itemKey as itemKeys } from '../nats/index.ts'
import type { HostPort } from './host-port.ts'
import {
  OpContext,
  type Entry,
  type LargeState,
  type ValueEncoder,
  type ValueKind,
} from './entity-context.ts'
import { EntityLocks, sendOutcome } from './entity-locks.ts'
import { EntityValues } from './entity-values.ts'
import { entitySpan } from './entity-spans.ts'
import { noSpan, type TraceSpan } from '../metrics/index.ts'
import { listEntities, readEntity, scheduledSignalsOf } from './entity-queries.ts'
import { operationName } from '../util/index.ts'

/** What the entity host uses of the partition's {@link HostPort} (a unit test fakes just this). */
export type EntityPort = Pick<
  HostPort,
  | 'p'
  | 'logger'
  | 'valueLimit'
  | 'blobs'
  | 'metrics'
  | 'tracing'
  | 'holdFor'
  | 'roundNumber'
  | 'charge'
  | 'writeCharged'
  | 'replyTo'
  | 'send'
  | 'deadLetterMessage'
  | 'route'
  | 'runNext'
  | 'readItem'
  | 'isPinned'
  | 'forget'
  | 'afterCommit'
  | 'listStoredKeys'
  | 'dirtyWrites'
  | 'knownElsewhere'
  | 'defer'
  | 'notRunHere'
>

/** The entities of one partition (see the module comment); one per partition. */
export class EntityHost implements ValueEncoder {
  readonly #cache = new Map<string, Entry>()
  /** The locks orchestrations hold on these entities (entity-locks.ts). */
  readonly #locks: EntityLocks
  /** The context operations run in (replaced when an operation times out). */
  #ctx = new OpContext(this)
  /** How states and results are encoded for the round (entity-values.ts). */
  readonly #values: EntityValues
  /** The object operations of each type run on (replaced when an operation times out). */
  readonly #objects = new Map<string, Entity>()
  /** The span of the operation running now (entity-spans.ts; {@link noSpan} when not tracing). */
  #span: TraceSpan = noSpan

  constructor(
    readonly port: EntityPort,
    readonly registry: EntityRegistry,
    /** Most entities kept in memory. */
    readonly cacheSize: number,
  ) {
    this.#locks = new EntityLocks(port)
    this.#values = new EntityValues(port)
  }

  /** Number of entities in memory. */
  get cached(): number {
    return this.#cache.size
  }

  /**
   * Handles an entity message: an operation, or a lock taken or released by an orchestration (or
   * released by hand: of a type no node of the hub registers that is not locked, the caller gets
   * {@link UnknownEntityError}, as a lock query does).
   */
  handle(msg: EntityOp | LockMessage | UnlockMessage): void | Promise<void> {
    if (msg.k === 'op') {
      // another node runs this type or operation (a rolling deploy): kept for it, a release with it
      const elsewhere = this.#runsElsewhere(msg)
      if (elsewhere !== undefined) return this.#keepForOthers(msg, elsewhere)
      return msg.rl === undefined ? this.#runOperation(msg) : this.#runAndRelease(msg)
    }
    if (msg.k === 'lock') return this.#locks.lock(msg)
    return this.#locks.unlock(msg, this.#registered(msg.t) ? undefined : this.#unknownOnHub(msg.t))
  }

  /** Whether this node runs entity type `type`. */
  runs(type: string): boolean {
    return this.registry.has(type)
  }

  /** Adds the entity a message addresses to `into` when it is not in memory (for preloading). */
  want(msg: ActorMessage, into: Map<string, [type: string, key: string]>): boolean {
    if (msg.k !== 'op') return false
    if (msg.at !== undefined && msg.at > Date.now()) return true
    if (!this.registry.has(msg.t) || msg.key.length === 0) return true
    const itemKey = itemKeys.entity(this.port.p, msg.t, msg.key)
    if (!this.#cache.has(itemKey)) into.set(itemKey, [msg.t, msg.key])
    return true
  }

  /** Loads the entities {@link want} collected, in parallel. */
  async preload(missing: Map<string, [type: string, key: string]>): Promise<void> {
    await Promise.all([...missing].map(([itemKey, [t, key]]) => this.#load(itemKey, t, key)))
  }

  /** Rebuilds a lock from its item `l.*` (at recovery). */
  replayLock(key: string, value: Uint8Array | null): void {
    this.#locks.replay(key, value)
  }

  /** Encodes a value bounded by the round (entity-values.ts); the operation context's encoder. */
  encodeBounded(value: unknown, what: ValueKind, msg: EntityOp): Uint8Array {
    return this.#values.encodeBounded(value, what, msg)
  }

  /**
   * Drops entities whose state is already in the snapshot store, least recently used first
   * (CLOCK: a used entry gets a second chance and moves to the back), never `keep` (the entity an
   * operation is about to run on). Up to two passes: when every entry was used, the first only
   * takes their second chances — and a partition whose cache is past four times its size waits
   * for an eviction (partition.ts), which after a snapshot only this call makes, so one pass that
   * evicted nothing left it waiting for good.
   */
  evict(keep?: string): void {
    let excess = this.#cache.size - this.cacheSize
    if (excess <= 0) return
    let budget = 2 * this.#cache.size
    for (const [key, entry] of this.#cache) {
      if (excess <= 0 || budget-- <= 0) break
      if (key === keep || this.port.isPinned(key)) continue
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

  /**
   * Releases the caller's lock on the entity an operation addresses when the operation carried the
   * release (`EntityOp.rl`): after it ran (see #runAndRelease), or when it never will (dead-lettered
   * as a poison, intake.ts).
   */
  releaseFor(msg: EntityOp): void {
    const owner = msg.rl === 1 ? msg.ro?.[0] : undefined
    if (owner !== undefined) this.#locks.unlock({ k: 'unlock', t: msg.t, key: msg.key, o: owner })
  }

  // ---------------------------------------------------------------------------------------------
  // Operations

  /**
   * An operation that carries its section's release: the entity runs it, then unlocks for the
   * instance that called — whatever the outcome (a refused or failed operation releases too), in the
   * round that ran it.
   */
  #runAndRelease(msg: EntityOp): void | Promise<void> {
    const ran = this.#runOperation(msg)
    if (ran === undefined) return this.releaseFor(msg)
    return ran.then(() => this.releaseFor(msg))
  }

  /**
   * The registry name (`e:Type`, or `e:Type#op`) that another node of the hub runs and this one
   * does not, for an operation of a type or an operation this node lacks; undefined otherwise.
   */
  #runsElsewhere(msg: EntityOp): string | undefined {
    const type = this.registry.find(msg.t)
    if (type === undefined) return this.port.knownElsewhere(`e:${msg.t}`) ? `e:${msg.t}` : undefined
    if (type.operations.has(msg.op)) return undefined
    const name = operationName(msg.t, msg.op)
    return this.port.knownElsewhere(name) ? name : undefined
  }

  /** Keeps an operation of a type (or an operation) another node of the hub runs, for it (unknown-types.ts). */
  #keepForOthers(msg: EntityOp, name: string): void {
    this.port.notRunHere(name)
    this.port.defer(msg)
  }

  #runOperation(msg: EntityOp): void | Promise<void> {
    const refs = unloadedOf(msg.a)
    if (refs.length > 0) {
      // large arguments stored by reference: loaded first (one that cannot be read fails the call)
      return this.port.blobs.loadAll(refs).then(
        () => this.#runOperation(msg),
        (err: unknown) => this.#refuse(msg, err as Error),
      )
    }
    const type = this.registry.find(msg.t)
    if (type === undefined) return this.#unknownType(msg)
    if (!type.operations.has(msg.op)) return this.#refuse(msg, new UnknownOperationError(msg.t, msg.op))
    let itemKey: string
    try {
      itemKey = itemKeys.entity(this.port.p, msg.t, checkKey(msg.key))
    } catch (err) {
      return this.#refuse(msg, err as Error)
    }
    // inside another orchestration's critical section: wait for its unlock
    if (this.#locks.holds(itemKey, msg)) return
    const cached = this.#cache.get(itemKey)
    if (cached !== undefined) this.port.metrics.cacheHit()
    if (cached !== undefined) return this.#check(type, cached, itemKey, msg)
    return this.#load(itemKey, msg.t, msg.key).then((entry) => this.#check(type, entry, itemKey, msg))
  }

  /**
   * The outcome of an operation on an entity type this node does not know: a call gets
   * {@link UnknownEntityError}, a signal goes to the dead-letter stream with the reason.
   */
  #unknownType(msg: EntityOp): void | Promise<void> {
    return this.#refuse(msg, new UnknownEntityError(msg.t))
  }

  /** Checks the arguments against the operation's schema (if any), then runs the operation. */
  #check(type: EntityType, entry: Entry, itemKey: string, msg: EntityOp): void | Promise<void> {
    const schema = type.schemas?.get(msg.op)
    let given = msg.a
    for (const arg of given) {
      if (arg instanceof BlobRef) {
        // the operation gets the values; their blobs go once it is durable (the message is spent)
        for (const a of given) if (a instanceof BlobRef) this.#values.dropAfterCommit(a)
        given = given.map(valueOf)
        break
      }
    }
    if (schema === undefined) return this.#runOn(type, entry, itemKey, msg, given)
    let args: unknown[] | Promise<unknown[]>
    try {
      args = checkArguments(schema, given, msg.t, msg.key, msg.op)
    } catch (err) {
      return this.#refuse(msg, err as Error)
    }
    if (!isThenable(args)) return this.#runOn(type, entry, itemKey, msg, args)
    return args.then(
      (checked) => this.#runOn(type, entry, itemKey, msg, checked),
      (err: unknown) => this.#refuse(msg, err as Error),
    )
  }

  /** Runs an operation on a loaded entity; a promise only when the operation is asynchronous. */
  #runOn(
    type: EntityType,
    entry: Entry,
    itemKey: string,
    msg: EntityOp,
    args: unknown[],
  ): void | Promise<void> {
    entry.used = true
    this.port.metrics.entityOp(msg.t, msg.op, msg.r === undefined && msg.ro === undefined)
    if (this.port.tracing.on) this.#span = entitySpan(this.port, msg)
    const ctx = this.#ctx
    const entity = this.#objectOf(type)
    ctx.reset(msg, entry.state)
    let result: unknown
    try {
      // A new or deleted entity starts from initialState(), made here as part of the operation:
      // it may read this.key, and what it throws fails the operation, not the partition (made at
      // load time, outside any operation, a throw there stopped the partition at every restart).
      if (entry.bytes === null) ctx.state = this.registry.initialState(entity, ctx)
      result = this.registry.run(entity, ctx, msg.op, args)
    } catch (err) {
      return this.#undo(entry, msg, err as Error)
    }
    if (isThenable(result)) return this.#finishAsync(type, entry, itemKey, msg, result)
    return this.#finishOp(entry, itemKey, msg, result)
  }

  /** The object operations of `type` run on in this partition. */
  #objectOf(type: EntityType): Entity {
    let entity = this.#objects.get(type.name)
    if (entity === undefined) this.#objects.set(type.name, (entity = this.registry.instantiate(type.name)))
    return entity
  }

  /**
   * Waits for an asynchronous operation, at most its type's timeout. On expiry the operation
   * fails with {@link TimeoutError} and its changes are discarded; it keeps running on its own
   * object and context, which are retired (later state access fails, later signals fail) and
   * replaced, so the partition goes on.
   */
  #finishAsync(
    type: EntityType,
    entry: Entry,
    itemKey: string,
    msg: EntityOp,
    pending: PromiseLike<unknown>,
  ): Promise<void> {
    if (type.timeoutMs === Infinity) {
      return Promise.resolve(pending).then(
        (value) => this.#finishOp(entry, itemKey, msg, value),
        (err: unknown) => this.#undo(entry, msg, err as Error),
      )
    }
    let timer: NodeJS.Timeout | undefined
    const expiry = new TimeoutError(
      `${msg.t}@${msg.key}.${msg.op} did not finish within ${type.timeoutMs} ms (entity operation timeout); its changes were discarded`,
    )
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(expiry), Math.min(type.timeoutMs, 2 ** 31 - 1))
    })
    return Promise.race([pending, expired]).then(
      (value) => {
        clearTimeout(timer)
        this.#finishOp(entry, itemKey, msg, value)
      },
      (err: unknown) => {
        clearTimeout(timer)
        if (err === expiry) this.#abandon(type, msg)
        this.#undo(entry, msg, err as Error)
      },
    )
  }

  /** Cuts a timed-out operation off from everything that runs after it (see {@link #finishAsync}). */
  #abandon(type: EntityType, msg: EntityOp): void {
    this.port.logger.warn('entity operation timed out; its changes are discarded', {
      p: this.port.p,
      entity: `${msg.t}@${msg.key}`,
      op: msg.op,
      timeoutMs: type.timeoutMs,
    })
    const entity = this.#objects.get(type.name)
    if (entity !== undefined) this.registry.detach(entity)
    this.#objects.delete(type.name)
    this.#ctx.retire()
    this.#ctx = new OpContext(this)
  }

  /** The operation failed: its state change and its signals are discarded. */
  #undo(entry: Entry, msg: EntityOp, err: Error): void {
    // the entity keeps its last committed-or-speculative state (none: the next operation starts
    // from initialState())
    entry.state = entry.bytes === null ? undefined : decode(entry.blob ?? entry.bytes, 'entity state')
    this.#ctx.sends.length = 0
    this.#endSpan(err)
    this.#reject(msg, err)
  }

  #finishOp(entry: Entry, itemKey: string, msg: EntityOp, result: unknown): void {
    const ctx = this.#ctx
    let bytes: Uint8Array | null
    let resultBytes: Uint8Array | undefined
    this.#values.large = undefined
    try {
      bytes = ctx.deleted ? null : this.#values.encodeState(entry, ctx.state, msg)
      if (msg.r !== undefined) resultBytes = this.#values.encodeBounded(result, 'result', msg)
      // a large result for an orchestration goes by reference (it lands in the instance's history)
      else if (msg.ro !== undefined) result = this.#values.resultForOrchestration(result, msg)
    } catch (err) {
      return this.#undo(entry, msg, err as Error)
    }
    const large = this.#values.large as LargeState | undefined
    if (entry.ref !== undefined && (bytes === null || (large !== undefined && large.ref !== entry.ref))) {
      // the replaced state's blob goes once the new state is durable
      this.#values.dropAfterCommit(entry.ref)
    }
    if (bytes === null || large !== undefined) {
      entry.ref = large?.ref
      entry.blob = large?.blob
    }
    entry.state = ctx.state
    entry.bytes = bytes
    // An entry evicted while its operation ran (an asynchronous one, or between its load and its
    // run) holds the newest state: back into the cache, where its write pins it. Left out, the
    // next operation read the state from the snapshot store, which does not hold this round's
    // write, and the update was lost (an outside trial with a small cacheSize lost signals).
    if (this.#cache.get(itemKey) !== entry) this.#cache.set(itemKey, entry)
    this.port.writeCharged(itemKey, bytes)
    if (ctx.sends.length > 0) {
      for (const [m, b] of ctx.sends) this.port.route(m, b)
      ctx.sends.length = 0
    }
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, resultBytes!])
    if (msg.ro !== undefined)
      sendOutcome(this.port, msg, { k: 'done', i: msg.ro[0], s: msg.ro[1], ok: 1, v: result })
    this.#endSpan(undefined)
  }

  /** Ends the running operation's span, with its error if it failed. */
  #endSpan(err: Error | undefined): void {
    if (this.#span === noSpan) return
    if (err !== undefined) this.#span.fail(err)
    this.#span.end()
    this.#span = noSpan
  }

  /**
   * An operation that cannot run (unknown type or operation, bad key, arguments refused): its
   * caller gets the error; a signal, which has no caller, goes to the dead-letter stream.
   */
  #refuse(msg: EntityOp, err: Error): void | Promise<void> {
    if (msg.r !== undefined || msg.ro !== undefined) return this.#answerFailure(msg, err)
    return this.port.deadLetterMessage(msg, `${err.name}: ${err.message}`)
  }

  /** An operation failed (threw, timed out, or its outcome is too large): its caller gets the error. */
  #reject(msg: EntityOp, err: Error): void {
    if (msg.r !== undefined || msg.ro !== undefined) return this.#answerFailure(msg, err)
    this.port.logger.warn('signal failed', {
      p: this.port.p,
      entity: `${msg.t}@${msg.key}`,
      op: msg.op,
      error: `${err.name}: ${err.message}`,
    })
  }

  /** Tells the client or orchestration that made a call that it failed. */
  #answerFailure(msg: EntityOp, err: Error): void {
    const info = toErrorInfo(err)
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 0, info])
    if (msg.ro !== undefined)
      sendOutcome(this.port, msg, { k: 'done', i: msg.ro[0], s: msg.ro[1], ok: 0, err: info })
  }

  async #load(itemKey: string, type: string, key: string): Promise<Entry> {
    this.port.metrics.cacheMiss()
    const bytes = await this.port.readItem(itemKey)
    // (an entity that does not exist gets its initialState() when an operation runs on it)
    let state = bytes === null ? undefined : decode(bytes, `state of ${type}@${key}`)
    let large: LargeState | undefined
    if (state instanceof BlobRef) {
      // a large state: its item holds a reference to a blob with the state
      const blob = await this.port.blobs.loadBytes(state)
      large = { ref: state, blob }
      state = decode(blob, `state of ${type}@${key}`)
    }
    const cached = this.#cache.get(itemKey)
    if (cached !== undefined) return cached // loaded concurrently
    const entry: Entry = { type, key, state, bytes, used: false }
    if (large !== undefined) {
      entry.ref = large.ref
      entry.blob = large.blob
    }
    this.#cache.set(itemKey, entry)
    this.evict(itemKey)
    return entry
  }

  // ---------------------------------------------------------------------------------------------
  // Locks and queries (entity-locks.ts, entity-queries.ts)

  /**
   * Answers who holds an entity's lock, and how many messages wait for it (after the commit); for
   * a type no node of the hub registers, not locked: {@link UnknownEntityError}.
   */
  lockHolder(query: Extract<Query, { k: 'lock' }>, respond: (answer: QueryAnswer) => void): void {
    this.#locks.holder(query, this.#unknownIfEmpty(query.t, respond))
  }

  /**
   * Answers the scheduled signals held for an entity; for a type no node of the hub registers,
   * none: {@link UnknownEntityError}.
   */
  scheduledSignals(
    query: Extract<Query, { k: 'timers' }>,
    timers: Iterable<TimerValue>,
    respond: (answer: QueryAnswer) => void,
  ): void {
    scheduledSignalsOf(this.port, timers, query, this.#unknownIfEmpty(query.t, respond))
  }

  /**
   * Answers a read: the state as the loop has it now (waits only for a load from the store); for a
   * type no node of the hub registers, no state: {@link UnknownEntityError}.
   */
  read(query: Extract<Query, { k: 'read' }>, respond: (answer: QueryAnswer) => void): Promise<void> {
    return readEntity(this.port, this.#cache, query, this.#unknownIfEmpty(query.t, respond))
  }

  /**
   * Answers a list page: the stored keys, corrected by the writes not yet stored; for a type no
   * node of the hub registers, no keys: {@link UnknownEntityError}.
   */
  list(query: Extract<Query, { k: 'list' }>, respond: (answer: QueryAnswer) => void): void {
    listEntities(this.port, query, this.#unknownIfEmpty(query.t, respond))
  }

  /**
   * `respond`, unless `type` is registered by no node of the hub (a misspelt name, a class never
   * deployed) and the answer is empty: then {@link UnknownEntityError}, so that a typo does not
   * read as an entity that does not exist. What is stored for a type no longer registered is still
   * answered.
   */
  #unknownIfEmpty(type: string, respond: (answer: QueryAnswer) => void): (answer: QueryAnswer) => void {
    if (this.#registered(type)) return respond
    return (answer) => {
      const empty =
        ('exists' in answer && !answer.exists) ||
        ('keys' in answer && answer.keys.length === 0 && !answer.more) ||
        ('holder' in answer && answer.holder === null) ||
        ('signals' in answer && answer.signals.length === 0)
      if (!empty) return respond(answer)
      respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(this.#unknownOnHub(type)) })
    }
  }

  /** Whether this node or another node of the hub registers entity type `type`. */
  #registered(type: string): boolean {
    return this.registry.has(type) || this.port.knownElsewhere(`e:${type}`)
  }

  /** The error for a type no node of the hub registers. */
  #unknownOnHub(type: string): UnknownEntityError {
    return new UnknownEntityError(type, 'the registry of any node of this hub')
  }
}
