/** The replies a partition keeps for a re-ask (runtime/partition/recent-replies.ts), without a server. */
import { describe, expect, it } from 'vitest'
import type { Reply } from '../../actors/wire/messages.ts'
import { RecentReplies, type RepliesEntry } from '../../runtime/partition/recent-replies.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'

const ok = (rid: number): Reply => [rid, 1, new Uint8Array(1)]

describe('RecentReplies', () => {
  it('keeps copies of the values, not views that would keep their large source buffer alive', () => {
    const source = new Uint8Array(64 * 1024) // an encoder's buffer, or a whole record
    source.set([1, 2, 3], 100)
    source.set([4, 5], 200)
    const replies: Reply[] = [
      [1, 1, source.subarray(100, 103)],
      [2, 0, { name: 'Error', message: 'no' }],
      [3, 1, source.subarray(200, 202)],
    ]
    const kept = new RecentReplies()
    kept.remember('inbox', replies)
    const found = kept.find('inbox', [1, 2, 3])
    expect(found.map((r) => r[0])).toEqual([1, 2, 3])
    const [a, , c] = found as [[number, 1, Uint8Array], Reply, [number, 1, Uint8Array]]
    expect([...a[2]]).toEqual([1, 2, 3])
    expect([...c[2]]).toEqual([4, 5])
    // one small buffer for the batch, not the 64 kB one
    expect(a[2].buffer).not.toBe(source.buffer)
    expect(a[2].buffer.byteLength).toBe(5)
    expect(c[2].buffer).toBe(a[2].buffer)
    // a later change to the source does not reach what was kept
    source.fill(9)
    expect([...(kept.find('inbox', [1])[0]![2] as Uint8Array)]).toEqual([1, 2, 3])
  })

  it('bounds what it keeps by its estimate of memory, oldest first', () => {
    let now = 0
    const kept = new RecentReplies(10 * 1024, 120_000, () => now)
    for (let i = 0; i < 1000; i++) {
      now++
      kept.remember(`inbox-${i % 7}`, [[i, 1, new Uint8Array(16)]])
    }
    // 128 bytes a reply plus its value: 10 kB hold about 70
    expect(kept.size).toBeGreaterThan(50)
    expect(kept.size).toBeLessThan(80)
    expect(kept.find('inbox-5', [999 - ((999 - 5) % 7)]).length).toBe(1)
    expect(kept.find('inbox-0', [0])).toEqual([])
  })

  it('a new owner restoring stored replies keeps copies too, not views on the item it read', () => {
    const item = new Uint8Array(32 * 1024)
    item.set([7, 8], 10)
    const kept = new RecentReplies()
    kept.restore([[Date.now(), 'inbox', [[5, 1, item.subarray(10, 12)]]]])
    const [reply] = kept.find('inbox', [5]) as Array<[number, 1, Uint8Array]>
    expect([...reply![2]]).toEqual([7, 8])
    expect(reply![2].buffer).not.toBe(item.buffer)
    expect(reply![2].buffer.byteLength).toBe(2)
  })

  it('stores the same bytes as encoding every entry anew, each batch encoded once', () => {
    let now = 1_700_000_000_000
    const kept = new RecentReplies(64 * 1024 * 1024, 120_000, () => now)
    let batches = 0
    const entryOf = (n: number) => [now - batches + n + 1, `inbox-${n % 5}`, replyPair(n)]
    const replyPair = (n: number) => [
      [n, 1, encode({ n })],
      [-n, 0, { name: 'Error', message: `no ${n}` }],
    ]
    // fixarray (< 16), array 16 and array 32 headers
    for (const target of [3, 15, 16, 600, 65_535, 65_536]) {
      for (; batches < target; batches++) {
        now++
        kept.remember(`inbox-${batches % 5}`, replyPair(batches) as Reply[])
      }
      const bytes = kept.segment(Infinity, true)!.bytes
      const all = Array.from({ length: target }, (_, n) => entryOf(n))
      expect(Buffer.compare(bytes, encode(all))).toBe(0)
      // a second snapshot reuses the encodings, and a budget keeps the newest
      expect(Buffer.compare(kept.segment(Infinity, true)!.bytes, bytes)).toBe(0)
      const newest = decode(kept.segment(2_000, true)!.bytes) as unknown[]
      expect(newest.length).toBeGreaterThan(0)
      expect(newest).toEqual(decode(encode(all.slice(-newest.length))))
    }
  })

  it('stores each batch in one segment: those since the last stored one, or every one kept', () => {
    let now = 1_000_000
    const kept = new RecentReplies(1024 * 1024, 10_000, () => now)
    const rids = (segment: { bytes: Uint8Array } | undefined) =>
      (decode(segment!.bytes) as RepliesEntry[]).map(([, , replies]) => replies.map((r) => r[0]))
    kept.remember('a', [ok(1)])
    kept.remember('b', [ok(2), ok(3)])
    const first = kept.segment(Infinity, false)!
    expect(rids(first)).toEqual([[1], [2, 3]])
    expect(first.newest).toBe(now)
    expect(first.expired).toBe(now - 10_000)
    // not stored yet (its checkpoint not written): the next segment holds them again
    now += 5
    kept.remember('a', [ok(4)])
    expect(rids(kept.segment(Infinity, false))).toEqual([[1], [2, 3], [4]])
    first.stored()
    const second = kept.segment(Infinity, false)!
    expect(rids(second)).toEqual([[4]])
    expect(second.newest).toBe(now)
    second.stored()
    expect(kept.segment(Infinity, false)).toBeUndefined()
    // the first segment of a run holds every batch kept
    expect(rids(kept.segment(Infinity, true))).toEqual([[1], [2, 3], [4]])
    expect(decode(new RecentReplies().segment(Infinity, true)!.bytes)).toEqual([])
  })
})
