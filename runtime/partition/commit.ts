/**
 * The partition's commits: the open round being built and the one in flight, the seal that turns
 * a round into one fenced commit record, and what follows once the log acknowledged it — the
 * record's replies, its messages to other partitions (through the outbox), the change feed, the
 * waiters of the round, eviction and background snapshots. Nothing others can observe leaves
 * before the acknowledgement. Split from the loop (partition.ts), which decides when to seal.
 */
import { FencedError, PayloadTooLargeError } from '../../actors/index.ts'
import { type CommitRecord, type LogWriter, type Reply } from '../../actors/wire/index.ts'
import {
  encode,
  isWrongLastSequence,
  ItemKind,
  kindOf,
  replyBatch,
  type HubNames,
  type NatsConnection,
  type ReplyBatch,
} from '../nats/index.ts'
import type { Logger } from '../util/index.ts'
import type { PartitionMetrics } from '../metrics/index.ts'
import type { ChangeFeed } from './change-feed.ts'
import type { CommitLog } from './commit-log.ts'
import type { MailboxCursor } from './cursor.ts'
import type { DedupState } from './dedup.ts'
import type { EntityHost } from './entity-host.ts'
import type { InstanceHandler } from './host-port.ts'
import type { Outbox } from './outbox.ts'
import type { RecentReplies } from './recent-replies.ts'
import { markRecord } from './crash-count.ts'
import { CommitRound } from './round.ts'
import type { CheckpointExtras, SnapshotState } from './snapshot.ts'

/** The parts of a partition its commits read and act on. */
export interface CommitCore {
  readonly p: number
  readonly epoch: number
  /** This owner's writer identity (epoch and token), stamped on every record. */
  readonly writer: LogWriter
  readonly log: CommitLog
  /** Largest record the log accepts (`max_payload`, less room for headers). */
  readonly recordMax: number
  /** Largest record the loop fills (bounds the recent replies kept in a snapshot). */
  readonly recordLimit: number
  readonly cursor: MailboxCursor
  readonly dedup: DedupState
  readonly snap: SnapshotState
  readonly outbox: Outbox
  readonly changes: ChangeFeed
  readonly recentReplies: RecentReplies
  readonly entities: EntityHost
  readonly instances: InstanceHandler
  readonly logger: Logger
  readonly nc: NatsConnection
  readonly names: HubNames
  readonly stats: { records: number; messages: number; snapshots: number; changes: number }
  readonly metrics: PartitionMetrics
  readonly options: { snapshotRecords: number; snapshotIntervalMs: number; cacheSize: number }
  stopped(): boolean
  /** Whether background snapshots wait (careful mode: a checkpoint would hide the log's tail). */
  holdSnapshots(): boolean
  /** Stops the partition (fenced: a newer owner exists; failed: the node restarts it). */
  stop(reason: 'fenced' | 'failed', err: Error): void
  /** Wakes the loop. */
  kick(): void
}

/** The rounds of a partition and their way into the log. */
export class Commits {
  /** The round being built. */
  open: CommitRound
  /** The round whose record is being appended, if any. */
  inflight: CommitRound | null = null
  /** Where replies leave, together with other partitions' on this connection (reply-batch.ts). */
  readonly #replies: ReplyBatch

  constructor(readonly core: CommitCore) {
    this.open = new CommitRound(1, core.cursor.pos)
    this.#replies = replyBatch(core.nc)
  }

  /** Opens round `n` (after recovery: the one after the last committed record). */
  openAt(n: number): void {
    this.open = new CommitRound(n, this.core.cursor.pos)
  }

