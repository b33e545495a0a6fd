/**
 * The mailbox cursor of a partition: how far its mailbox has been processed and the messages
 * produced within the partition that wait to be processed (the local queue). One owner for both,
 * as dedup.ts is for the dedup tables: the loop reads and moves the *live* view as it processes;
 * commit records and checkpoints carry the *committed* view (`pos`, `lq`), which a snapshot takes
 * at a record boundary. With pipelining the live view runs ahead of the committed one.
 */
import type { ActorMessage, CommitRecord, MailboxPosition } from '../../actors/wire/index.ts'

/** The mailbox fields of a commit record or a checkpoint. */
export interface CursorFields {
  pos: MailboxPosition
  lq: ActorMessage[]
}

/** Where a partition is in its mailbox, and its queue of local messages. */
export class MailboxCursor {
  /** The next mailbox message to process: envelope sequence and index within it (live). */
  pos: MailboxPosition = [1, 0]
  /** Messages produced within the partition, waiting to be processed (live). */
  local: ActorMessage[] = []
  /**
   * Local messages a commit record may leave out when it would not fit otherwise: outcomes of
   * activities, whose task items stay pending until a record consumes them, so that after a
   * crash the activity runs again and brings its outcome back (at least once, as always).
   */
  readonly recreatable = new WeakSet<ActorMessage>()
  #committed: CursorFields = { pos: [1, 0], lq: [] }

  /** Starts from a checkpoint: both views are the checkpoint's. */
  restore(fields: CursorFields): void {
    this.#committed = { pos: fields.pos, lq: fields.lq }
    this.pos = fields.pos
    this.local = fields.lq.slice()
  }

  /**
   * Notes a durable record (committed now, or replayed at recovery). A claim only marks the new
   * owner: on a NATS cluster records can land just before it, so it moves nothing.
   */
  apply(rec: CommitRecord): void {
    if (rec.claim) return
    this.#committed = { pos: rec.pos, lq: rec.lq }
  }

  /** Sets the live view back to the committed one (at recovery, after each replayed record). */
  rewind(): void {
    this.pos = this.#committed.pos
    this.local = this.#committed.lq.slice()
  }

  /**
   * The local queue as a record carries it within `budget` encoded bytes: every message that
   * cannot be made again, then recreatable ones, in order, while they fit (`sizeOf` measures one).
   * The ones left out stay in the live queue and are processed as usual.
   */
  fitLocal(budget: number, sizeOf: (msg: ActorMessage) => number): ActorMessage[] {
    let bytes = 0
    for (const msg of this.local) if (!this.recreatable.has(msg)) bytes += sizeOf(msg)
    return this.local.filter((msg) => {
      if (!this.recreatable.has(msg)) return true
      const size = sizeOf(msg)
      if (bytes + size > budget) return false
      bytes += size
      return true
    })
  }

  /** The committed view, for a checkpoint taken at the last committed record. */
  toCheckpoint(): CursorFields {
    return { pos: this.#committed.pos, lq: this.#committed.lq }
  }
}
