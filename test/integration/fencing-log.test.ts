/**
 * Fencing that does not depend on the order of the server's checks (see `runtime/partition/log-fence.ts`):
 * message ids unique to each writer, duplicate answers checked against the stored bytes, stale
 * records that slipped into the log ignored on replay without fencing the owner, and snapshot
 * writes that never overwrite a newer owner's value.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { jetstream } from '@nats-io/jetstream'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { connectTo, closeConnection } from '../../runtime/nats/connect.ts'
import { ensureHub } from '../../runtime/nats/hub.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { SnapshotState } from '../../runtime/partition/snapshot.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { PartitionStorage } from '../../runtime/nats/storage.ts'
import { isWrongLastSequence } from '../../runtime/nats/errors.ts'
import { LogFence } from '../../runtime/partition/log-fence.ts'
import { WIRE_VERSION, type CommitRecord } from '../../actors/wire/messages.ts'
import { FencedError } from '../../actors/errors.ts'
import { Counter } from '../fixtures/entities.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const nodes: Node[] = []
afterAll(async () => {
  for (const n of nodes) await n.stop()
})

function record(n: number, e: number, o: number, extra: Partial<CommitRecord> = {}): CommitRecord {
  return { v: WIRE_VERSION, n, e, o, pos: [1, 0], w: [], dc: [], dp: [], out: [], rep: [], lq: [], ...extra }
}

describe('log fence (pure)', () => {
  it('lets a claim make its writer the owner and ignores other writers after it', () => {
    const fence = new LogFence()
    expect(fence.accept(record(1, 1, 11, { claim: 1 }))).toBe(true)
    expect(fence.accept(record(2, 1, 11))).toBe(true)
    expect(fence.accept(record(3, 2, 22, { claim: 1 }))).toBe(true)
    // the owner of epoch 1 appended once more, after the claim of epoch 2: it does not count
    expect(fence.accept(record(3, 1, 11))).toBe(false)
    expect(fence.accept(record(4, 2, 22))).toBe(true)
    // a second run of epoch 2 (another token) counts only after its own claim
    expect(fence.counts(record(5, 2, 33))).toBe(false)
    expect(fence.accept(record(5, 2, 33, { claim: 1 }))).toBe(true)
    expect(fence.accept(record(6, 2, 22))).toBe(false)
    expect(fence.accept(record(6, 2, 33))).toBe(true)
    // a late claim of an older epoch does not take the log back
    expect(fence.accept(record(7, 1, 11, { claim: 1 }))).toBe(false)
    expect(fence.owner).toEqual({ e: 2, o: 33 })
  })
})

describe('checkpoint claims', () => {
  it('find a checkpoint stored after a revision, and claim from the newest one on a real server', async () => {
    const nc = await connectTo(nats.url, 'test')
    const hub = await ensureHub(nc, 'ckpt-after', { partitions: 2 })
    const storage = new PartitionStorage(nc, hub, 1)
    const first = await new SnapshotState(storage, silentLogger).claim(1, 1)
    expect(first.ckpt).toBeNull()
    const { rev: claimed } = await storage.readCheckpoint()
    const { ckpt } = await storage.readCheckpoint()
    const later = await storage.writeCheckpoint({ ...ckpt!, n: 4, logSeq: 40 }, claimed)
    expect(await storage.readCheckpointAfter(claimed)).toEqual({
      ckpt: expect.objectContaining({ e: 1, n: 4, logSeq: 40 }),
      rev: later,
    })
    expect(await storage.readCheckpointAfter(later)).toBeNull()
    const next = await new SnapshotState(storage, silentLogger).claim(2, 1)
    expect(next.ckpt).toMatchObject({ e: 1, n: 4, logSeq: 40 })
    expect((await storage.readCheckpoint()).ckpt).toMatchObject({ e: 2, n: 4, logSeq: 40 })
    await closeConnection(nc)
  })
})

describe('log appends', () => {
  it("rejects a stale owner's append that reuses a record number the new owner took (mechanism 1)", async () => {
    const nc = await connectTo(nats.url, 'test')
    const hub = await ensureHub(nc, 'mech1', { partitions: 4 })
    const storage = new PartitionStorage(nc, hub, 3)
    const a = { e: 1, o: 1 }
    const b = { e: 2, o: 2 }
    const a1 = await storage.append(encode(record(1, 1, 1)), 1, a, 0)
    const b2 = await storage.append(encode(record(2, 2, 2, { claim: 1 })), 2, b, a1)
    // the stale owner appends its record 2, still expecting its own record 1 last: on 2.9.10 a
    // reused message id would be answered as a duplicate of B's claim before the sequence check
    const stale = await storage.append(encode(record(2, 1, 1)), 2, a, a1).catch((e: unknown) => e)
    expect(isWrongLastSequence(stale), `stale append outcome: ${String(stale)}`).toBe(true)
    const b3 = await storage.append(encode(record(3, 2, 2)), 3, b, b2)
    expect(b3).toBeGreaterThan(b2)
    expect((await storage.logAfter(0)).map(({ rec }) => [rec.n, rec.e])).toEqual([
      [1, 1],
      [2, 2],
      [3, 2],
    ])
    await closeConnection(nc)
  })

  it('takes a duplicate answer as success only when the stored record is the same bytes', async () => {
    const nc = await connectTo(nats.url, 'test')
    const hub = await ensureHub(nc, 'dup', { partitions: 1 })
    const storage = new PartitionStorage(nc, hub, 0)
    const w = { e: 1, o: 7 }
    const bytes = encode(record(1, 1, 7))
    const seq = await storage.append(bytes, 1, w, 0)
    // a retry of the same append (it did land): answered from the duplicate window, accepted
    expect(await storage.append(bytes, 1, w, 0)).toBe(seq)
    // other bytes under the same id: not ours, so a fencing rejection
    const other = await storage
      .append(encode(record(1, 1, 7, { pos: [5, 0] })), 1, w, 0)
      .catch((e: unknown) => e)
    expect(isWrongLastSequence(other), `outcome: ${String(other)}`).toBe(true)
    await closeConnection(nc)
  })
})

describe('a stale record in the log', () => {
  it('is ignored on replay and does not fence the owner that appends after it', async () => {
    const hubName = 'slip'
    const node = await Node.start({
      servers: nats.url,
      hub: hubName,
      registry: [Counter],
      partitions: 1,
      placement: 'static',
      logger: silentLogger,
    })
    nodes.push(node)
    const client = await Client.connect({ servers: nats.url, hub: hubName })
    await client.entity(Counter, 'a').signal.add(5)
    expect(await client.entity(Counter, 'a').call.get()).toBe(5)
    const epoch = node.partitions.get(0)!.options.epoch

    // What a NATS cluster lets through: an older owner's record landing after the current
    // owner's claim. It would set counter 'a' to 999.
    const nc = await connectTo(nats.url, 'forger')
    const hub = await ensureHub(nc, hubName)
    const forged = record(node.partitions.get(0)!.committedN + 1, epoch - 1, 12345, {
      w: [[itemKey.entity(0, 'Counter', 'a'), encode(999)]],
    })
    await jetstream(nc).publish(hub.names.log(0), encode(forged))

    // the owner's next append is rejected (the log moved on); it reads what came, finds only a
    // stale record, and goes on after it instead of stopping
    await client.entity(Counter, 'a').signal.add(1)
    expect(await client.entity(Counter, 'a').call.get()).toBe(6)
    expect(node.partitions.size).toBe(1)

    // a new owner replaying the log ignores the stale record
    const newer = await Node.start({
      servers: nats.url,
      hub: hubName,
      registry: [Counter],
      placement: 'static',
      logger: silentLogger,
    })
    nodes.push(newer)
    await waitFor(() => node.partitions.size === 0, 'the older node to be fenced by the newer claim')
    expect(await client.entity(Counter, 'a').call.get()).toBe(6)
    await client.entity(Counter, 'a').signal.add(1)
    expect(await client.readEntityState(Counter, 'a')).toEqual({ exists: true, state: 7 })
    await client.close()
    await closeConnection(nc)
  })
})

describe('snapshot writes', () => {
  it('never overwrite an item that a newer owner wrote (mechanism 2)', async () => {
    const nc = await connectTo(nats.url, 'test')
    const hub = await ensureHub(nc, 'snapfence', { partitions: 2 })
    const storage = new PartitionStorage(nc, hub, 1)
    const key = itemKey.entity(1, 'Counter', 'x')
    // the stale owner (epoch 3) claims, then commits a write of x it never read
    const stale = new SnapshotState(storage, silentLogger)
    await stale.claim(3, 1)
    stale.committed(record(1, 3, 3, { claim: 1 }), 1)
    stale.committed(record(2, 3, 3, { w: [[key, encode(1)]] }), 2)
    // meanwhile a newer owner (epoch 4) wrote x
    await storage.writeItem(key, encode(50), 0, 4)
    const err = await stale.take(() => ({ dedup: { dc: [], dp: [] }, outbox: [] })).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FencedError)
    expect((await storage.readItem(key)).value).toEqual(encode(50))
    await closeConnection(nc)
  })
})
