/**
 * Snapshot fencing (runtime/partition/snapshot.ts) against an in-memory twin of the state bucket:
 * conditional writes by revision, an epoch on every item, as JetStream KV does. A newer epoch's
 * item is never overwritten; a stale owner's item is.
 */
import { describe, expect, it } from 'vitest'
import { FencedError } from '../../actors/errors.ts'
import type { CommitRecord } from '../../actors/wire/messages.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { SnapshotState, type CheckpointExtras } from '../../runtime/partition/snapshot.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { MemoryStore } from '../tooling/memory-store.ts'

const extras = (): CheckpointExtras => ({ dedup: { dc: [], dp: [] }, outbox: [] })

function record(n: number, e: number, w: CommitRecord['w'] = [], claim = false): CommitRecord {
  const r: CommitRecord = { v: 1, n, e, o: e, pos: [n + 1, 0], w, dc: [], dp: [], out: [], rep: [], lq: [] }
  if (claim) r.claim = 1
  return r
}

describe('snapshot fencing', () => {
  it('writes committed items and then the checkpoint, and truncates below it', async () => {
    const store = new MemoryStore(1)
    const snap = new SnapshotState(store, silentLogger)
    await snap.claim(2, 1)
    const key = itemKey.entity(1, 'Counter', 'a')
    snap.committed(record(1, 2, [[key, encode(5)]]), 10)
    await snap.take(extras)
    expect(store.items.get(key)).toMatchObject({ value: encode(5), epoch: 2 })
    const { ckpt } = await store.readCheckpoint()
    expect(ckpt).toMatchObject({ e: 2, n: 1, logSeq: 10, pos: [2, 0] })
    expect(store.truncated).toEqual([
      ['log', 10],
      ['mailbox', 2],
    ])
  })

  it('never overwrites an item a newer epoch wrote: the stale owner is fenced', async () => {
    const store = new MemoryStore(1)
    const stale = new SnapshotState(store, silentLogger)
    await stale.claim(3, 1)
    const key = itemKey.entity(1, 'Counter', 'x')
    stale.committed(record(1, 3, [[key, encode(1)]]), 1)
    await store.writeItem(key, encode(50), 0, 4) // a newer owner (epoch 4) wrote x meanwhile
    const err = await stale.take(extras).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FencedError)
    expect(store.items.get(key)).toMatchObject({ value: encode(50), epoch: 4 })
  })

  it('overwrites an item a stale owner (older epoch) wrote', async () => {
    const store = new MemoryStore(1)
    const owner = new SnapshotState(store, silentLogger)
    await owner.claim(5, 1)
    const key = itemKey.entity(1, 'Counter', 'y')
    expect(await owner.read(key)).toBeNull() // read: revision 0 known
    owner.committed(record(1, 5, [[key, encode(7)]]), 1)
    await store.writeItem(key, encode(666), 0, 4) // a stale owner (epoch 4) slipped a write in
    await owner.take(extras)
    expect(store.items.get(key)).toMatchObject({ value: encode(7), epoch: 5 })
  })

  it('refuses to claim a checkpoint a newer epoch holds, and a claim fences the older owner', async () => {
    const store = new MemoryStore(1)
    const older = new SnapshotState(store, silentLogger)
    await older.claim(1, 1)
    const newer = new SnapshotState(store, silentLogger)
    await newer.claim(2, 1)
    await expect(new SnapshotState(store, silentLogger).claim(1, 1)).rejects.toBeInstanceOf(FencedError)
    older.committed(record(1, 1, [[itemKey.entity(1, 'T', 'k'), encode(1)]]), 1)
    await expect(older.take(extras)).rejects.toBeInstanceOf(FencedError)
    expect((await store.readCheckpoint()).ckpt).toMatchObject({ e: 2 })
    // the stale owner wrote no item: its successor would never write this one again
    expect(store.items.has(itemKey.entity(1, 'T', 'k'))).toBe(false)
  })

  it('claims from the newest checkpoint when the leader that answered the read showed an older one', async () => {
    const store = new MemoryStore(1)
    const first = new SnapshotState(store, silentLogger)
    await first.claim(1, 1)
    const claimedRev = store.checkpoints.at(-1)!.rev
    first.committed(record(1, 1, [[itemKey.entity(1, 'Counter', 'a'), encode(3)]]), 10)
    await first.take(extras)
    // a stream leader elected moments ago still shows the first claim (nats-server before 2.11)
    store.staleCheckpointRev = claimedRev
    const next = new SnapshotState(store, silentLogger)
    const { ckpt } = await next.claim(2, 1)
    expect(ckpt).toMatchObject({ e: 1, n: 1, logSeq: 10 })
    expect((await store.readCheckpoint()).ckpt).toMatchObject({ e: 2, n: 1, logSeq: 10 })
    // and its checkpoint revision is its own latest: its next snapshot writes
    next.committed(record(2, 2, [[itemKey.entity(1, 'Counter', 'a'), encode(4)]]), 12)
    await next.take(extras)
    expect((await store.readCheckpoint()).ckpt).toMatchObject({ e: 2, n: 2, logSeq: 12 })
  })

  it("stands down when the checkpoint a stale read hid is a newer owner's, and puts it back", async () => {
    const store = new MemoryStore(1)
    await new SnapshotState(store, silentLogger).claim(1, 1)
    const claimedRev = store.checkpoints.at(-1)!.rev
    await new SnapshotState(store, silentLogger).claim(3, 1)
    store.staleCheckpointRev = claimedRev
    await expect(new SnapshotState(store, silentLogger).claim(2, 1)).rejects.toBeInstanceOf(FencedError)
    expect((await store.readCheckpoint()).ckpt).toMatchObject({ e: 3 })
  })

  it('writes no item into a hub created again under the owner (its checkpoint is gone)', async () => {
    const store = new MemoryStore(1)
    const owner = new SnapshotState(store, silentLogger)
    await owner.claim(1, 1)
    const key = itemKey.entity(1, 'Counter', 'new')
    owner.markAbsent(key) // a key it never read: nothing to fence the write against
    owner.committed(record(1, 1, [[key, encode(5)]]), 1)
    store.items.clear() // deleted and created again: an empty bucket
    const err = await owner.take(extras).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FencedError)
    expect((err as Error).message).toMatch(/checkpoint is gone/)
    expect([...store.items.keys()]).toEqual([])
  })

  it('writes nothing while the node may not write (lease lapsed), and retries the items later', async () => {
    const store = new MemoryStore(1)
    let may = false
    const snap = new SnapshotState(store, silentLogger, () => may)
    await snap.claim(1, 1)
    const key = itemKey.entity(1, 'T', 'k')
    snap.committed(record(1, 1, [[key, encode(1)]]), 1)
    await expect(snap.take(extras)).rejects.toThrow(/lease lapsed/)
    expect(store.items.has(key)).toBe(false)
    expect(snap.isDirty(key)).toBe(true)
    may = true
    await snap.take(extras)
    expect(store.items.get(key)).toMatchObject({ value: encode(1) })
  })
})
