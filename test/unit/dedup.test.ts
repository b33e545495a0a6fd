/** The dedup slice (runtime/partition/dedup.ts), without a server. */
import { describe, expect, it } from 'vitest'
import { CLIENT_DEDUP_RETENTION_MS, DedupState } from '../../runtime/partition/dedup.ts'

const client = (c: string, batch: number) => ({ client: c, batch })
const origin = (partition: number, record: number) => ({ partition, record })

describe('dedup slice', () => {
  it('drops a client batch or a partition record seen before, and admits newer ones', () => {
    const d = new DedupState()
    expect(d.isDuplicate(client('c1', 1))).toBe(false)
    expect(d.isDuplicate(origin(2, 1))).toBe(false)
    d.accept(client('c1', 5), 100)
    d.accept(origin(2, 7), 100)
    expect(d.isDuplicate(client('c1', 5))).toBe(true)
    expect(d.isDuplicate(client('c1', 4))).toBe(false) // never seen (it may still come)
    expect(d.isDuplicate(client('c1', 6))).toBe(false)
    expect(d.isDuplicate(client('c2', 1))).toBe(false)
    expect(d.isDuplicate(origin(2, 7))).toBe(true)
    expect(d.isDuplicate(origin(2, 8))).toBe(false)
    expect(d.isDuplicate(origin(3, 1))).toBe(false)
  })

  it('a record carries the delta of its round only', () => {
    const d = new DedupState()
    d.accept(client('c1', 1), 10)
    d.accept(origin(2, 3), 10)
    expect(d.seal(1)).toEqual({ dc: [['c1', 1, 10, 0]], dp: [[2, 3, 0]] })
    d.accept(client('c2', 4), 20)
    expect(d.seal(2)).toEqual({ dc: [['c2', 4, 20, 0]], dp: [] })
    expect(d.seal(3)).toEqual({ dc: [], dp: [] })
  })

  it('the checkpoint holds the committed view only, while pending rounds still count as duplicates', () => {
    const d = new DedupState()
    d.accept(client('c1', 1), 10)
    const r1 = { n: 1, ...d.seal(1) }
    d.accept(client('c1', 2), 20) // round 2 is in flight (pipelining)
    const r2 = { n: 2, ...d.seal(2) }
    d.accept(origin(4, 9), 30) // open round
    expect(d.toCheckpoint(40)).toEqual({ dc: [], dp: [] })
    d.apply(r1)
    expect(d.toCheckpoint(40)).toEqual({ dc: [['c1', 1, 10, 0]], dp: [] })
    // not yet committed, yet the loop has processed them: still duplicates
    expect(d.isDuplicate(client('c1', 2))).toBe(true)
    expect(d.isDuplicate(origin(4, 9))).toBe(true)
    d.apply(r2)
    expect(d.toCheckpoint(40)).toEqual({ dc: [['c1', 2, 20, 1]], dp: [] })
    expect(d.isDuplicate(client('c1', 2))).toBe(true)
  })

  it('restores from a checkpoint and replays records as recovery does', () => {
    const d = new DedupState()
    d.restore({ dc: [['c1', 3, 5]], dp: [[1, 4]] })
    d.apply({ n: 8, dc: [['c2', 1, 6]], dp: [[1, 6]] })
    expect(d.isDuplicate(client('c1', 3))).toBe(true)
    expect(d.isDuplicate(client('c2', 1))).toBe(true)
    expect(d.isDuplicate(origin(1, 6))).toBe(true)
    expect(d.isDuplicate(origin(1, 7))).toBe(false)
    // entries written before masks existed count every number below the highest as seen
    expect(d.isDuplicate(client('c1', 1))).toBe(true)
    expect(d.toCheckpoint(10)).toEqual({
      dc: [
        ['c1', 3, 5, 4294967295],
        ['c2', 1, 6, 4294967295],
      ],
      dp: [[1, 6, 4294967295]],
    })
  })

  it('leaves clients unseen for the retention period out of checkpoints', () => {
    const d = new DedupState()
    d.restore({
      dc: [
        ['old', 1, 0],
        ['new', 1, CLIENT_DEDUP_RETENTION_MS],
      ],
      dp: [],
    })
    expect(d.toCheckpoint(CLIENT_DEDUP_RETENTION_MS + 1).dc).toEqual([
      ['new', 1, CLIENT_DEDUP_RETENTION_MS, 0xffffffff],
    ])
  })

  it('applies a batch the stream stored after the next one, once (a replicated stream reorders retries)', () => {
    const d = new DedupState()
    for (const q of [254, 255, 257]) d.accept(client('c', q), 1)
    expect(d.isDuplicate(client('c', 256))).toBe(false)
    d.accept(client('c', 256), 1)
    for (const q of [254, 255, 256, 257]) expect(d.isDuplicate(client('c', q)), `batch ${q}`).toBe(true)
    // survives a record and a checkpoint
    const restored = new DedupState()
    restored.apply({ n: 1, ...d.seal(1) })
    const again = new DedupState()
    again.restore(restored.toCheckpoint(2))
    expect(again.isDuplicate(client('c', 256))).toBe(true)
    expect(again.isDuplicate(client('c', 253))).toBe(false)
    // far below the newest: too old to tell, counted as seen
    again.accept(client('c', 400), 3)
    expect(again.isDuplicate(client('c', 300))).toBe(true)
    // partitions' records the same way
    d.accept(origin(5, 10), 1)
    d.accept(origin(5, 12), 1)
    expect(d.isDuplicate(origin(5, 11))).toBe(false)
    d.accept(origin(5, 11), 1)
    expect(d.isDuplicate(origin(5, 11))).toBe(true)
  })
})
