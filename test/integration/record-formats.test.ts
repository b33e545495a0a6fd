/**
 * A node on a hub whose instance records were written in an earlier format reads them, and one
 * that finds a record of a format it does not know refuses it, naming the format — never treats it
 * as something else. The test stores the records as a node of the earlier (or a later) version
 * would have, over what the node snapshotted, then starts a node on the hub again.
 */
import { describe, expect, it } from 'vitest'
import { jetstreamManager } from '@nats-io/jetstream'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { decodeChunk, decodeRecord } from '../../runtime/instances/history-codec.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
import { HubNames, ensureHub } from '../../runtime/nats/hub.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { PartitionStorage } from '../../runtime/nats/storage.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

const add = activity('add', (n: number) => n + 1)

/**
 * `n` activities (40: a history of more than 64 events, a chunk and a tail), then an event, for at
 * most `ms` (a durable timer).
 */
const counting = orchestration('counting', function* (ctx, [n, ms]: [number, number]) {
  let total = 0
  for (let i = 0; i < n; i++) total += yield* ctx.callActivity(add, i)
  const bonus = yield* ctx.waitForEvent<number>('bonus', { timeoutMs: ms })
  return total + bonus
})

const nats = useNatsServer()

/** A node and client on `hub`; one partition, so the test knows where every item is. */
async function start(hub: string) {
  const node = await Node.start({
    servers: nats.url,
    hub,
    registry: [add, counting],
    partitions: 1,
    placement: 'static',
    snapshotIntervalMs: 100,
    logger: silentLogger,
  })
  const client = await Client.connect({ servers: nats.url, hub })
  return { node, client }
}

/** Runs `counting` up to its wait for the event, and stops the node once a snapshot stored it. */
async function runToWait(hub: string, id: string, waitMs: number): Promise<void> {
  const { node, client } = await start(hub)
  await client.start(counting, [40, waitMs], { instanceId: id })
  await waitFor(
    async () => (await client.getHistory(id)).filter((e) => e.e === 'completed').length === 40,
    'the 40 activities completed',
  )
  const nc = await connectTo(nats.url, 'test')
  const storage = new PartitionStorage(nc, await ensureHub(nc, hub), 0)
  const key = itemKey.instance(0, id)
  await waitFor(async () => {
    const { value } = await storage.readItem(key)
    if (value === null) return false
    const rec = decodeRecord(value, key)
    return rec.tail.some((e) => e.e === 'completed' && e.seq === 39)
  }, 'the record stored whole')
  await closeConnection(nc)
  await client.close()
  await node.stop()
}

/** Rewrites the instance's stored items with `rewrite` (record and chunks, as stored now). */
async function rewriteItems(
  hub: string,
  id: string,
  rewrite: (key: string, bytes: Uint8Array) => Uint8Array,
): Promise<string[]> {
  const nc = await connectTo(nats.url, 'test')
  const storage = new PartitionStorage(nc, await ensureHub(nc, hub), 0)
  const record = itemKey.instance(0, id)
  const rec = decodeRecord((await storage.readItem(record)).value!, record)
  const keys = [record, ...Array.from({ length: rec.hc }, (_, k) => itemKey.history(0, id, rec.hk, k))]
  for (const key of keys) {
    const item = await storage.readItem(key)
    await storage.writeItem(key, rewrite(key, item.value!), item.rev, item.epoch)
  }
  await closeConnection(nc)
  return keys
}

describe('instance records of another format', () => {
  it('written by the version before packing (format 1) are read, and the instance goes on', async () => {
    const hub = 'record-format-1'
    await runToWait(hub, 'old', 60_000)
    const keys = await rewriteItems(hub, 'old', (key, bytes) =>
      key.startsWith('o.') ? encode({ ...decodeRecord(bytes, key), v: 1 }) : encode(decodeChunk(bytes, key)),
    )
    expect(keys.length, 'record and at least one chunk').toBeGreaterThan(1)

    const { node, client } = await start(hub)
    try {
      const history = await client.getHistory('old')
      expect(history.filter((e) => e.e === 'completed')).toHaveLength(40)
      await client.raiseEvent('old', 'bonus', 1000)
      const done = await client.waitForCompletion('old', { timeoutMs: 20_000 })
      // 1 + 2 + … + 40, each activity's result read back from the old format on replay
      expect(done.output).toBe(820 + 1000)
    } finally {
      await client.close()
      await node.stop()
    }
  })

  it('of a later format are refused, naming the format, and other instances go on', async () => {
    const hub = 'record-format-3'
    // (its timer fires once the node is back: an outcome with no sender to tell)
    await runToWait(hub, 'future', 3_000)
    await rewriteItems(hub, 'future', (key, bytes) =>
      key.startsWith('o.') ? encode({ ...(decode(bytes) as object), v: 3 }) : bytes,
    )

    const { node, client } = await start(hub)
    try {
      await expect(client.getStatus('future')).rejects.toThrow(
        /instance record of format 3.*reads formats 1 to 2/,
      )
      await expect(client.raiseEvent('future', 'bonus', 1)).rejects.toThrow(/format 3/)
      await expect(client.terminate('future')).rejects.toThrow(/format 3/)
      await waitFor(() => node.stats().deadLetters === 1, 'the timer fire dead-lettered', 15_000)
      const other = await client.start(counting, [2, 60_000], { instanceId: 'other' })
      await waitFor(
        async () => (await client.getHistory(other)).filter((e) => e.e === 'completed').length === 2,
        'the other instance ran',
      )
      await client.raiseEvent(other, 'bonus', 10)
      expect((await client.waitForCompletion(other, { timeoutMs: 20_000 })).output).toBe(13)
      const nc = await connectTo(nats.url, 'test')
      const names = new HubNames(hub)
      const dead = await (await jetstreamManager(nc)).streams.getMessage(names.deadLetterStream, { seq: 1 })
      expect(dead?.header.get('Basalt-Reason')).toMatch(/instance future: instance record of format 3/)
      await closeConnection(nc)
    } finally {
      await client.close()
      await node.stop()
    }
  })
})
