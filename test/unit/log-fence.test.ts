/** The log fence (runtime/partition/log-fence.ts): which records of a commit log count. */
import { describe, expect, it } from 'vitest'
import type { CommitRecord } from '../../actors/wire/messages.ts'
import { LogFence } from '../../runtime/partition/log-fence.ts'

function rec(n: number, e: number, o: number | undefined, claim = false): CommitRecord {
  const r: CommitRecord = { v: 1, n, e, pos: [1, 0], w: [], dc: [], dp: [], out: [], rep: [], lq: [] }
  if (o !== undefined) r.o = o
  if (claim) r.claim = 1
  return r
}

describe('log fence', () => {
  it("counts the owner's records and a newer owner's claim, which makes it the owner", () => {
    const fence = new LogFence()
    expect(fence.accept(rec(1, 1, 11, true))).toBe(true)
    expect(fence.accept(rec(2, 1, 11))).toBe(true)
    expect(fence.owner).toEqual({ e: 1, o: 11 })
    expect(fence.accept(rec(3, 2, 22, true))).toBe(true)
    expect(fence.owner).toEqual({ e: 2, o: 22 })
  })

  it("ignores a stale owner's record that slipped in after a newer claim", () => {
    const fence = new LogFence({ e: 2, o: 22 })
    expect(fence.counts(rec(5, 1, 11))).toBe(false)
    expect(fence.accept(rec(5, 1, 11))).toBe(false)
    expect(fence.owner).toEqual({ e: 2, o: 22 })
  })

  it('tells apart two runs of one epoch by their token: only a claim moves ownership within an epoch', () => {
    const fence = new LogFence({ e: 3, o: 1 })
    expect(fence.counts(rec(6, 3, 2))).toBe(false)
    expect(fence.accept(rec(6, 3, 2, true))).toBe(true)
    expect(fence.counts(rec(7, 3, 1))).toBe(false)
    expect(fence.counts(rec(7, 3, 2))).toBe(true)
  })

  it('counts a newer epoch without a claim (a checkpoint that predates tokens), and counts() changes nothing', () => {
    const fence = new LogFence({ e: 1 })
    expect(fence.counts(rec(2, 4, 9))).toBe(true)
    expect(fence.owner).toEqual({ e: 1, o: undefined })
    expect(fence.accept(rec(2, 4, 9))).toBe(true)
    expect(fence.owner).toEqual({ e: 4, o: 9 })
    expect(fence.counts(rec(3, 2, 9, true))).toBe(false)
  })
})
