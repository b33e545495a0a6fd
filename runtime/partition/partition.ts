/**
 * The partition loop (docs/DESIGN.md §3). One owner per partition reads its mailbox from the last
 * committed position, runs entity operations on in-memory state, and appends one fenced commit
 * record per round. Effects that others can observe — replies, messages to other partitions,
 * watcher updates — leave only after the record is acknowledged. With pipelining on, the loop
 * keeps processing while a commit is in flight; the next record carries everything processed
 * meanwhile (group commit), so a busy partition commits hundreds of steps per JetStream publish.
 *
 * This file wires the slices and drives them: start and recovery glue, the cycle (step while the
 * open round has room, seal when nothing is in flight), timers and stopping. What a step takes in
 * is intake.ts; sealing and what follows a commit is commit.ts; the port both hosts act through is
 * host-port-impl.ts; the mailbox position and local queue are cursor.ts.
 */
import type { CommitRecord, LogWriter, TimerValue } from '../../actors/wire/index.ts'
import {
  decode,
  withStorageHint,
  type Hub,
  hubFate,
  PartitionStorage,
  type Checkpoint,
  type NatsConnection,
  BlobStore,
  blobLimits,
  ItemKind,
  isDeferredTimer,
  kindOf,
} from '../nats/index.ts'
import { BatchWorker, Conditions, during, throttledWarning } from '../util/index.ts'
import { Outbox } from './outbox.ts'
import { LocalDestination, localRoutes, type LocalRoutes } from './local-delivery.ts'
import { Commits, outboxSizeOf } from './commit.ts'
import { RecentReplies } from './recent-replies.ts'
import { ChangeFeed } from './change-feed.ts'
import { SnapshotState } from './snapshot.ts'
import { MailboxReader } from './mailbox.ts'
import { TimerSet } from './timers.ts'
import { DedupState } from './dedup.ts'
import { MailboxCursor } from './cursor.ts'
import type { InstanceHandler } from './host-port.ts'
import { PartitionHostPort } from './host-port-impl.ts'
import { EntityHost } from './entity-host.ts'
import { QueryDesk, type QueryPort } from './queries.ts'
import { recoverState, type RecoveryPort } from './recovery.ts'
import { CrashCount, type CrashVerdict } from './crash-count.ts'
import { CarefulMode } from './careful.ts'
import { CommitLog } from './commit-log.ts'
import { DEFER_UNKNOWN_MS } from './unknown-types.ts'
import { Intake } from './intake.ts'
import { emptyPartitionStats, type PartitionOptions, type PartitionStats } from './partition-options.ts'
import { noNodeMetrics, type PartitionMetrics } from '../metrics/index.ts'

export type { PartitionOptions, PartitionStats } from './partition-options.ts'

