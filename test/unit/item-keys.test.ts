/** The state-bucket key scheme: every kind builds, parses back and classifies (no server). */
import { describe, expect, it } from 'vitest'
import {
  ItemKind,
  entityTypeFilter,
  entityTypePrefix,
  isDeferredTimer,
  isEager,
  isWriteOnce,
  itemKey,
  kindOf,
  parseItemKey,
  partitionFilter,
  partitionPrefix,
} from '../../runtime/nats/item-keys.ts'

describe('item keys', () => {
  it('builds each kind in its documented layout', () => {
    expect(itemKey.entity(3, 'Counter', 'a.b')).toBe('e.3.Counter.a=2Eb')
    expect(itemKey.lock(3, 'Counter', 'x')).toBe('l.3.Counter.x')
    expect(itemKey.instance(2, 'order 1')).toBe('o.2.order=201')
    expect(itemKey.history(2, 'i', 7, 0)).toBe('h.2.i.7.0')
    expect(itemKey.timer(1, '5-0')).toBe('t.1.5-0')
    expect(itemKey.deferredTimer(1, '5-1')).toBe('t.1.u.5-1')
    expect(itemKey.instanceTimer(1, 'i', 4)).toBe('t.1.o.i.4')
    expect(itemKey.instanceTimer(1, 'i', -1)).toBe('t.1.o.i.start')
    expect(itemKey.activity(0, 'i', 9)).toBe('a.0.i.9')
    expect(itemKey.replies(4)).toBe('rep.4')
    expect(itemKey.checkpoint(4)).toBe('ckpt.4')
  })

  it('parses every kind back to its parts', () => {
    expect(parseItemKey(itemKey.entity(3, 'Counter', 'ü.*>'))).toEqual({
      kind: 'e',
      p: 3,
      type: 'Counter',
      key: 'ü.*>',
    })
    expect(parseItemKey(itemKey.lock(3, 'T', 'k'))).toEqual({ kind: 'l', p: 3, type: 'T', key: 'k' })
    expect(parseItemKey(itemKey.instance(2, 'a b'))).toEqual({ kind: 'o', p: 2, id: 'a b' })
    expect(parseItemKey(itemKey.history(2, 'i.d', 7, 3))).toEqual({
      kind: 'h',
      p: 2,
      id: 'i.d',
      hk: 7,
      chunk: 3,
    })
    expect(parseItemKey(itemKey.timer(1, '5-0'))).toEqual({ kind: 't', p: 1, timer: 'round', name: '5-0' })
    expect(parseItemKey(itemKey.deferredTimer(1, '5-1'))).toEqual({
      kind: 't',
      p: 1,
      timer: 'deferred',
      name: '5-1',
    })
    expect(parseItemKey(itemKey.instanceTimer(1, 'x', 4))).toEqual({
      kind: 't',
      p: 1,
      timer: 'instance',
      id: 'x',
      seq: 4,
    })
    expect(parseItemKey(itemKey.instanceTimer(1, 'x', -1))).toMatchObject({ timer: 'instance', seq: 'start' })
    expect(parseItemKey(itemKey.activity(0, 'x', 9))).toEqual({ kind: 'a', p: 0, id: 'x', seq: 9 })
    expect(parseItemKey(itemKey.replies(4))).toEqual({ kind: 'rep', p: 4 })
    expect(parseItemKey(itemKey.repliesSegment(4, 17))).toEqual({ kind: 'rep', p: 4, slot: 17 })
    expect(parseItemKey(itemKey.checkpoint(4))).toEqual({ kind: 'ckpt', p: 4 })
  })

  it('rejects keys that are not of the scheme', () => {
    for (const bad of [
      '',
      'x.1.a',
      'e.1.T',
      'e.p.T.k',
      'o.1',
      'a.1.i.z',
      'rep.1.x',
      'rep.1.2.3',
      't.1.q.5-0',
      'rel.1',
    ]) {
      expect(parseItemKey(bad), bad).toBeUndefined()
    }
    expect(kindOf('rel.1')).toBeUndefined()
    expect(kindOf('report.1')).toBeUndefined()
  })

  it('classifies kinds: eager (loaded at recovery), write-once, deferred', () => {
    expect(kindOf(itemKey.replies(0))).toBe(ItemKind.Replies)
    expect(kindOf(itemKey.entity(0, 'T', 'k'))).toBe(ItemKind.Entity)
    const eager = [itemKey.timer(0, '1-0'), itemKey.lock(0, 'T', 'k'), itemKey.activity(0, 'i', 1)]
    for (const key of eager) expect(isEager(key), key).toBe(true)
    for (const key of [
      itemKey.entity(0, 'T', 'k'),
      itemKey.instance(0, 'i'),
      itemKey.history(0, 'i', 1, 0),
    ]) {
      expect(isEager(key), key).toBe(false)
    }
    expect(isWriteOnce(itemKey.history(0, 'i', 1, 0))).toBe(true)
    expect(isWriteOnce(itemKey.instance(0, 'i'))).toBe(false)
    expect(isDeferredTimer(itemKey.deferredTimer(2, '3-0'), 2)).toBe(true)
    expect(isDeferredTimer(itemKey.deferredTimer(2, '3-0'), 1)).toBe(false)
    expect(isDeferredTimer(itemKey.timer(2, '3-0'), 2)).toBe(false)
  })

  it('turns entity keys into lock keys and back', () => {
    const e = itemKey.entity(5, 'T', 'k.1')
    expect(itemKey.lockOf(e)).toBe(itemKey.lock(5, 'T', 'k.1'))
    expect(itemKey.entityOf(itemKey.lockOf(e))).toBe(e)
    expect(() => itemKey.lockOf(itemKey.instance(5, 'i'))).toThrow(/not a key of kind 'e'/)
  })

  it('makes subject filters and prefixes per partition', () => {
    expect(partitionFilter(ItemKind.Timer, 3)).toBe('t.3.>')
    expect(partitionFilter(ItemKind.Replies, 3)).toBe('rep.3.>')
    expect(partitionPrefix(ItemKind.Instance, 3)).toBe('o.3.')
    expect(entityTypePrefix(3, 'T')).toBe('e.3.T.')
    expect(entityTypeFilter(3, 'T')).toBe('e.3.T.*')
    expect(itemKey.entity(3, 'T', 'k').startsWith(entityTypePrefix(3, 'T'))).toBe(true)
    expect(itemKey.entity(3, 'TT', 'k').startsWith(entityTypePrefix(3, 'T'))).toBe(false)
  })
})
