/**
 * What a commit record carries of the local queue when it is too full for all of it
 * (runtime/partition/cursor.ts `fitLocal`): every message that cannot be made again, then the
 * recreatable ones (activity outcomes) in order while they fit; the live queue keeps them all.
 */
import { describe, expect, it } from 'vitest'
import type { ActorMessage } from '../../actors/wire/index.ts'
import { MailboxCursor } from '../../runtime/partition/cursor.ts'

const done = (s: number): ActorMessage => ({ k: 'done', i: 'i', s, ok: 1, v: s })
const op = (key: string): ActorMessage => ({ k: 'op', t: 'Counter', key, op: 'add', a: [1] })

describe('MailboxCursor.fitLocal', () => {
  it('keeps what cannot be made again, then recreatable messages in order while they fit', () => {
    const cursor = new MailboxCursor()
    const msgs = [done(1), op('a'), done(2), done(3), op('b'), done(4)]
    cursor.local.push(...msgs)
    for (const m of msgs) if (m.k === 'done') cursor.recreatable.add(m)
    const size = () => 10
    expect(cursor.fitLocal(60, size)).toEqual(msgs) // all 60 bytes fit
    expect(cursor.fitLocal(40, size)).toEqual([done(1), op('a'), done(2), op('b')])
    expect(cursor.fitLocal(5, size)).toEqual([op('a'), op('b')]) // never drops a plain message
    expect(cursor.local, 'the live queue keeps every message').toEqual(msgs)
  })
})
