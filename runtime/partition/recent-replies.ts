/**
 * The replies a partition sent lately, kept so that a client can ask for them again.
 *
 * Replies travel over core NATS, which delivers at most once: a client whose server dies, or that
 * reconnects while a reply is on its way, loses it although the call was committed. The client
 * then asks the partition (a `replies` query naming its inbox and the request ids it still waits
 * for) and gets them from here. Bounded by age and by an estimate of bytes; what fell out was
 * sent long enough ago that the caller's own timeout decides.
 *
 * They also travel with the partition: each snapshot stores those sent since the previous one as
 * a segment (an item in a ring of slots, `rep.<p>.<slot>`) and its checkpoint lists the segments
 * still young enough, so a new owner starts from them, and a reply lost just before a move is
 * still there when the caller asks the next owner — even if a checkpoint covered its record and
 * the log was truncated below it. Each reply is stored once, not again at every snapshot for as
 * long as it is kept (under load that was the largest write of a snapshot: hundreds of kB per
 * partition). The first snapshot of a run stores every reply kept, and its checkpoint lists that
 * segment alone: a partition restarted in the same process keeps its memory, not its segments.
 */
import type { Reply } from '../../actors/wire/index.ts'
import { encode } from '../nats/index.ts'

/** A rough per-reply overhead in memory (the tuple, its slot, the view on the batch's buffer). */
const REPLY_OVERHEAD = 128

interface Sent {
  /** Order of the batch in this memory (stored segments hold a run of it). */
  seq: number
  at: number
  inbox: string
  replies: Reply[]
  bytes: number
  /** The batch as one stored entry, encoded at the first snapshot that kept it (see {@link encodedEntries}). */
  entry?: Uint8Array
}

/** Stored form: [sent at (ms), inbox, replies], oldest first. */
export type RepliesEntry = [at: number, inbox: string, replies: Reply[]]

/** A segment of replies to store with a snapshot (see {@link RecentReplies.segment}). */
export interface RepliesSegment {
  /** The encoded entries (an array of {@link RepliesEntry}); empty when nothing is kept. */
  bytes: Uint8Array
  /** When the newest of them was sent (ms). */
  newest: number
  /** Stored segments whose newest reply was sent before this (ms) hold nothing kept any more. */
  expired: number
  /** Most bytes the stored segments together should hold. */
  maxBytes: number
  /** The checkpoint that lists the segment is written: later segments start after it. */
  stored(): void
}

/** Replies sent lately, by inbox (see the module comment). */
export class RecentReplies {
  readonly #byInbox = new Map<string, Sent[]>()
  /** Every batch in the order sent; the oldest leave first. */
  #order: Sent[] = []
  #head = 0
  #bytes = 0
  #seq = 0
  /** The newest batch in a stored segment (its `seq`; -1: none yet). */
  #storedSeq = -1

  constructor(
    /** Memory kept at most (estimated): at 128 bytes a reply plus its value, some 8,000 small replies. */
    readonly maxBytes = 1024 * 1024,
    readonly maxAgeMs = 120_000,
    readonly now: () => number = Date.now,
  ) {}

  /** Keeps a batch of replies just sent to `inbox`. */
  remember(inbox: string, replies: Reply[]): void {
    this.#keep(this.now(), inbox, replies)
    this.#trim()
  }

  /**
   * The kept replies to `inbox` whose request ids are in `rids`, oldest first, as many as fit in
   * about `maxBytes` (the client asks again for the rest).
   */
  find(inbox: string, rids: Iterable<number>, maxBytes = Infinity): Reply[] {
    this.#trim()
    const list = this.#byInbox.get(inbox)
    if (list === undefined) return []
    const wanted = new Set(rids)
    const found: Reply[] = []
    let bytes = 0
    for (const sent of list) {
      for (const r of sent.replies) {
        if (!wanted.has(r[0])) continue
        bytes += 32 + (r[1] === 1 ? r[2].length : 256)
        if (bytes > maxBytes && found.length > 0) return found
        found.push(r)
      }
    }
    return found
  }

