/**
 * What the client sends, checked without a server: values the wire cannot carry (functions and
 * symbols) are found and named, and the checked codec encodes everything else as the plain one.
 */
import { describe, expect, it } from 'vitest'
import { CodecError } from '../../actors/index.ts'
import { findUnsendable } from '../../runtime/client/args.ts'
import { encode, encodeChecked } from '../../runtime/nats/codec.ts'

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
