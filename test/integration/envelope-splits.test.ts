/**
 * A partition envelope packs several records' messages (groups); a step may stop anywhere in it
 * (its message budget, a full record) and the next step goes on from there. Each group is applied
 * once, wherever the steps split it — also exactly at a group's first message, where the group was
 * once noted as seen by the first step and then skipped by the next as a duplicate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstream, type JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { encode } from '../../runtime/internal.ts'
import { partitionOf } from '../../actors/ids.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()
const hub = 'splits'
const names = new HubNames(hub)
const P = 2
// two messages per step: the steps split the envelopes below at group boundaries
const stack = useHub(nats, { hub, registry: [Counter], partitions: P, maxBatch: 2 })

let raw: NatsConnection
let js: JetStreamClient
beforeAll(async () => {
  raw = await connectTo(nats.url, 'raw')
  js = jetstream(raw)
})
afterAll(async () => {
  await closeConnection(raw)
})

/** A key of `prefix` on partition 1. */
function keyOnOne(prefix: string): string {
  for (let i = 0; ; i++) if (partitionOf(`${prefix}${i}`, P) === 1) return `${prefix}${i}`
}

describe('a partition envelope split over steps', () => {
  it.each([
    ['at a group boundary', 101, [[1, 2], [4, 8, 16], [32]]],
    ['inside a group, then at a boundary', 102, [[1], [2, 4, 8], [16, 32]]],
    ['several of each', 103, [[1, 2, 4], [8], [16, 32, 64, 128], [256, 512]]],
  ])('applies every group once (%s)', async (_, origin, groups) => {
    const key = keyOnOne(`split-${origin}-`)
    const op = (n: number) => encode({ k: 'op', t: 'Counter', key, op: 'add', a: [n] })
    // (the origin: a partition number no sender here uses, one per case)
    const env = { v: 1, p: origin, g: groups.map((adds, i) => [i + 1, adds.map(op)]) }
    await js.publish(names.mailbox(1), encode(env))
    const counter = stack.client.entity(Counter, key)
    await counter.signal.add(1000)
    const sum = groups.flat().reduce((a, b) => a + b, 0)
    expect(await counter.call.get()).toBe(sum + 1000)
  })
})
