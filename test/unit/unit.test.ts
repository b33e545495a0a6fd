/**
 * Unit tests of the pieces that need no server: codec, ids, timers, commit rounds, the registry,
 * operation and argument checks.
 */
import { describe, expect, it } from 'vitest'
import { CodecError } from '../../actors/errors.ts'
import { decodeToken, encodeToken, partitionOf } from '../../actors/ids.ts'
import { checkEnvelope } from '../../actors/wire/messages.ts'
import {
  Entity,
  EntityRegistry,
  checkArguments,
  operationTable,
  type StandardSchemaV1,
} from '../../entities/index.ts'
import { decode, decodeEnvelope, encode } from '../../runtime/nats/codec.ts'
import { TimerSet } from '../../runtime/partition/timers.ts'
import { itemKey, parseItemKey } from '../../runtime/nats/item-keys.ts'
import { Counter, Log } from '../fixtures/entities.ts'

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
    const key = itemKey.entity(3, 'Counter', 'a.b')
    expect(parseItemKey(key)).toMatchObject({ type: 'Counter', key: 'a.b' })
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

  it('lists a timer set twice with the same due time once (recovery loads it, then replays its record)', () => {
    const timers = new TimerSet()
    const msg = { k: 'op' as const, t: 'T', key: 'k', op: 'o', a: [] }
    timers.set('t.0.1-0', [100, msg]) // from the state bucket: a snapshot wrote it...
    timers.set('t.0.1-1', [100, msg])
    timers.set('t.0.1-0', [100, msg]) // ...and the log replays the record that set it
    expect(timers.due(150).map(([k]) => k)).toEqual(['t.0.1-0', 't.0.1-1'])
    expect(timers.due(150).map(([k]) => k)).toEqual(['t.0.1-0', 't.0.1-1'])
    timers.delete('t.0.1-0')
    expect(timers.due(150).map(([k]) => k)).toEqual(['t.0.1-1'])
  })
})

describe('entity registry', () => {
  it('lists operations and rejects unknown types and operations', () => {
    const registry = new EntityRegistry([Counter, Log])
    expect(registry.get('Counter').operations.has('add')).toBe(true)
    expect(registry.get('Counter').operations.has('initialState')).toBe(false)
    expect(() => registry.get('Nope')).toThrow(/unknown entity type 'Nope'/)
    const ctx = { type: 'Counter', key: 'k', state: 1, deleted: false, send() {}, start: () => 'id' }
    const counter = registry.instantiate('Counter')
    expect(() => registry.run(counter, ctx, 'nope', [])).toThrow(/has no operation 'nope'/)
    registry.run(counter, ctx, 'add', [2])
    expect(ctx.state).toBe(3)
    expect(() => new EntityRegistry([Counter, Counter])).toThrow(/registered twice/)
  })
})

describe('operation and argument checks', () => {
  const isString: StandardSchemaV1<string> = {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (v) =>
        typeof v === 'string'
          ? { value: v.trim() }
          : { issues: [{ message: 'expected a string', path: ['name', { key: 0 }] }] },
    },
  }
  const isNumberLater: StandardSchemaV1<number> = {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: async (v) =>
        typeof v === 'number' ? { value: v } : { issues: [{ message: 'not a number' }] },
    },
  }

  it('checks one schema per operation, or one per argument, and returns the outputs', async () => {
    expect(checkArguments(isString, [' a '], 'T', 'k', 'op')).toEqual(['a'])
    expect(() => checkArguments(isString, [1], 'T', 'k', 'op')).toThrow(
      'bad arguments for T@k.op: at name.0: expected a string',
    )
    expect(() => checkArguments(isString, ['a', 'b'], 'T', 'k', 'op')).toThrow(/expects 1 argument, got 2/)
    expect(() => checkArguments([isString, isString], [1, 2], 'T', 'k', 'op')).toThrow(
      'bad arguments for T@k.op: argument 1: at name.0: expected a string; argument 2: at name.0: expected a string',
    )
    expect(() => checkArguments([isString], ['a', 'b'], 'T', 'k', 'op')).toThrow(
      /expects at most 1 argument, got 2/,
    )
    await expect(checkArguments([isString, isNumberLater], ['x', 3], 'T', 'k', 'op')).resolves.toEqual([
      'x',
      3,
    ])
    await expect(checkArguments(isNumberLater, ['3'], 'T', 'k', 'op')).rejects.toThrow(
      'bad arguments for T@k.op: not a number',
    )
  })

  it('refuses schemas that name no operation or are not Standard Schemas', () => {
    class NoSuchOp extends Entity<number> {
      static override schemas = { nope: isString }
      initialState() {
        return 0
      }
      add() {}
    }
    expect(() => operationTable(NoSuchOp)).toThrow(/NoSuchOp.schemas names 'nope', which is not an operation/)
    class NotASchema extends Entity<number> {
      static override schemas = { add: { parse: () => 1 } as unknown as StandardSchemaV1 }
      initialState() {
        return 0
      }
      add() {}
    }
    expect(() => new EntityRegistry([NotASchema])).toThrow(/NotASchema.schemas.add must be a Standard Schema/)
  })

  it('refuses timeouts that are not positive', () => {
    expect(() => new EntityRegistry([Counter], { operationTimeoutMs: 0 })).toThrow(
      /entityOperationTimeoutMs must be a positive number/,
    )
    class Negative extends Entity<number> {
      static override operationTimeoutMs = -1
      initialState() {
        return 0
      }
    }
    expect(() => new EntityRegistry([Negative])).toThrow(/Negative.operationTimeoutMs must be a positive/)
    const registry = new EntityRegistry([Counter], { operationTimeoutMs: Infinity })
    expect(registry.get('Counter').timeoutMs).toBe(Infinity)
  })

  it('refuses a signal from an entity to an operation the target class does not have', () => {
    const sent: string[] = []
    const ctx = {
      type: 'Counter',
      key: 'k',
      state: 0,
      deleted: false,
      send: (_t: string, _k: string, op: string) => void sent.push(op),
      start: () => 'id',
    }
    class Sender extends Entity<number> {
      initialState() {
        return 0
      }
      go(op: string) {
        ;(this.entity(Counter, 'x').signal as unknown as Record<string, () => void>)[op]!()
      }
    }
    const reg = new EntityRegistry([Sender])
    const sender = reg.instantiate('Sender')
    reg.run(sender, { ...ctx, type: 'Sender' }, 'go', ['add'])
    expect(() => reg.run(sender, { ...ctx, type: 'Sender' }, 'go', ['explode'])).toThrow(
      "entity type 'Counter' has no operation 'explode'",
    )
    expect(sent).toEqual(['add'])
  })
})
