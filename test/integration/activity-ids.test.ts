/**
 * `ActivityContext.activityId`, the idempotency key of an activity call (an outside trial asked
 * for one: `attempt` repeats when a crash re-runs an attempt, and two calls of one activity in one
 * instance could not be told apart). One id per call: the same for every attempt of the call,
 * another for each other call, for the next execution after continue-as-new, and for an instance
 * that replaced an earlier one under the same id.
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

const seen: Array<{ instance: string; attempt: number; id: string; label: string }> = []

/** Records its context; fails the first attempt of a call labelled `flaky`. */
const record = activity('record', (label: string, ctx) => {
  seen.push({ instance: ctx.instanceId, attempt: ctx.attempt, id: ctx.activityId, label })
  if (label.startsWith('flaky') && ctx.attempt === 1) throw new Error('first attempt fails')
  return label
})

const calls = orchestration('activityCalls', function* (ctx, generation: number) {
  yield* ctx.callActivity(record, `a${generation}`)
  yield* ctx.callActivity(record, `b${generation}`)
  yield* ctx.callActivity(record, `flaky${generation}`, {
    retry: { maxAttempts: 3, firstRetryIntervalMs: 10 },
  })
  if (generation === 0) return ctx.continueAsNew(1)
  return 'done'
})

const nats = useNatsServer()

describe('activity ids', () => {
  const stack = useHub(nats, { hub: 'activity-ids', registry: [record, calls], partitions: 2 })

  it('name each call once, across its attempts, executions and a replaced instance', async () => {
    await stack.client.start(calls, 0, { instanceId: 'ids' })
    expect((await stack.client.waitForCompletion('ids')).output).toBe('done')
    const first = seen.splice(0)
    const idOf = (label: string) => [...new Set(first.filter((s) => s.label === label).map((s) => s.id))]
    // the two attempts of a flaky call share one id
    expect(first.filter((s) => s.label === 'flaky0').map((s) => s.attempt)).toEqual([1, 2])
    expect(idOf('flaky0')).toHaveLength(1)
    // every call its own id, in both executions (both number their calls from 0)
    const ids = ['a0', 'b0', 'flaky0', 'a1', 'b1', 'flaky1'].map((label) => idOf(label))
    expect(ids.every((i) => i.length === 1)).toBe(true)
    expect(new Set(ids.flat()).size).toBe(6)
    expect(ids.flat().every((id) => id.startsWith('ids:'))).toBe(true)

    // the same id started again (replace): new ids
    await stack.client.start(calls, 1, { instanceId: 'ids', replace: true })
    expect((await stack.client.waitForCompletion('ids')).output).toBe('done')
    const again = new Set(seen.splice(0).map((s) => s.id))
    expect([...again].filter((id) => ids.flat().includes(id))).toEqual([])
  })
})
