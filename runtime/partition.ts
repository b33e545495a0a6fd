/**
 * The partition loop (DESIGN.md §3). One owner per partition reads its mailbox from the last
 * committed position, runs entity operations on in-memory state, and appends one fenced commit
 * record per round. Effects that others can observe — replies, messages to other partitions,
 * watcher updates — leave only after the record is acknowledged. With pipelining on, the loop
 * keeps processing while a commit is in flight; the next record carries everything processed
 * meanwhile (group commit), so a busy partition commits hundreds of steps per JetStream publish.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream'
import {
  BadInputError,
  FencedError,
  PayloadTooLargeError,
  UnknownEntityError,
  toErrorInfo,
} from '../actors/errors.ts'
import { checkKey, checkTypeName, partitionOf } from '../actors/ids.ts'
import {
  WIRE_VERSION,
  checkEnvelope,
  checkMessage,
  type ActorMessage,
  type CommitRecord,
  type EntityOp,
  type MailboxEnvelope,
  type MailboxPosition,
  type Query,
  type QueryAnswer,
  type LockMessage,
  type Reply,
  type ReplyEnvelope,
  type ReplyTo,
  type UnlockMessage,
  type TimerValue,
} from '../actors/messages.ts'
import { isThenable, type EntityContext, type EntityRegistry } from '../entities/index.ts'
import { decode, decodeEnvelope, encode } from './codec.ts'
import type { Hub } from './hub.ts'
import type { Logger } from './logger.ts'
import { Outbox } from './outbox.ts'
import { CommitRound, resolveWrite, type ItemWrite, type RoundReply } from './round.ts'
import { RecentReplies } from './recent-replies.ts'
import { ChangeFeed } from './change-feed.ts'
import { SnapshotState, entityItemKey, parseEntityItemKey } from './snapshot.ts'
import { StallWatch } from './stall-watch.ts'
import { PartitionStorage, isFencingRejection, type Checkpoint } from './storage.ts'
import { TimerSet } from './timers.ts'
import type { InstanceHandler } from './instances.ts'

/** Settings of a partition (see {@link NodeOptions} for the defaults). */
export interface PartitionOptions {
  registry: EntityRegistry
  epoch: number
  logger: Logger
  /** Keep processing while a commit is in flight (speculation). */
  pipelining: boolean
  /** Most entities kept in memory. */
  cacheSize: number
  /** Most messages taken from the mailbox in one processing step. */
  maxBatch: number
  /** Take a snapshot after this many records... */
  snapshotRecords: number
  /** ...or this many ms after the first record not yet in a snapshot. */
  snapshotIntervalMs: number
  /** Builds the orchestration host of this partition (absent: entities only). */
  instances?: (partition: Partition) => InstanceHandler
  /** Replies sent lately, kept across restarts of the partition on one node (else its own). */
  recentReplies?: RecentReplies
  /** Called once when the partition stops for any reason other than close(). */
  onStopped(reason: 'fenced' | 'failed', error: Error): void
}

/** Counters of one partition. */
export interface PartitionStats {
  records: number
  messages: number
  snapshots: number
  recoveredRecords: number
  deadLetters: number
  /** Change messages published (records while someone may watch). */
  changes: number
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

/** The context of the operation being run; one per partition, reused (no allocation per op). */
class OpContext implements EntityContext {
  type = ''
  key = ''
  state: unknown = undefined
  deleted = false
  readonly sends: Array<[ActorMessage, Uint8Array]> = []
  #msg: EntityOp | undefined

