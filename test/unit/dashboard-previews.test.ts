/**
 * The dashboard's large-value placeholders, without a server (runtime/dashboard/previews.ts): a
 * value whose JSON text is over the limit becomes `{ $truncated, bytes, preview }` with the exact
 * size, wherever it sits in an instance status, its history and timeline, or an entity answer;
 * small values, and the answer's own structure, come back unchanged.
 */
import { describe, expect, it } from 'vitest'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import {
  isShortened,
  PREVIEW_CHARS,
  shortenValue,
  shortenValues,
  VALUE_LIMIT,
  type Shortened,
} from '../../runtime/dashboard/previews.ts'
import { timelineOf } from '../../runtime/dashboard/timeline.ts'

const big = 'x'.repeat(3_000_000)

describe('shortenValue', () => {
  it('keeps a value whose JSON text is at most the limit, and nothing else', () => {
    for (const v of [undefined, null, 0, true, '', 'hello', { a: [1, 2] }, 'y'.repeat(VALUE_LIMIT - 2)])
      expect(shortenValue(v), JSON.stringify(v)?.slice(0, 40)).toBe(v)
    expect(isShortened(shortenValue('y'.repeat(VALUE_LIMIT - 1)))).toBe(true)
  })

  it('replaces a 3 MB string by its size and the start of its JSON text', () => {
    const s = shortenValue(big) as Shortened
    expect(s).toEqual({ $truncated: true, bytes: 3_000_002, preview: `"${'x'.repeat(PREVIEW_CHARS - 1)}…` })
  })

  it('counts UTF-8 bytes, takes an array of many small items as one value, keeps surrogate pairs whole', () => {
    // 'é' is 2 bytes, '😀' 4 (two UTF-16 units)
    expect((shortenValue('é'.repeat(10_000)) as Shortened).bytes).toBe(20_002)
    const many = Array.from({ length: 10_000 }, (_, i) => i)
    expect((shortenValue(many) as Shortened).bytes).toBe(JSON.stringify(many).length)
    // the text is '"' and 2 units per emoji: the 1000th unit would be half of one, left out
    const emoji = shortenValue('😀'.repeat(10_000)) as Shortened
    expect(emoji.preview.slice(-3)).toBe('😀…')
    expect(emoji.preview.length).toBe(PREVIEW_CHARS)
  })

  it('measures as the answer is written: bytes as a note, big integers as text', () => {
    const value = { b: new Uint8Array(1_000_000), n: 10n }
    expect(shortenValue(value)).toBe(value)
  })
})

describe('shortenValues', () => {
  const at = new Date(0)
  const history: HistoryEvent[] = [
    { e: 'started', t: 1, name: 'o', input: big },
    { e: 'step', t: 1 },
    { e: 'scheduled', seq: 0, kind: 'activity', name: 'a', attempt: 1 },
    { e: 'step', t: 2 },
    { e: 'completed', seq: 0, result: { text: big } },
    { e: 'event', name: 'go', data: 'small' },
    { e: 'customStatus', value: [big] },
    { e: 'finished', status: 'completed', output: 42 },
  ]
  const status = {
    id: 'i1',
    name: 'o',
    status: 'Completed',
    input: big,
    output: 42,
    customStatus: [big],
    createdAt: at,
    history,
  }

  it('shortens each large value of an instance, its history and timeline; keeps the rest', () => {
    const answer = { ...status, timeline: timelineOf(history) }
    const out = shortenValues(answer) as typeof answer
    const size = JSON.stringify(out).length
    expect(size, 'answer size').toBeLessThan(20_000)
    expect(out.input).toMatchObject({ $truncated: true, bytes: 3_000_002 })
    expect(out.customStatus).toMatchObject({ $truncated: true, bytes: 3_000_004 })
    expect(out.output).toBe(42)
    expect(out.createdAt).toBe(at)
    expect(out.history.map((e) => e.e)).toEqual(history.map((e) => e.e))
    expect(out.history[0]).toMatchObject({ e: 'started', t: 1, name: 'o', input: { bytes: 3_000_002 } })
    expect(out.history[4]).toMatchObject({ e: 'completed', seq: 0, result: { bytes: 3_000_011 } })
    expect(out.history[5]).toEqual(history[5])
    expect(out.history[6]).toMatchObject({ e: 'customStatus', value: { $truncated: true } })
    expect(out.timeline.find((r) => r.kind === 'activity')).toMatchObject({
      name: 'a',
      outcome: 'completed',
      result: { $truncated: true, bytes: 3_000_011 },
    })
    expect(out.timeline.find((r) => r.kind === 'started')?.data).toMatchObject({ bytes: 3_000_002 })
    // the input itself is not changed
    expect(answer.input).toBe(big)
    expect((history[0] as { input: string }).input).toBe(big)
  })

  it('shortens a long error message or stack, not a short one', () => {
    const error = { name: 'Error', message: big, stack: 'at f (x.ts:1)' }
    const out = shortenValues({ status: 'Failed', error }) as { error: typeof error }
    expect(out.error.name).toBe('Error')
    expect(out.error.message).toMatchObject({ $truncated: true, bytes: 3_000_002 })
    expect(out.error.stack).toBe('at f (x.ts:1)')
  })

  it("shortens an entity's state; an answer without large values comes back equal", () => {
    const entity = { type: 'Doc', key: 'k', exists: true, state: { text: big }, lock: null, scheduled: [] }
    expect(shortenValues(entity)).toEqual({ ...entity, state: shortenValue(entity.state) })
    const small = { ...status, input: 'a', customStatus: { n: 1 }, history: history.slice(1, 4) }
    expect(shortenValues(small)).toEqual(small)
    expect(shortenValues([small, null, 3])).toEqual([small, null, 3])
  })
})
