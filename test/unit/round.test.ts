/** Sealing a commit round into a record (runtime/partition/round.ts), without a server. */
import { describe, expect, it } from 'vitest'
import { CommitRound } from '../../runtime/partition/round.ts'

const bytes = (...b: number[]) => new Uint8Array(b)
const noDedup = { dc: [], dp: [] }

describe('commit round', () => {
  it('is empty until something happens, and a moved position alone makes it non-empty', () => {
    const round = new CommitRound(7, [1, 0])
    expect(round.isEmpty).toBe(true)
    round.touched = true
    expect(round.isEmpty).toBe(false)
  })

  it('seals writes (last one wins, lazy ones encoded at the seal) and deletes', () => {
    const round = new CommitRound(3, [5, 2])
    let state = 1
    round.write('e.0.T.a', bytes(1))
    round.write('e.0.T.a', bytes(2))
    round.write('o.0.i', () => bytes(state))
    round.write('e.0.T.b', null)
    state = 9 // the lazy write sees the state at the seal
    const record = round.toRecord(4, { dc: [['c', 2, 10]], dp: [[1, 6]] })
    expect(record).toMatchObject({ v: 1, n: 3, e: 4, pos: [5, 2], dc: [['c', 2, 10]], dp: [[1, 6]] })
    expect(record.w).toEqual([
      ['e.0.T.a', bytes(2)],
      ['o.0.i', bytes(9)],
      ['e.0.T.b', null],
    ])
  })

  it('groups replies per inbox and messages per destination, in order, resolving lazy replies', () => {
    const round = new CommitRound(1, [1, 0])
    round.reply(['_INBOX.a', 1], [1, 1, bytes(1)])
    round.reply(['_INBOX.b', 2], [2, 0, { name: 'E', message: 'm', code: 'X' }])
    round.reply(['_INBOX.a', 3], [3, 1, () => bytes(3)])
    round.send(2, bytes(20))
    round.send(1, bytes(10))
    round.send(2, bytes(21))
    round.lq = [{ k: 'op', t: 'T', key: 'k', op: 'o', a: [] }]
    const record = round.toRecord(1, noDedup)
    expect(record.rep).toEqual([
      [
        '_INBOX.a',
        [
          [1, 1, bytes(1)],
          [3, 1, bytes(3)],
        ],
      ],
      ['_INBOX.b', [[2, 0, { name: 'E', message: 'm', code: 'X' }]]],
    ])
    expect(record.out).toEqual([
      [2, [bytes(20), bytes(21)]],
      [1, [bytes(10)]],
    ])
    expect(record.lq).toHaveLength(1)
  })

  it('names its timers uniquely within the partition (round number and counter)', () => {
    const a = new CommitRound(12, [1, 0])
    const b = new CommitRound(13, [1, 0])
    const names = [a.timerName(), a.timerName(), b.timerName()]
    expect(names).toEqual(['12-0', '12-1', '13-0'])
  })
})
