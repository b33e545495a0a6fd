/**
 * A partition's view of its items while a long read of the state bucket runs
 * (`PartitionHostPort.currentItems`, runtime/partition/host-port-impl.ts): a write committed and
 * stored while the read ran must win over what the read returned. An outside trial saw purged
 * instances listed again for a few seconds: the listing read a large bucket, a snapshot stored the
 * purge meanwhile (so it was no longer among the unstored writes), and the record the read had
 * returned showed through.
 */
import { describe, expect, it } from 'vitest'
import type { CommitRecord } from '../../actors/wire/messages.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { PartitionHostPort, type PortCore } from '../../runtime/partition/host-port-impl.ts'
import { SnapshotState, type CheckpointExtras } from '../../runtime/partition/snapshot.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { MemoryStore } from '../tooling/memory-store.ts'

const extras = (): CheckpointExtras => ({ dedup: { dc: [], dp: [] }, outbox: [] })

function record(n: number, w: CommitRecord['w']): CommitRecord {
  return { v: 1, n, e: 1, o: 1, pos: [n + 1, 0], w, dc: [], dp: [], out: [], rep: [], lq: [] }
}

describe('a partition’s current items during a long read of the bucket', () => {
  it('a write committed and stored while the read ran wins over what the read returned', async () => {
    const store = new MemoryStore(0)
    const snap = new SnapshotState(store, silentLogger)
    await snap.claim(1, 0)
    const purged = itemKey.instance(0, 'purged')
    const updated = itemKey.instance(0, 'updated')
    const kept = itemKey.instance(0, 'kept')
    // all three stored
    snap.committed(
      record(1, [
        [purged, encode('old')],
        [updated, encode('v1')],
        [kept, encode('k')],
      ]),
      1,
    )
    await snap.take(extras)
    const core = {
      p: 0,
      snap,
      open: () => ({ writes: new Map() }),
      inflight: () => null,
      storage: {
        // the read returns what the bucket held when it started; meanwhile a round purges one
        // record and updates another, and a snapshot stores both (no longer unstored writes)
        readItems: async () => {
          const seen: Array<[string, Uint8Array]> = [...store.items]
            .filter(([k, item]) => k !== itemKey.checkpoint(0) && item.value !== null)
            .map(([k, item]) => [k, item.value!])
          snap.committed(
            record(2, [
              [purged, null],
              [updated, encode('v2')],
            ]),
            2,
          )
          await snap.take(extras)
          return seen
        },
      },
    } as unknown as PortCore
    const port = new PartitionHostPort(core)
    const items = await port.currentItems('o.0.>', 'o.0.')
    expect(items.get(purged), 'the purge stored during the read').toBeNull()
    expect(items.get(updated), 'the update stored during the read').toEqual(encode('v2'))
    expect(items.get(kept), 'an item nobody touched').toEqual(encode('k'))
    // and nothing is collected once the read is over
    snap.committed(record(3, [[kept, null]]), 3)
    await snap.take(extras)
    expect((await port.currentItems('o.0.>', 'o.0.')).has(kept)).toBe(false)
  })
})