/** One partition owned by this process. */
export class Partition {
  readonly stats: PartitionStats = emptyPartitionStats()
  readonly #storage: PartitionStorage
  readonly #outbox: Outbox
  /** The partitions of the hub served on this connection (undefined: `localDelivery` off). */
  readonly #routes: LocalRoutes | undefined
  /** How partitions beside this one hand it their messages (see local-delivery.ts). */
  readonly #local: LocalDestination
  readonly #snap: SnapshotState
  readonly #timers = new TimerSet()
  readonly #dedup = new DedupState()
  readonly #instances: InstanceHandler
  readonly #entities: EntityHost
  /** What the entity and instance hosts act through (host-port-impl.ts). */
  readonly #port: PartitionHostPort
  /** What a step of the loop takes in, and where each message goes (intake.ts). */
  readonly #intake: Intake
  readonly #inbox: MailboxReader
  /** Stops telling the mailbox reader about reconnects (at shutdown). */
  readonly #unwatchReconnects: () => void
  /** The mailbox position and local queue; the snapshot state keeps its committed view (cursor.ts). */
  readonly #cursor = new MailboxCursor()
  /** The open and in-flight rounds, the seal and what follows a commit (commit.ts). */
  readonly #commits: Commits
  /** This instance's writer identity: its epoch and a random token. */
  readonly #writer: LogWriter
  /** The commit log as far as it has been read or written (see commit-log.ts). */
  readonly #log: CommitLog
  readonly #queries: QueryDesk
  readonly #recentReplies: RecentReplies
  readonly #changes: ChangeFeed
  /** Careful mode, while on (careful.ts): one unit of work per record, each announced by a probe. */
  #careful: CarefulMode | undefined
  /** Log sequence of this owner's claim record. */
  #claimSeq = -1
  /**
   * No work is taken until a record marked `b` says this owner begins (crash-count.ts): set after
   * recovery in normal mode, cleared once the mark is durable.
   */
  #beginPending = false
  /** Log sequence of that record. */
  #beginSeq = -1
  #stopped = false
  #shutDown = false
  #closing = false
  #timer: NodeJS.Timeout | undefined
  #snapshotTimer: NodeJS.Timeout | undefined
  /** Looks now and then whether a `keep` record is due (see #keepDue), and kicks the loop if so. */
  #keepTimer: NodeJS.Timeout | undefined
  /** Set by #keepTimer when a `keep` record is due: the loop's cycle appends it. */
  #keepWanted = false
  readonly #recordLimit: number
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
  /** This run's metrics recorder (runtime/metrics/recorder.ts). */
  readonly metrics: PartitionMetrics

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly p: number,
    readonly options: PartitionOptions,
  ) {
    this.#storage = new PartitionStorage(nc, hub, p, options.keepIdleLogMs !== undefined)
    this.blobs = options.blobs ?? new BlobStore(nc, hub.jsm, hub.names, blobLimits({}))
    this.metrics = (options.metrics ?? noNodeMetrics).partition(this)
    this.#writer = { e: options.epoch, o: Math.floor(Math.random() * 0xffffffff) }
    this.#log = new CommitLog(this.#storage, p, this.#writer, options.logger, async () => {
      // (a NATS error says nothing about the hub: the append fails, and the partition restarts)
      return (await hubFate(hub, 0)) === 'same'
    })
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024
    this.#recordLimit = Math.floor(maxPayload / 2) - 4096
    this.#routes = options.localDelivery === false ? undefined : localRoutes(nc, hub.names.hub)
    this.#outbox = new Outbox(this.#storage.fast, hub.names, p, maxPayload, options.logger, this.#routes)
    this.#local = new LocalDestination(
      p,
      () => this.#cursor.pos[0],
      () => this.#kick(),
    )
    this.#snap = new SnapshotState(this.#storage, options.logger, options.mayWrite, this.#cursor)
    this.#port = new PartitionHostPort({
      p,
      partitions: hub.meta.partitions,
      logger: options.logger,
      blobs: this.blobs,
      metrics: this.metrics,
      tracing: options.tracing,
      types: options.types,
      carryCalls: options.carryCalls,
      releaseWithCalls: options.releaseWithCalls,
      storage: this.#storage,
      snap: this.#snap,
      timers: this.#timers,
      cursor: this.#cursor,
      recordLimit: this.#recordLimit,
      stats: this.stats,
      open: () => this.#commits.open,
      inflight: () => this.#commits.inflight,
      stopped: () => this.#stopped,
      kick: () => this.#kick(),
    })
    this.#entities = new EntityHost(this.#port, options.registry, options.cacheSize)
    // seen tens of times a minute on a healthy loaded R3 hub (an outside trial): what was read from
    // the leader is what counts, so one line a minute says it goes on
    const replicaDiffered = throttledWarning(
      options.logger,
      'mailbox replica differed from the stream leader; read from the leader',
      60_000,
    )
    this.#inbox = new MailboxReader(this.#storage.js, hub.names.mailboxStream, hub.names.mailbox(p), {
      position: () => this.#cursor.pos[0],
      running: () => this.#loop.running,
      lastStored: () => this.#storage.lastMailboxSeq(),
      arrived: () => this.#kick(),
      failed: (err) => this.#fail(err),
      ...(this.#storage.replicated
        ? {
            fromLeader: (from: number, through: number) => this.#storage.mailboxBetween(from, through),
            filled: (from: number, to: number, count: number) => replicaDiffered({ p, from, to, count }),
          }
        : {}),
    })
    // a consumer lost with a restarted server is noticed within a second or two
    this.#unwatchReconnects = this.#storage.fast.onReconnect(() => this.#inbox.reconnected())
    this.#instances = options.instances(this.#port)
    this.#recentReplies = options.recentReplies ?? new RecentReplies()
    this.#queries = new QueryDesk(this.#queryPort())
    this.#intake = new Intake({
      p,
      partitions: hub.meta.partitions,
      hub: { name: hub.names.hub, created: hub.meta.created },
      logger: options.logger,
      maxBatch: options.maxBatch,
      storage: this.#storage,
      stats: this.stats,
      metrics: this.metrics,
      inbox: this.#inbox,
      local: this.#local,
      recordLimit: this.#recordLimit,
      cursor: this.#cursor,
      dedup: this.#dedup,
      timers: this.#timers,
      queries: this.#queries,
      entities: this.#entities,
      instances: this.#instances,
      port: this.#port,
      open: () => this.#commits.open,
      canProcess: () => this.#canProcess(),
      armTimer: () => this.#armTimer(),
    })
    this.#changes = new ChangeFeed(nc, hub.names.changes(p))
    this.#commits = new Commits({
      p,
      epoch: options.epoch,
      writer: this.#writer,
      log: this.#log,
      recordMax: maxPayload - 4096,
      recordLimit: this.#recordLimit,
      cursor: this.#cursor,
      dedup: this.#dedup,
      snap: this.#snap,
      outbox: this.#outbox,
      changes: this.#changes,
      recentReplies: this.#recentReplies,
      entities: this.#entities,
      instances: this.#instances,
      logger: options.logger,
      nc,
      names: hub.names,
      stats: this.stats,
      metrics: this.metrics,
      options,
      stopped: () => this.#stopped,
      holdSnapshots: () => this.#careful !== undefined,
      stop: (reason, err) => this.#stop(reason, err),
      kick: () => this.#kick(),
    })
  }

  /** Recovers partition `p` from storage and starts serving it. Throws {@link FencedError}. */
  static async start(nc: NatsConnection, hub: Hub, p: number, options: PartitionOptions): Promise<Partition> {
    const partition = new Partition(nc, hub, p, options)
    try {
      await partition.#recover()
    } catch (err) {
      partition.#noteFailure()
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

  /** Records' messages handed in memory to partitions on the same connection so far. */
  get outboxHandOffs(): number {
    return this.#outbox.handOffs
  }

  /** Messages sent to other partitions so far (several travel in one publish). */
  get outboxMessages(): number {
    return this.#outbox.messages
  }

  /** Number of entities in memory. */
  get cachedEntities(): number {
    return this.#entities.cached
  }

  /**
   * Mailbox envelopes not processed yet: those received, and those the stream held past the last
   * one delivered (as the consumer said then).
   */
  get backlog(): number {
    return this.#inbox.length + this.#inbox.waitingInStream
  }

  /**
   * Stops gracefully: no more mailbox reads, the in-flight and open rounds are committed, and
   * (with `snapshot`) a final snapshot is written so the next owner starts fast.
   */
  async close(snapshot = false): Promise<void> {
    if (this.#stopped || this.#closing) return
    this.#closing = true
    // partitions beside it send through the mailbox from now on (to its next owner)
    this.#routes?.remove(this.#local)
    await this.#inbox.close()
    await this.#waits.until(
      () =>
        this.#stopped ||
        (this.#commits.inflight === null && !this.#loop.running && this.#commits.open.isEmpty),
    )
    const nothingCommitted = this.#log.lastSeq === this.#claimSeq || this.#log.lastSeq === this.#beginSeq
    if (!this.#stopped && nothingCommitted) await this.#leave()
    if (snapshot && !this.#stopped) await this.#commits.snapshot().catch(() => {})
    await this.#snap.idle()
    this.#shutdown()
  }

  /**
   * Appends a record marked `left`: this owner stops gracefully having committed nothing since its
   * claim, so its claim does not count as an owner that ended (crash-count.ts). Best effort: a
   * failure only makes the next owner careful one restart sooner.
   */
  async #leave(): Promise<void> {
    await this.#commits.appendMark({ left: 1 }).catch((err: unknown) => {
      // (abandoned meanwhile — the hub deleted, the server gone —: the node already said so)
      if (this.#stopped) return
      this.options.logger.warn('could not mark a graceful stop in the log', { p: this.p, error: String(err) })
    })
  }

  /**
   * Stops at once, committing nothing more (the NATS server is gone, so nothing could be): what was
   * processed but not committed is redone by the next owner from the log and the mailbox.
   */
  abandon(): void {
    this.#shutdown()
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  async #recover(): Promise<void> {
    const { epoch, logger } = this.options
    const crashes = new CrashCount()
    const replies = await recoverState(this.#recoveryPort(crashes))
    this.#commits.openAt(this.#snap.committedN + 1)
    const verdict = crashes.verdict()
    if (verdict.careful) this.#careful = this.#carefulMode(verdict)
    else this.#beginPending = true
    logger.info('partition recovered', {
      p: this.p,
      epoch,
      records: this.stats.recoveredRecords,
      pos: this.#cursor.pos,
      timers: this.#timers.size,
    })
    // Effects of replayed records may not have left before the crash: send them again. Receivers
    // drop what they already have (partitions by record number, clients by request id).
    for (const [inbox, reps] of replies) this.#commits.sendReplies(inbox, reps)
    this.#queries.listen(this.nc, this.hub.names.query(this.p))
    // activities pending at the crash run again — after careful mode: one that ends the process
    // while a careful unit is open would be blamed on that unit (careful.ts)
    if (this.#careful === undefined) this.#instances.recovered()
    if (this.#careful !== undefined)
      this.#careful.begin(await during("reading the mailbox's last sequence", this.#storage.lastMailboxSeq()))
    await during('starting the mailbox consumer', this.#inbox.start(this.#cursor.pos[0]))
    // careful mode takes one unit at a time from its mailbox: partitions beside it send there
    if (this.#careful === undefined) this.#routes?.add(this.#local)
    this.#snapshotTimer = setInterval(() => this.#commits.maybeSnapshot(), this.options.snapshotIntervalMs)
    this.#snapshotTimer.unref()
    const keepMs = this.options.keepIdleLogMs
    if (keepMs !== undefined) {
      // (the loop itself does not look: nothing is added to a busy partition's cycle)
      this.#keepTimer = setInterval(
        () => {
          if (!this.#keepDue()) return
          this.#keepWanted = true
          this.#kick()
        },
        Math.max(1000, keepMs / 4),
      )
      this.#keepTimer.unref()
    }
    this.#armTimer()
    this.#kick()
  }

  /** How recovery reads this partition's storage and applies what it reads (see recovery.ts). */
  #recoveryPort(crashes: CrashCount): RecoveryPort {
    const failedRun = failedRuns.get(this.p)
    failedRuns.delete(this.p)
    return {
      crashes,
      failedRun,
      p: this.p,
      epoch: this.options.epoch,
      writer: this.#writer,
      logger: this.options.logger,
      snap: this.#snap,
      storage: this.#storage,
      lastLogSeq: () => this.#log.lastSeq,
      position: () => this.#cursor.pos,
      local: () => this.#cursor.local,
      restoreCheckpoint: (ckpt) => this.#restoreCheckpoint(ckpt),
      restoreReplies: (entries) => this.#recentReplies.restore(entries),
      replayItem: (key, value) => this.#replayItem(key, value),
      replayIfOwned: (rec, seq) => this.#replayIfOwned(rec, seq),
      claimed: (claim, seq) => {
        this.#claimSeq = seq
        this.#log.admit(claim, seq)
        this.#replay(claim)
      },
    }
  }

  /**
   * Careful mode for an owner after others that ended without committing (crash-count.ts): told
   * as a warning when a unit is suspect, quietly when only claims piled up (idle restarts).
   */
  #carefulMode(verdict: CrashVerdict): CarefulMode {
    const { logger } = this.options
    const fields = {
      p: this.p,
      claimsWithoutProgress: verdict.idleClaims,
      suspects: verdict.suspects.map((s) => `${s.unit.join(':')} x${s.deaths}`),
    }
    if (verdict.suspects.length > 0) logger.warn('partition starts in careful mode', fields)
    else logger.info('partition starts in careful mode', fields)
    return new CarefulMode(
      {
        p: this.p,
        logger,
        maxBatch: this.options.maxBatch,
        commits: this.#commits,
        intake: this.#intake,
        cursor: this.#cursor,
        timers: this.#timers,
        isStopped: () => this.#stopped,
        ended: () => {
          this.#careful = undefined
          if (!this.#stopped && !this.#closing) this.#routes?.add(this.#local)
          this.#beginPending = false // its probes said it began
          this.#instances.recovered()
          this.#kick()
        },
      },
      verdict,
    )
  }

  #restoreCheckpoint(ckpt: Checkpoint): void {
    this.#log.restore(ckpt.logSeq, { e: ckpt.le ?? 0, o: ckpt.lo })
    this.#dedup.restore(ckpt)
    this.#snap.restore(ckpt)
    for (const [dest, n, msgs] of ckpt.outbox) this.#outbox.enqueue(dest, n, msgs, outboxSizeOf(msgs))
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
    this.#dedup.apply(rec)
    for (const [key, value] of rec.w) this.#replayItem(key, value)
    for (const [dest, msgs] of rec.out) this.#outbox.enqueue(dest, rec.n, msgs, outboxSizeOf(msgs))
    // the snapshot state moves the cursor's committed view; nothing ran yet, so the live one follows
    this.#snap.committed(rec, seq)
    if (!rec.claim) this.#cursor.rewind()
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
    else if (kind === ItemKind.Activity) this.#instances.replayActivity(key, value)
  }

  // ---------------------------------------------------------------------------------------------
  // The loop

  /** Schedules a run of the loop. */
  #kick(): void {
    if (!this.#stopped) this.#loop.kick()
  }

  /** One cycle of the loop: process what waits while a record has room, sealing rounds as it goes. */
  async #cycle(): Promise<void> {
    if (this.#careful !== undefined) return this.#careful.cycle()
    if (this.#keepWanted) {
      this.#keepWanted = false
      // (still due: work may have come since the timer looked)
      if (this.#keepDue() && !(await this.#appendKeep())) return
    }
    if (this.#beginPending) {
      if (!this.#hasWork()) {
        // queries are answered meanwhile: a step that takes no work (#canProcess says no), and the
        // record a read waits for
        await this.#intake.step()
        if (this.#commits.inflight === null && !this.#commits.open.isEmpty && !this.#stopped)
          this.#commits.seal()
        return
      }
      if (!(await this.#markBegin())) return
    }
    for (;;) {
      if (this.#stopped) return
      if (this.#commits.inflight === null && !this.#commits.open.isEmpty) this.#commits.seal()
      if (!this.#canProcess()) break
      if (!(await this.#intake.step())) break
    }
    if (this.#commits.inflight === null && !this.#commits.open.isEmpty && !this.#stopped) this.#commits.seal()
  }

  /**
   * Whether this idle owner should append a `keep` record: on a hub whose streams are cut whole from
   * below, nothing appended for `keepIdleLogMs` and nothing to do or commit (its last record, which
   * fences its appends, would hold the log's cut back: see CommitRecord.keep).
   */
  #keepDue(): boolean {
    const keepMs = this.options.keepIdleLogMs
    return (
      keepMs !== undefined &&
      !this.#stopped &&
      this.#commits.inflight === null &&
      this.#commits.open.isEmpty &&
      !this.#hasWork() &&
      Date.now() - this.#commits.core.log.lastAppendAt >= keepMs
    )
  }

  /** Appends a `keep` record (the snapshot that follows covers it); false when the partition stopped. */
  async #appendKeep(): Promise<boolean> {
    const n = this.#commits.open.n
    try {
      await this.#commits.appendMark({ keep: 1 })
    } catch (err) {
      this.#commits.stopOnAppendError(n, err)
      return false
    }
    return !this.#stopped
  }

  /** Whether a step would take work: a mailbox message, a local message or a due timer. */
  #hasWork(): boolean {
    return (
      this.#inbox.length > 0 ||
      this.#local.groups.length > 0 ||
      this.#cursor.local.length > 0 ||
      (this.#timers.next() ?? Infinity) <= Date.now()
    )
  }

  /**
   * Appends the record marked `b` that says this owner begins to take work (crash-count.ts): from
   * then on, ending before a commit counts as an owner that ended. One append per owner, before its
   * first step. False when the partition stopped (fenced, or the append failed).
   */
  async #markBegin(): Promise<boolean> {
    this.#beginPending = false
    // something is committing already (recovery queued it): this owner's work is on record anyway
    if (this.#commits.inflight !== null || !this.#commits.open.isEmpty) return true
    const n = this.#commits.open.n
    try {
      this.#beginSeq = await this.#commits.appendMark({ b: 1 })
    } catch (err) {
      this.#commits.stopOnAppendError(n, err)
      return false
    }
    return !this.#stopped
  }

  #canProcess(): boolean {
    if (this.#beginPending) return false
    if (!this.options.pipelining && this.#commits.inflight !== null) return false
    // Memory bound: entities written but not yet snapshotted cannot be evicted; past four times
    // the cache size, wait for the background snapshot to make them clean.
    if (this.#entities.cached >= this.options.cacheSize * 4) return false
    // The same for every item (instance records above all): when the state bucket takes writes
    // more slowly than the partition commits them, the partition slows to that pace instead of
    // holding an ever larger backlog in memory.
    if (this.#snap.dirtyItems >= this.options.cacheSize * 4) return false
    return this.#commits.open.bytes < this.#recordLimit
  }

  // ---------------------------------------------------------------------------------------------
  // Commit

  /**
   * The calls of `inbox` among `rids` kept as deferred operations for an entity type this node
   * does not run (unknown-types.ts): one pass over the pending timers, asked only for calls a
   * client has waited for a while.
   */
  #heldFor(inbox: string, rids: number[]): Array<[rid: number, name: string]> {
    const asked = new Set(rids)
    const held: Array<[number, string]> = []
    for (const [, msg] of this.#timers.values()) {
      if (msg.k !== 'op' || msg.r?.[0] !== inbox || !asked.has(msg.r[1])) continue
      if (!this.#entities.runs(msg.t)) held.push([msg.r[1], `e:${msg.t}`])
    }
    return held
  }

  /** How the query desk reads and acts on this partition (see queries.ts). */
  #queryPort(): QueryPort {
    return {
      p: this.p,
      logger: this.options.logger,
      stopped: () => this.#stopped,
      position: () => this.#cursor.pos[0],
      lastSeen: () => this.#inbox.lastSeen,
      lastStored: () => this.#storage.lastMailboxSeq(),
      recentReplies: (inbox, rids) => this.#recentReplies.find(inbox, rids, this.#recordLimit),
      heldFor: (inbox, rids) => this.#heldFor(inbox, rids),
      watcherJoined: () => this.#changes.watcherJoined(),
      kick: () => this.#kick(),
      answer: (query, respond) => {
        if (query.k === 'read') return this.#entities.read(query, respond)
        if (query.k === 'list') return this.#entities.list(query, respond)
        if (query.k === 'lock') return this.#entities.lockHolder(query, respond)
        if (query.k === 'timers')
          return this.#entities.scheduledSignals(query, this.#timers.values(), respond)
        return this.#instances.answer(query, respond)
      },
    }
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

  /**
   * Stops as failed from outside (an error escaped Basalt's own code on this thread, see
   * runtime/node/uncaught-errors.ts): the node recovers the partition from storage.
   */
  fail(err: Error): void {
    this.#fail(err)
  }

  #stop(reason: 'fenced' | 'failed', err: Error): void {
    if (this.#stopped) return
    if (reason === 'failed') this.#noteFailure()
    this.options.logger.warn(`partition ${reason}; stopping`, {
      p: this.p,
      error: withStorageHint(err, err.message),
    })
    this.#shutdown()
    this.options.onStopped(reason, err)
  }

  /**
   * This run stops with an internal failure, alive: the next run of the partition in this process
   * or thread names it in its claim, so crash counting does not count it as an owner that ended.
   */
  #noteFailure(): void {
    if (this.#claimSeq >= 0) failedRuns.set(this.p, this.#writer.o!)
  }

  #shutdown(): void {
    if (this.#shutDown) return // (abandoned while a graceful close waited)
    this.#shutDown = true
    this.#stopped = true
    this.#unwatchReconnects()
    this.#careful?.release()
    this.metrics.closed()
    this.#loop.stop()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    clearInterval(this.#snapshotTimer)
    clearInterval(this.#keepTimer)
    this.#inbox.stop()
    this.#outbox.stop()
    this.#routes?.remove(this.#local)
    this.#instances.close()
    this.#queries.close()
    this.#waits.check()
  }
}

/**
 * Runs of partitions in this process or thread that stopped with an internal failure, alive
 * (partition → writer token); read by the partition's next start here (crash-count.ts). A thread
 * or process that ends takes this with it: its runs did end.
 */
const failedRuns = new Map<number, number>()

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
