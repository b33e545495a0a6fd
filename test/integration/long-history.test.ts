/**
 * Orchestrations whose data outgrow one NATS message (`max_payload`, 1 MB by default).
 * - A history larger than that: reading it used to make the partition fail at every read (its
 *   answer was over the server's limit) and the reader got "partition unavailable". Now the
 *   partition answers in pages and the client joins them: the whole history, every event once and
 *   in order, and the partition never fails.
 * - A fan-out of synchronous activities whose outcomes, queued at once, outgrow a commit record:
 *   the partition failed at every seal, for ever (a poison). Now a record carries the outcomes
 *   that fit and the others follow (runtime/partition/cursor.ts, `recreatable`); the crash case
 *   is in long-history-crash.test.ts. Such activities complete as they are scheduled (their
 *   outcomes go straight to the next steps, runtime/instances/instance-activities.ts) until the
 *   round is full; the rest become pending and wait in the local queue: each still runs once, and
 *   no activity item stays behind.
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { historyPage } from '../../runtime/instances/instance-queries.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { kiloFanOut, kilos } from '../fixtures/workflows.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

/** `n` activities in a row, each with a 4 kB result: a history of about n × 4 kB. */
const manyResults = orchestration('manyResults', function* (ctx, n: number) {
  let count = 0
  for (let i = 0; i < n; i++) if ((yield* ctx.callActivity(kilos, i)).length === 4000) count++
  return count
})

/** Runs of {@link countedKilos} by input. */
const runs = new Map<number, number>()
const countedKilos = activity('countedKilos', (i: number) => {
  runs.set(i, (runs.get(i) ?? 0) + 1)
  return `${i}:`.padEnd(4000, 'k')
})
/** `n` activities at once, each with a 4 kB result, counted: outcomes of about n × 4 kB. */
const countedFanOut = orchestration('countedFanOut', function* (ctx, n: number) {
  const results = yield* ctx.all(Array.from({ length: n }, (_, i) => ctx.callActivity(countedKilos, i)))
  return results.filter((r, i) => r.startsWith(`${i}:`)).length
})

const nats = useNatsServer()
const stack = useHub(nats, {
  hub: 'long-history',
  partitions: 2,
  snapshotIntervalMs: 200,
  registry: [kilos, manyResults, kiloFanOut, countedKilos, countedFanOut],
})

describe('a history larger than one message', () => {
  it('is read whole, in pages, and the partition goes on', async () => {
    const id = await stack.client.start(manyResults, 300)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.status).toBe('Completed')
    expect(done.output).toBe(300)
    for (let read = 0; read < 2; read++) {
      const history = await stack.client.getHistory(id)
      expect(encode(history).length, 'history bytes').toBeGreaterThan(1024 * 1024)
      const results = history
        .filter((e) => e.e === 'completed')
        .map((e) => (e as { seq: number; result: string }).result)
      expect(results.map((r) => Number(r.split(':')[0])).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 300 }, (_, i) => i),
      )
      expect(results.every((r) => r.length === 4000)).toBe(true)
      expect(history[0]?.e).toBe('started')
      expect(history.at(-1)?.e).toBe('finished')
    }
    const status = await stack.client.getStatus(id, { history: true })
    expect(status?.history?.length).toBe((await stack.client.getHistory(id)).length)
    expect(stack.node.stats().failures, 'partition failures').toBe(0)
  }, 90_000)
})

describe('historyPage', () => {
  const events: HistoryEvent[] = Array.from({ length: 10 }, (_, i) => ({
    e: 'completed',
    seq: i,
    result: 'x'.repeat(100),
  }))
  const size = encode(events[0]).length

  it('takes as many events as fit the budget, at least one, and says where the next page starts', () => {
    expect(historyPage(events, 0, size * 3)).toEqual({ events: events.slice(0, 3), next: 3 })
    expect(historyPage(events, 3, size * 3)).toEqual({ events: events.slice(3, 6), next: 6 })
    expect(historyPage(events, 9, size * 3)).toEqual({ events: events.slice(9) })
    expect(historyPage(events, 0, 1)).toEqual({ events: events.slice(0, 1), next: 1 })
    expect(historyPage(events, 0, Infinity)).toEqual({ events })
  })

  it('reads a bad start as 0 and one past the end as an empty last page', () => {
    expect(historyPage(events, -5, Infinity)).toEqual({ events })
    expect(historyPage(events, 1.5, Infinity)).toEqual({ events })
    expect(historyPage(events, 10, Infinity)).toEqual({ events: [] })
  })
})

describe('a fan-out whose outcomes outgrow a commit record', () => {
  it('completes with every result; the partition never fails', async () => {
    const id = await stack.client.start(kiloFanOut, 600)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.status, done.error?.message).toBe('Completed')
    expect(done.output, 'results back whole, each for its own task').toBe(600)
    expect(stack.node.stats().failures, 'partition failures').toBe(0)
  }, 90_000)
})

describe('synchronous activities whose outcomes outgrow a commit record', () => {
  it('each runs once, its result for its own task; no activity item stays in the state bucket', async () => {
    runs.clear()
    const id = await stack.client.start(countedFanOut, 600)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.status, done.error?.message).toBe('Completed')
    expect(done.output, 'every result for its own task').toBe(600)
    expect(runs.size).toBe(600)
    expect(
      [...runs.values()].filter((n) => n !== 1),
      'activities run more than once',
    ).toEqual([])
    // the outcomes that did not fit the round waited as pending activities, their items written:
    // once a snapshot stored the ended instance, it stored the deletes of those items too
    const keys = async (filter: string) => {
      const out: string[] = []
      for await (const key of await stack.node.hub.state.keys(filter)) out.push(key)
      return out
    }
    await waitFor(
      async () => (await keys('o.>')).some((k) => k.endsWith(`.${id}`)),
      'the ended instance stored',
    )
    // (that snapshot's writes go in parallel waves: give it time to end)
    await waitFor(async () => (await keys('a.>')).length === 0, 'no activity item left in the state bucket')
    expect(stack.node.stats().failures, 'partition failures').toBe(0)
  }, 90_000)
})
