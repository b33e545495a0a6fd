/**
 * What a node makes of its hub's record (runtime/nats/hub.ts `fateOf`): the same creation time is
 * its hub; another one, a hub created again after a deletion; none, a deleted hub.
 */
import { describe, expect, it } from 'vitest'
import { fateOf, type HubMeta } from '../../runtime/nats/hub.ts'
import { encode } from '../../runtime/nats/codec.ts'

const opened: HubMeta = { v: 1, partitions: 4, replicas: 1, created: 1_700_000_000_000 }

describe('fateOf', () => {
  it('tells the hub a node opened from one created again, and from none', () => {
    expect(fateOf(opened, encode(opened))).toBe('same')
    expect(fateOf(opened, encode({ ...opened, created: opened.created + 5 }))).toBe('recreated')
    expect(fateOf(opened, encode({ ...opened, partitions: 8, created: opened.created + 5 }))).toBe(
      'recreated',
    )
    expect(fateOf(opened, null)).toBe('deleted')
  })
})
