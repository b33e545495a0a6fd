/** Unit tests of the pieces that need no server: codec, ids, timers, commit rounds, the registry. */
import { describe, expect, it } from 'vitest'
import { CodecError } from '../actors/errors.ts'
import { decodeToken, encodeToken, partitionOf } from '../actors/ids.ts'
import { checkEnvelope } from '../actors/messages.ts'
import { EntityRegistry } from '../entities/index.ts'
import { decode, decodeEnvelope, encode } from '../runtime/codec.ts'
import { TimerSet } from '../runtime/timers.ts'
import { entityItemKey, parseEntityItemKey } from '../runtime/snapshot.ts'
import { Counter, Log } from './fixtures/entities.ts'

describe('codec', () => {
  it('round-trips values and rejects undecodable bytes with a CodecError', () => {
    const value = { v: 1, a: [1, 'x', { y: null }], b: new Uint8Array([1, 2, 3]) }
    expect(decode(encode(value))).toEqual({ ...value, b: Buffer.from([1, 2, 3]) })
    expect(() => decode(Buffer.from([0x92, 0x01]), 'test bytes')).toThrow(CodecError)
    expect(() => decode(Buffer.from([0x92, 0x01]), 'test bytes')).toThrow(/test bytes: undecodable/)
  })

  it('checks the envelope version', () => {
    expect(() => decodeEnvelope(encode({ v: 99 }), 'mailbox message')).toThrow(/unsupported version 99/)
    expect(() => decodeEnvelope(encode([1, 2]), 'mailbox message')).toThrow(/not an envelope/)
  })

  it('validates mailbox envelopes field by field', () => {
    expect(() =>
      checkEnvelope({ v: 1, c: 'x', q: 1, m: [{ k: 'op', t: 'T', key: 5, op: 'a', a: [] }] }),
    ).toThrow(/field key/)
    expect(() => checkEnvelope({ v: 1 })).toThrow(/neither a client/)
    expect(
      checkEnvelope({ v: 1, c: 'x', q: 1, m: [{ k: 'op', t: 'T', key: 'k', op: 'a', a: [] }] }),
    ).toBeTruthy()
  })
})

describe('ids', () => {
  it('hashes keys stably and honours explicit !n placement', () => {
    expect(partitionOf('abc', 32)).toBe(partitionOf('abc', 32))
    expect(partitionOf('account!7', 32)).toBe(7)
    expect(partitionOf('account!39', 32)).toBe(7)
    const spread = new Set(Array.from({ length: 1000 }, (_, i) => partitionOf(`k${i}`, 32)))
    expect(spread.size).toBe(32)
  })

  it('encodes keys into KV-safe tokens, keeping prefixes', () => {
    for (const key of ['plain', 'with.dot', 'sp ace', 'ünï/cødé*>', '=']) {
      const token = encodeToken(key)
      expect(token).toMatch(/^[A-Za-z0-9_=-]+$/)
      expect(decodeToken(token)).toBe(key)
      expect(encodeToken(key + 'suffix').startsWith(token)).toBe(true)
    }
    const itemKey = entityItemKey(3, 'Counter', 'a.b')
    expect(parseEntityItemKey(itemKey)).toEqual({ type: 'Counter', key: 'a.b' })
  })
})

describe('timers', () => {
  it('returns due timers earliest first and forgets deleted ones', () => {
    const timers = new TimerSet()
    const msg = { k: 'op' as const, t: 'T', key: 'k', op: 'o', a: [] }
    timers.set('t.0.1-0', [300, msg])
    timers.set('t.0.1-1', [100, msg])
    timers.set('t.0.1-2', [200, msg])
    timers.delete('t.0.1-2')
    expect(timers.next()).toBe(100)
    expect(timers.due(250).map(([k]) => k)).toEqual(['t.0.1-1'])
    timers.delete('t.0.1-1')
    expect(timers.next()).toBe(300)
    expect(timers.due(250)).toEqual([])
  })
})

describe('entity registry', () => {
  it('lists operations and rejects unknown types and operations', () => {
    const registry = new EntityRegistry([Counter, Log])
    expect(registry.get('Counter').operations.has('add')).toBe(true)
    expect(registry.get('Counter').operations.has('initialState')).toBe(false)
    expect(() => registry.get('Nope')).toThrow(/unknown entity type 'Nope'/)
    const ctx = { type: 'Counter', key: 'k', state: 1, deleted: false, send() {} }
    expect(() => registry.run(ctx, 'nope', [])).toThrow(/has no operation 'nope'/)
    registry.run(ctx, 'add', [2])
    expect(ctx.state).toBe(3)
    expect(() => new EntityRegistry([Counter, Counter])).toThrow(/registered twice/)
  })
})
