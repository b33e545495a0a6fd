/**
 * The dedup slice of a partition (Netherite's `DedupState`): which mailbox envelopes were already
 * processed, so that a client's re-sent batch or another partition's re-sent outbox record is
 * applied once. Clients number their batches (`q`), partitions their records (`n`); both only
 * grow, so one number per source decides.
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

interface Delta {
  /** Record number of the round the delta belongs to (0 while the round is open). */
  n: number
  clients: Map<string, [q: number, at: number]>
  origins: Map<number, number>
}

function emptyDelta(): Delta {
  return { n: 0, clients: new Map(), origins: new Map() }
}

/** The one owner of a partition's dedup tables. */
export class DedupState {
  readonly #clients = new Map<string, [q: number, at: number]>()
  readonly #origins = new Map<number, number>()
  /** Deltas of sealed rounds not yet committed, oldest first. */
  #sealed: Delta[] = []
  #open = emptyDelta()

  /** Starts from a checkpoint's tables (committed). */
  restore(ckpt: DedupTables): void {
    for (const [c, q, at] of ckpt.dc) this.#clients.set(c, [q, at])
    for (const [p, n] of ckpt.dp) this.#origins.set(p, n)
  }

  /** Whether an envelope from `from` was processed already (committed or pending). */
  isDuplicate(from: DedupSource): boolean {
    if ('client' in from) {
      const last = this.#newest((d) => d.clients.get(from.client)?.[0]) ?? this.#clients.get(from.client)?.[0]
      return last !== undefined && from.batch <= last
    }
    const last = this.#newest((d) => d.origins.get(from.partition)) ?? this.#origins.get(from.partition)
    return from.record <= (last ?? 0)
  }

  /** Notes that the open round processes an envelope from `from` (seen at `now`, in ms). */
  accept(from: DedupSource, now: number): void {
    if ('client' in from) this.#open.clients.set(from.client, [from.batch, now])
    else this.#open.origins.set(from.partition, from.record)
  }

  /** Ends the open round as record `n`: returns its delta, for the record. */
  seal(n: number): DedupTables {
    const delta = this.#open
    this.#open = emptyDelta()
    delta.n = n
    this.#sealed.push(delta)
    return {
      dc: [...delta.clients].map(([c, [q, at]]) => [c, q, at]),
      dp: [...delta.origins],
    }
  }

  /** Applies a durable record (committed now, or replayed at recovery) to the committed view. */
  apply(rec: Pick<CommitRecord, 'n' | 'dc' | 'dp'>): void {
    for (const [c, q, at] of rec.dc) this.#clients.set(c, [q, at])
    for (const [p, n] of rec.dp) this.#origins.set(p, n)
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
        .map(([c, [q, at]]) => [c, q, at]),
      dp: [...this.#origins],
    }
  }

  /** The newest pending number of a source: the open round's, else the newest sealed round's. */
  #newest(of: (d: Delta) => number | undefined): number | undefined {
    const open = of(this.#open)
    if (open !== undefined) return open
    for (let i = this.#sealed.length - 1; i >= 0; i--) {
      const sealed = of(this.#sealed[i]!)
      if (sealed !== undefined) return sealed
    }
    return undefined
  }
}
