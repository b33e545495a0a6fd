/** The mailbox cursor (runtime/partition/cursor.ts): one owner of the position and local queue. */
import { describe, expect, it } from 'vitest'
import type { ActorMessage, CommitRecord } from '../../actors/wire/index.ts'
import { MailboxCursor } from '../../runtime/partition/cursor.ts'

const msg = (i: string): ActorMessage => ({ k: 'event', i, n: 'e', d: null }) as unknown as ActorMessage
const record = (n: number, pos: [number, number], lq: ActorMessage[], claim = false): CommitRecord =>
  ({
    v: 1,
    n,
    e: 1,
    pos,
    w: [],
    dc: [],
    dp: [],
    out: [],
    rep: [],
    lq,
    ...(claim ? { claim: true } : {}),
  }) as CommitRecord

describe('MailboxCursor', () => {
  it('checkpoints the committed view while the live view runs ahead', () => {
    const cursor = new MailboxCursor()
    cursor.restore({ pos: [5, 1], lq: [msg('a')] })
    cursor.pos = [7, 0]
    cursor.local.shift()
    expect(cursor.toCheckpoint()).toEqual({ pos: [5, 1], lq: [msg('a')] })
    cursor.apply(record(3, [7, 0], []))
    expect(cursor.toCheckpoint()).toEqual({ pos: [7, 0], lq: [] })
  })

  it('a claim moves nothing; rewind brings the live view back to the committed one', () => {
    const cursor = new MailboxCursor()
    cursor.apply(record(1, [4, 2], [msg('b')]))
    cursor.apply(record(2, [1, 0], [], true))
    cursor.rewind()
    expect(cursor.pos).toEqual([4, 2])
    expect(cursor.local).toEqual([msg('b')])
    // the live queue is the loop's own: taking from it leaves the committed view whole
    cursor.local.shift()
    expect(cursor.toCheckpoint().lq).toEqual([msg('b')])
  })
})
