/**
 * The partition loop (docs/DESIGN.md §3). One owner per partition reads its mailbox from the last
 * committed position, runs entity operations on in-memory state, and appends one fenced commit
 * record per round. Effects that others can observe — replies, messages to other partitions,
 * watcher updates — leave only after the record is acknowledged. With pipelining on, the loop
 * keeps processing while a commit is in flight; the next record carries everything processed
 * meanwhile (group commit), so a busy partition commits hundreds of steps per JetStream publish.
 */
import {
  BadInputError,
  FencedError,
  PayloadTooLargeError,
  toErrorInfo,
  partitionOf,
} from '../../actors/index.ts'
import {
  WIRE_VERSION,
  checkMessage,
  type ActorMessage,
  type CommitRecord,
  type MailboxEnvelope,
  type MailboxPosition,
  type Reply,
  type ReplyEnvelope,
  type ReplyTo,
  type TimerValue,
} from '../../actors/wire/index.ts'
import type { EntityRegistry } from '../../entities/index.ts'
import {
  decode,
  encode,
  type Hub,
  PartitionStorage,
  isWrongLastSequence,
  type Checkpoint,
  type NatsConnection,
  BlobStore,
  blobLimits,
  ItemKind,
  isDeferredTimer,
  itemKey,
  kindOf,
} from '../nats/index.ts'
import { BatchWorker, Conditions, type Logger } from '../util/index.ts'
import { Outbox } from './outbox.ts'
import { CommitRound, resolveWrite, type ItemWrite, type RoundReply } from './round.ts'
import { RecentReplies } from './recent-replies.ts'
import { ChangeFeed } from './change-feed.ts'
import { SnapshotState, type CheckpointExtras } from './snapshot.ts'
import { MailboxReader, type Inbound } from './mailbox.ts'
import { TimerSet } from './timers.ts'
import { DedupState } from './dedup.ts'
import type { InstanceHandler } from './instance-port.ts'
import { EntityHost, type EntityPort } from './entity-host.ts'
import { QueryDesk, type QueryPort } from './queries.ts'
import { recoverState, type RecoveryPort } from './recovery.ts'
import type { LogWriter } from '../../actors/wire/index.ts'
import { CommitLog } from './commit-log.ts'
import { DEFER_UNKNOWN_MS, knownElsewhere, type TypeDirectory } from './unknown-types.ts'
import { misrouteReason } from './inbound.ts'

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
  /**
   * Whether this node may still write for its partitions (its own heartbeats are within the lease);
   * snapshot writes wait while it is false. Default: always.
   */
  mayWrite?: () => boolean
  /** Where entity types and orchestrations are known on the hub (see unknown-types.ts). */
  types?: TypeDirectory
  /** Large values by reference (default: a store with the default limits). */
  blobs?: BlobStore
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

