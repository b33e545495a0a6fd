/** How history events and instance records are stored (runtime/instances/history-codec.ts). */
import { describe, expect, it } from 'vitest'
import { CodecError } from '../../actors/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { BlobRef } from '../../runtime/nats/blob-ref.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
import {
  decodeChunk,
  decodeRecord,
  encodeChunk,
  encodeRecord,
  packEvents,
  unpackEvents,
} from '../../runtime/instances/history-codec.ts'
import { RECORD_FORMAT, RuntimeStatus, type InstanceRecord } from '../../runtime/instances/instance-model.ts'

const T = 1_796_290_431_009

/** One event of every kind and shape the engine records. */
const EVERY_EVENT: HistoryEvent[] = [
  { e: 'started', t: T, name: 'flow', input: { city: 'Tokyo' }, version: 'v2', execution: 3, seq: 2_000_000 },
  { e: 'step', t: T },
  { e: 'scheduled', seq: 0, kind: 'activity', name: 'hello', attempt: 1 },
  { e: 'scheduled', seq: 1, kind: 'timer', fireAt: T + 5000 },
  { e: 'scheduled', seq: 2, kind: 'cancelTimer', timer: 1 },
  { e: 'scheduled', seq: 3, kind: 'sub', name: 'child', instanceId: 'i-1:3', attempt: 2 },
  { e: 'scheduled', seq: 4, kind: 'call', entity: ['Counter', 'c1'], op: 'add' },
  { e: 'scheduled', seq: 5, kind: 'signal', entity: ['Counter', 'c2'], op: 'reset' },
  { e: 'scheduled', seq: 6, kind: 'start', name: 'other', instanceId: 'x' },
  {
    e: 'scheduled',
    seq: 7,
    kind: 'lock',
    entities: [
      ['A', '1'],
      ['B', '2'],
    ],
  },
  { e: 'step', t: T + 12 },
  { e: 'completed', seq: 0, result: 'Hello Tokyo' },
  { e: 'completed', seq: 4 },
  { e: 'failed', seq: 3, error: { name: 'Error', message: 'no', stack: 'at x' } },
  { e: 'timerFired', seq: 1 },
  { e: 'event', name: 'approve', data: [1, null, { deep: true }] },
  { e: 'event', name: 'ping' },
  { e: 'patch', id: 'fix-1' },
  { e: 'scheduled', seq: 8, kind: 'unlock', entities: [['A', '1']] },
  { e: 'customStatus', value: { stage: 2 } },
  { e: 'step', t: T + 5 }, // (a clock that went back)
  { e: 'finished', status: 'completed', output: 42 },
  { e: 'finished', status: 'completed' },
  { e: 'finished', status: 'failed', error: { name: 'TypeError', message: 'bad' } },
  { e: 'finished', status: 'continuedAsNew', input: 'next' },
  { e: 'finished', status: 'continuedAsNew' },
]

/** What events read back as after storing. */
const stored = (events: HistoryEvent[]): HistoryEvent[] => decodeChunk(encodeChunk(events), 'chunk')

function record(tail: HistoryEvent[]): InstanceRecord {
  return {
    v: RECORD_FORMAT,
    id: 'i-1',
    name: 'flow',
    status: RuntimeStatus.Completed,
    input: 5,
    output: 5,
    created: T,
    updated: T,
    completed: T,
    hk: 91,
    hc: 0,
    tail,
    buffered: [{ e: 'event', name: 'late', data: 1 }],
    exec: 1,
    timers: [],
    activities: [],
  }
}

