/**
 * The dedup slice of a partition (Netherite's `DedupState`): which mailbox envelopes were already
 * processed, so that a client's re-sent batch or another partition's re-sent outbox record is
 * applied once. Clients number their batches (`q`), partitions their records (`n`); both only
 * grow, and a source sends in order — but a replicated stream may store a retried envelope after
 * the next one, so each source keeps its highest number and which of the 32 below it were seen.
 *
 * One owner holds the tables in two parts: the *committed* view (what the log's records and the
 * checkpoint say) and the *pending* deltas of rounds processed but not yet committed (the loop runs
 * ahead of its commits when pipelining). Duplicates are decided over both; a record carries the
 * delta of its round; a checkpoint takes the committed view only, which is exactly the state at the
 * last committed record — the boundary a snapshot is taken at.
 */
import type { CommitRecord } from '../../actors/wire/index.ts'

/** How long a client's last batch number is kept in checkpoints after it was last seen. */
export const CLIENT_DEDUP_RETENTION_MS = 24 * 3600 * 1000

/** Where an envelope came from: a client's batch, or another partition's commit record. */
export type DedupSource = { client: string; batch: number } | { partition: number; record: number }

/** The dedup fields of a commit record or a checkpoint. */
export interface DedupTables {
  dc: CommitRecord['dc']
  dp: CommitRecord['dp']
}

/**
 * What was seen of one source: the highest number, and a mask of the {@link WINDOW} numbers below
 * it (bit i: `last - 1 - i` was seen). Entries written before masks existed read as all seen.
 */
interface Seen {
  last: number
  mask: number
}

/**
 * How far below the highest number an envelope still counts as new. A source sends in order, but
 * on a NATS cluster (nats-server 2.9.10 seen in the chaos test) the stream can store a retried
 * batch after the next one: batch 257 at sequence 2362, then batch 256 — acknowledged earlier — at
 * 2363. With only the highest number kept, 256 was dropped as a duplicate, a lost signal.
 */
const WINDOW = 32

const ALL_SEEN = 0xffffffff

function seenOf(last: number, mask: number | undefined): Seen {
  return { last, mask: mask ?? ALL_SEEN }
}

function isSeen(seen: Seen | undefined, n: number): boolean {
  if (seen === undefined || n > seen.last) return false
  if (n === seen.last) return true
  const d = seen.last - n - 1
  return d >= WINDOW || ((seen.mask >>> d) & 1) === 1
}

function withSeen(seen: Seen | undefined, n: number): Seen {
  if (seen === undefined) return { last: n, mask: 0 }
  if (n > seen.last) {
    const shift = n - seen.last
    const moved = shift >= WINDOW ? 0 : (seen.mask << shift) >>> 0
    const previous = shift - 1 < WINDOW ? (1 << (shift - 1)) >>> 0 : 0
    return { last: n, mask: (moved | previous) >>> 0 }
  }
  if (n === seen.last) return seen
  const d = seen.last - n - 1
  return d >= WINDOW ? seen : { last: seen.last, mask: (seen.mask | (1 << d)) >>> 0 }
}

interface Delta {
  /** Record number of the round the delta belongs to (0 while the round is open). */
  n: number
  clients: Map<string, [seen: Seen, at: number]>
  origins: Map<number, Seen>
}

function emptyDelta(): Delta {
  return { n: 0, clients: new Map(), origins: new Map() }
}

/** The one owner of a partition's dedup tables. */
export class DedupState {
  readonly #clients = new Map<string, [seen: Seen, at: number]>()
  readonly #origins = new Map<number, Seen>()
  /** Deltas of sealed rounds not yet committed, oldest first. */
  #sealed: Delta[] = []
  #open = emptyDelta()

  /** Starts from a checkpoint's tables (committed). */
  restore(ckpt: DedupTables): void {
    for (const [c, q, at, m] of ckpt.dc) this.#clients.set(c, [seenOf(q, m), at])
    for (const [p, n, m] of ckpt.dp) this.#origins.set(p, seenOf(n, m))
  }

  /** Whether an envelope from `from` was processed already (committed or pending). */
  isDuplicate(from: DedupSource): boolean {
    if ('client' in from) return isSeen(this.#client(from.client), from.batch)
    return isSeen(this.#origin(from.partition), from.record)
  }

  /** Notes that the open round processes an envelope from `from` (seen at `now`, in ms). */
  accept(from: DedupSource, now: number): void {
    if ('client' in from) {
      this.#open.clients.set(from.client, [withSeen(this.#client(from.client), from.batch), now])
    } else this.#open.origins.set(from.partition, withSeen(this.#origin(from.partition), from.record))
  }

  /** Ends the open round as record `n`: returns its delta, for the record. */
  seal(n: number): DedupTables {
    const delta = this.#open
    this.#open = emptyDelta()
    delta.n = n
    this.#sealed.push(delta)
    return {
      dc: [...delta.clients].map(([c, [s, at]]) => [c, s.last, at, s.mask]),
      dp: [...delta.origins].map(([p, s]) => [p, s.last, s.mask]),
    }
  }

  /** Applies a durable record (committed now, or replayed at recovery) to the committed view. */
  apply(rec: Pick<CommitRecord, 'n' | 'dc' | 'dp'>): void {
    for (const [c, q, at, m] of rec.dc) this.#clients.set(c, [seenOf(q, m), at])
    for (const [p, n, m] of rec.dp) this.#origins.set(p, seenOf(n, m))
    while (this.#sealed.length > 0 && this.#sealed[0]!.n <= rec.n) this.#sealed.shift()
  }

  /**
   * The committed tables, for a checkpoint at the last applied record; clients not seen for
   * {@link CLIENT_DEDUP_RETENTION_MS} are left out.
   */
  toCheckpoint(now = Date.now()): DedupTables {
    return {
      dc: [...this.#clients]
        .filter(([, [, at]]) => now - at < CLIENT_DEDUP_RETENTION_MS)
        .map(([c, [s, at]]) => [c, s.last, at, s.mask]),
      dp: [...this.#origins].map(([p, s]) => [p, s.last, s.mask]),
    }
  }

  /** What was seen of a client: the newest pending state, else the committed one. */
  #client(client: string): Seen | undefined {
    return this.#newest((d) => d.clients.get(client)?.[0]) ?? this.#clients.get(client)?.[0]
  }

  /** What was seen of an origin partition: the newest pending state, else the committed one. */
  #origin(p: number): Seen | undefined {
    return this.#newest((d) => d.origins.get(p)) ?? this.#origins.get(p)
  }

  /** The newest pending state of a source: the open round's, else the newest sealed round's. */
  #newest(of: (d: Delta) => Seen | undefined): Seen | undefined {
    const open = of(this.#open)
    if (open !== undefined) return open
    for (let i = this.#sealed.length - 1; i >= 0; i--) {
      const sealed = of(this.#sealed[i]!)
      if (sealed !== undefined) return sealed
    }
    return undefined
  }
}
