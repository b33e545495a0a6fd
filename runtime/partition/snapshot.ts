/**
 * Asynchronous, incremental snapshots. Committed writes collect in a map; a snapshot freezes that
 * map at a record boundary, writes the items to the state bucket in the background (the loop never
 * waits), then moves the checkpoint marker and truncates log and mailbox below it.
 *
 * Fencing: a new owner first re-writes the checkpoint (bumping its revision). Every item write
 * carries the writer's epoch and is conditional on a revision whose writer this owner has seen:
 * the revision it wrote or read last, or — for an item it never read — the revision it reads just
 * before writing. A write that finds a newer epoch's value (on that read, or on re-reading after a
 * conflict) stops the owner (FencedError); one that finds an older epoch's value overwrites it (a
 * stale owner wrote it). So a stale owner can never overwrite what a newer owner wrote. The
 * checkpoint itself is written conditionally, so a stale owner never moves it nor truncates
 * anything.
 */
import { FencedError, decodeToken } from '../../actors/index.ts'
import { WIRE_VERSION, type CommitRecord, type LogWriter } from '../../actors/wire/index.ts'
import type { Logger } from '../util/index.ts'
import {
  isWrongLastSequence,
  type Checkpoint,
  type PartitionStorage,
  entityTypeFilter,
  isEager,
  isWriteOnce,
  itemKey,
} from '../nats/index.ts'
import type { DedupTables } from './dedup.ts'
import type { RepliesSegment } from './recent-replies.ts'
import { MailboxCursor } from './cursor.ts'
import { Semaphore } from '../util/index.ts'

/**
 * Item writes in flight per connection, over all the partitions of a node. The partitions of a
 * node tend to snapshot at the same moment; unbounded, their thousands of writes (and acks) would
 * hold up the commits and replies of every partition for a fraction of a second. Too few, and
 * under sustained load the snapshots fall behind the commits: at 64, a 150,000-instance
 * hello-sequence run held seconds of unwritten items (and the ended instances waiting for them) in
 * memory, its heap grew to 400 MB and its throughput fell to about 4,000/s; at 1,024 the heap stayed
 * under 200 MB at 7,500–8,300/s (docs/BENCHMARKS.md, stop 10).
 */
const WRITE_CONCURRENCY = 1024

/**
 * Item writes a snapshot issues together, in one event-loop turn (so in one socket write), and
 * awaits together before the next wave of the partition. Issued one at a time as slots freed up,
 * each write went out on its own as an ack came back: measured with alternated runs
 * (docs/BENCHMARKS.md, 2026-11-30), waves cut the Node CPU of a hello-sequence instance by 3–9 %
 * and lowered its loaded p99 in most runs.
 */
const WRITE_WAVE = 16

const writeSlots = new WeakMap<object, Semaphore>()

/**
 * What snapshots need of the state bucket, log and mailbox ({@link PartitionStorage} is one; unit
 * tests use an in-memory twin). `nc` only identifies the connection: item writes in flight are
 * bounded per connection.
 */
export type SnapshotStore = Pick<
  PartitionStorage,
  | 'p'
  | 'readCheckpoint'
  | 'readCheckpointAfter'
  | 'writeCheckpoint'
  | 'readItem'
  | 'writeItem'
  | 'listStoredKeys'
  | 'listKeys'
  | 'truncateLog'
  | 'truncateMailbox'
> & { readonly nc: object }

/**
 * What a snapshot takes from outside this state, at a record boundary: the committed dedup tables
 * and the unconfirmed outbox (into the checkpoint), and the encoded recent replies (an item written
 * before the checkpoint).
 */
export interface CheckpointExtras {
  dedup: DedupTables
  outbox: Checkpoint['outbox']
  /** The replies to store (recent-replies.ts): those since the last segment, or all with `all`. */
  replies?: (all: boolean) => RepliesSegment | undefined
}

/**
 * Slots of the ring the segments of recent replies are stored in (`rep.<p>.<slot>`): at most this
 * many segments are listed, the oldest overwritten first. Bounded, so the bucket never gathers a
 * key (or a deletion marker) per snapshot.
 */
export const REPLY_SLOTS = 64

