/**
 * Item reads on a replicated hub against a stream leader elected moments ago that has not applied
 * every committed write yet (nats-server before 2.11), with a fake hub (no NATS): a read waits
 * until the leader shows this owner's latest checkpoint, so it never returns an item's older value.
 */
import { describe, expect, it } from 'vitest'
import { idleConnection } from '../tooling/fake-connection.ts'
import { PartitionStorage, type Checkpoint } from '../../runtime/nats/storage.ts'
import { HubNames, type Hub } from '../../runtime/nats/hub.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { encode } from '../../runtime/nats/codec.ts'

interface Stored {
  seq: number
  subject: string
  data: Uint8Array
}

/** A state stream whose leader shows only the messages up to `applied`. */
function lagging(replicas: number, messages: Stored[], applied: { seq: number }) {
  const names = new HubNames('stale')
  const noMessage = () => Object.assign(new Error('no message found'), { code: 10037 })
  const shown = (m: Stored) => m.seq <= applied.seq
  const nc = idleConnection()
  const stored = (m: Stored) => ({ seq: m.seq, subject: m.subject, data: m.data, header: undefined })
  const hub = {
    names,
    meta: { v: 1, partitions: 4, replicas, created: 0 },
    jsm: {
      streams: {
        getMessage: async (
          _stream: string,
          q: { last_by_subj?: string; next_by_subj?: string; seq?: number },
        ) => {
          const visible = messages.filter(shown)
          const found =
            q.last_by_subj !== undefined
              ? visible.filter((m) => m.subject === q.last_by_subj).at(-1)
              : visible.find((m) => m.subject === q.next_by_subj && m.seq >= (q.seq ?? 0))
          if (found === undefined) throw noMessage()
          return stored(found)
        },
      },
    },
  } as unknown as Hub
  const storage = new PartitionStorage(nc, hub, 1)
  return { storage, names }
}

describe('item reads from a lagging stream leader', () => {
  const key = itemKey.entity(1, 'Counter', 'a')
  const ckpt = { e: 2, n: 4, logSeq: 40, pos: [5, 0] } as unknown as Checkpoint
  const setUp = (replicas: number) => {
    const names = new HubNames('stale')
    const messages: Stored[] = [
      { seq: 3, subject: names.stateSubject(key), data: encode(1) },
      { seq: 6, subject: names.stateSubject(key), data: encode(9) },
      { seq: 7, subject: names.stateSubject(itemKey.checkpoint(1)), data: encode(ckpt) },
    ]
    const applied = { seq: 5 } // the new leader applied up to 5: it shows the item's older value
    const { storage } = lagging(replicas, messages, applied)
    // this owner's checkpoint write was acknowledged at 7 (by the leader before)
    ;(storage as unknown as { fast: unknown }).fast = { publish: async () => 7 }
    return { storage, applied }
  }

  it("waits until the leader shows this owner's checkpoint, then reads the latest value", async () => {
    const { storage, applied } = setUp(3)
    await storage.writeCheckpoint(ckpt, 0)
    setTimeout(() => (applied.seq = 7), 100)
    const started = Date.now()
    const item = await storage.readItem(key)
    expect(item).toMatchObject({ rev: 6, value: encode(9) })
    expect(Date.now() - started).toBeGreaterThanOrEqual(90)
  })

  it('reads at once when the leader shows the checkpoint already', async () => {
    const { storage, applied } = setUp(3)
    await storage.writeCheckpoint(ckpt, 0)
    applied.seq = 7
    expect(await storage.readItem(key)).toMatchObject({ rev: 6, value: encode(9) })
  })

  it('before its own first checkpoint write an owner has nothing to wait for', async () => {
    const { storage } = setUp(3)
    expect(await storage.readItem(key)).toMatchObject({ rev: 3, value: encode(1) })
  })
})
