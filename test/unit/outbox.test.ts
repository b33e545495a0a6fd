/** The outbox (runtime/partition/outbox.ts) with a fake publish: order, packing, retries. */
import { describe, expect, it } from 'vitest'
import type { PartitionEnvelope } from '../../actors/wire/messages.ts'
import { decode } from '../../runtime/nats/codec.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { Outbox, type OutboxPublisher } from '../../runtime/partition/outbox.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { waitFor } from '../tooling/harness.ts'

interface Sent {
  subject: string
  env: PartitionEnvelope
  msgID: string | undefined
}

/** A publish that records what it is given; `fail(n)` makes the next n attempts fail. */
function fakePublisher() {
  const sent: Sent[] = []
  const attempts: string[] = []
  let failures = 0
  let inFlight = 0
  let mostInFlight = 0
  let gate: Promise<void> = Promise.resolve()
  const publisher: OutboxPublisher = {
    async publish(subject, data, options) {
      inFlight++
      mostInFlight = Math.max(mostInFlight, inFlight)
      attempts.push(options?.msgID ?? '')
      try {
        await gate
        if (failures > 0) {
          failures--
          throw new Error('publish failed')
        }
        sent.push({ subject, env: decode(data, 'envelope') as PartitionEnvelope, msgID: options?.msgID })
        return sent.length
      } finally {
        inFlight--
      }
    },
  }
  return {
    publisher,
    sent,
    attempts,
    fail: (n: number) => (failures = n),
    hold: () => {
      let open!: () => void
      gate = new Promise((r) => (open = r))
      return () => {
        gate = Promise.resolve()
        open()
      }
    },
    mostInFlight: () => mostInFlight,
  }
}

const names = new HubNames('t')
const msg = (i: number) => new Uint8Array([i])

describe('outbox', () => {
  it('sends per destination in record order, one publish in flight, packing what waited meanwhile', async () => {
    const fake = fakePublisher()
    const outbox = new Outbox(fake.publisher, names, 0, 1024 * 1024, silentLogger)
    const release = fake.hold()
    outbox.enqueue(1, 1, [msg(1)], 20)
    outbox.enqueue(1, 2, [msg(2)], 20) // waits: record 1 is in flight
    outbox.enqueue(1, 3, [msg(3), msg(4)], 24)
    outbox.enqueue(2, 2, [msg(9)], 20)
    expect(outbox.pending(2)).toEqual([
      [1, 1, [msg(1)]],
      [1, 2, [msg(2)]],
      [2, 2, [msg(9)]],
    ])
    release()
    await waitFor(() => outbox.size === 0, 'the outbox drained')
    const to1 = fake.sent.filter((s) => s.subject === names.mailbox(1))
    expect(to1.map((s) => s.env.g.map(([n]) => n))).toEqual([[1], [2, 3]])
    expect(to1[1]!.env.g[1]![1].map((b) => [...b])).toEqual([[3], [4]])
    expect(to1.map((s) => s.msgID)).toEqual(['t.o.0.1.1.1', 't.o.0.1.2.3'])
    const to2 = fake.sent.filter((s) => s.subject === names.mailbox(2))
    expect(to2.map((s) => [s.env.p, s.env.g.map(([n, m]) => [n, m.map((b) => [...b])])])).toEqual([
      [0, [[2, [[9]]]]],
    ])
    expect(fake.mostInFlight()).toBe(2) // one per destination
  })

  it('packs records only while they stay under half of max_payload (at least one per message)', async () => {
    const fake = fakePublisher()
    const outbox = new Outbox(fake.publisher, names, 0, 200, silentLogger)
    const release = fake.hold()
    outbox.enqueue(1, 1, [msg(1)], 20)
    for (let n = 2; n <= 5; n++) outbox.enqueue(1, n, [msg(n)], 40)
    outbox.enqueue(1, 6, [msg(6)], 150) // alone over the limit: still sent, alone
    release()
    await waitFor(() => outbox.size === 0, 'the outbox drained')
    expect(fake.sent.map((s) => s.env.g.map(([n]) => n))).toEqual([[1], [2, 3], [4, 5], [6]])
  })

  it('retries a failed publish with the same envelope and message id, and keeps order', async () => {
    const fake = fakePublisher()
    fake.fail(2)
    const outbox = new Outbox(fake.publisher, names, 3, 1024 * 1024, silentLogger)
    outbox.enqueue(4, 7, [msg(7)], 20)
    await waitFor(() => outbox.size === 0, 'the outbox drained after retries')
    expect(fake.attempts).toEqual(['t.o.3.4.7.7', 't.o.3.4.7.7', 't.o.3.4.7.7'])
    expect(fake.sent.map((s) => s.env.g.map(([n]) => n))).toEqual([[7]])
    expect(outbox.publishes).toBe(3)
  })

  it('keeps what is unsent pending (for the checkpoint) while retrying and once stopped', async () => {
    const fake = fakePublisher()
    fake.fail(1_000)
    const outbox = new Outbox(fake.publisher, names, 0, 1024 * 1024, silentLogger)
    outbox.enqueue(1, 1, [msg(1)], 20)
    await waitFor(() => fake.attempts.length >= 2, 'a retry')
    expect(outbox.pending(1)).toEqual([[1, 1, [msg(1)]]])
    outbox.stop()
    expect(outbox.pending(1)).toEqual([[1, 1, [msg(1)]]])
    expect(fake.sent).toEqual([])
  })
})