  /** Writes a snapshot of everything committed so far (a final one at close). */
  snapshot(): Promise<void> {
    return this.core.snap.take(this.#checkpointFields.bind(this))
  }

  /**
   * Appends a record that carries only a mark for crash counting (crash-count.ts: a probe, a
   * leave, a begin) at the open round's number, and notes it durable; resolves with its sequence.
   * The round after it opens at once, so whatever joins while the mark is appended is committed
   * after it. Its local queue is fitted as a sealed record's is: after a fan-out of synchronous
   * activities the queue can be larger than a record. Rejects as an append does (see
   * {@link stopOnAppendError}).
   */
  async appendMark(mark: Parameters<typeof markRecord>[4]): Promise<number> {
    const { cursor, recordMax, writer } = this.core
    const n = this.open.n
    const rec = markRecord(n, writer, cursor.pos, cursor.local.slice(), mark)
    let bytes = encode(rec)
    if (bytes.length > recordMax && rec.lq.length > 0) {
      const base = bytes.length - encode(rec.lq).length
      rec.lq = cursor.fitLocal(recordMax - base - 1024, (m) => encode(m).length)
      bytes = encode(rec)
    }
    this.openAt(n + 1)
    const seq = await this.core.log.append(n, bytes)
    this.core.log.appended(seq)
    this.core.dedup.apply(rec)
    this.core.snap.committed(rec, seq)
    return seq
  }

  /**
   * Stops the partition after the append of record `n` failed: fenced when a newer owner holds the
   * log (or the log refused the expected sequence), failed otherwise (the node restarts it).
   */
  stopOnAppendError(n: number, err: unknown): void {
    if (err instanceof FencedError) this.core.stop('fenced', err)
    else if (isWrongLastSequence(err))
      this.core.stop('fenced', new FencedError(this.core.p, `record ${n} rejected by the log`))
    else this.core.stop('failed', err as Error)
  }

  /** Seals the open round into a record and appends it; a new round opens at once. */
  seal(): void {
    const round = this.open
    this.core.metrics.sealed(this.core.stats.messages)
    round.lq = this.core.cursor.local.slice()
    const record = round.toRecord(this.core.epoch, this.core.dedup.seal(round.n))
    record.o = this.core.writer.o!
    let bytes = encode(record)
    if (bytes.length > this.core.recordMax && round.lq.length > 0) {
      // many activity outcomes queued at once (a fan-out of synchronous activities): the record
      // carries those that fit; the others run again after a crash (cursor.ts, `recreatable`)
      const base = bytes.length - encode(round.lq).length
      round.lq = record.lq = this.core.cursor.fitLocal(
        this.core.recordMax - base - 1024,
        (m) => encode(m).length,
      )
      bytes = encode(record)
    }
    if (bytes.length > this.core.recordMax) {
      // Values are bounded where they enter (value-limits.ts), so this is a bug; the append would
      // fail anyway. The node restarts the partition with a growing delay, never in a tight loop.
      throw new PayloadTooLargeError(
        `commit record ${round.n} of partition ${this.core.p}`,
        bytes.length,
        this.core.recordMax,
      )
    }
    this.inflight = round
    this.open = new CommitRound(round.n + 1, this.core.cursor.pos)
    // a record that references large values is appended only once their blobs are stored
    const blobs = round.blobWrites
    const appended =
      blobs.length === 0
        ? this.core.log.append(round.n, bytes)
        : Promise.all(blobs).then(() => this.core.log.append(round.n, bytes))
    appended
      .then(
        (seq) => this.#onCommitted(round, record, bytes, seq),
        (err: unknown) => this.stopOnAppendError(round.n, err),
      )
      .catch((err: unknown) => this.core.stop('failed', err as Error))
  }

  #onCommitted(round: CommitRound, record: CommitRecord, bytes: Uint8Array, seq: number): void {
    if (this.core.stopped()) return
    this.core.log.appended(seq)
    this.inflight = null
    this.core.stats.records++
    this.core.metrics.committed()
    this.core.dedup.apply(record)
    this.core.snap.committed(record, seq)
    for (const [inbox, reps] of record.rep) this.sendReplies(inbox, reps)
    for (const [dest, msgs] of record.out) this.core.outbox.enqueue(dest, record.n, msgs, outboxSizeOf(msgs))
    this.#publishChanges(record, bytes)
    for (const waiter of round.waiters) waiter()
    this.core.entities.evict()
    this.maybeSnapshot()
    this.core.kick()
  }

  /**
   * Tells watchers what a durable record changed, when it changed entity states or instance
   * records: the record itself (already encoded) on `H.chg.<p>`; watchers pick their item from its
   * writes `w` (record number `n`). Only while someone may watch (see {@link ChangeFeed}).
   */
  #publishChanges(record: CommitRecord, bytes: Uint8Array): void {
    if (!this.core.changes.publishing) return
    if (!record.w.some(([key]) => isWatched(kindOf(key)))) return
    this.core.changes.publish(bytes)
    this.core.stats.changes++
  }

  /** Starts a background snapshot when enough is dirty; chains another if still due after it. */
  maybeSnapshot(): void {
    const { snapshotRecords, snapshotIntervalMs, cacheSize } = this.core.options
    if (
      this.core.stopped() ||
      this.core.holdSnapshots() ||
      !this.core.snap.due(snapshotRecords, snapshotIntervalMs, cacheSize)
    )
      return
    this.core.metrics.snapshotStarted()
    void this.core.snap
      .take(this.#checkpointFields.bind(this))
      .then(() => {
        this.core.stats.snapshots++
        this.core.metrics.snapshotted()
        this.core.entities.evict()
        this.core.instances.snapshotted()
        this.maybeSnapshot()
        this.core.kick()
      })
      .catch((err: unknown) => {
        // (abandoned meanwhile, or the node is closing its connection: nothing will retry, and
        // the node says why it stops)
        if (this.core.stopped() || this.core.nc.isClosed() || this.core.nc.isDraining()) return
        if (isWrongLastSequence(err) || err instanceof FencedError) {
          this.core.stop('fenced', new FencedError(this.core.p, `snapshot rejected: ${String(err)}`))
        } else this.core.logger.warn('snapshot failed; will retry', { p: this.core.p, error: String(err) })
      })
  }

  /** Checkpoint fields that the snapshot state does not own, captured at a record boundary. */
  #checkpointFields(upToN: number): CheckpointExtras {
    return {
      dedup: this.core.dedup.toCheckpoint(),
      outbox: this.core.outbox.pending(upToN),
      replies: (all) => this.core.recentReplies.segment(this.core.recordLimit, all),
    }
  }

  /** Sends a durable record's replies to a client inbox (and remembers them for a re-ask). */
  sendReplies(inbox: string, replies: Reply[]): void {
    if (!this.core.names.isReplyInbox(inbox)) {
      // a message named a subject outside the hub's client inboxes: never publish there
      this.core.logger.warn('reply subject is not a client inbox of this hub; reply dropped', {
        p: this.core.p,
        inbox,
        replies: replies.length,
      })
      return
    }
    this.core.recentReplies.remember(inbox, replies)
    this.#replies.add(inbox, replies, this.#replyFailed)
  }

  readonly #replyFailed = (inbox: string, replies: number, err: unknown): void => {
    this.core.logger.warn('reply not sent', { p: this.core.p, inbox, replies, error: String(err) })
  }
}

/** Whether watchers follow items of this kind (entity states and instance records). */
function isWatched(kind: ItemKind | undefined): boolean {
  return kind === ItemKind.Entity || kind === ItemKind.Instance
}

/** Bytes an outbox entry of these messages counts. */
export function outboxSizeOf(msgs: Uint8Array[]): number {
  let size = 16
  for (const m of msgs) size += m.length + 4
  return size
}
