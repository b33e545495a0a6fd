/**
 * Sets, errors and regular expressions in user values keep their type through the codec
 * (runtime/nats/value-types.ts); values written before, as bare arrays, read as they did; a Map
 * reads back as a plain object (documented in docs/ARCHITECTURE.md, "Values").
 */
import { describe, expect, it } from 'vitest'
import { Packr } from 'msgpackr'
import { decode, encode, encodeChecked } from '../../runtime/nats/codec.ts'

describe('value types through the codec', () => {
  it('keeps Sets, nested ones too, in what the node and the client encode', () => {
    const value = { tags: new Set(['a', 'b']), deep: [{ ids: new Set([1, 2, 3]) }] }
    for (const bytes of [encode(value), encodeChecked(value)]) {
      const back = decode(bytes) as typeof value
      expect(back.tags).toBeInstanceOf(Set)
      expect([...back.tags]).toEqual(['a', 'b'])
      expect(back.deep[0]!.ids).toEqual(new Set([1, 2, 3]))
    }
  })

  it('keeps an error as an error: its class (standard ones), name, message and cause', () => {
    const back = decode(
      encode([new RangeError('too far', { cause: { at: 3 } }), new Error('plain')]),
    ) as Error[]
    expect(back[0]).toBeInstanceOf(RangeError)
    expect(back[0]).toMatchObject({ name: 'RangeError', message: 'too far', cause: { at: 3 } })
    expect(back[1]).toBeInstanceOf(Error)
    expect(back[1]!.message).toBe('plain')
    class QuotaError extends Error {
      override name = 'QuotaError'
    }
    const custom = decode(encode(new QuotaError('over quota'))) as Error
    expect(custom).toBeInstanceOf(Error)
    expect(custom).toMatchObject({ name: 'QuotaError', message: 'over quota' })
  })

  it('keeps a BigInt from -2^63 to 2^64 - 1 and refuses a larger one, saying so (README says so)', () => {
    for (const n of [5n, -(2n ** 63n), 2n ** 64n - 1n]) expect(decode(encode(n))).toBe(n)
    expect(() => encode(2n ** 64n)).toThrow(/too large to fit in MessagePack 64-bit integer/)
  })

  it('keeps a regular expression', () => {
    expect(decode(encode({ re: /ab+c/giu })) as { re: RegExp }).toEqual({ re: /ab+c/giu })
  })

  it('reads values written before as they were written (bare arrays)', () => {
    const old = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
    // (a Packr made here shares the extensions registered by the codec: write the old shapes by hand)
    const bytes = old.pack({ tags: ['a', 'b'], error: ['Error', 'x', undefined] })
    expect(decode(bytes)).toEqual({ tags: ['a', 'b'], error: ['Error', 'x', undefined] })
  })

  it('reads a Map back as a plain object with string keys', () => {
    expect(
      decode(
        encode(
          new Map<unknown, number>([
            ['a', 1],
            [2, 2],
          ]),
        ),
      ),
    ).toEqual({ a: 1, 2: 2 })
  })
})