  /**
   * The segment to store with the next snapshot: the batches sent since the last stored segment
   * (all the kept ones with `all`), as many of the newest as fit in about `maxBytes`; undefined
   * when there are none and not `all`.
   */
  segment(maxBytes: number, all: boolean): RepliesSegment | undefined {
    let kept = this.#newest(maxBytes)
    if (!all) kept = kept.filter((sent) => sent.seq > this.#storedSeq)
    if (kept.length === 0 && !all) return undefined
    const parts: Uint8Array[] = [arrayHeader(kept.length)]
    for (const sent of kept) parts.push((sent.entry ??= encode([sent.at, sent.inbox, sent.replies])))
    const last = kept.at(-1)
    return {
      bytes: Buffer.concat(parts),
      newest: last?.at ?? 0,
      expired: this.now() - this.maxAgeMs,
      maxBytes: this.maxBytes,
      stored: () => {
        if (last !== undefined && last.seq > this.#storedSeq) this.#storedSeq = last.seq
      },
    }
  }

  /** The newest kept batches that fit in about `maxBytes`, oldest first. */
  #newest(maxBytes: number): Sent[] {
    this.#trim()
    const out: Sent[] = []
    let bytes = 0
    for (let i = this.#order.length - 1; i >= this.#head; i--) {
      const sent = this.#order[i]!
      bytes += sent.bytes + sent.inbox.length
      if (bytes > maxBytes) break
      out.push(sent)
    }
    return out.reverse()
  }

  /** Takes stored batches in (the replies a previous owner kept), unless this one holds some already. */
  restore(entries: RepliesEntry[]): void {
    if (this.#head < this.#order.length) return
    for (const [at, inbox, replies] of entries) this.#keep(at, inbox, replies)
    this.#trim()
  }

  /**
   * Adds a batch, its values copied into one buffer of the batch's own: a value is usually a view
   * on a much larger buffer (the encoder's, a whole record's, the stored item a new owner read),
   * which keeping the view would keep alive for as long as the reply.
   */
  #keep(at: number, inbox: string, replies: Reply[]): void {
    let values = 0
    for (const r of replies) if (r[1] === 1) values += r[2].length
    const buffer = new Uint8Array(values)
    let offset = 0
    const kept = replies.map((r): Reply => {
      if (r[1] !== 1) return r
      buffer.set(r[2], offset)
      return [r[0], 1, buffer.subarray(offset, (offset += r[2].length))]
    })
    const bytes = values + REPLY_OVERHEAD * replies.length
    const sent: Sent = { seq: this.#seq++, at, inbox, replies: kept, bytes }
    let list = this.#byInbox.get(inbox)
    if (list === undefined) this.#byInbox.set(inbox, (list = []))
    list.push(sent)
    this.#order.push(sent)
    this.#bytes += sent.bytes
  }

  /** Number of replies kept (for tests). */
  get size(): number {
    let n = 0
    for (let i = this.#head; i < this.#order.length; i++) n += this.#order[i]!.replies.length
    return n
  }

  #trim(): void {
    const oldest = this.now() - this.maxAgeMs
    while (this.#head < this.#order.length) {
      const sent = this.#order[this.#head]!
      if (this.#bytes <= this.maxBytes && sent.at >= oldest) break
      this.#head++
      this.#bytes -= sent.bytes
      const list = this.#byInbox.get(sent.inbox)!
      list.shift() // batches of one inbox leave in the order they came
      if (list.length === 0) this.#byInbox.delete(sent.inbox)
    }
    if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head)
      this.#head = 0
    }
  }
}

/** The msgpack header of an array of `n` elements (fixarray, array 16 or array 32). */
function arrayHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x90 | n)
  if (n < 0x10000) return Uint8Array.of(0xdc, n >> 8, n & 0xff)
  return Uint8Array.of(0xdd, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}
