/**
 * What a start is answered with when the instance ends in the round that started it (its
 * activities synchronous): the outcome, so that waitForCompletion needs no round trip. A client
 * asks for it slim (`StartMessage.sl`) and adds the id, name and input it sent — the input is not
 * echoed back through the log and the wire; a start without `sl` (an older client) gets the whole
 * status. Neither carries the record's history or pending tasks. (A slim answer is `[0, outcome]`, or
 * `0` for an instance still running.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NatsConnection } from '@nats-io/transport-node'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { partitionOf } from '../../actors/ids.ts'
import type { ReplyEnvelope } from '../../actors/wire/messages.ts'
import { decode, encode } from '../../runtime/internal.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const double = activity('double', (n: number) => n * 2)
const quick = orchestration('quick', function* (ctx, input: { text: string; n: number }) {
  return { d: yield* ctx.callActivity(double, input.n) }
})

/** Continues as new once, synchronously: ends in the round that started it, with another input. */
const again = orchestration('again', function* (ctx, round: number) {
  const d = yield* ctx.callActivity(double, round)
  if (round === 0) ctx.continueAsNew(1)
  return d
})

const nats = useNatsServer()
const hub = 'start-replies'
const P = 2
const stack = useHub(nats, { hub, registry: [quick, again, double], partitions: P })

let raw: NatsConnection
beforeAll(async () => {
  raw = await connectTo(nats.url, 'raw')
})
afterAll(async () => {
  await closeConnection(raw)
})

describe('the reply to a start whose instance ended in the same round', () => {
  it('leaves out what the client sent; waitForCompletion still shows all of it', async () => {
    const sizes: number[] = []
    const publish = stack.node.nc.publish.bind(stack.node.nc)
    stack.node.nc.publish = (subject, payload, options) => {
      if (subject.startsWith('_INBOX_basalt') && payload instanceof Uint8Array) sizes.push(payload.length)
      publish(subject, payload, options)
    }
    try {
      const input = { text: 'x'.repeat(4000), n: 21 }
      const id = await stack.client.start(quick, input, { instanceId: 'slim-1' })
      const status = await stack.client.waitForCompletion(id)
      expect(status).toMatchObject({
        id: 'slim-1',
        name: 'quick',
        status: 'Completed',
        input,
        output: { d: 42 },
      })
      expect(status.completedAt).toBeInstanceOf(Date)
      // one reply for the start (the outcome came with it): without the 4 kB input
      expect(sizes.length).toBeGreaterThan(0)
      expect(Math.max(...sizes)).toBeLessThan(1000)
    } finally {
      stack.node.nc.publish = publish
    }
  })

  it('still carries the input when the instance continued as new in that round', async () => {
    const id = await stack.client.start(again, 0)
    const status = await stack.client.waitForCompletion(id)
    expect(status).toMatchObject({ status: 'Completed', input: 1, output: 2 })
  })

  it('carries the whole status, and no history, to a client that did not ask for it slim', async () => {
    const names = new HubNames(hub)
    const inbox = `_INBOX_basalt.${hub}.raw-start`
    const replies: ReplyEnvelope[] = []
    const sub = raw.subscribe(inbox, {
      callback: (_, m) => void replies.push(decode(m.data) as ReplyEnvelope),
    })
    await raw.flush()
    const id = 'full-1'
    const start = { k: 'start', i: id, n: 'quick', in: { text: 'hi', n: 2 }, r: [inbox, 7] }
    raw.publish(names.mailbox(partitionOf(id, P)), encode({ v: 1, c: 'raw-start', q: 1, m: [start] }))
    await raw.flush()
    await waitFor(() => replies.length > 0, 'the reply to the start')
    const [rid, ok, bytes] = replies[0]!.r[0]!
    expect([rid, ok]).toEqual([7, 1])
    const [answeredId, fields] = decode(bytes as Uint8Array) as [string, Record<string, unknown>]
    expect(answeredId).toBe(id)
    expect(fields).toMatchObject({ id, name: 'quick', status: 'Completed', input: { text: 'hi', n: 2 } })
    expect(fields['output']).toEqual({ d: 4 })
    for (const internal of ['tail', 'hk', 'hc', 'buffered', 'timers', 'activities', 'exec']) {
      expect(fields, internal).not.toHaveProperty(internal)
    }
    sub.unsubscribe()
  })
})
