/**
 * Messages between partitions of one node, handed over in memory (runtime/partition/local-delivery.ts):
 * each applied once and in the order its sender sent it — within a node that keeps running, and
 * across SIGKILLs of the node's process, where what was handed over and not committed is sent
 * again. A small `maxBatch` makes the receivers split groups over rounds (the rest waits in the
 * local queue their records carry).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { Log } from '../fixtures/entities.ts'
import { spawnTs, useHub, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()

const SOURCES = 10
const TARGETS = 6

/** Relay `i`: source `s<i % SOURCES>` appends `i` and has two targets append `s<..>:<i>`. */
function relay(client: Client, i: number): Promise<void> {
  const targets = [`t${i % TARGETS}`, `t${(i + 1) % TARGETS}`]
  return client.entity(Log, `s${i % SOURCES}`).signal.relay(targets, String(i))
}

/** Checks every target log holds each relay meant for it exactly once, in each source's order. */
async function expectExactlyOnceInOrder(client: Client, relays: number): Promise<void> {
  const expected = new Map<string, string[]>()
  for (let i = 0; i < relays; i++) {
    for (const t of [i % TARGETS, (i + 1) % TARGETS]) {
      const list = expected.get(`t${t}`) ?? []
      list.push(`s${i % SOURCES}:${i}`)
      expected.set(`t${t}`, list)
    }
  }
  await waitFor(
    async () => {
      for (const [target, items] of expected) {
        const got = await client.entity(Log, target).call.items()
        if (got.length < items.length) return false
      }
      return true
      // (after SIGKILLs a partition may restart in careful mode, one unit per commit: slow on a busy machine)
    },
    'every relay reached its targets',
    60_000,
  )
  for (const [target, items] of expected) {
    const got = await client.entity(Log, target).call.items()
    // per source, in the order the source relayed them; nothing missing, nothing twice
    const bySource = (list: string[]) => {
      const out = new Map<string, string[]>()
      for (const item of list) {
        const source = item.slice(0, item.indexOf(':'))
        out.set(source, [...(out.get(source) ?? []), item])
      }
      return Object.fromEntries([...out].sort(([a], [b]) => a.localeCompare(b)))
    }
    expect(got.length).toBe(items.length)
    expect(bySource(got)).toEqual(bySource(items))
  }
}

describe('partition messages within one node', () => {
  const stack = useHub(nats, { hub: 'local', registry: [Log], partitions: 4, maxBatch: 2 })

  it('are handed over in memory, applied once each, in order per sender', async () => {
    const RELAYS = 600
    for (let i = 0; i < RELAYS; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => relay(stack.client, i + k)))
    }
    await expectExactlyOnceInOrder(stack.client, RELAYS)
    let handOffs = 0
    let publishes = 0
    for (const partition of stack.node.partitions.values()) {
      handOffs += partition.outboxHandOffs
      publishes += partition.outboxPublishes
    }
    expect(handOffs).toBeGreaterThan(0)
    // the first record for each other partition goes through its mailbox, later ones mostly not
    expect(publishes).toBeLessThan(handOffs)
  })

  it('keep their order when a record too large to hand over goes through the mailbox between them', async () => {
    const big = 'x'.repeat(70 * 1024) // over the 64 KiB an entry handed over may hold
    const source = stack.client.entity(Log, 'big-source')
    const items = Array.from({ length: 30 }, (_, i) => (i % 13 === 3 ? `${i}:${big}` : String(i)))
    // sent at once (in order): records of several relays, the large ones among them
    await Promise.all(items.map((item) => source.signal.relay(['big-target'], item)))
    const target = stack.client.entity(Log, 'big-target')
    await waitFor(async () => (await target.call.items()).length === items.length, 'every relay arrived')
    expect(await target.call.items()).toEqual(items.map((item) => `big-source:${item}`))
  })
})

describe('partition messages within one node, across SIGKILLs', () => {
  let node: SpawnedTs | undefined
  let client: Client | undefined
  afterAll(async () => {
    await client?.close()
    node?.kill('SIGKILL')
  })

  const start = () =>
    spawnTs('test/fixtures/node-process.ts', [
      nats.url,
      'local-crash',
      JSON.stringify({ partitions: 4, maxBatch: 2, snapshotRecords: 20, heartbeatMs: 250, leaseMs: 1000 }),
    ])

  it('are applied once each and in order per sender', async () => {
    node = start()
    await node.waitForLine(/^ready$/, 30_000)
    client = await Client.connect({ servers: nats.url, hub: 'local-crash' })
    const RELAYS = 1500
    let sent = 0
    for (const killAt of [500, 1000]) {
      while (sent < killAt - 100) {
        await Promise.all(Array.from({ length: 50 }, (_, k) => relay(client!, sent + k)))
        sent += 50
      }
      // kill while the last relays are handed from partition to partition
      const tail = Promise.all(Array.from({ length: killAt - sent }, (_, k) => relay(client!, sent + k)))
      await new Promise((r) => setTimeout(r, 15))
      node.kill('SIGKILL')
      await node.exited
      await tail
      sent = killAt
      node = start()
      await node.waitForLine(/^ready$/, 30_000)
    }
    while (sent < RELAYS) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => relay(client!, sent + k)))
      sent += 50
    }
    await expectExactlyOnceInOrder(client, RELAYS)
  })
})

describe('partition messages while partitions move between nodes', () => {
  it('are applied once each and in order per sender as a second node joins and the first leaves', async () => {
    const hub = 'local-moves'
    const options = {
      servers: nats.url,
      hub,
      registry: [Log],
      partitions: 4,
      maxBatch: 2,
      heartbeatMs: 200,
      leaseMs: 1000,
      logger: silentLogger,
    }
    const a = await Node.start({ ...options, nodeId: 'a' })
    const client = await Client.connect({ servers: nats.url, hub })
    let b: Node | undefined
    try {
      let sent = 0
      const wave = async (count: number) => {
        await Promise.all(Array.from({ length: count }, (_, k) => relay(client, sent + k)))
        sent += count
      }
      await wave(200)
      // partitions move while relays are handed from one to another: those a moving partition
      // did not confirm are sent again through its mailbox, to its next owner
      const joining = Node.start({ ...options, nodeId: 'b' })
      while (a.partitions.size === 4) await wave(20)
      b = await joining
      await wave(200)
      const leaving = a.stop()
      await wave(100)
      await leaving
      await waitFor(() => b!.partitions.size === 4, 'b to take every partition')
      await wave(100)
      await expectExactlyOnceInOrder(client, sent)
    } finally {
      await client.close()
      await b?.stop()
      await a.stop()
    }
  })
})
