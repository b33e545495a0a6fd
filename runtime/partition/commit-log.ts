/**
 * A partition's view of its commit log: the sequence of the last record read or written, who owns
 * the log at that point (the log fence, see log-fence.ts), and the fenced append of the next
 * record. Appends carry JetStream's expected last sequence, so the log rejects anyone who does not
 * know the latest record; on a replicated hub, and after a rejection, the records between ours are
 * read back, since a stale owner's append can slip past the leader's check: a newer owner's record
 * there fences us, a stale owner's record is passed over by everyone's replay.
 */
import { FencedError } from '../../actors/index.ts'
import type { CommitRecord } from '../../actors/wire/index.ts'
import { isWrongLastSequence, type PartitionStorage } from '../nats/index.ts'
import type { Logger } from '../util/index.ts'
import { LogFence, type LogWriter } from './log-fence.ts'

/** How often one append is tried again after stale owners' records slipped into the log. */
const STALE_RECORD_RETRIES = 5

/** What the commit log needs of storage ({@link PartitionStorage} is one). */
export type CommitLogStorage = Pick<PartitionStorage, 'append' | 'logAfter' | 'replicated'>

/** The commit log of one partition, as its owner sees it (see the module comment). */
export class CommitLog {
  /** Log sequence of the last record read or written (0: none). */
  lastSeq = 0
  /** When this owner last appended a record (or started), in ms since the epoch. */
  lastAppendAt = Date.now()
  #fence = new LogFence()

  constructor(
    readonly storage: CommitLogStorage,
    readonly p: number,
    /** This owner's identity: its epoch and a random token. */
    readonly writer: LogWriter,
    readonly logger: Logger,
    /**
     * Whether the hub is still the one this owner opened (not deleted and created again). Asked
     * before passing over records of lower epochs found after ours: in a hub created again under a
     * stale owner, epochs start over, so the new owners' records look like a stale owner's and the
     * stale owner would append after them and answer from the old hub's state.
     */
    readonly sameHub: () => Promise<boolean> = async () => true,
  ) {}

  /** Starts from a checkpoint: the log sequence it covers and the log's owner there. */
  restore(logSeq: number, owner: LogWriter): void {
    this.lastSeq = logSeq
    this.#fence = new LogFence(owner)
  }

  /**
   * Reads record `rec` at `seq` (at recovery, or our own claim): whether it counts — its writer
   * owned the log at that point; a stale owner's record is passed over (and logged).
   */
  admit(rec: CommitRecord, seq: number): boolean {
    this.lastSeq = seq
    if (this.#fence.accept(rec)) return true
    this.logger.warn("ignoring a stale owner's record in the log", { p: this.p, n: rec.n, epoch: rec.e })
    return false
  }

  /** Notes that our record at `seq` is durable. */
  appended(seq: number): void {
    this.lastSeq = seq
    this.lastAppendAt = Date.now()
  }

  /**
   * Appends record `n` right after our last one and resolves with its sequence once it is known to
   * count: JetStream's check of the expected sequence is authoritative on one server; on a
   * replicated hub the records between our last one and this one are read back from the leader,
   * since a stale owner's append may have slipped past the leader's check. A newer owner's record
   * there (or after our last one, when the append is rejected) means we are fenced
   * ({@link FencedError}); a stale owner's record is ignored by everyone's replay, so we go on
   * after it.
   */
  async append(n: number, bytes: Uint8Array): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      let seq: number
      try {
        seq = await this.storage.append(bytes, n, this.writer, this.lastSeq)
      } catch (err) {
        if (!isWrongLastSequence(err) || attempt >= STALE_RECORD_RETRIES) throw err
        const others = await this.storage.logAfter(this.lastSeq)
        // our own record, stored by a try whose answer was lost with the connection: on a NATS
        // cluster the leader checks the expected sequence before the message id, so the repeat
        // is refused instead of being answered as a duplicate
        const own = others.findIndex(({ rec }) => this.#isOwn(rec, n))
        this.#checkOthers(
          others.slice(0, own === -1 ? others.length : own).map((r) => r.rec),
          n,
        )
        if (own !== -1) return others[own]!.seq
        if (others.length === 0) throw err
        if (!(await this.sameHub()))
          throw new FencedError(this.p, `record ${n}: the hub was deleted and created again under this owner`)
        this.lastSeq = others[others.length - 1]!.seq
        continue
      }
      if (this.storage.replicated) {
        const logged = await this.storage.logAfter(this.lastSeq, seq)
        this.#checkOthers(
          logged.filter((r) => r.seq !== seq).map((r) => r.rec),
          n,
        )
      }
      return seq
    }
  }

  /** Whether `rec` is record `n` of this very writer (epoch and token). */
  #isOwn(rec: CommitRecord, n: number): boolean {
    return rec.n === n && rec.e === this.writer.e && rec.o === this.writer.o
  }

  /** Throws {@link FencedError} if any of `records`, found after our last record, is a newer owner's. */
  #checkOthers(records: CommitRecord[], n: number): void {
    for (const rec of records) {
      if (this.#fence.counts(rec)) {
        throw new FencedError(this.p, `record ${n}: the log has a record of epoch ${rec.e} after ours`)
      }
      this.logger.warn("a stale owner's record slipped into the log; it does not count", {
        p: this.p,
        n: rec.n,
        epoch: rec.e,
      })
    }
  }
}
