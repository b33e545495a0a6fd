/**
 * How a snapshot issues its item writes (runtime/partition/snapshot.ts): in waves issued in one
 * event-loop turn (so that they leave in one socket write), with at most 1,024 writes in flight per
 * connection over all the partitions that share it. Against a twin of the state bucket that holds
 * every write until the test releases it, so what is in flight at once is visible.
 */
import { describe, expect, it } from 'vitest'
import type { CommitRecord } from '../../actors/wire/messages.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import type { Checkpoint, StoredItem } from '../../runtime/nats/storage.ts'
import { SnapshotState, type CheckpointExtras, type SnapshotStore } from '../../runtime/partition/snapshot.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { waitFor } from '../tooling/harness.ts'

/** Item writes held until released, tagged with the synchronous turn that issued them. */
class HeldWrites {
  readonly held: Array<{ key: string; release: () => void }> = []
  /** The turns in which writes were issued. */
  readonly turnsUsed = new Set<number>()
  turn = 0
  #turnPending = false
  #seq = 0

  /** A new turn number once the current synchronous run has ended. */
  #noteTurn(): number {
    if (!this.#turnPending) {
      this.#turnPending = true
      queueMicrotask(() => {
        this.#turnPending = false
        this.turn++
      })
    }
    return this.turn
  }

  write(key: string): Promise<number> {
    this.turnsUsed.add(this.#noteTurn())
    return new Promise<number>((resolve) => {
      this.held.push({ key, release: () => resolve(++this.#seq) })
    })
  }

  /** Acknowledges the oldest held write (as one ack arriving in its own socket read would). */
  releaseOldest(): void {
    this.held.shift()!.release()
  }
}

/** One partition's state bucket; item writes go to the shared {@link HeldWrites}. */
class HoldingStore implements SnapshotStore {
  #ckptRev = 0
  constructor(
    readonly p: number,
    readonly nc: object,
    readonly writes: HeldWrites,
  ) {}
  async readItem(): Promise<StoredItem> {
    return { value: null, rev: 0, epoch: 0 }
  }
  writeItem(key: string): Promise<number> {
    return this.writes.write(key)
  }
  async readCheckpoint(): Promise<{ ckpt: Checkpoint | null; rev: number }> {
    return { ckpt: null, rev: this.#ckptRev }
  }
  async writeCheckpoint(): Promise<number> {
    return ++this.#ckptRev
  }
  async readCheckpointAfter(): Promise<null> {
    return null
  }
  async listStoredKeys(): Promise<string[]> {
    return []
  }
  async listKeys(): Promise<string[]> {
    return []
  }
  async truncateLog(): Promise<void> {}
  async truncateMailbox(): Promise<void> {}
}

const extras = (): CheckpointExtras => ({ dedup: { dc: [], dp: [] }, outbox: [] })

/** A committed record writing `count` new activity items (eager: written without a revision read). */
function record(p: number, count: number): CommitRecord {
  const w: CommitRecord['w'] = Array.from({ length: count }, (_, i) => [
    itemKey.activity(p, `i${i}`, 1),
    encode(i),
  ])
  return { v: 1, n: 1, e: 1, o: 1, pos: [2, 0], w, dc: [], dp: [], out: [], rep: [], lq: [] }
}

describe('snapshot item writes', () => {
  it('go out in waves issued together, at most 1,024 in flight per connection over all partitions', async () => {
    const nc = {}
    const writes = new HeldWrites()
    const snaps = await Promise.all(
      [0, 1, 2].map(async (p) => {
        const snap = new SnapshotState(new HoldingStore(p, nc, writes), silentLogger)
        await snap.claim(1, p)
        snap.committed(record(p, 400), 1)
        return snap
      }),
    )
    const done = snaps.map((s) => s.take(extras))
    let most = 0
    for (let acked = 0; acked < 1200; acked++) {
      await waitFor(() => writes.held.length > 0, `snapshot writes after ${acked} of 1200 acks`, 5_000)
      most = Math.max(most, writes.held.length)
      expect(writes.held.length, `writes in flight after ${acked} of 1200 acks`).toBeLessThanOrEqual(1024)
      // acks arrive one by one, each in an event-loop turn of its own (its own socket read)
      writes.releaseOldest()
      await new Promise((resolve) => setImmediate(resolve))
    }
    await Promise.all(done)
    expect(most, 'most writes in flight at once').toBe(1024)
    // 3 partitions × 400 items in waves of 16 (25 per partition): a turn per wave at most
    expect(writes.turnsUsed.size, 'turns that issued the 1200 writes').toBeLessThanOrEqual(75)
  })
})
