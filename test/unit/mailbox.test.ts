/**
 * The mailbox reader on a replicated hub, with a fake consumer and a fake stream leader (no NATS):
 * what it queues is what the leader holds, whatever the consumer's replica delivered. Seen on
 * nats-server 2.9.10 in the R3 chaos test (seed 838595): the leader acknowledged client batch 297
 * at sequence 3308, while the consumer's replica held a retried batch 295 there and never
 * delivered 297 — an acknowledged signal lost.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { JetStreamClient } from '../../runtime/nats/index.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { MailboxReader, type MailboxHooks } from '../../runtime/partition/mailbox.ts'
import type { consumeFrom } from '../../runtime/nats/consumers.ts'
import { waitFor } from '../tooling/harness.ts'

type Stored = { seq: number; data: Uint8Array }

/** A client envelope of batch `q` (one `add` signal). */
function batch(q: number): Uint8Array {
  return encode({ v: 1, c: 'client', q, m: [{ k: 'op', t: 'Tally', key: `s-${q}`, op: 'add', a: [1] }] })
}

/**
 * An ordered consumer that delivers `messages` (a replica's copy) and then waits; each delivery
 * says how many messages follow it (`info.pending`), plus `beyond` not delivered.
 */
function fakeConsumer(messages: Stored[], beyond = 0): typeof consumeFrom {
  return (async () => {
    let closed = false
    return {
      async *[Symbol.asyncIterator]() {
        for (const [i, m] of messages.entries())
          yield { ...m, info: { pending: messages.length - 1 - i + beyond } }
        while (!closed) await new Promise((r) => setTimeout(r, 10))
      },
      close: async () => {
        closed = true
      },
    }
  }) as unknown as typeof consumeFrom
}

const readers: MailboxReader[] = []
afterEach(() => {
  for (const r of readers.splice(0)) r.stop()
})

function reader(replica: Stored[], leader: Stored[], position: number, beyond = 0) {
  const filled: Array<[number, number, number]> = []
  const hooks: MailboxHooks = {
    position: () => position,
    running: () => true,
    lastStored: async () => leader.at(-1)?.seq ?? 0,
    arrived: () => {},
    failed: (err) => {
      throw err
    },
    fromLeader: async (from, through) => {
      const out: Stored[] = []
      for (const m of leader) {
        if (m.seq < from) continue
        out.push(m)
        if (m.seq >= through) break
      }
      return out
    },
    filled: (from, to, count) => filled.push([from, to, count]),
  }
  const r = new MailboxReader({} as JetStreamClient, 'MBX', 'mbx.5', hooks, fakeConsumer(replica, beyond))
  readers.push(r)
  return { r, filled }
}

function queuedBatches(r: MailboxReader): Array<[number, number]> {
  return [...r].map((i) => [i.seq, (i.env as { q: number }).q])
}