/** A stored segment of replies, as a checkpoint lists it: [slot, newest reply's time, size]. */
type ReplySegmentRef = NonNullable<Checkpoint['rs']>[number]

/** What a snapshot does with the replies: the segment it writes, the list its checkpoint names. */
interface ReplyPlan {
  list: ReplySegmentRef[]
  write?: [key: string, value: Uint8Array]
  stored(): void
}

/** Committed-but-not-snapshotted state of one partition, and the snapshot procedure. */
export class SnapshotState {
  /** Number of the last committed record. */
  committedN = 0
  #logSeq = 0
  /** Writer of the last committed record: the log's owner at `committedN`. */
  #writer: LogWriter = { e: 0 }
  #committed = new Map<string, Uint8Array | null>()
  /** Writes committed while a long read of the bucket runs, per reader (see tapCommitted). */
  readonly #taps = new Set<{ prefix: string; writes: Map<string, Uint8Array | null> }>()
  #writing = new Map<string, Uint8Array | null>()
  readonly #revs = new Map<string, number>()
  #ckptRev = 0
  #epoch = 0
  #recordsSince = 0
  #since = 0
  #taking: Promise<void> | null = null
  /** The segments of recent replies the last checkpoint lists (restored, or written by this run). */
  #replySegments: ReplySegmentRef[] = []
  /** Whether this run stored a segment of every reply it kept (later ones hold only newer replies). */
  #repliesWhole = false

  constructor(
    readonly storage: SnapshotStore,
    readonly logger: Logger,
    /** Whether this owner may write now (see `PartitionOptions.mayWrite`). */
    readonly mayWrite: () => boolean = () => true,
    /**
     * The partition's mailbox position and local queue (cursor.ts): this state applies every
     * durable record and checkpoint to it, the loop reads and moves its live view.
     */
    readonly cursor: MailboxCursor = new MailboxCursor(),
  ) {}

  /**
   * Takes the checkpoint over for `epoch`: re-writes it conditionally so that a stale owner's
   * later checkpoint writes fail. Throws {@link FencedError} when a newer epoch holds it.
   */
  async claim(epoch: number, p: number): Promise<{ ckpt: Checkpoint | null }> {
    this.#epoch = epoch
    let read = await this.storage.readCheckpoint()
    for (;;) {
      const { ckpt, rev } = read
      if (ckpt !== null && ckpt.e > epoch) {
        throw new FencedError(p, `checkpoint belongs to epoch ${ckpt.e}, ours is ${epoch}`)
      }
      const claimed: Checkpoint = ckpt === null ? emptyCheckpoint(epoch) : { ...ckpt, e: epoch }
      let written: number
      try {
        written = await this.storage.writeCheckpoint(claimed, rev)
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err
        read = await this.storage.readCheckpoint()
        continue
      }
      // On nats-server before 2.11 a stream leader elected moments ago answers reads before it has
      // applied every write committed before its election, and checks a compare-and-set against
      // the same state: the checkpoint read can be older than the latest, and the claim lands over
      // the newer one. Restored, that older checkpoint needs log records that cuts of the log
      // (stream-trim.ts) may have removed. Once the claim is acknowledged, the leader has applied
      // everything before it: a checkpoint stored between the one read and the claim means the
      // read was stale, and the claim is made again from that newer one.
      const newer = await this.#storedBetween(rev, written)
      if (newer === null) {
        this.#ckptRev = written
        return { ckpt }
      }
      this.logger.warn('checkpoint read was older than one stored after it; claiming from the newer one', {
        p,
        read: rev,
        newer: newer.rev,
      })
      if (newer.ckpt !== null && newer.ckpt.e > epoch) {
        // a newer owner's: put it back as it was (its owner restarts from it), and stand down
        await this.storage.writeCheckpoint(newer.ckpt, written).catch(() => {})
        throw new FencedError(p, `checkpoint belongs to epoch ${newer.ckpt.e}, ours is ${epoch}`)
      }
      read = { ckpt: newer.ckpt, rev: written }
    }
  }

