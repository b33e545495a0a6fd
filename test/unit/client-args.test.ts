/**
 * The client's argument checks without a server: orchestration and event names, entity classes,
 * timeouts, instance queries, and values the wire cannot carry (functions, symbols: found and
 * named).
 */
import { describe, expect, it } from 'vitest'
import { BadInputError, CodecError } from '../../actors/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import {
  MAX_INSTANCE_PAGE_SIZE,
  checkEntityClass,
  checkInstanceQuery,
  checkTimeout,
  eventName,
  findUnsendable,
  orchestrationName,
} from '../../runtime/client/args.ts'
import { encode, encodeChecked } from '../../runtime/nats/codec.ts'
import { Counter } from '../fixtures/entities.ts'

describe('orchestrations, events and entity classes', () => {
  it('takes an orchestration by definition or by name', () => {
    const def = orchestration('named', function* () {})
    expect(orchestrationName(def)).toBe('named')
    expect(orchestrationName('byName')).toBe('byName')
    for (const bad of [null, undefined, 42, {}, { name: 'x' }, '']) {
      expect(() => orchestrationName(bad)).toThrow(BadInputError)
    }
    expect(() => orchestrationName(null)).toThrow(/orchestration must be a definition .* \(got null\)/)
    expect(() => orchestrationName('')).toThrow(/orchestration name must be a non-empty string/)
  })

  it('takes an event by definition or by name', () => {
    expect(eventName('approve')).toBe('approve')
    expect(eventName({ kind: 'event', name: 'approve' })).toBe('approve')
    expect(() => eventName(42)).toThrow(/^event name must be a non-empty string .*\(got number 42\)$/)
  })

  it('wants an entity class for a typed handle', () => {
    expect(checkEntityClass(Counter)).toBe(Counter)
    expect(() => checkEntityClass('Counter' as never)).toThrow(
      /entity type must be an entity class \(got string "Counter"\)/,
    )
    expect(() => checkEntityClass(null as never)).toThrow(BadInputError)
  })
})

describe('timeouts and instance queries', () => {
  it('takes timeouts that are positive numbers of ms', () => {
    expect(checkTimeout(5, 'timeoutMs')).toBe(5)
    for (const bad of ['abc', 0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, null]) {
      expect(() => checkTimeout(bad, 'timeoutMs')).toThrow(BadInputError)
    }
    expect(() => checkTimeout('abc', 'timeoutMs')).toThrow(
      /^timeoutMs must be a positive number of ms.*"abc"/,
    )
  })

  it('checks every field of an instance query, naming it', () => {
    expect(checkInstanceQuery({})).toEqual({ filter: {}, pageSize: 100 })
    const at = new Date(1_700_000_000_000)
    expect(
      checkInstanceQuery({
        statuses: ['Running'],
        createdFrom: at,
        createdTo: 5,
        idPrefix: 'a',
        pageSize: MAX_INSTANCE_PAGE_SIZE,
        continuation: 'c',
      }),
    ).toEqual({
      filter: { statuses: ['Running'], createdFrom: at.getTime(), createdTo: 5, idPrefix: 'a' },
      pageSize: 1000,
      continuation: 'c',
    })
    const cases: Array<[object, RegExp]> = [
      [{ pageSize: -1 }, /^pageSize must be a whole number in 1\.\.1000 \(got number -1\)$/],
      [{ pageSize: 0 }, /pageSize .* \(got number 0\)/],
      [{ pageSize: 1.5 }, /pageSize/],
      [{ pageSize: 1e9 }, /pageSize/],
      [{ statuses: ['Bogus'] }, /^statuses: unknown status string "Bogus" \(one of Pending, Running/],
      [{ statuses: 'Completed' }, /^statuses must be an array/],
      [
        { createdFrom: 'yesterday' },
        /^createdFrom must be a Date or ms since the epoch \(got string "yesterday"\)$/,
      ],
      [{ createdTo: new Date('nope') }, /^createdTo .* \(got an invalid Date\)$/],
      [{ namePrefix: 5 }, /^namePrefix must be a string \(got number 5\)$/],
      [{ continuation: 5 }, /^continuation must be a string/],
    ]
    for (const [query, message] of cases) {
      expect(() => checkInstanceQuery(query as never)).toThrow(BadInputError)
      expect(() => checkInstanceQuery(query as never)).toThrow(message)
    }
  })
})

describe('values the wire cannot carry', () => {
  it('rejects functions and symbols anywhere in what a client sends; the lenient codec is unchanged', () => {
    expect(() => encodeChecked([1, { f: () => 1 }])).toThrow(CodecError)
    expect(() => encodeChecked({ a: Symbol('s') })).toThrow(CodecError)
    expect(encodeChecked({ a: [1, 'x', new Uint8Array(2)] })).toEqual(
      encode({ a: [1, 'x', new Uint8Array(2)] }),
    )
    expect(() => encode({ f: () => 1 })).not.toThrow()
  })

  it('names where the function or symbol is', () => {
    expect(findUnsendable({ k: 'op', t: 'Counter', key: 'c1', op: 'add', a: [() => 1] })).toBe(
      "argument 1 of Counter.add (entity 'c1') is a function, which cannot be sent (functions and symbols do not cross the wire)",
    )
    expect(
      findUnsendable({ k: 'op', t: 'Counter', key: 'c1', op: 'set', a: [1, { x: [0, Symbol('s')] }] }),
    ).toMatch(/^argument 2 of Counter\.set \(entity 'c1'\) at \.x\[1\] is a symbol/)
    expect(findUnsendable({ k: 'start', i: 'x', n: 'o', in: { cb: () => 1 } })).toMatch(
      /^input of instance 'x' at \.cb is a function/,
    )
    expect(findUnsendable({ k: 'ev', i: 'x', n: 'go', d: new Map([['k', () => 1]]) })).toMatch(
      /^data of event 'go' for instance 'x' at \.get\("k"\) is a function/,
    )
    const circular: Record<string, unknown> = {}
    circular.self = circular
    expect(findUnsendable({ k: 'start', i: 'x', n: 'o', in: circular })).toBeUndefined()
  })
})
