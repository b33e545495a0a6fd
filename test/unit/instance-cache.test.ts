/** The instance cache (runtime/instances/instance-cache.ts) through a fake port, without a server. */
import { describe, expect, it } from 'vitest'
import { encode } from '../../runtime/nats/codec.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import type { HostPort } from '../../runtime/partition/index.ts'
import { InstanceCache, type Live } from '../../runtime/instances/instance-cache.ts'
import { RECORD_FORMAT, RuntimeStatus, type InstanceRecord } from '../../runtime/instances/instance-model.ts'

function record(id: string, status: RuntimeStatus = RuntimeStatus.Running, hc = 0): InstanceRecord {
  return {
    v: RECORD_FORMAT,
    id,
    name: 'o',
    status,
    input: null,
    created: 0,
    updated: 0,
    hk: 7,
    hc,
    tail: [],
    buffered: [],
    exec: 1,
    timers: [],
    activities: [],
  }
}

function fake() {
  const pinned = new Set<string>()
  const forgotten: string[] = []
  const stored = new Map<string, Uint8Array>()
  const port = {
    p: 3,
    isPinned: (key: string) => pinned.has(key),
    markAbsent: () => {},
    forget: (key: string) => void forgotten.push(key),
    readItem: async (key: string) => stored.get(key) ?? null,
  } as unknown as HostPort
  return { port, pinned, forgotten, stored }
}

const live = (rec: InstanceRecord): Live => ({ rec, used: false })
const ids = (cache: InstanceCache) => [...cache.entries()].map(([id]) => id)

describe('InstanceCache', () => {
  it('stays bounded however many instances start (a fresh start evicts too)', () => {
    const { port } = fake()
    const cache = new InstanceCache(port, 100)
    for (let i = 0; i < 10_000; i++) cache.set(`i${i}`, live(record(`i${i}`, RuntimeStatus.Completed)))
    expect([...cache.entries()].length).toBeLessThanOrEqual(100)
    // the newest stay
    expect(cache.get('i9999')).toBeDefined()
    expect(cache.get('i0')).toBeUndefined()
  })

  it('evicts ended instances before running ones, and never the one just set', () => {
    const { port } = fake()
    const cache = new InstanceCache(port, 10)
    for (let i = 0; i < 5; i++) cache.set(`run${i}`, live(record(`run${i}`)))
    for (let i = 0; i < 5; i++) cache.set(`done${i}`, live(record(`done${i}`, RuntimeStatus.Failed)))
    cache.set('new', live(record('new')))
    // over by one: down to 9, all from the ended ones
    expect(ids(cache)).toEqual(['run0', 'run1', 'run2', 'run3', 'run4', 'done2', 'done3', 'done4', 'new'])
  })

  it('keeps instances with writes outside the state bucket, and forgets the revisions of evicted ones', () => {
    const { port, pinned, forgotten } = fake()
    const cache = new InstanceCache(port, 4)
    for (let i = 0; i < 4; i++)
      cache.set(`a${i}`, live(record(`a${i}`, RuntimeStatus.Completed, i === 1 ? 2 : 0)))
    pinned.add(itemKey.instance(3, 'a0'))
    cache.set('b', live(record('b')))
    // over the limit: down to 3, the oldest ended ones but the pinned a0
    expect(ids(cache)).toEqual(['a0', 'a3', 'b'])
    expect(forgotten).toEqual([
      itemKey.instance(3, 'a1'),
      itemKey.history(3, 'a1', 7, 0),
      itemKey.history(3, 'a1', 7, 1),
      itemKey.instance(3, 'a2'),
    ])
  })

  it('gives a running instance used since the last pass a second chance', () => {
    const { port } = fake()
    const cache = new InstanceCache(port, 3)
    for (const id of ['x', 'y', 'z']) cache.set(id, live(record(id)))
    cache.cached('x') // marks x used
    cache.set('w', live(record('w')))
    // over the limit: down to 2; y and z go, x (used) moves behind w
    expect(ids(cache)).toEqual(['w', 'x'])
  })

  it('a loaded instance counts like a started one and is returned even at the limit', async () => {
    const { port, stored } = fake()
    const cache = new InstanceCache(port, 2)
    cache.set('a', live(record('a')))
    cache.set('b', live(record('b')))
    stored.set(itemKey.instance(3, 'c'), encode(record('c')))
    const loaded = await cache.load('c')
    expect(loaded?.rec.id).toBe('c')
    expect(cache.get('c')).toBe(loaded)
    expect([...cache.entries()].length).toBeLessThanOrEqual(2)
  })

  it('lets ended instances go once their final write is stored, oldest first', () => {
    const { port, pinned, forgotten } = fake()
    const cache = new InstanceCache(port, 100)
    const e1 = live(record('e1', RuntimeStatus.Completed))
    const e2 = live(record('e2', RuntimeStatus.Failed))
    const running = live(record('r'))
    for (const [id, l] of [
      ['e1', e1],
      ['e2', e2],
      ['r', running],
    ] as const)
      cache.set(id, l)
    pinned.add(itemKey.instance(3, 'e1'))
    pinned.add(itemKey.instance(3, 'e2'))
    cache.ended('e1', e1)
    cache.ended('e2', e2)
    // not stored yet: both stay (a listing or a read finds them here)
    expect(ids(cache)).toEqual(['e1', 'e2', 'r'])
    pinned.delete(itemKey.instance(3, 'e1'))
    pinned.delete(itemKey.instance(3, 'e2'))
    const e3 = live(record('e3', RuntimeStatus.Completed))
    cache.set('e3', e3)
    pinned.add(itemKey.instance(3, 'e3'))
    cache.ended('e3', e3)
    expect(ids(cache)).toEqual(['r', 'e3'])
    expect(forgotten).toEqual([itemKey.instance(3, 'e1'), itemKey.instance(3, 'e2')])
  })

  it('lets the last ended instances go after the snapshot, with no further instance ending', () => {
    const { port, pinned } = fake()
    const cache = new InstanceCache(port, 100)
    const e = live(record('e', RuntimeStatus.Completed))
    cache.set('e', e)
    pinned.add(itemKey.instance(3, 'e'))
    cache.ended('e', e)
    expect(ids(cache)).toEqual(['e'])
    pinned.clear() // the snapshot stored it
    cache.sweepEnded()
    expect(ids(cache)).toEqual([])
  })
})