  constructor(readonly partition: Partition) {}

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
    this.sends.push([m, this.partition.encodeBounded(m, 'signal', this.#msg!)])
  }
}

function describeValue(what: 'state' | 'result' | 'signal', msg: EntityOp): string {
  if (what === 'signal') return `a signal sent by ${msg.t}@${msg.key}.${msg.op}`
  return `${what} of ${msg.t}@${msg.key}${what === 'result' ? '.' + msg.op : ''}`
}

/** A mailbox message waiting to be processed. */
interface Inbound {
  seq: number
  env?: MailboxEnvelope
  raw?: Uint8Array
  error?: string
}

interface PendingQuery {
  query: Query
  respond(answer: QueryAnswer): void
}

const HIGH_WATER = 20_000

/** One partition owned by this process. */
export class Partition {
  readonly stats: PartitionStats = {
    records: 0,
    messages: 0,
    snapshots: 0,
    recoveredRecords: 0,
    deadLetters: 0,
    changes: 0,
  }
  readonly #storage: PartitionStorage
  readonly #outbox: Outbox
  readonly #snap: SnapshotState
  readonly #timers = new TimerSet()
  readonly #cache = new Map<string, Entry>()
  readonly #clients = new Map<string, [q: number, at: number]>()
  readonly #origins = new Map<number, number>()
  readonly #locks = new Map<string, { owner: string; queue: ActorMessage[] }>()
  readonly #instances: InstanceHandler | undefined
  #local: ActorMessage[] = []
  #inbox: Inbound[] = []
  #pos: MailboxPosition = [1, 0]
  #open: CommitRound
  #inflight: CommitRound | null = null
  #lastLogSeq = 0
  #stallWatch: StallWatch | undefined
  #queries: PendingQuery[] = []
  readonly #recentReplies: RecentReplies
  readonly #changes: ChangeFeed
  #running = false
  #rerun = false
  #stopped = false
  #closing = false
  #consumer: ConsumerMessages | undefined
  #querySub: Subscription | undefined
  #drained: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #snapshotTimer: NodeJS.Timeout | undefined
  readonly #recordLimit: number
  readonly #ctx = new OpContext(this)

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly p: number,
    readonly options: PartitionOptions,
  ) {
    this.#storage = new PartitionStorage(nc, hub, p)
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024
    this.#recordLimit = Math.floor(maxPayload / 2) - 4096
    this.#outbox = new Outbox(this.#storage.fast, hub.names, p, maxPayload, options.logger)
    this.#snap = new SnapshotState(this.#storage, options.logger)
    this.#open = new CommitRound(1, this.#pos)
    this.#instances = options.instances?.(this)
    this.#recentReplies = options.recentReplies ?? new RecentReplies()
    this.#changes = new ChangeFeed(nc, hub.names.changes(p))
  }

  /** Recovers partition `p` from storage and starts serving it. Throws {@link FencedError}. */
  static async start(nc: NatsConnection, hub: Hub, p: number, options: PartitionOptions): Promise<Partition> {
    const partition = new Partition(nc, hub, p, options)
    try {
      await partition.#recover()
    } catch (err) {
      partition.#shutdown()
      throw err
    }
    return partition
  }

  /** Highest record number committed. */
  get committedN(): number {
    return this.#snap.committedN
  }

  /** Publishes to other partitions made so far. */
  get outboxPublishes(): number {
    return this.#outbox.publishes
  }

  /** Number of entities in memory. */
  get cachedEntities(): number {
    return this.#cache.size
  }

  /**
   * Stops gracefully: no more mailbox reads, the in-flight and open rounds are committed, and
   * (with `snapshot`) a final snapshot is written so the next owner starts fast.
   */
  async close(snapshot = false): Promise<void> {
    if (this.#stopped || this.#closing) return
    this.#closing = true
    await this.#consumer?.close().catch(() => {})
    this.#consumer = undefined
    await this.#until(
      () => this.#stopped || (this.#inflight === null && !this.#running && this.#open.isEmpty),
    )
    if (snapshot && !this.#stopped) await this.#snap.take(this.#checkpointFields.bind(this)).catch(() => {})
    await this.#snap.idle()
    this.#shutdown()
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  async #recover(): Promise<void> {
    const { epoch, logger } = this.options
    const { ckpt } = await this.#snap.claim(epoch, this.p)
    if (ckpt !== null) this.#restoreCheckpoint(ckpt)
    for (const prefix of ['t', 'l', 'a']) {
      for (const [key, value] of await this.#snap.loadItems(`${prefix}.${this.p}.>`))
        this.#replayItem(key, value)
    }
    const replies: Array<[string, Reply[]]> = []
    // Replay the log tail, then append a claim record fenced on the tail; if someone appended in
    // between (a stale owner finishing a commit), replay that too and try again.
    for (;;) {
      const tail = await this.#storage.lastLogSeq()
      await this.#storage.readLog(this.#lastLogSeq, tail, (rec, seq) => {
        if (rec.e > epoch) throw new FencedError(this.p, `log has epoch ${rec.e}, ours is ${epoch}`)
        this.#replay(rec, seq)
        for (const r of rec.rep) replies.push(r)
      })
      const claim: CommitRecord = {
        v: WIRE_VERSION,
        n: this.#snap.committedN + 1,
        e: epoch,
        claim: 1,
        pos: this.#pos,
        w: [],
        dc: [],
        dp: [],
        out: [],
        rep: [],
        lq: this.#local,
      }
      try {
        const seq = await this.#storage.append(encode(claim), claim.n, this.#lastLogSeq)
        this.#replay(claim, seq)
        break
      } catch (err) {
        if (!isFencingRejection(err)) throw err
      }
    }
    this.#open = new CommitRound(this.#snap.committedN + 1, this.#pos)
    logger.info('partition recovered', {
      p: this.p,
      epoch,
      records: this.stats.recoveredRecords,
      pos: this.#pos,
      timers: this.#timers.size,
    })
    // Effects of replayed records may not have left before the crash: send them again. Receivers
    // drop what they already have (partitions by record number, clients by request id).
    for (const [inbox, reps] of replies) this.#sendReplies(inbox, reps)
    this.#querySub = this.nc.subscribe(this.hub.names.query(this.p), {
      callback: (err, msg) => {
        if (err) return
        this.#onQuery(msg.data, (answer) => msg.respond(encode(answer)))
      },
    })
    this.#instances?.recovered()
    await this.#startMailbox()
    this.#snapshotTimer = setInterval(() => this.#maybeSnapshot(), this.options.snapshotIntervalMs)
    this.#snapshotTimer.unref()
    this.#armTimer()
    this.#kick()
  }

