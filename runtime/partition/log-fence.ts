/**
 * Which records of a partition's commit log count, decided from the log itself.
 *
 * Appends are fenced by JetStream's expected-last-subject-sequence check, but that check is not
 * enough on its own: on a NATS cluster (R3) the stream leader checks it before proposing, so a
 * stale owner's append racing a new owner's claim can land after the claim (nats-server 2.9.x and
 * later alike). So every record names its writer — the epoch the placement gave it and a random
 * token of the partition instance (`o`), which tells apart two runs of one epoch on one node —
 * and the log is read with one rule: a claim record makes its writer the owner (unless an owner
 * of a newer epoch already claimed), and any other record counts only if its writer is the owner
 * at that point. A stale owner's record that slipped in after a newer claim is ignored on replay,
 * and its writer, which checks the log before releasing any effect, never acts on it.
 */
import type { CommitRecord, LogWriter } from '../../actors/wire/index.ts'

export type { LogWriter }

/** The current owner of a partition's log, as far as the log has been read. */
export class LogFence {
  #e: number
  #o: number | undefined

  /** Starts from the owner recorded in a checkpoint (epoch 0: nothing known, the first record sets it). */
  constructor(owner: LogWriter = { e: 0 }) {
    this.#e = owner.e
    this.#o = owner.o
  }

  /** The owner after the records accepted so far. */
  get owner(): LogWriter {
    return { e: this.#e, o: this.#o }
  }

  /** Whether `rec` counts at this point of the log; if so, and it is a claim, its writer becomes the owner. */
  accept(rec: CommitRecord): boolean {
    if (!this.counts(rec)) return false
    this.#e = rec.e
    this.#o = rec.o
    return true
  }

  /** Whether `rec` would count at this point of the log (no change). */
  counts(rec: CommitRecord): boolean {
    if (rec.e !== this.#e) return rec.e > this.#e // a newer epoch: its claim, or a checkpoint that predates tokens
    return rec.claim === 1 || rec.o === this.#o
  }
}