describe('history events, packed', () => {
  it('read back as the events they were, every kind and shape', () => {
    expect(stored(EVERY_EVENT)).toStrictEqual(EVERY_EVENT)
  })

  it('store no field names, and a step marker as the milliseconds since the step before', () => {
    const packed = packEvents([
      { e: 'started', t: T, name: 'flow', input: 5, execution: 1 },
      { e: 'step', t: T },
      { e: 'scheduled', seq: 0, kind: 'activity', name: 'hello', attempt: 1 },
      { e: 'step', t: T + 3 },
      { e: 'completed', seq: 0, result: 'Hello' },
      { e: 'finished', status: 'completed', output: 5 },
    ])
    expect(packed).toEqual([
      [0, T, 'flow', 5, undefined, 1],
      0,
      [1, 0, 'hello', 1],
      3,
      [10, 0, 'Hello'],
      [16, 5],
    ])
  })

  it('keep a step time that is no whole number of milliseconds exactly', () => {
    const events: HistoryEvent[] = [
      { e: 'step', t: 0.1 },
      { e: 'step', t: 0.3 },
      { e: 'step', t: 7 },
      { e: 'step', t: 9 },
    ]
    expect(stored(events)).toStrictEqual(events)
  })

  it('keep references to large values, and values of every type, as they were', () => {
    const ref = new BlobRef('blob-1', 12_345, 1, 'ab'.repeat(32))
    const events: HistoryEvent[] = [
      { e: 'started', t: T, name: 'flow', input: ref },
      { e: 'completed', seq: 0, result: new Map([['a', 1]]) },
      { e: 'completed', seq: 1, result: new Date(T) },
      { e: 'completed', seq: 2, result: null },
    ]
    const back = stored(events)
    expect(back[0]).toMatchObject({ e: 'started', input: { id: 'blob-1' } })
    expect((back[0] as { input: unknown }).input).toBeInstanceOf(BlobRef)
    expect(back.slice(1)).toStrictEqual(decode(encode(events.slice(1))))
  })

  it('keep an event with a field no layout names as the object it is', () => {
    const odd = { e: 'completed', seq: 0, result: 1, extra: 'x' } as unknown as HistoryEvent
    const events: HistoryEvent[] = [{ e: 'step', t: T }, odd, { e: 'step', t: T + 1 }]
    expect(packEvents(events)[1]).toBe(odd)
    expect(stored(events)).toStrictEqual(events)
  })

  it('read events stored as objects (format 1) and mixed with packed ones', () => {
    const old = decode(encode(EVERY_EVENT))
    expect(unpackEvents(old, 'chunk')).toStrictEqual(EVERY_EVENT)
    const mixed = [...packEvents(EVERY_EVENT.slice(0, 10)), ...EVERY_EVENT.slice(10)]
    expect(unpackEvents(decode(encode(mixed)), 'chunk')).toStrictEqual(EVERY_EVENT)
  })

  it('refuse a layout this version does not know, or an element that is no event, naming it', () => {
    expect(() => unpackEvents([0, [99, 1]], 'history chunk h.1.x.2.0')).toThrow(
      /history chunk h\.1\.x\.2\.0: history event 1 has layout 99, which this version of Basalt does not know/,
    )
    expect(() => unpackEvents(['x'], 'chunk')).toThrow(CodecError)
    expect(() => unpackEvents([null], 'chunk')).toThrow(/history event 0 is null/)
    expect(() => unpackEvents({}, 'chunk')).toThrow(/history is not a list/)
  })
})

describe('instance records', () => {
  it('are stored in format 2 and read back as they were', () => {
    const rec = record(EVERY_EVENT)
    const bytes = encodeRecord(rec)
    expect((decode(bytes) as { v: number }).v).toBe(2)
    expect(decodeRecord(bytes, 'instance i-1')).toStrictEqual(rec)
  })

  it('written in format 1 (events as objects) are read', () => {
    const rec = record(EVERY_EVENT)
    const old = encode({ ...rec, v: 1 })
    expect(decodeRecord(old, 'instance i-1')).toStrictEqual(rec)
  })

  it('of a later format are refused, naming the format', () => {
    const later = encode({ ...record([]), v: 3 })
    expect(() => decodeRecord(later, 'instance i-1')).toThrow(
      /instance i-1: instance record of format 3; this version of Basalt reads formats 1 to 2/,
    )
    expect(() => decodeRecord(encode([1, 2]), 'instance i-1')).toThrow(/not an instance record/)
  })

  it('take less than half the bytes of events as objects (a hello-sequence record)', () => {
    const tail: HistoryEvent[] = [
      { e: 'started', t: T, name: 'bench.helloSequence', input: 5, execution: 1 },
      { e: 'step', t: T },
    ]
    for (let i = 0; i < 5; i++) {
      tail.push({ e: 'scheduled', seq: i, kind: 'activity', name: 'bench.hello', attempt: 1 })
      tail.push({ e: 'step', t: T })
      tail.push({ e: 'completed', seq: i, result: `Hello city-${i}` })
    }
    tail.push({ e: 'finished', status: 'completed', output: 5 })
    const rec = record(tail)
    expect(encodeRecord(rec).length * 2).toBeLessThan(encode({ ...rec, v: 1 }).length)
  })
})