  /** The latest checkpoint stored after revision `after` and before `before`, or null. */
  async #storedBetween(
    after: number,
    before: number,
  ): Promise<{ ckpt: Checkpoint | null; rev: number } | null> {
    let latest: { ckpt: Checkpoint | null; rev: number } | null = null
    for (let from = after; ;) {
      const next = await this.storage.readCheckpointAfter(from)
      if (next === null || next.rev >= before) return latest
      latest = next
      from = next.rev
    }
  }

  /** Starts from a checkpoint. */
  restore(ckpt: Checkpoint): void {
    if (ckpt.rs !== undefined) this.#replySegments = ckpt.rs
    this.committedN = ckpt.n
    this.#logSeq = ckpt.logSeq
    this.cursor.restore(ckpt)
    this.#writer = { e: ckpt.le ?? 0, o: ckpt.lo }
  }

  /** Notes a durable record (committed now, or replayed at recovery) that the log fence accepted. */
  committed(rec: CommitRecord, seq: number): void {
    this.committedN = rec.n
    this.#logSeq = seq
    this.#writer = { e: rec.e, o: rec.o }
    this.cursor.apply(rec)
    for (const [key, value] of rec.w) this.#committed.set(key, value)
    for (const tap of this.#taps) {
      for (const [key, value] of rec.w) if (key.startsWith(tap.prefix)) tap.writes.set(key, value)
    }
    if (rec.claim) return
    if (this.#recordsSince++ === 0) this.#since = Date.now()
  }

  /** Items with committed writes not yet durable in the state bucket (being written included). */
  get dirtyItems(): number {
    return this.#committed.size + this.#writing.size
  }

  /** Whether `key` has committed writes not yet durable in the state bucket. */
  isDirty(key: string): boolean {
    return this.#committed.has(key) || this.#writing.has(key)
  }

  /**
   * Collects every write under `prefix` committed from now until `stop()`, stored meanwhile or not:
   * a read of the bucket that takes a while (a listing) overlays them, since the bucket may have
   * shown it an older value of an item whose newer one was committed and stored during the read.
   */
  tapCommitted(prefix: string): { writes: Map<string, Uint8Array | null>; stop(): void } {
    const tap = { prefix, writes: new Map<string, Uint8Array | null>() }
    this.#taps.add(tap)
    return { writes: tap.writes, stop: () => this.#taps.delete(tap) }
  }

  /** Committed writes not yet in the state bucket, oldest first. */
  *dirtyWrites(): Iterable<[string, Uint8Array | null]> {
    yield* this.#writing
    yield* this.#committed
  }

  /** Forgets what is known of an evicted item. */
  forget(key: string): void {
    this.#revs.delete(key)
  }

  /** Reads an item's committed value: from the dirty maps, else from the bucket. */
  async read(key: string): Promise<Uint8Array | null> {
    const committed = this.#committed.get(key)
    if (committed !== undefined || this.#committed.has(key)) return committed ?? null
    const writing = this.#writing.get(key)
    if (writing !== undefined || this.#writing.has(key)) return writing ?? null
    const item = await this.storage.readItem(key)
    // a newer owner's revision is never one to write over (see #revisionToReplace)
    if (item.epoch <= this.#epoch) this.#revs.set(key, item.rev)
    else this.#revs.delete(key)
    return item.value
  }

  /**
   * Notes that an item was never stored, as a read that found nothing would: its first snapshot
   * write needs no revision read, and a delete of it is a no-op.
   */
  markAbsent(key: string): void {
    if (!this.#revs.has(key)) this.#revs.set(key, 0)
  }

  /** Loads every item whose key matches `filter` (e.g. all timers: `t.<p>.>`). */
  async loadItems(filter: string): Promise<Array<[string, Uint8Array]>> {
    const out: Array<[string, Uint8Array]> = []
    for (const key of await this.storage.listStoredKeys(filter)) {
      const item = await this.storage.readItem(key)
      this.#revs.set(key, item.rev)
      if (item.value !== null) out.push([key, item.value])
    }
    return out
  }

  /** Keys of the entities of `type` in partition `p` that the state bucket holds. */
  async listEntityKeys(p: number, type: string): Promise<string[]> {
    const keys = await this.storage.listKeys(entityTypeFilter(p, type))
    return keys.map((k) => decodeToken(k.slice(k.lastIndexOf('.') + 1)))
  }

  /** Whether a snapshot should start now: enough records, time, or dirty items. */
  due(records: number, intervalMs: number, dirtyItems: number): boolean {
    if (this.#taking !== null || this.#recordsSince === 0) return false
    return (
      this.#recordsSince >= records ||
      Date.now() - this.#since >= intervalMs ||
      this.#committed.size >= dirtyItems
    )
  }

  /** Resolves when no snapshot is being written. */
  async idle(): Promise<void> {
    await this.#taking?.catch(() => {})
  }

  /**
   * Writes a snapshot of everything committed so far. `extra(n)` supplies the checkpoint fields
   * owned elsewhere (the unconfirmed outbox up to record n). Throws {@link FencedError} if a newer
   * owner exists.
   */
  take(extra: (upToN: number) => CheckpointExtras): Promise<void> {
    if (this.#taking !== null) return this.#taking
    this.#taking = this.#take(extra).finally(() => (this.#taking = null))
    return this.#taking
  }

  async #take(extraOf: (upToN: number) => CheckpointExtras): Promise<void> {
    this.#writing = this.#committed
    this.#committed = new Map()
    const extra = extraOf(this.committedN)
    const { pos, lq } = this.cursor.toCheckpoint()
    const ckpt: Checkpoint = {
      v: WIRE_VERSION,
      e: this.#epoch,
      le: this.#writer.e,
      ...(this.#writer.o === undefined ? {} : { lo: this.#writer.o }),
      n: this.committedN,
      logSeq: this.#logSeq,
      pos,
      dc: extra.dedup.dc,
      dp: extra.dedup.dp,
      lq,
      outbox: extra.outbox,
    }
    const replies = this.#repliesSegment(extra)
    ckpt.rs = replies?.list ?? this.#replySegments
    const records = this.#recordsSince
    this.#recordsSince = 0
    try {
      await this.#checkCheckpointOurs()
      let slots = writeSlots.get(this.storage.nc)
      if (slots === undefined)
        writeSlots.set(this.storage.nc, (slots = new Semaphore(WRITE_CONCURRENCY / WRITE_WAVE)))
      const items = [...this.#writing]
      const waves: Array<Promise<Array<PromiseSettledResult<void>>>> = []
      for (let i = 0; i < items.length; i += WRITE_WAVE) {
        const wave = items.slice(i, i + WRITE_WAVE)
        waves.push(slots.run(() => Promise.allSettled(wave.map(([k, v]) => this.#writeItem(k, v)))))
      }
      // all settle before the outcome counts: no write of this snapshot outlives it
      const results = (await Promise.all(waves)).flat()
      const failed = results.find((r) => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      if (replies?.write !== undefined) await this.#writeItem(...replies.write)
      try {
        this.#checkMayWrite()
        this.#ckptRev = await this.storage.writeCheckpoint(ckpt, this.#ckptRev)
      } catch (err) {
        if (isWrongLastSequence(err))
          throw new FencedError(this.storage.p, 'checkpoint was claimed by a newer owner')
        throw err
      }
      if (replies !== undefined) {
        this.#replySegments = replies.list
        this.#repliesWhole = true
        replies.stored()
      }
    } catch (err) {
      // Put the frozen writes back (newer commits win) so the next snapshot retries them.
      for (const [k, v] of this.#writing) if (!this.#committed.has(k)) this.#committed.set(k, v)
      this.#writing = new Map()
      this.#recordsSince += records
      throw err
    }
    this.#writing = new Map()
    // Below the checkpoint nothing is needed any more; keep the last record, which fences appends.
    await this.storage.truncateLog(ckpt.logSeq)
    await this.storage.truncateMailbox(ckpt.pos[0])
  }

  /**
   * The segment of recent replies this snapshot stores, the slot it goes to, and the list of
   * segments its checkpoint names: those of earlier snapshots still young enough (none at the
   * first snapshot of a run: its segment holds every reply kept), the new one last, together
   * within the replies' byte bound. Undefined when the list stays as it is (no reply since the
   * last segment).
   */
  #repliesSegment(extra: CheckpointExtras): ReplyPlan | undefined {
    const segment = extra.replies?.(!this.#repliesWhole)
    if (segment === undefined) return undefined
    const earlier = this.#repliesWhole ? this.#replySegments : []
    if (segment.bytes.length <= 1) return { list: [], stored: segment.stored } // (nothing kept)
    // (after the slots listed now, even when they are dropped from the list: a crash before the
    // checkpoint is written leaves them as it names them)
    const slot = ((this.#replySegments.at(-1)?.[0] ?? -1) + 1) % REPLY_SLOTS
    const list: ReplySegmentRef[] = [[slot, segment.newest, segment.bytes.length]]
    let bytes = segment.bytes.length
    for (let i = earlier.length - 1; i >= 0; i--) {
      const [s, newest, size] = earlier[i]!
      if (s === slot || newest < segment.expired || bytes + size > segment.maxBytes) break
      list.unshift(earlier[i]!)
      bytes += size
    }
    return {
      list,
      write: [itemKey.repliesSegment(this.storage.p, slot), segment.bytes],
      stored: segment.stored,
    }
  }

  async #writeItem(key: string, value: Uint8Array | null): Promise<void> {
    this.#checkMayWrite()
    // Timers, locks and pending activities are all loaded at recovery, so an unknown revision
    // means the item was never stored: a delete of it is a no-op, a write creates it. History
    // chunks have keys never used before (see instances.ts) and are written once: a write of one
    // creates it (a delete still needs its revision).
    const eager = isEager(key)
    const created = value !== null && isWriteOnce(key)
    let rev = this.#revs.get(key)
    if (rev === undefined) rev = eager || created ? 0 : await this.#revisionToReplace(key)
    if (value === null && rev === 0) {
      this.#revs.delete(key)
      return
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.#revs.set(key, await this.storage.writeItem(key, value, rev, this.#epoch))
        return
      } catch (err) {
        if (!isWrongLastSequence(err) || attempt > 5) throw err
      }
      // Someone else wrote the item: a newer owner (we stop), or a stale one (we overwrite it).
      // A newer owner claims the checkpoint before it writes any item, so a changed checkpoint
      // revision also means we are stale.
      rev = await this.#revisionToReplace(key)
      const { rev: ckptRev } = await this.storage.readCheckpoint()
      if (ckptRev !== this.#ckptRev) {
        throw new FencedError(this.storage.p, `item ${key} was written by a newer owner`)
      }
      this.logger.warn('overwriting an item written by a stale owner', { key })
    }
  }

  /**
   * Before any item is written: the checkpoint is still at the revision this owner wrote. A newer
   * owner claims it before writing anything, and a hub deleted and created again under this owner
   * has none — there, an item this owner never read would be created in the new hub (nothing older
   * to fence against), and a stale owner's items would stay behind in its successor's bucket where
   * the successor never writes them again. One read per snapshot; only the moment between this
   * read and the writes is left to the item fences.
   */
  async #checkCheckpointOurs(): Promise<void> {
    const { rev } = await this.storage.readCheckpoint()
    if (rev !== this.#ckptRev) {
      throw new FencedError(
        this.storage.p,
        rev === 0
          ? 'the checkpoint is gone (the hub was deleted, or created again)'
          : 'checkpoint was claimed by a newer owner',
      )
    }
  }

  /**
   * A process resumed after a pause past its lease writes nothing until placement has caught up:
   * on a NATS cluster two conditional writes in flight at once can both land (the leader checks
   * the revision before proposing), so a stale owner's write must not race the new owner's.
   */
  #checkMayWrite(): void {
    if (!this.mayWrite())
      throw new Error(`partition ${this.storage.p}: node lease lapsed; snapshot writes wait`)
  }

  /** The item's current revision, after checking that no newer owner wrote it. */
  async #revisionToReplace(key: string): Promise<number> {
    const item = await this.storage.readItem(key)
    if (item.epoch > this.#epoch) {
      throw new FencedError(
        this.storage.p,
        `item ${key} was written at epoch ${item.epoch}, ours is ${this.#epoch}`,
      )
    }
    return item.rev
  }
}

function emptyCheckpoint(epoch: number): Checkpoint {
  return { v: WIRE_VERSION, e: epoch, n: 0, logSeq: 0, pos: [1, 0], dc: [], dp: [], lq: [], outbox: [] }
}