describe('mailbox reader on a replicated hub', () => {
  it("queues the leader's messages where the consumer's replica holds others", async () => {
    // the leader (what the clients were acknowledged): 295@3289, 296@3294, 297@3308, 298@3314
    const leader = [
      { seq: 3289, data: batch(295) },
      { seq: 3294, data: batch(296) },
      { seq: 3308, data: batch(297) },
      { seq: 3314, data: batch(298) },
      { seq: 3318, data: batch(299) },
    ]
    // the replica: a retried 293 and 294 stored again, everything after them shifted
    const replica = [
      { seq: 3288, data: batch(293) },
      { seq: 3302, data: batch(294) },
      { seq: 3308, data: batch(295) },
      { seq: 3313, data: batch(296) },
      { seq: 3318, data: batch(299) },
    ]
    const { r, filled } = reader(replica, leader, 3284)
    await r.start(3284)
    await waitFor(() => r.lastSeen >= 3318, `mailbox reader: sequence 3318 delivered`, 5000)
    expect(queuedBatches(r)).toEqual([
      [3289, 295],
      [3294, 296],
      [3308, 297],
      [3314, 298],
      [3318, 299],
    ])
    expect(filled.length).toBeGreaterThan(0)
  })

  it('tells how many messages the stream held past the last one delivered (a backlog not read yet)', async () => {
    const same = [
      { seq: 10, data: batch(1) },
      { seq: 12, data: batch(2) },
    ]
    const { r } = reader(same, same, 10, 40_000)
    expect(r.waitingInStream).toBe(0)
    await r.start(10)
    await waitFor(() => r.lastSeen >= 12, `mailbox reader: sequence 12 delivered`, 5000)
    expect(r.length).toBe(2)
    expect(r.waitingInStream).toBe(40_000)
  })

  it('reads nothing twice and reports nothing when the replica agrees with the leader', async () => {
    const same = [
      { seq: 10, data: batch(1) },
      { seq: 12, data: batch(2) },
      { seq: 20, data: batch(3) },
    ]
    const { r, filled } = reader(same, same, 10)
    await r.start(10)
    await waitFor(() => r.lastSeen >= 20, `mailbox reader: sequence 20 delivered`, 5000)
    expect(queuedBatches(r)).toEqual([
      [10, 1],
      [12, 2],
      [20, 3],
    ])
    expect(filled).toEqual([])
  })

  it('asks the leader again at once for a delivered message it does not show yet, and reports no difference', async () => {
    const delivered = [
      { seq: 10, data: batch(1) },
      { seq: 12, data: batch(2) },
    ]
    // the leader shows 12 only 30 ms after the replica delivered it (it applies on its own time)
    const leader = [delivered[0]!]
    setTimeout(() => leader.push(delivered[1]!), 30)
    const { r, filled } = reader(delivered, leader, 10)
    const started = Date.now()
    await r.start(10)
    await waitFor(() => r.length === 2, 'both messages queued', 5000)
    expect(Date.now() - started, 'queued without waiting for a stall watch').toBeLessThan(1000)
    expect(queuedBatches(r)).toEqual([
      [10, 1],
      [12, 2],
    ])
    expect(filled).toEqual([])
  })

  it('reads a message the leader shows later than the wait allows again in the background', async () => {
    const delivered = [
      { seq: 10, data: batch(1) },
      { seq: 12, data: batch(2) },
    ]
    const leader = [delivered[0]!]
    setTimeout(() => leader.push(delivered[1]!), 700) // past the 300 ms wait
    const { r } = reader(delivered, leader, 10)
    await r.start(10)
    await waitFor(() => r.length === 2, 'both messages queued', 5000)
    expect(queuedBatches(r)).toEqual([
      [10, 1],
      [12, 2],
    ])
  })

  it('waits for the leader once, not at every delivery, when a replica delivers what the leader never shows', async () => {
    // a replica whose copy differs: 20 deliveries the leader holds nowhere
    const replica = Array.from({ length: 20 }, (_, i) => ({ seq: 100 + i, data: batch(i) }))
    const asked = new Set<number>() // the deliveries the leader was asked about
    const hooks: MailboxHooks = {
      position: () => 100,
      running: () => true,
      lastStored: async () => 0,
      arrived: () => {},
      failed: (err) => {
        throw err
      },
      fromLeader: async (_from, through) => {
        asked.add(through)
        return []
      },
    }
    const r = new MailboxReader({} as JetStreamClient, 'MBX', 'mbx.5', hooks, fakeConsumer(replica))
    readers.push(r)
    const started = Date.now()
    await r.start(100)
    await waitFor(() => asked.has(119), 'every delivery read', 10_000)
    // one wait of 300 ms in vain, then none for a while (a wait at each: 6 s)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(r.length).toBe(0)
  })

  it('queues what a consumer on a lagging replica skipped, from the leader', async () => {
    const leader = [
      { seq: 5, data: batch(1) },
      { seq: 7, data: batch(2) },
      { seq: 9, data: batch(3) },
    ]
    const { r } = reader([leader[0]!, leader[2]!], leader, 5)
    await r.start(5)
    await waitFor(() => r.lastSeen >= 9, `mailbox reader: sequence 9 delivered`, 5000)
    expect(queuedBatches(r)).toEqual([
      [5, 1],
      [7, 2],
      [9, 3],
    ])
  })
})