/** One partition owned by this process. */
export class Partition implements EntityPort {
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
  readonly #dedup = new DedupState()
  readonly #instances: InstanceHandler | undefined
  readonly #entities: EntityHost
  readonly #inbox: MailboxReader
  #local: ActorMessage[] = []
  #pos: MailboxPosition = [1, 0]
  #open: CommitRound
  #inflight: CommitRound | null = null
  /** This instance's writer identity: its epoch and a random token. */
  readonly #writer: LogWriter
  /** The commit log as far as it has been read or written (see commit-log.ts). */
  readonly #log: CommitLog
  /** Due time of the last deferred message (they get strictly increasing ones: order holds). */
  #lastDeferred = 0
  readonly #queries: QueryDesk
  readonly #recentReplies: RecentReplies
  readonly #changes: ChangeFeed
  #stopped = false
  #closing = false
  #timer: NodeJS.Timeout | undefined
  #snapshotTimer: NodeJS.Timeout | undefined
  readonly #recordLimit: number
  /** Largest record the log accepts (`max_payload`, less room for headers). */
  readonly #recordMax: number
  /** The loop: a kick while it runs makes it run again (see batch-worker.ts). */
  readonly #loop = new BatchWorker(() => this.#cycle(), {
    schedule: runSoon,
    onError: (err) => this.#fail(err as Error),
    onIdle: () => this.#waits.check(),
  })
  /** Waits on the loop's state (close waits for the last commit). */
  readonly #waits = new Conditions()
  /** Large values of this partition's entities and instances (runtime/nats/blobs.ts). */
  readonly blobs: BlobStore

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly p: number,
    readonly options: PartitionOptions,
  ) {
    this.#storage = new PartitionStorage(nc, hub, p)
    this.blobs = options.blobs ?? new BlobStore(nc, hub.jsm, hub.names, blobLimits({}))
    this.#writer = { e: options.epoch, o: Math.floor(Math.random() * 0xffffffff) }
    this.#log = new CommitLog(this.#storage, p, this.#writer, options.logger)
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024
    this.#recordLimit = Math.floor(maxPayload / 2) - 4096
    this.#recordMax = maxPayload - 4096
    this.#outbox = new Outbox(this.#storage.fast, hub.names, p, maxPayload, options.logger)
    this.#snap = new SnapshotState(this.#storage, options.logger, options.mayWrite)
    this.#open = new CommitRound(1, this.#pos)
    this.#entities = new EntityHost(this, options.registry, options.cacheSize)
    this.#inbox = new MailboxReader(this.#storage.js, hub.names.mailboxStream, hub.names.mailbox(p), {
      position: () => this.#pos[0],
      running: () => this.#loop.running,
      lastStored: () => this.#storage.lastMailboxSeq(),
      arrived: () => this.#kick(),
      failed: (err) => this.#fail(err),
      ...(this.#storage.replicated
        ? {
            fromLeader: (from: number, through: number) => this.#storage.mailboxBetween(from, through),
            filled: (from: number, to: number, count: number) =>
              options.logger.warn('mailbox replica differed from the stream leader; read from the leader', {
                p,
                from,
                to,
                count,
              }),
          }
        : {}),
    })
    this.#instances = options.instances?.(this)
    this.#recentReplies = options.recentReplies ?? new RecentReplies()
    this.#queries = new QueryDesk(this.#queryPort())
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
    return this.#entities.cached
  }

  /**
   * Stops gracefully: no more mailbox reads, the in-flight and open rounds are committed, and
   * (with `snapshot`) a final snapshot is written so the next owner starts fast.
   */
  async close(snapshot = false): Promise<void> {
    if (this.#stopped || this.#closing) return
    this.#closing = true
    await this.#inbox.close()
    await this.#waits.until(
      () => this.#stopped || (this.#inflight === null && !this.#loop.running && this.#open.isEmpty),
    )
    if (snapshot && !this.#stopped) await this.#snap.take(this.#checkpointFields.bind(this)).catch(() => {})
    await this.#snap.idle()
    this.#shutdown()
  }

  /**
   * Stops at once, committing nothing more (the NATS server is gone, so nothing could be): what was
   * processed but not committed is redone by the next owner from the log and the mailbox.
   */
  abandon(): void {
    if (!this.#stopped) this.#shutdown()
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  async #recover(): Promise<void> {
    const { epoch, logger } = this.options
    const replies = await recoverState(this.#recoveryPort())
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
    this.#queries.listen(this.nc, this.hub.names.query(this.p))
    this.#instances?.recovered()
    await this.#inbox.start(this.#pos[0])
    this.#snapshotTimer = setInterval(() => this.#maybeSnapshot(), this.options.snapshotIntervalMs)
    this.#snapshotTimer.unref()
    this.#armTimer()
    this.#kick()
  }

  /** How recovery reads this partition's storage and applies what it reads (see recovery.ts). */
  #recoveryPort(): RecoveryPort {
    return {
      p: this.p,
      epoch: this.options.epoch,
      writer: this.#writer,
      logger: this.options.logger,
      snap: this.#snap,
      storage: this.#storage,
      lastLogSeq: () => this.#log.lastSeq,
      position: () => this.#pos,
      local: () => this.#local,
      restoreCheckpoint: (ckpt) => this.#restoreCheckpoint(ckpt),
      restoreReplies: (entries) => this.#recentReplies.restore(entries),
      replayItem: (key, value) => this.#replayItem(key, value),
      replayIfOwned: (rec, seq) => this.#replayIfOwned(rec, seq),
      claimed: (claim, seq) => {
        this.#log.admit(claim, seq)
        this.#replay(claim)
      },
    }
  }

  #restoreCheckpoint(ckpt: Checkpoint): void {
    this.#pos = ckpt.pos
    this.#local = ckpt.lq
    this.#log.restore(ckpt.logSeq, { e: ckpt.le ?? 0, o: ckpt.lo })
    this.#dedup.restore(ckpt)
    this.#snap.restore(ckpt)
    for (const [dest, n, msgs] of ckpt.outbox) this.#outbox.enqueue(dest, n, msgs, sizeOf(msgs))
  }

  /**
   * Applies a logged record if the log fence accepts it (its writer owned the log at that point);
   * a stale owner's record is passed over. Returns whether it was applied.
   */
  #replayIfOwned(rec: CommitRecord, seq: number): boolean {
    if (!this.#log.admit(rec, seq)) return false
    this.#replay(rec)
    return true
  }

  /** Applies a committed record to the state (at recovery, and for claims). */
  #replay(rec: CommitRecord): void {
    const seq = this.#log.lastSeq
    if (!rec.claim) {
      // a claim only marks the new owner: on a NATS cluster records can land just before it
      this.#pos = rec.pos
      this.#local = rec.lq
    }
    this.#dedup.apply(rec)
    for (const [key, value] of rec.w) this.#replayItem(key, value)
    for (const [dest, msgs] of rec.out) this.#outbox.enqueue(dest, rec.n, msgs, sizeOf(msgs))
    this.#snap.committed(rec, seq)
    if (!rec.claim) this.stats.recoveredRecords++
  }

  /** Rebuilds the eagerly held items (timers, locks, pending activities) from a write. */
  #replayItem(key: string, value: Uint8Array | null): void {
    const kind = kindOf(key)
    if (kind === ItemKind.Timer) {
      if (value === null) this.#timers.delete(key)
      else {
        const timer = decode(value, `timer ${key}`) as TimerValue
        // a message kept for a type the old owner lacked: try it at once, before anything newer
        if (isDeferredTimer(key, this.p)) timer[0] -= DEFER_UNKNOWN_MS
        this.#timers.set(key, timer)
      }
    } else if (kind === ItemKind.Lock) this.#entities.replayLock(key, value)
    else if (kind === ItemKind.Activity) this.#instances?.replayActivity(key, value)
  }

  // ---------------------------------------------------------------------------------------------
  // The loop

  /** Schedules a run of the loop. */
  #kick(): void {
    if (!this.#stopped) this.#loop.kick()
  }

  /** One cycle of the loop: process what waits while a record has room, sealing rounds as it goes. */
  async #cycle(): Promise<void> {
    for (;;) {
      if (this.#stopped) return
      if (this.#inflight === null && !this.#open.isEmpty) this.#seal()
      if (!this.#canProcess()) break
      if (!(await this.#step())) break
    }
    if (this.#inflight === null && !this.#open.isEmpty && !this.#stopped) this.#seal()
  }

  #canProcess(): boolean {
    if (!this.options.pipelining && this.#inflight !== null) return false
    // Memory bound: entities written but not yet snapshotted cannot be evicted; past four times
    // the cache size, wait for the background snapshot to make them clean.
    if (this.#entities.cached >= this.options.cacheSize * 4) return false
    return this.#open.bytes < this.#recordLimit
  }

  /** Processes one slice of waiting work; false when there was none. */
  async #step(): Promise<boolean> {
    // A query waits until the partition has processed the asker's last publish (read-your-writes).
    let progressed = await this.#queries.answerReady()
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
    const missing = new Map<string, [type: string, key: string]>()
    const instances = new Set<string>()
    let seen = 0
    for (const item of this.#inbox) {
      if (item.env === undefined) continue
      for (const msg of messagesOf(item.env)) {
        if (msg === undefined) continue
        if (++seen > count) break
        if (!this.#entities.want(msg, missing)) this.#instances?.want(msg, instances)
      }
      if (seen > count) break
    }
    const loads: Array<Promise<unknown>> = []
    if (missing.size > 0) loads.push(this.#entities.preload(missing))
    if (instances.size > 0) loads.push(this.#instances!.preload(instances))
    if (loads.length > 0) await Promise.all(loads)
  }

  async #processInbox(budget: number): Promise<boolean> {
    let progressed = false
    while (this.#inbox.length > 0 && budget > 0 && this.#canProcess()) {
      const item = this.#inbox.first!
      if (item.env === undefined) {
        await this.#deadLetter(item)
      } else {
        budget = await this.#processEnvelope(item.seq, item.env, budget)
        if (this.#pos[0] === item.seq) return true // record full mid-envelope
      }
      this.#inbox.shift()
      progressed = true
    }
    return progressed
  }

  /** Processes messages of one envelope from the current position; returns the budget left. */
  async #processEnvelope(seq: number, env: MailboxEnvelope, budget: number): Promise<number> {
    let idx = this.#pos[0] === seq ? this.#pos[1] : 0
    if ('c' in env) {
      if (idx === 0) {
        const from = { client: env.c, batch: env.q }
        if (this.#dedup.isDuplicate(from)) return this.#advance(seq + 1, 0, budget)
        this.#dedup.accept(from, Date.now())
      }
      for (; idx < env.m.length; idx++) {
        if (budget <= 0 || !this.#canProcess()) return this.#advance(seq, idx, budget)
        const pending = this.#deliverInbound(env.m[idx]!, seq, idx)
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
          const from = { partition: env.p, record: n }
          if (this.#dedup.isDuplicate(from)) {
            idx = end
            offset = end
            continue
          }
          this.#dedup.accept(from, Date.now())
        }
        for (; idx < end; idx++) {
          if (budget <= 0 || !this.#canProcess()) return this.#advance(seq, idx, budget)
          const pending = this.#deliverEncoded(msgs[idx - offset]!, seq, idx)
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

  #deliverEncoded(bytes: Uint8Array, seq: number, idx: number): void | Promise<void> {
    let msg: ActorMessage
    try {
      msg = checkMessage(decode(bytes, `partition message ${idx} in mailbox ${seq}`))
    } catch (err) {
      return this.#deadLetterMessage(seq, idx, bytes, (err as Error).message)
    }
    return this.#deliverInbound(msg, seq, idx, bytes)
  }

  /**
   * Runs a message taken from the mailbox (message `idx` of envelope `seq`) if it belongs to this
   * partition; else dead-letters it with the reason, and fails its call, if it is one.
   */
  #deliverInbound(msg: ActorMessage, seq: number, idx: number, bytes?: Uint8Array): void | Promise<void> {
    const wrong = misrouteReason(msg, this.p, this.hub.meta.partitions)
    if (wrong === undefined) return this.#deliver(msg)
    if ('r' in msg && msg.r !== undefined) {
      this.#open.reply(msg.r, [msg.r[1], 0, toErrorInfo(new BadInputError(wrong))])
    }
    return this.#deadLetterMessage(seq, idx, bytes ?? encode(msg), wrong)
  }

  /** Moves one message of a mailbox envelope to the dead-letter stream; the others go on. */
  async #deadLetterMessage(seq: number, idx: number, bytes: Uint8Array, reason: string): Promise<void> {
    this.options.logger.warn('moving a mailbox message to the dead-letter stream', {
      p: this.p,
      seq,
      idx,
      reason,
    })
    await this.#storage.deadLetter(seq, bytes, reason, idx)
    this.stats.deadLetters++
  }

  /**
   * Runs one message: holds it as a timer if it is due later, else applies the operation. Returns
   * a promise only when the message had to wait (a state load, an asynchronous operation): the
   * loop's hot path costs no promise per message.
   */
  #deliver(msg: ActorMessage): void | Promise<void> {
    this.stats.messages++
    if (msg.at !== undefined && msg.at > Date.now() && msg.k !== 'start') {
      const key = itemKey.timer(this.p, this.#open.timerName())
      const value: TimerValue = [msg.at, msg]
      this.#timers.set(key, value)
      this.#open.write(key, encode(value))
      return
    }
    switch (msg.k) {
      case 'op':
      case 'lock':
      case 'unlock':
        return this.#entities.handle(msg)
      default:
        if (this.#instances === undefined) {
          if (msg.k === 'start' ? this.knownElsewhere(`o:${msg.n}`) : this.#orchestrationsElsewhere()) {
            return this.defer(msg)
          }
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

  /** Whether another node of the hub runs orchestrations (this one runs none). */
  #orchestrationsElsewhere(): boolean {
    return this.options.types?.anyElsewhere('o:') === true
  }

  // ---------------------------------------------------------------------------------------------
  // The port through which orchestration instances act on the partition (see instances.ts)

  /** Whether `name` (`e:Type`, `o:name`) is not run here but known to the hub. */
  knownElsewhere(name: string): boolean {
    return knownElsewhere(this.options.types, name)
  }

  /**
   * Keeps a message for a type this node does not run (see unknown-types.ts): a durable
   * timer that tries it again later, at once on a new owner, in the order deferred.
   */
  defer(msg: ActorMessage): void {
    const due = Math.max(Date.now() + DEFER_UNKNOWN_MS, this.#lastDeferred + 1)
    this.#lastDeferred = due
    const key = itemKey.deferredTimer(this.p, this.#open.timerName())
    this.setTimer(key, due, { ...msg, at: due })
  }

  /** Encodes a message (counted against the round) and routes it. */
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
    this.route(msg, bytes)
  }

  /**
   * Writes an item in the open round. A lazy write is encoded at the seal; `sizeHint`
   * estimates its size against the record limit.
   */
  write(key: string, bytes: ItemWrite, sizeHint = 0): void {
    this.#open.write(key, bytes)
    this.#open.bytes += (typeof bytes === 'function' ? sizeHint : (bytes?.length ?? 0)) + 16 + key.length
  }

  /**
   * Deletes a write-once item: if the open round wrote it, the round created it (nothing
   * of it is stored or committed), so the write is dropped and no record ever mentions the item.
   */
  dropItem(key: string): void {
    const w = this.#open.writes.get(key)
    if (w !== undefined && w !== null) this.#open.writes.delete(key)
    else this.write(key, null)
  }

  /** The committed-or-snapshotted value of an item. */
  readItem(key: string): Promise<Uint8Array | null> {
    return this.#snap.read(key)
  }

  /** Notes that an item was never stored (see {@link SnapshotState.markAbsent}). */
  markAbsent(key: string): void {
    this.#snap.markAbsent(key)
  }

  /** Whether an item has writes that are not in the state bucket yet. */
  isPinned(key: string): boolean {
    return this.#open.writes.has(key) || this.#inflight?.writes.has(key) === true || this.#snap.isDirty(key)
  }

  /** Replies to a client after the open round commits. */
  replyTo(to: ReplyTo, reply: RoundReply): void {
    // every reply is a copy in the record: count it (a lazy one is counted at its usual size)
    this.#open.bytes += (reply[2] instanceof Uint8Array ? reply[2].length : 64) + 24
    this.#open.reply(to, reply)
  }

  /** Arms a durable timer with a fixed key (replacing one with the same key). */
  setTimer(key: string, due: number, msg: ActorMessage): void {
    const value: TimerValue = [due, msg]
    this.#timers.set(key, value)
    this.write(key, encode(value))
  }

  /** Cancels a durable timer. */
  cancelTimer(key: string): void {
    this.#timers.delete(key)
    this.write(key, null)
  }

  /** Runs `fn` once the open round is durable (and appends one if needed). */
  afterCommit(fn: () => void): void {
    this.#afterCommitOf(fn)
  }

  /** Queues a message produced outside the loop (an activity result) and wakes the loop. */
  enqueueLocal(msg: ActorMessage): void {
    if (this.#stopped) return
    this.#local.push(msg)
    this.#kick()
  }

  /** */
  get logger(): Logger {
    return this.options.logger
  }

  /** Stored values of the state bucket's items matching a subject filter. */
  readItems(filter: string): Promise<Array<[string, Uint8Array]>> {
    return this.#storage.readItems(filter)
  }

  /** Writes under `prefix` not yet in the state bucket, oldest first. */
  *dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]> {
    const sources: Array<Iterable<[string, ItemWrite]>> = [this.#snap.dirtyWrites()]
    if (this.#inflight !== null) sources.push(this.#inflight.writes)
    sources.push(this.#open.writes)
    for (const source of sources) {
      for (const [key, value] of source) if (key.startsWith(prefix)) yield [key, resolveWrite(value)]
    }
  }

  /** Number of the round being built (unique per record). */
  get roundNumber(): number {
    return this.#open.n
  }

  // The port of the entity host (see entity-host.ts)

  /** Largest encoded value a round accepts. */
  get valueLimit(): number {
    return Math.floor(this.#recordLimit / 2)
  }

  /** The open round's record is appended only once `written` (a blob write) resolved. */
  holdFor(written: Promise<void>): void {
    this.#open.blobWrites.push(written)
  }

  /** Counts bytes against the open round. */
  charge(bytes: number): void {
    this.#open.bytes += bytes
  }

  /** Writes an item whose bytes were already charged. */
  writeCharged(key: string, bytes: Uint8Array | null): void {
    this.#open.write(key, bytes)
  }

  /** Puts messages at the front of the local queue. */
  runNext(msgs: ActorMessage[]): void {
    this.#local.unshift(...msgs)
  }

  /** Forgets an evicted item's snapshot bookkeeping. */
  forget(key: string): void {
    this.#snap.forget(key)
  }

  /** Stored entity keys of a type. */
  listStoredKeys(type: string): Promise<string[]> {
    return this.#snap.listEntityKeys(this.p, type)
  }

  /** Routes an encoded message: within the partition at once, else via the outbox. */
  route(msg: ActorMessage, bytes: Uint8Array): void {
    const dest = partitionOf(targetOf(msg), this.hub.meta.partitions)
    if (dest === this.p) this.#local.push(decode(bytes, 'local message') as ActorMessage)
    else this.#open.send(dest, bytes)
  }

  /** Moves a decoded message that cannot be applied to the dead-letter stream. */
  async deadLetterMessage(msg: ActorMessage, reason: string): Promise<void> {
    this.options.logger.warn('moving a message that cannot be applied to the dead-letter stream', {
      p: this.p,
      kind: msg.k,
      reason,
    })
    await this.#storage.deadLetter(undefined, encode(msg), reason)
    this.stats.deadLetters++
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
  // Commit

  #seal(): void {
    const round = this.#open
    round.lq = this.#local.slice()
    const record = round.toRecord(this.options.epoch, this.#dedup.seal(round.n))
    record.o = this.#writer.o!
    const bytes = encode(record)
    if (bytes.length > this.#recordMax) {
      // Values are bounded where they enter (value-limits.ts), so this is a bug; the append would
      // fail anyway. The node restarts the partition with a growing delay, never in a tight loop.
      throw new PayloadTooLargeError(
        `commit record ${round.n} of partition ${this.p}`,
        bytes.length,
        this.#recordMax,
      )
    }
    this.#inflight = round
    this.#open = new CommitRound(round.n + 1, this.#pos)
    // a record that references large values is appended only once their blobs are stored
    const blobs = round.blobWrites
    const appended =
      blobs.length === 0
        ? this.#log.append(round.n, bytes)
        : Promise.all(blobs).then(() => this.#log.append(round.n, bytes))
    appended
      .then(
        (seq) => this.#onCommitted(round, record, bytes, seq),
        (err: unknown) => {
          if (err instanceof FencedError) this.#stop('fenced', err)
          else if (isWrongLastSequence(err)) {
            this.#stop('fenced', new FencedError(this.p, `commit of record ${round.n} rejected by the log`))
          } else this.#fail(err as Error)
        },
      )
      .catch((err: unknown) => this.#fail(err as Error))
  }

  #onCommitted(round: CommitRound, record: CommitRecord, bytes: Uint8Array, seq: number): void {
    if (this.#stopped) return
    this.#log.appended(seq)
    this.#inflight = null
    this.stats.records++
    this.#dedup.apply(record)
    this.#snap.committed(record, seq)
    for (const [inbox, reps] of record.rep) this.#sendReplies(inbox, reps)
    for (const [dest, msgs] of record.out) this.#outbox.enqueue(dest, record.n, msgs, sizeOf(msgs))
    this.#publishChanges(record, bytes)
    for (const waiter of round.waiters) waiter()
    this.#entities.evict()
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
    if (!record.w.some(([key]) => isWatched(kindOf(key)))) return
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
        this.#entities.evict()
        this.#maybeSnapshot()
        this.#kick()
      })
      .catch((err: unknown) => {
        if (isWrongLastSequence(err) || err instanceof FencedError) {
          this.#stop('fenced', new FencedError(this.p, `snapshot rejected: ${String(err)}`))
        } else this.options.logger.warn('snapshot failed; will retry', { p: this.p, error: String(err) })
      })
  }

  /** Checkpoint fields that the snapshot state does not own, captured at a record boundary. */
  #checkpointFields(upToN: number): CheckpointExtras {
    return {
      dedup: this.#dedup.toCheckpoint(),
      outbox: this.#outbox.pending(upToN),
      replies: encode(this.#recentReplies.entries(this.#recordLimit)),
    }
  }

  #sendReplies(inbox: string, replies: Reply[]): void {
    if (!this.hub.names.isReplyInbox(inbox)) {
      // a message named a subject outside the hub's client inboxes: never publish there
      this.options.logger.warn('reply subject is not a client inbox of this hub; reply dropped', {
        p: this.p,
        inbox,
        replies: replies.length,
      })
      return
    }
    this.#recentReplies.remember(inbox, replies)
    const env: ReplyEnvelope = { v: WIRE_VERSION, r: replies }
    try {
      this.nc.publish(inbox, encode(env))
    } catch (err) {
      this.options.logger.warn('reply not sent', { p: this.p, inbox, error: String(err) })
    }
  }

  /** How the query desk reads and acts on this partition (see queries.ts). */
  #queryPort(): QueryPort {
    return {
      p: this.p,
      logger: this.options.logger,
      stopped: () => this.#stopped,
      runsInstances: this.#instances !== undefined,
      position: () => this.#pos[0],
      lastSeen: () => this.#inbox.lastSeen,
      lastStored: () => this.#storage.lastMailboxSeq(),
      recentReplies: (inbox, rids) => this.#recentReplies.find(inbox, rids, this.#recordLimit),
      watcherJoined: () => this.#changes.watcherJoined(),
      kick: () => this.#kick(),
      answer: (query, respond) => {
        if (query.k === 'read') return this.#entities.read(query, respond)
        if (query.k === 'list') return this.#entities.list(query, respond)
        if (query.k === 'lock') return this.#entities.lockHolder(query, respond)
        return this.#instances!.answer(query, respond)
      },
    }
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
    this.#loop.stop()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    clearInterval(this.#snapshotTimer)
    this.#inbox.stop()
    this.#outbox.stop()
    this.#instances?.close()
    this.#queries.close()
    this.#waits.check()
  }
}

/**
 * Runs the loops of every partition kicked since the last turn in one macrotask: their appends,
 * outbox publishes and replies then leave in a few socket writes (nats.js flushes once per
 * microtask checkpoint) instead of one per partition.
 */
const kicked: Array<() => void> = []
function runSoon(run: () => void): void {
  kicked.push(run)
  if (kicked.length === 1) setImmediate(runKicked)
}
function runKicked(): void {
  for (const run of kicked.splice(0)) run()
}

/** The id that decides a message's partition: the entity key or the instance id. */
export function targetOf(msg: ActorMessage): string {
  return msg.k === 'op' || msg.k === 'lock' || msg.k === 'unlock' ? msg.key : msg.i
}

function messagesOf(env: MailboxEnvelope): Iterable<ActorMessage | undefined> {
  return 'c' in env ? env.m : []
}

/** Whether watchers follow items of this kind (entity states and instance records). */
function isWatched(kind: ItemKind | undefined): boolean {
  return kind === ItemKind.Entity || kind === ItemKind.Instance
}

function sizeOf(msgs: Uint8Array[]): number {
  let size = 16
  for (const m of msgs) size += m.length + 4
  return size
}
