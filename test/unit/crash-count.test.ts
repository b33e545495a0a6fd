/**
 * Crash counting over a replayed log tail (runtime/partition/crash-count.ts): owners that took work
 * (a record marked `b`, or a probe) and ended without committing, in a row, start careful mode;
 * owners that never took work do not count; a probe followed by a claim makes its unit suspect, and
 * a unit that ended two careful owners is condemned — never one that ended only one.
 */
import { describe, expect, it } from 'vitest'
import type { ProbeUnit } from '../../actors/wire/index.ts'
import { crashVerdict, type CountedRecord } from '../../runtime/partition/crash-count.ts'

type Rec = CountedRecord
const claim: Rec = { claim: 1 }
const began: Rec = { b: 1 }
/** An owner that claimed, took work and ended without committing. */
const ended: Rec[] = [claim, began]
const work: Rec = {}
const probe = (x: ProbeUnit): Rec => ({ x })
const m = (seq: number, idx = 0): ProbeUnit => ['m', seq, idx]

describe('crash counting', () => {
  it('counts the owners in a row at the end of the tail that took work and ended', () => {
    expect(crashVerdict([]).idleClaims).toBe(0)
    expect(crashVerdict([...ended, work, work]).idleClaims).toBe(0)
    expect(crashVerdict([...ended, work, ...ended]).idleClaims).toBe(1)
    expect(crashVerdict([...ended, work, ...ended, ...ended, ...ended]).idleClaims).toBe(3)
  })

  it("counts an idle owner's keep record as nothing: no work, and no progress that clears the count", () => {
    const keep: Rec = { keep: 1 }
    // an idle owner moved its last record up, then ended: it took no work
    expect(crashVerdict([work, claim, keep, keep, claim])).toMatchObject({ careful: false, idleClaims: 0 })
    // owners that took work and ended stay counted across keep records (one is not progress)
    expect(crashVerdict([work, ...ended, keep, ...ended, keep])).toMatchObject({
      careful: true,
      idleClaims: 2,
    })
    // and a probed unit stays suspect
    expect(crashVerdict([work, claim, probe(m(7)), keep, claim]).suspects).toEqual([
      { unit: m(7), deaths: 1 },
    ])
  })

  it('does not count owners that never took work (idle, or a consumer stalled)', () => {
    expect(crashVerdict([work, claim, claim, claim, claim])).toMatchObject({ careful: false, idleClaims: 0 })
    expect(crashVerdict([work, claim, ...ended, claim, claim])).toMatchObject({
      careful: false,
      idleClaims: 1,
    })
  })

  it('starts careful mode after two owners that took work and ended, not after one', () => {
    expect(crashVerdict([work, ...ended])).toMatchObject({ careful: false, condemned: undefined })
    expect(crashVerdict([work, ...ended, ...ended])).toMatchObject({ careful: true, condemned: undefined })
    expect(crashVerdict([work, ...ended, claim, ...ended])).toMatchObject({ careful: true, idleClaims: 2 })
  })

  it('a probe followed by a claim makes its unit suspect once: careful, not condemned', () => {
    const v = crashVerdict([work, ...ended, ...ended, claim, probe(m(7, 2)), claim])
    expect(v.careful).toBe(true)
    expect(v.suspects).toEqual([{ unit: ['m', 7, 2], deaths: 1 }])
    expect(v.condemned).toBeUndefined()
  })

  it('condemns a unit probed and not committed twice', () => {
    const v = crashVerdict([work, ...ended, ...ended, claim, probe(m(7)), claim, probe(m(7)), claim])
    expect(v.condemned).toEqual({ unit: ['m', 7, 0], deaths: 2 })
    expect(v.idleClaims).toBe(4)
  })

  it('a probe at the very end counts: the claim being appended now follows it', () => {
    expect(crashVerdict([...ended, ...ended, claim, probe(m(2))])).toMatchObject({
      careful: true,
      suspects: [{ unit: ['m', 2, 0], deaths: 1 }],
      condemned: undefined,
    })
    expect(crashVerdict([...ended, ...ended, claim, probe(m(2)), claim, probe(m(2))]).condemned).toEqual({
      unit: ['m', 2, 0],
      deaths: 2,
    })
  })

  it('a probed unit that was committed is no longer suspect', () => {
    const v = crashVerdict([...ended, ...ended, claim, probe(['t', 'k']), work, probe(m(3)), work])
    expect(v).toMatchObject({ careful: false, suspects: [], condemned: undefined, idleClaims: 0 })
  })

  it('committed work on other units (timers come due meanwhile) keeps a suspect counting', () => {
    const v = crashVerdict([
      ...ended,
      ...ended,
      claim,
      probe(m(9)),
      claim,
      probe(['t', 'late']),
      work,
      probe(m(9)),
      claim,
    ])
    expect(v.condemned).toEqual({ unit: ['m', 9, 0], deaths: 2 })
  })

  it('the dead-letter round (a probe, then its commit) clears the condemned unit', () => {
    const tail = [...ended, ...ended, claim, probe(m(4)), claim, probe(m(4)), claim, probe(m(4)), work]
    expect(crashVerdict(tail)).toMatchObject({ suspects: [], condemned: undefined, idleClaims: 0 })
  })

  it('an owner that stopped gracefully without committing (left) does not count as one that ended', () => {
    const left: Rec = { left: 1 }
    expect(crashVerdict([work, ...ended, claim, began, left])).toMatchObject({
      careful: false,
      idleClaims: 1,
    })
    expect(crashVerdict([work, claim, left, claim, left, claim])).toMatchObject({
      careful: false,
      idleClaims: 0,
    })
    // a graceful stop between two owners that ended is no progress: they still count
    expect(crashVerdict([work, ...ended, claim, began, left, ...ended])).toMatchObject({
      careful: true,
      idleClaims: 2,
    })
  })

  it("a claim naming this node's failed previous run (fo) does not count that run as one that ended", () => {
    const c = (o: number, fo?: number): Rec => ({ claim: 1, o, ...(fo === undefined ? {} : { fo }) })
    expect(crashVerdict([work, c(1), began, c(2, 1), began, c(3, 2), began])).toMatchObject({
      careful: false,
      idleClaims: 1,
    })
    // a failed run named, but an earlier owner ended: still counts
    expect(crashVerdict([work, c(1), began, c(2), began, c(3, 2), began])).toMatchObject({
      careful: true,
      idleClaims: 2,
    })
    expect(crashVerdict([work, c(1), began, c(2), began, c(3, 9), began])).toMatchObject({
      careful: true,
      idleClaims: 3,
    })
    // its probe is not blamed either
    const v = crashVerdict([work, c(1), c(2), c(3), { x: ['m', 5, 0], o: 3 }, c(4, 3)])
    expect(v.suspects).toEqual([])
  })

  it('two different units that each ended one owner are suspects, neither condemned', () => {
    const v = crashVerdict([...ended, ...ended, claim, probe(m(1)), claim, probe(['l', 'abc']), claim])
    expect(v.suspects).toHaveLength(2)
    expect(v.condemned).toBeUndefined()
    expect(v.careful).toBe(true)
  })
})
