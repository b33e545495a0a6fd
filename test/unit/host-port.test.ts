/**
 * The partition's side of the one host port (runtime/partition/host-port-impl.ts) over a fake
 * core, without a server: what the entity and instance hosts see of the open round, the local
 * queue and the timers.
 */
import { describe, expect, it } from 'vitest'
import { PayloadTooLargeError, partitionOf } from '../../actors/index.ts'
import type { ActorMessage } from '../../actors/wire/index.ts'
import { decode, encode, type BlobStore, type PartitionStorage } from '../../runtime/nats/index.ts'
import { MailboxCursor } from '../../runtime/partition/cursor.ts'
import { PartitionHostPort, targetOf } from '../../runtime/partition/host-port-impl.ts'
import { CommitRound } from '../../runtime/partition/round.ts'
import type { SnapshotState } from '../../runtime/partition/snapshot.ts'
import { TimerSet } from '../../runtime/partition/timers.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { noPartitionMetrics } from '../../runtime/metrics/index.ts'

const PARTITIONS = 4

function fake() {
  const state = {
    open: new CommitRound(7, [1, 0]),
    inflight: null as CommitRound | null,
    kicks: 0,
    stopped: false,
    dirty: new Set<string>(),
  }
  const cursor = new MailboxCursor()
  const timers = new TimerSet()
  const port = new PartitionHostPort({
    p: 1,
    partitions: PARTITIONS,
    logger: silentLogger,
    blobs: {} as BlobStore,
    metrics: noPartitionMetrics,
    types: undefined,
    storage: {} as PartitionStorage,
    snap: { isDirty: (key: string) => state.dirty.has(key), *dirtyWrites() {} } as unknown as SnapshotState,
    timers,
    cursor,
    recordLimit: 4000,
    stats: { deadLetters: 0 },
    open: () => state.open,
    inflight: () => state.inflight,
    stopped: () => state.stopped,
    kick: () => void state.kicks++,
  })
  return { port, state, cursor, timers }
}

/** An entity key of partition `p` (of PARTITIONS). */
function keyOn(p: number): string {
  for (let i = 0; ; i++) if (partitionOf(`k${i}`, PARTITIONS) === p) return `k${i}`
}

const signal = (key: string): ActorMessage => ({ k: 'op', t: 'Counter', key, op: 'add', a: [1] })

describe('PartitionHostPort', () => {
  it('writes into the open round and counts the bytes; a write-once item created in the round leaves no trace', () => {
    const { port, state } = fake()
    port.write('e.1.T.a', new Uint8Array(10))
    expect(state.open.writes.get('e.1.T.a')).toHaveLength(10)
    expect(state.open.bytes).toBe(10 + 16 + 'e.1.T.a'.length)
    port.write('h.1.x.1.0', new Uint8Array(3))
    port.dropItem('h.1.x.1.0')
    expect(state.open.writes.has('h.1.x.1.0')).toBe(false)
    // one not written in this round is deleted by a write of null
    port.dropItem('h.1.x.1.1')
    expect(state.open.writes.get('h.1.x.1.1')).toBeNull()
  })

  it('routes a message for this partition to the local queue and others to the round', () => {
    const { port, state, cursor } = fake()
    port.send(signal(keyOn(1)))
    port.send(signal(keyOn(2)))
    expect(cursor.local.map(targetOf)).toEqual([keyOn(1)])
    expect([...state.open.out.keys()]).toEqual([2])
    expect(decode(state.open.out.get(2)![0]!, 'test')).toMatchObject({ key: keyOn(2) })
  })

  it('refuses a message over half the record limit', () => {
    const { port } = fake()
    const msg: ActorMessage = { k: 'op', t: 'Counter', key: 'a', op: 'add', a: ['x'.repeat(3000)] }
    expect(() => port.send(msg)).toThrow(PayloadTooLargeError)
  })

  it('pins items written by the open or in-flight round or not yet snapshotted', () => {
    const { port, state } = fake()
    state.open.write('a', null)
    state.inflight = new CommitRound(6, [1, 0])
    state.inflight.write('b', encode(1))
    state.dirty.add('c')
    expect(['a', 'b', 'c', 'd'].map((k) => port.isPinned(k))).toEqual([true, true, true, false])
  })

  it('defers messages as durable timers with strictly increasing due times', () => {
    const { port, timers } = fake()
    port.defer(signal('a'))
    port.defer(signal('b'))
    const due = [...timers.due(Number.MAX_SAFE_INTEGER)].map(([, [at]]) => at)
    expect(due).toHaveLength(2)
    expect(due[1]!).toBeGreaterThan(due[0]!)
  })

  it('cancels a pending timer with a delete, and one that is not pending with no write at all', () => {
    const { port, state, timers } = fake()
    port.setTimer('t.1.o.a.3', Date.now() + 60_000, signal('a'))
    port.cancelTimer('t.1.o.a.3')
    expect(timers.size).toBe(0)
    expect(state.open.writes.get('t.1.o.a.3')).toBeNull()
    // an ending instance cancels a delayed start it never had: nothing to delete, nothing written
    port.cancelTimer('t.1.o.b.start')
    expect(state.open.writes.has('t.1.o.b.start')).toBe(false)
  })

  it('queues a message from outside the loop and wakes it, but not once stopped', () => {
    const { port, state, cursor } = fake()
    port.enqueueLocal(signal('a'))
    expect(cursor.local).toHaveLength(1)
    expect(state.kicks).toBe(1)
    state.stopped = true
    port.enqueueLocal(signal('b'))
    expect(cursor.local).toHaveLength(1)
  })
})
