/**
 * The operations of a hub's entity types in its meta key `operations` (placement/registry.ts):
 * merged by compare-and-set over a fake bucket, no server.
 */
import { describe, expect, it } from 'vitest'
import { readHubOperations, rememberOperations } from '../../placement/index.ts'
import { decode, encode, type KV } from '../../runtime/nats/index.ts'

/** A bucket of one revision counter with get, create and update as compare-and-set does them. */
function fakeKv(beforeWrite: () => void = () => {}) {
  const entries = new Map<string, { value: Uint8Array; revision: number }>()
  let revision = 0
  let writes = 0
  const kv = {
    get: async (key: string) => {
      const e = entries.get(key)
      return e === undefined ? null : { key, value: e.value, revision: e.revision, operation: 'PUT' }
    },
    create: async (key: string, value: Uint8Array) => {
      beforeWrite()
      if (entries.has(key)) throw new Error('wrong last sequence: 1')
      entries.set(key, { value, revision: ++revision })
      writes++
      return revision
    },
    update: async (key: string, value: Uint8Array, last: number) => {
      beforeWrite()
      if (entries.get(key)?.revision !== last) throw new Error(`wrong last sequence: ${last}`)
      entries.set(key, { value, revision: ++revision })
      writes++
      return revision
    },
  }
  const stored = () => decode(entries.get('operations')!.value, 'operations') as unknown
  return { kv: kv as unknown as KV, entries, stored, writes: () => writes }
}

describe('hub operations', () => {
  it('merges the operations of each node, sorted, and writes only what is new', async () => {
    const { kv, stored, writes } = fakeKv()
    expect(await readHubOperations(kv)).toBeUndefined()
    await rememberOperations(kv, new Map([['Counter', new Set(['get', 'add'])]]))
    await rememberOperations(
      kv,
      new Map([
        ['Counter', ['add', 'reset']],
        ['Account', ['deposit']],
      ]),
    )
    expect(stored()).toEqual({ Counter: ['add', 'get', 'reset'], Account: ['deposit'] })
    expect(writes()).toBe(2)
    await rememberOperations(kv, new Map([['Counter', ['get']]]))
    await rememberOperations(kv, new Map())
    expect(writes(), 'nothing new: nothing written').toBe(2)
    expect(await readHubOperations(kv)).toEqual({ Counter: ['add', 'get', 'reset'], Account: ['deposit'] })
  })

  it('reads again and merges when another node wrote in between', async () => {
    let race = true
    const other = fakeKv(() => {
      if (!race) return
      race = false
      // another node's write lands between this one's read and its write
      other.entries.set('operations', { value: encode({ Log: ['append'] }), revision: 99 })
    })
    await rememberOperations(other.kv, new Map([['Counter', ['add']]]))
    expect(other.stored()).toEqual({ Log: ['append'], Counter: ['add'] })
  })

  it('keeps only lists of strings from what the key holds', async () => {
    const { kv, entries } = fakeKv()
    entries.set('operations', { value: encode({ Counter: ['add', 3, null], Bad: 'x' }), revision: 1 })
    expect(await readHubOperations(kv)).toEqual({ Counter: ['add'] })
  })
})
