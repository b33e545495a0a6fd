/** The outbox (runtime/partition/outbox.ts) with a fake publish: order, packing, retries. */
import { describe, expect, it } from 'vitest'
import type { PartitionEnvelope } from '../../actors/wire/messages.ts'
import { decode } from '../../runtime/nats/codec.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { LocalDestination, LocalRoutes, type HandedGroup } from '../../runtime/partition/local-delivery.ts'
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

/** Partition 1 served beside the outbox: its mailbox position is set by hand, its groups listed. */
function localDestination(p = 1) {
  let position = 1
  const routes = new LocalRoutes()
  const dest = new LocalDestination(
    p,
    () => position,
    () => {},
  )
  routes.add(dest)
  return {
    routes,
    dest,
    /** The destination processed its mailbox up to `seq` (and wakes the senders waiting for it). */
    processedThrough(seq: number) {
      position = seq + 1
      dest.moved()
    },
    /** The records of the groups handed over and not taken yet. */
    handed: () => dest.groups.map((g) => g.n),
    /** Takes every group handed over and confirms it (its round is durable). */
    takeAll(): HandedGroup[] {
      const taken = dest.groups.splice(0)
      for (const g of taken) g.confirm()
      return taken
    },
  }
}

/**
 * An outbox beside partition 1 that has published its first record there (record 1, mailbox
 * sequence 1) and seen partition 1 take it: its next records are handed over in memory.
 */
async function handingOver() {
  const fake = fakePublisher()
  const local = localDestination()
  const outbox = new Outbox(fake.publisher, names, 0, 1024 * 1024, silentLogger, local.routes)
  outbox.enqueue(1, 1, [msg(1)], 20)
  await waitFor(() => fake.sent.length === 1, 'the first record published')
  local.processedThrough(1)
  return { fake, local, outbox }
}

describe('outbox to a partition on the same connection', () => {
  it('sends the first record through the mailbox, then hands records over in order once the destination passed it', async () => {
    const fake = fakePublisher()
    const local = localDestination()
    const outbox = new Outbox(fake.publisher, names, 0, 1024 * 1024, silentLogger, local.routes)
    outbox.enqueue(1, 1, [msg(1)], 20)
    await waitFor(() => fake.sent.length === 1, 'the first record published')
    outbox.enqueue(1, 2, [msg(2)], 20)
    outbox.enqueue(1, 3, [msg(3)], 20)
    await new Promise((r) => setTimeout(r, 20))
    // held: the destination has not processed record 1 from its mailbox yet
    expect(local.handed()).toEqual([])
    expect(outbox.pending(3).map(([, n]) => n)).toEqual([2, 3])
    local.processedThrough(1)
    await waitFor(() => local.handed().length === 2, 'records 2 and 3 handed over')
    expect(local.handed()).toEqual([2, 3])
    expect(fake.sent.length).toBe(1)
    expect(outbox.handOffs).toBe(2)
    // kept (for the checkpoint) until the destination's round that took them is durable
    expect(outbox.pending(3).map(([, n]) => n)).toEqual([2, 3])
    const taken = local.takeAll()
    expect(taken.map((g) => [g.from, g.n, g.msgs.map((b) => [...b])])).toEqual([
      [0, 2, [[2]]],
      [0, 3, [[3]]],
    ])
    expect(outbox.size).toBe(0)
    // from now on at once
    outbox.enqueue(1, 4, [msg(4)], 20)
    await waitFor(() => local.handed().length === 1, 'record 4 handed over')
    expect(fake.sent.length).toBe(1)
  })

  it('sends what a stopped destination did not confirm again through the mailbox, in order', async () => {
    const { fake, local, outbox } = await handingOver()
    for (let n = 2; n <= 4; n++) outbox.enqueue(1, n, [msg(n)], 20)
    await waitFor(() => local.handed().length === 3, 'records 2 to 4 handed over')
    const first = local.dest.groups.shift()!
    first.confirm() // record 2 taken and durable
    const late = local.dest.groups[0]!
    local.routes.remove(local.dest) // the destination stops (moved away, failed)
    expect(local.dest.groups).toEqual([])
    await waitFor(() => fake.sent.length === 2, 'records 3 and 4 published')
    expect(fake.sent[1]!.env.g.map(([n]) => n)).toEqual([3, 4])
    late.confirm() // a round of the stopped destination that became durable after all: ignored
    await waitFor(() => outbox.size === 0, 'the outbox drained')
    // and the next record too goes through the mailbox: nobody serves partition 1 here now
    outbox.enqueue(1, 5, [msg(5)], 20)
    await waitFor(() => fake.sent.length === 3, 'record 5 published')
  })

  it("hands records over to the destination's next run once it passed what was published meanwhile", async () => {
    const { fake, local, outbox } = await handingOver()
    outbox.enqueue(1, 2, [msg(2)], 20)
    await waitFor(() => local.handed().length === 1, 'record 2 handed over')
    // the run stops before taking record 2; the next run starts at its committed position
    let position = 1
    const next = new LocalDestination(
      1,
      () => position,
      () => {},
    )
    local.routes.add(next)
    outbox.enqueue(1, 3, [msg(3)], 20)
    await new Promise((r) => setTimeout(r, 20))
    // held: the new run may take record 1 from its mailbox again first
    expect(next.groups).toEqual([])
    position = 2
    next.moved()
    await waitFor(() => next.groups.length === 2, 'records 2 and 3 handed over')
    expect(next.groups.map((g) => g.n)).toEqual([2, 3])
    expect(fake.sent.length).toBe(1)
  })

  it('publishes a record too large to hand over once those before it are confirmed, and holds what follows until the destination passed it', async () => {
    const { fake, local, outbox } = await handingOver()
    outbox.enqueue(1, 2, [msg(2)], 20)
    outbox.enqueue(1, 3, [msg(3)], 100_000)
    outbox.enqueue(1, 4, [msg(4)], 20)
    await new Promise((r) => setTimeout(r, 20))
    // record 3 waits until record 2 is confirmed: were the destination to stop first, record 2
    // would be published after it
    expect(local.handed()).toEqual([2])
    expect(fake.sent.length).toBe(1)
    local.takeAll()
    await waitFor(() => fake.sent.length === 2, 'record 3 published')
    expect(fake.sent[1]!.env.g.map(([n]) => n)).toEqual([3, 4])
    outbox.enqueue(1, 5, [msg(5)], 20)
    await new Promise((r) => setTimeout(r, 20))
    expect(local.handed()).toEqual([]) // 5 waits for records 3 and 4 to be taken from the mailbox
    local.processedThrough(2)
    await waitFor(() => local.handed().length === 1, 'record 5 handed over')
    expect(local.handed()).toEqual([5])
    expect(fake.sent.length).toBe(2)
  })

  it('is forgotten by the destinations it handed records to once it stops', async () => {
    const { fake, local, outbox } = await handingOver()
    outbox.enqueue(1, 2, [msg(2)], 20)
    await waitFor(() => local.handed().length === 1, 'record 2 handed over')
    outbox.stop()
    local.routes.remove(local.dest)
    await new Promise((r) => setTimeout(r, 20))
    expect(fake.sent.length).toBe(1) // its successor sends record 2 again from the checkpoint
    expect(outbox.pending(2).map(([, n]) => n)).toEqual([2])
  })
})
