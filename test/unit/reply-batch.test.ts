/** Replies to client inboxes, one message per inbox per burst (runtime/nats/reply-batch.ts), against a fake connection. */
import { describe, expect, it } from 'vitest'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Reply, ReplyEnvelope } from '../../actors/wire/index.ts'
import { decode } from '../../runtime/nats/codec.ts'
import { ReplyBatch } from '../../runtime/nats/reply-batch.ts'

/** A connection that records what is published (and throws while `failing`). */
function fakeConnection(maxPayload = 1024 * 1024) {
  const sent: Array<{ inbox: string; rids: number[] }> = []
  const state = { failing: false }
  const nc = {
    info: { max_payload: maxPayload },
    publish(inbox: string, data: Uint8Array) {
      if (state.failing) throw new Error('connection closed')
      sent.push({ inbox, rids: (decode(data) as ReplyEnvelope).r.map((r) => r[0]) })
    },
  } as unknown as NatsConnection
  return { nc, sent, state }
}

const ok = (rid: number, size = 8): Reply => [rid, 1, new Uint8Array(size)]
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))
const noFailure = () => {
  throw new Error('no failure expected')
}

describe('ReplyBatch', () => {
  it('sends what several partitions answer one inbox in one burst as one message, in order', async () => {
    const { nc, sent } = fakeConnection()
    const batch = new ReplyBatch(nc)
    batch.add('inbox-a', [ok(1), ok(2)], noFailure) // partition 0
    batch.add('inbox-b', [ok(7)], noFailure)
    await Promise.resolve()
    batch.add('inbox-a', [ok(3)], noFailure) // partition 5, a microtask later in the same burst
    expect(sent).toEqual([])
    await tick()
    expect(sent).toEqual([
      { inbox: 'inbox-a', rids: [1, 2, 3] },
      { inbox: 'inbox-b', rids: [7] },
    ])
    expect(batch.published).toBe(2)
    // the next burst is a message of its own
    batch.add('inbox-a', [ok(4)], noFailure)
    await tick()
    expect(sent.at(-1)).toEqual({ inbox: 'inbox-a', rids: [4] })
  })

  it('keeps an envelope below half of max_payload: more replies leave in several, in order', async () => {
    const { nc, sent } = fakeConnection(10_000)
    const batch = new ReplyBatch(nc)
    for (let rid = 1; rid <= 6; rid++) batch.add('inbox', [ok(rid, 2_000)], noFailure)
    await tick()
    expect(sent.map((s) => s.rids)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ])
  })

  it('tells the caller of replies it could not send, and goes on', async () => {
    const { nc, sent, state } = fakeConnection()
    const batch = new ReplyBatch(nc)
    const failures: Array<[string, number]> = []
    state.failing = true
    batch.add('inbox', [ok(1), ok(2)], (inbox, replies) => failures.push([inbox, replies]))
    await tick()
    expect(failures).toEqual([['inbox', 2]])
    state.failing = false
    batch.add('inbox', [ok(3)], noFailure)
    await tick()
    expect(sent).toEqual([{ inbox: 'inbox', rids: [3] }])
  })
})