  #restoreCheckpoint(ckpt: Checkpoint): void {
    this.#pos = ckpt.pos
    this.#lastLogSeq = ckpt.logSeq
    this.#local = ckpt.lq
    for (const [c, q, at] of ckpt.dc) this.#clients.set(c, [q, at])
    for (const [p, n] of ckpt.dp) this.#origins.set(p, n)
    this.#snap.restore(ckpt)
    for (const [dest, n, msgs] of ckpt.outbox) this.#outbox.enqueue(dest, n, msgs, sizeOf(msgs))
  }

  /** Applies a committed record to the state (at recovery, and for claims). */
  #replay(rec: CommitRecord, seq: number): void {
    this.#lastLogSeq = seq
    this.#pos = rec.pos
    this.#local = rec.lq
    for (const [c, q, at] of rec.dc) this.#clients.set(c, [q, at])
    for (const [p, n] of rec.dp) this.#origins.set(p, n)
    for (const [key, value] of rec.w) this.#replayItem(key, value)
    for (const [dest, msgs] of rec.out) this.#outbox.enqueue(dest, rec.n, msgs, sizeOf(msgs))
    this.#snap.committed(rec, seq)
    if (!rec.claim) this.stats.recoveredRecords++
  }

  /** Rebuilds the eagerly held items (timers, locks, pending activities) from a write. */
  #replayItem(key: string, value: Uint8Array | null): void {
    if (key.startsWith('t.')) {
      if (value === null) this.#timers.delete(key)
      else this.#timers.set(key, decode(value, `timer ${key}`) as TimerValue)
    } else if (key.startsWith('l.')) {
      const itemKey = 'e' + key.slice(1)
      if (value === null) this.#locks.delete(itemKey)
      else {
        const [owner, queue] = decode(value, `lock ${key}`) as [string, ActorMessage[]]
        this.#locks.set(itemKey, { owner, queue })
      }
    } else if (key.startsWith('a.')) this.#instances?.replayActivity(key, value)
  }

  async #startMailbox(): Promise<void> {
    const consumer = await this.#storage.js.consumers.get(this.hub.names.mailboxStream, {
      filter_subjects: this.hub.names.mailbox(this.p),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#pos[0],
    })
    // A consumer lost with a server (a NATS cluster member going down) is noticed by the stall
    // watch within seconds; heartbeats (every 5 s) back it up. Shorter heartbeats misfire under load.
    this.#consumer = await consumer.consume({ max_messages: 512, expires: 10_000 })
    this.#stallWatch ??= new StallWatch({
      idle: () => this.#inbox.length === 0 && !this.#running,
      position: () => this.#pos[0],
      lastStored: () => this.#storage.lastMailboxSeq(),
      stalled: (reason) => this.#fail(new Error(`mailbox consumer stalled: ${reason}`)),
    })
    void this.#pumpMailbox(this.#consumer)
  }

  async #pumpMailbox(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.#stopped) break
        if (m.seq < this.#pos[0]) continue
        const item: Inbound = { seq: m.seq }
        try {
          item.env = checkEnvelope(decodeEnvelope(m.data, `mailbox message ${m.seq}`))
        } catch (err) {
          item.raw = m.data
          item.error = (err as Error).message
        }
        this.#inbox.push(item)
        this.#stallWatch?.delivered()
        this.#kick()
        if (this.#inbox.length > HIGH_WATER) {
          await new Promise<void>((resolve) => (this.#drained = resolve))
        }
      }
    } catch (err) {
      if (!this.#stopped) this.#fail(err as Error)
      return
    }
    // the consumer gave up (it could not be recreated): recover rather than stall
    if (!this.#stopped && !this.#closing) this.#fail(new Error('mailbox consumer ended'))
  }

  // ---------------------------------------------------------------------------------------------
  // The loop

  /** Schedules a run of the loop. */
  #kick(): void {
    if (this.#running) {
      this.#rerun = true
      return
    }
    if (this.#stopped) return
    this.#running = true
    setImmediate(() => void this.#run())
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#rerun = false
        for (;;) {
          if (this.#stopped) return
          if (this.#inflight === null && !this.#open.isEmpty) this.#seal()
          if (!this.#canProcess()) break
          if (!(await this.#step())) break
        }
        if (this.#inflight === null && !this.#open.isEmpty && !this.#stopped) this.#seal()
      } while (this.#rerun && !this.#stopped)
    } catch (err) {
      this.#fail(err as Error)
    } finally {
      this.#running = false
    }
  }

  #canProcess(): boolean {
    if (!this.options.pipelining && this.#inflight !== null) return false
    // Memory bound: entities written but not yet snapshotted cannot be evicted; past four times
    // the cache size, wait for the background snapshot to make them clean.
    if (this.#cache.size >= this.options.cacheSize * 4) return false
    return this.#open.bytes < this.#recordLimit
  }

  /** Processes one slice of waiting work; false when there was none. */
  async #step(): Promise<boolean> {
    let progressed = false
    if (this.#queries.length > 0) {
      // A query waits until the partition has processed the asker's last publish (read-your-writes).
      const ready = this.#queries.filter((q) => (q.query.s ?? 0) < this.#pos[0])
      if (ready.length > 0) {
        this.#queries = this.#queries.filter((q) => (q.query.s ?? 0) >= this.#pos[0])
        for (const q of ready) await this.#answer(q)
        progressed = true
      }
    }
    const now = Date.now()
    for (const [key, [, msg]] of this.#timers.due(now)) {
      if (!this.#canProcess()) return true
      this.#timers.delete(key)
      this.#open.write(key, null)
      delete msg.at
      await this.#deliver(msg)
      progressed = true
    }
    let budget = this.options.maxBatch
    while (this.#local.length > 0 && budget-- > 0 && this.#canProcess()) {
      const pending = this.#deliver(this.#local.shift()!)
      if (pending !== undefined) await pending
      progressed = true
    }
    if (this.#inbox.length > 0 && this.#canProcess()) {
      await this.#preload(this.options.maxBatch)
      progressed = (await this.#processInbox(this.options.maxBatch)) || progressed
      // what those messages caused locally (e.g. results of synchronous activities) joins the
      // same round rather than waiting for the next one
      budget = this.options.maxBatch
      while (this.#local.length > 0 && budget-- > 0 && this.#canProcess()) {
        const pending = this.#deliver(this.#local.shift()!)
        if (pending !== undefined) await pending
      }
    }
    this.#armTimer()
    return progressed
  }

  /** Loads the entities the next `count` mailbox messages address, in parallel. */
  async #preload(count: number): Promise<void> {
    const missing = new Map<string, [string, string]>()
    const instances = new Set<string>()
    let seen = 0
    for (const item of this.#inbox) {
      if (item.env === undefined) continue
      for (const msg of messagesOf(item.env)) {
        if (msg === undefined) continue
        if (++seen > count) break
        const ref = this.#itemKeyOf(msg)
        if (ref !== undefined && !this.#cache.has(ref[0])) missing.set(ref[0], [ref[1], ref[2]])
        else if (ref === undefined && this.#instances !== undefined) this.#instances.want(msg, instances)
      }
      if (seen > count) break
    }
    const loads: Array<Promise<unknown>> = [...missing].map(([k, [t, key]]) => this.#load(k, t, key))
    if (instances.size > 0) loads.push(this.#instances!.preload(instances))
    if (loads.length > 0) await Promise.all(loads)
  }

  async #processInbox(budget: number): Promise<boolean> {
    let progressed = false
    while (this.#inbox.length > 0 && budget > 0 && this.#canProcess()) {
      const item = this.#inbox[0]!
      if (item.env === undefined) {
        await this.#deadLetter(item)
      } else {
        budget = await this.#processEnvelope(item.seq, item.env, budget)
        if (this.#pos[0] === item.seq) return true // record full mid-envelope
      }
      this.#inbox.shift()
      progressed = true
      if (this.#drained && this.#inbox.length < HIGH_WATER / 2) {
        this.#drained()
        this.#drained = undefined
      }
    }
    return progressed
  }

  /** Processes messages of one envelope from the current position; returns the budget left. */
  async #processEnvelope(seq: number, env: MailboxEnvelope, budget: number): Promise<number> {
    let idx = this.#pos[0] === seq ? this.#pos[1] : 0
    if ('c' in env) {
      if (idx === 0) {
        const last = this.#clients.get(env.c)
        if (last !== undefined && env.q <= last[0]) return this.#advance(seq + 1, 0, budget)
        const now = Date.now()
        this.#clients.set(env.c, [env.q, now])
        this.#open.dc.set(env.c, [env.q, now])
      }
      for (; idx < env.m.length; idx++) {
        if (budget <= 0 || !this.#canProcess()) return this.#advance(seq, idx, budget)
        const pending = this.#deliver(env.m[idx]!)
        if (pending !== undefined) await pending
        budget--
      }
      return this.#advance(seq + 1, 0, budget)
    }
    let offset = 0
    for (const [n, msgs] of env.g) {
      const end = offset + msgs.length
      if (idx < end) {
        if (idx === offset) {
          if (n <= (this.#origins.get(env.p) ?? 0)) {
            idx = end
            offset = end
            continue
          }
          this.#origins.set(env.p, n)
          this.#open.dp.set(env.p, n)
        }
        for (; idx < end; idx++) {
          if (budget <= 0 || !this.#canProcess()) return this.#advance(seq, idx, budget)
          const pending = this.#deliverEncoded(msgs[idx - offset]!, seq)
          if (pending !== undefined) await pending
          budget--
        }
      }
      offset = end
    }
    return this.#advance(seq + 1, 0, budget)
  }

  #advance(seq: number, idx: number, budget: number): number {
    this.#pos = [seq, idx]
    this.#open.pos = this.#pos
    this.#open.touched = true
    return budget
  }

  #deliverEncoded(bytes: Uint8Array, seq: number): void | Promise<void> {
    let msg: ActorMessage
    try {
      msg = checkMessage(decode(bytes, `partition message in mailbox ${seq}`))
    } catch (err) {
      this.options.logger.warn('dropping malformed partition message', { p: this.p, seq, error: String(err) })
      return
    }
    return this.#deliver(msg)
  }

  /**
   * Runs one message: holds it as a timer if it is due later, else applies the operation. Returns
   * a promise only when the message had to wait (a state load, an asynchronous operation): the
   * loop's hot path costs no promise per message.
   */
  #deliver(msg: ActorMessage): void | Promise<void> {
    this.stats.messages++
    if (msg.at !== undefined && msg.at > Date.now() && msg.k !== 'start') {
      const key = this.#open.timerKey(this.p)
      const value: TimerValue = [msg.at, msg]
      this.#timers.set(key, value)
      this.#open.write(key, encode(value))
      return
    }
    switch (msg.k) {
      case 'op':
        return this.#runOperation(msg)
      case 'lock':
        return this.#lock(msg)
      case 'unlock':
        return this.#unlock(msg)
      default:
        if (this.#instances === undefined) {
          this.options.logger.warn('no orchestrations on this node; dropping message', {
            p: this.p,
            kind: msg.k,
          })
          if ('r' in msg && msg.r !== undefined) {
            this.#open.reply(msg.r, [
              msg.r[1],
              0,
              toErrorInfo(new BadInputError('this hub runs no orchestrations')),
            ])
          }
          return
        }
        return this.#instances.handle(msg)
    }
  }

  #runOperation(msg: EntityOp): void | Promise<void> {
    const { registry } = this.options
    if (!registry.has(msg.t)) return this.#reject(msg, new UnknownEntityError(msg.t))
    let itemKey: string
    try {
      itemKey = entityItemKey(this.p, msg.t, checkKey(msg.key))
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
    const { registry } = this.options
    entry.used = true
    const ctx = this.#ctx
    ctx.reset(msg, entry.state)
    let result: unknown
    try {
      result = registry.run(ctx, msg.op, msg.a)
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
      entry.bytes === null ? this.options.registry.initialState(msg.t) : decode(entry.bytes, 'entity state')
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
    this.#open.write(itemKey, bytes)
    if (ctx.sends.length > 0) {
      for (const [m, b] of ctx.sends) this.#route(m, b)
      ctx.sends.length = 0
    }
    if (msg.r !== undefined) this.#open.reply(msg.r, [msg.r[1], 1, resultBytes!])
    if (msg.ro !== undefined) this.send({ k: 'done', i: msg.ro[0], s: msg.ro[1], ok: 1, v: result })
  }

  // ---------------------------------------------------------------------------------------------
  // The port through which orchestration instances act on the partition (see instances.ts)

  /** @internal Encodes a message (counted against the round) and routes it. */
  send(msg: ActorMessage): void {
    let bytes: Uint8Array
    try {
      bytes = encode(msg)
    } catch (err) {
      throw new BadInputError(`a message of kind '${msg.k}' cannot be serialised: ${(err as Error).message}`)
    }
    if (bytes.length > this.#recordLimit / 2) {
      throw new PayloadTooLargeError(
        `a message of kind '${msg.k}'`,
        bytes.length,
        Math.floor(this.#recordLimit / 2),
      )
    }
    this.#open.bytes += bytes.length + 16
    this.#route(msg, bytes)
  }

  /**
   * @internal Writes an item in the open round. A lazy write is encoded at the seal; `sizeHint`
   * estimates its size against the record limit.
   */
  write(key: string, bytes: ItemWrite, sizeHint = 0): void {
    this.#open.write(key, bytes)
    this.#open.bytes += (typeof bytes === 'function' ? sizeHint : (bytes?.length ?? 0)) + 16 + key.length
  }

  /**
   * @internal Deletes a write-once item: if the open round wrote it, the round created it (nothing
   * of it is stored or committed), so the write is dropped and no record ever mentions the item.
   */
  dropItem(key: string): void {
    const w = this.#open.writes.get(key)
    if (w !== undefined && w !== null) this.#open.writes.delete(key)
    else this.write(key, null)
  }

  /** @internal The committed-or-snapshotted value of an item. */
  readItem(key: string): Promise<Uint8Array | null> {
    return this.#snap.read(key)
  }

  /** @internal Notes that an item was never stored (see {@link SnapshotState.markAbsent}). */
  markAbsent(key: string): void {
    this.#snap.markAbsent(key)
  }

  /** @internal Whether an item has writes that are not in the state bucket yet. */
  isPinned(key: string): boolean {
    return this.#open.writes.has(key) || this.#inflight?.writes.has(key) === true || this.#snap.isDirty(key)
  }

  /** @internal Replies to a client after the open round commits. */
  replyTo(to: ReplyTo, reply: RoundReply): void {
    this.#open.reply(to, reply)
  }

  /** @internal Arms a durable timer with a fixed key (replacing one with the same key). */
  setTimer(key: string, due: number, msg: ActorMessage): void {
    const value: TimerValue = [due, msg]
    this.#timers.set(key, value)
    this.write(key, encode(value))
  }

  /** @internal Cancels a durable timer. */
  cancelTimer(key: string): void {
    this.#timers.delete(key)
    this.write(key, null)
  }

  /** @internal Runs `fn` once the open round is durable (and appends one if needed). */
  afterCommit(fn: () => void): void {
    this.#afterCommitOf(fn)
  }

  /** @internal Queues a message produced outside the loop (an activity result) and wakes the loop. */
  enqueueLocal(msg: ActorMessage): void {
    if (this.#stopped) return
    this.#local.push(msg)
    this.#kick()
  }

  /** @internal */
  get logger(): Logger {
    return this.options.logger
  }

  /** @internal Keys of the state bucket matching a subject filter. */
  listKeys(filter: string): Promise<string[]> {
    return this.#storage.listKeys(filter)
  }

  /** @internal Writes under `prefix` not yet in the state bucket, oldest first. */
  *dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]> {
    const sources: Array<Iterable<[string, ItemWrite]>> = [this.#snap.dirtyWrites()]
    if (this.#inflight !== null) sources.push(this.#inflight.writes)
    sources.push(this.#open.writes)
    for (const source of sources) {
      for (const [key, value] of source) if (key.startsWith(prefix)) yield [key, resolveWrite(value)]
    }
  }

  /** @internal Number of the round being built (unique per record). */
  get roundNumber(): number {
    return this.#open.n
  }

  // ---------------------------------------------------------------------------------------------
  // Entity locks (critical sections of orchestrations)

  /** Locks an entity for an orchestration, then passes the request on (sorted order: no deadlock). */
  #lock(msg: LockMessage): void {
    const itemKey = entityItemKey(this.p, msg.t, msg.key)
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
    if (next === undefined) this.send({ k: 'done', i: msg.o[0], s: msg.o[1], ok: 1 })
    else this.send({ k: 'lock', t: next[0], key: next[1], o: msg.o, rest })
  }

  /** Releases an entity; operations that waited for it run next, in order. */
  #unlock(msg: UnlockMessage): void {
    const itemKey = entityItemKey(this.p, msg.t, msg.key)
    const lock = this.#locks.get(itemKey)
    if (lock === undefined || lock.owner !== msg.o) return
    this.#locks.delete(itemKey)
    this.#writeLock(itemKey, null)
    this.#local.unshift(...lock.queue)
  }

  #writeLock(itemKey: string, lock: { owner: string; queue: ActorMessage[] } | null): void {
    const key = 'l' + itemKey.slice(1)
    const bytes = lock === null ? null : encode([lock.owner, lock.queue])
    this.#open.write(key, bytes)
    this.#open.bytes += (bytes?.length ?? 0) + 16
  }

  /**
   * Encodes a value, rejecting it when it would not fit in a commit record. `what` and `msg` name
   * the value in the error (the text is only built when there is one).
   * @internal
   */
  encodeBounded(value: unknown, what: 'state' | 'result' | 'signal', msg: EntityOp): Uint8Array {
    let bytes: Uint8Array
    try {
      bytes = encode(value)
    } catch (err) {
      throw new BadInputError(`${describeValue(what, msg)} cannot be serialised: ${(err as Error).message}`)
    }
    if (bytes.length > this.#recordLimit / 2) {
      throw new PayloadTooLargeError(
        describeValue(what, msg),
        bytes.length,
        Math.floor(this.#recordLimit / 2),
      )
    }
    this.#open.bytes += bytes.length + 16
    return bytes
  }

  /** Sends a message produced by an operation: within the partition at once, else via the outbox. */
  #route(msg: ActorMessage, bytes: Uint8Array): void {
    const dest = partitionOf(targetOf(msg), this.hub.meta.partitions)
    if (dest === this.p) this.#local.push(decode(bytes, 'local message') as ActorMessage)
    else this.#open.send(dest, bytes)
  }

  #reject(msg: EntityOp, err: Error): void {
    if (msg.r !== undefined) {
      this.#open.reply(msg.r, [msg.r[1], 0, toErrorInfo(err)])
    } else {
      this.options.logger.warn('signal failed', {
        p: this.p,
        entity: `${msg.t}@${msg.key}`,
        op: msg.op,
        error: `${err.name}: ${err.message}`,
      })
    }
  }

  async #deadLetter(item: Inbound): Promise<void> {
    this.options.logger.warn('moving undecodable mailbox message to the dead-letter stream', {
      p: this.p,
      seq: item.seq,
      reason: item.error,
    })
    await this.#storage.deadLetter(item.seq, item.raw!, item.error ?? 'undecodable')
    this.stats.deadLetters++
    this.#advance(item.seq + 1, 0, 0)
  }

  // ---------------------------------------------------------------------------------------------
  // Entity cache

  #itemKeyOf(msg: ActorMessage): [string, string, string] | undefined {
    if (msg.k !== 'op' || (msg.at !== undefined && msg.at > Date.now())) return undefined
    if (!this.options.registry.has(msg.t) || msg.key.length === 0) return undefined
    return [entityItemKey(this.p, msg.t, msg.key), msg.t, msg.key]
  }

  async #load(itemKey: string, type: string, key: string): Promise<Entry> {
    const bytes = await this.#snap.read(itemKey)
    const cached = this.#cache.get(itemKey)
    if (cached !== undefined) return cached // loaded concurrently
    const state =
      bytes === null ? this.options.registry.initialState(type) : decode(bytes, `state of ${type}@${key}`)
    const entry: Entry = { type, key, state, bytes, used: false }
    this.#cache.set(itemKey, entry)
    this.#evict()
    return entry
  }

  /**
   * Drops entities whose state is already in the snapshot store, least recently used first
   * (CLOCK: a used entry gets a second chance and moves to the back).
   */
  #evict(): void {
    let excess = this.#cache.size - this.options.cacheSize
    if (excess <= 0) return
    let budget = this.#cache.size
    for (const [key, entry] of this.#cache) {
      if (excess <= 0 || budget-- <= 0) break
      if (this.#open.writes.has(key) || this.#inflight?.writes.has(key) || this.#snap.isDirty(key)) continue
      this.#cache.delete(key)
      if (entry.used) {
        entry.used = false
        this.#cache.set(key, entry)
        continue
      }
      this.#snap.forget(key)
      excess--
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Commit

  #seal(): void {
    const round = this.#open
    round.lq = this.#local.slice()
    const record = round.toRecord(this.options.epoch)
    const bytes = encode(record)
    this.#inflight = round
    this.#open = new CommitRound(round.n + 1, this.#pos)
    this.#storage
      .append(bytes, round.n, this.#lastLogSeq)
      .then(
        (seq) => this.#onCommitted(round, record, bytes, seq),
        (err: unknown) => {
          if (isFencingRejection(err)) {
            this.#stop('fenced', new FencedError(this.p, `commit of record ${round.n} rejected by the log`))
          } else this.#fail(err as Error)
        },
      )
      .catch((err: unknown) => this.#fail(err as Error))
  }

  #onCommitted(round: CommitRound, record: CommitRecord, bytes: Uint8Array, seq: number): void {
    if (this.#stopped) return
    this.#lastLogSeq = seq
    this.#inflight = null
    this.stats.records++
    this.#snap.committed(record, seq)
    for (const [inbox, reps] of record.rep) this.#sendReplies(inbox, reps)
    for (const [dest, msgs] of record.out) this.#outbox.enqueue(dest, record.n, msgs, sizeOf(msgs))
    this.#publishChanges(record, bytes)
    for (const waiter of round.waiters) waiter()
    this.#evict()
    this.#maybeSnapshot()
    this.#kick()
  }

  /**
   * Tells watchers what a durable record changed, when it changed entity states or instance
   * records: the record itself (already encoded) on `H.chg.<p>`; watchers pick their item from its
   * writes `w` (record number `n`). Only while someone may watch (see {@link ChangeFeed}).
   */
  #publishChanges(record: CommitRecord, bytes: Uint8Array): void {
    if (!this.#changes.publishing) return
    if (!record.w.some(([key]) => key.startsWith('e.') || key.startsWith('o.'))) return
    this.#changes.publish(bytes)
    this.stats.changes++
  }

  /** Starts a background snapshot when enough is dirty; chains another if still due after it. */
  #maybeSnapshot(): void {
    const { snapshotRecords, snapshotIntervalMs, cacheSize } = this.options
    if (this.#stopped || !this.#snap.due(snapshotRecords, snapshotIntervalMs, cacheSize)) return
    void this.#snap
      .take(this.#checkpointFields.bind(this))
      .then(() => {
        this.stats.snapshots++
        this.#evict()
        this.#maybeSnapshot()
        this.#kick()
      })
      .catch((err: unknown) => {
        if (isFencingRejection(err) || err instanceof FencedError) {
          this.#stop('fenced', new FencedError(this.p, `snapshot rejected: ${String(err)}`))
        } else this.options.logger.warn('snapshot failed; will retry', { p: this.p, error: String(err) })
      })
  }

  /** Checkpoint fields that the snapshot state does not own, captured at a record boundary. */
  #checkpointFields(upToN: number): Pick<Checkpoint, 'outbox'> {
    return { outbox: this.#outbox.pending(upToN) }
  }

  #sendReplies(inbox: string, replies: Reply[]): void {
    this.#recentReplies.remember(inbox, replies)
    const env: ReplyEnvelope = { v: WIRE_VERSION, r: replies }
    try {
      this.nc.publish(inbox, encode(env))
    } catch (err) {
      this.options.logger.warn('reply not sent', { p: this.p, inbox, error: String(err) })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queries (answered in loop order, released once the state they saw is committed)

  #onQuery(data: Uint8Array, respond: (answer: QueryAnswer) => void): void {
    let query: Query
    try {
      query = decodeEnvelope(data, 'query') as unknown as Query
      const kind: unknown = query.k
      if (kind === 'replies') {
        // replies already sent were committed: answer at once, outside loop order
        const { inbox, rids } = query as Extract<Query, { k: 'replies' }>
        if (typeof inbox !== 'string' || !Array.isArray(rids))
          throw new BadInputError('malformed replies query')
        respond({ v: WIRE_VERSION, ok: 1, replies: this.#recentReplies.find(inbox, rids, this.#recordLimit) })
        return
      }
      if (!['read', 'list', 'status', 'instances'].includes(kind as string)) {
        throw new BadInputError(`unknown query kind ${String(kind)}`)
      }
      if ('w' in query && query.w === 1) this.#changes.watcherJoined()
      if (query.k === 'read' || query.k === 'list') checkTypeName(query.t)
      else if (this.#instances === undefined) throw new BadInputError('this hub runs no orchestrations')
    } catch (err) {
      respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) })
      return
    }
    this.#queries.push({ query, respond })
    this.#kick()
  }

  async #answer({ query, respond }: PendingQuery): Promise<void> {
    const fail = (err: unknown) => respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) })
    try {
      if (query.k !== 'read' && query.k !== 'list') {
        await this.#instances!.answer(query, respond)
        return
      }
      if (query.k === 'read') {
        checkKey(query.key)
        const itemKey = entityItemKey(this.p, query.t, query.key)
        const cached = this.#cache.get(itemKey)
        const bytes = cached !== undefined ? cached.bytes : await this.#snap.read(itemKey)
        const n = this.#open.n - 1 // changes later in this same round are newer
        this.#afterCommitOf(() =>
          respond({ v: WIRE_VERSION, ok: 1, exists: bytes !== null, state: bytes, n }),
        )
        return
      }
      const overlay = this.#overlay(query.t)
      const release = (answer: QueryAnswer) => this.#afterCommitOf(() => respond(answer))
      void this.#snap
        .listEntityKeys(this.p, query.t)
        .then((stored) => {
          const keys = new Set(stored)
          for (const [key, exists] of overlay) {
            if (exists) keys.add(key)
            else keys.delete(key)
          }
          const sorted = [...keys].filter((k) => k.startsWith(query.prefix) && k > query.after).sort()
          release({
            v: WIRE_VERSION,
            ok: 1,
            keys: sorted.slice(0, query.limit),
            more: sorted.length > query.limit,
          })
        })
        .catch(fail)
    } catch (err) {
      fail(err)
    }
  }

  /** Entity keys of `type` written since the last snapshot, with whether they exist now. */
  #overlay(type: string): Map<string, boolean> {
    const overlay = new Map<string, boolean>()
    const add = (writes: Iterable<[string, ItemWrite]>) => {
      for (const [itemKey, value] of writes) {
        const parsed = parseEntityItemKey(itemKey)
        if (parsed !== undefined && parsed.type === type) overlay.set(parsed.key, value !== null)
      }
    }
    add(this.#snap.dirtyWrites())
    if (this.#inflight) add(this.#inflight.writes)
    add(this.#open.writes)
    return overlay
  }

  /**
   * Runs `fn` once everything processed so far is committed — and at least one more record has
   * been appended, so that a stale owner (which cannot append) never answers.
   */
  #afterCommitOf(fn: () => void): void {
    this.#open.waiters.push(fn)
    this.#open.touched = true
    this.#kick()
  }

  // ---------------------------------------------------------------------------------------------
  // Timers and stopping

  #armTimer(): void {
    const next = this.#timers.next()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (next === undefined || this.#stopped) return
    const wait = Math.min(Math.max(next - Date.now(), 0) + 1, 2 ** 31 - 1)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#kick()
    }, wait)
  }

  /** Stops after an internal failure; the node recovers the partition from storage. */
  #fail(err: Error): void {
    this.#stop('failed', err)
  }

  #stop(reason: 'fenced' | 'failed', err: Error): void {
    if (this.#stopped) return
    this.options.logger.warn(`partition ${reason}; stopping`, { p: this.p, error: err.message })
    this.#shutdown()
    this.options.onStopped(reason, err)
  }

  #shutdown(): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    clearInterval(this.#snapshotTimer)
    this.#stallWatch?.stop()
    this.#outbox.stop()
    this.#instances?.close()
    void this.#consumer?.close().catch(() => {})
    this.#querySub?.unsubscribe()
    this.#drained?.()
    // Unanswered queries get no answer from here: another owner may answer them (a stale owner must
    // never answer), else the client's request times out with PartitionUnavailableError.
    this.#queries = []
  }

  async #until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise((r) => setTimeout(r, 2))
  }
}

/** The id that decides a message's partition: the entity key or the instance id. */
export function targetOf(msg: ActorMessage): string {
  return msg.k === 'op' || msg.k === 'lock' || msg.k === 'unlock' ? msg.key : msg.i
}

function messagesOf(env: MailboxEnvelope): Iterable<ActorMessage | undefined> {
  return 'c' in env ? env.m : []
}

function sizeOf(msgs: Uint8Array[]): number {
  let size = 16
  for (const m of msgs) size += m.length + 4
  return size
}
