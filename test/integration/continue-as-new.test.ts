/**
 * What an execution leaves on its way when it continues as new, or when its instance is replaced
 * — a timer, an activity still running, a child — is not the next execution's: every execution
 * numbered its commands from 0, so the fire of a timer left behind completed the next
 * execution's activity of the same seq (with no result), and an activity left behind by a
 * replaced instance completed the new instance's (with the old result).
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

const slow = activity('slow', async (x: string) => {
  await new Promise((r) => setTimeout(r, 600))
  return `slow ${x}`
})
const kid = orchestration('kid', function* (ctx, ms: number) {
  yield* ctx.createTimer(ctx.now() + ms)
  return `kid ${ms}`
})

/** Generation 0 leaves a timer (seq 0) and a child (seq 1) behind; generation 1 uses both seqs. */
const generations = orchestration('generations', function* (ctx, generation: number) {
  if (generation === 0) {
    ctx.createTimer(ctx.now() + 100)
    ctx.callSubOrchestration(kid, 200)
    yield* ctx.waitForEvent('next')
    return ctx.continueAsNew(1)
  }
  const a = yield* ctx.callActivity(slow, 'new')
  const b = yield* ctx.callSubOrchestration(kid, 10)
  return [a, b]
})

const once = orchestration('once', function* (ctx, x: string) {
  return yield* ctx.callActivity(slow, x)
})

const nats = useNatsServer()

describe('outcomes an execution left behind', () => {
  const stack = useHub(nats, { hub: 'left-behind', registry: [slow, kid, generations, once], partitions: 2 })

  it('complete no task of the execution that continued it as new', async () => {
    const id = await stack.client.start(generations, 0, { instanceId: 'gen' })
    await stack.client.raiseEvent(id, 'next')
    const done = await stack.client.waitForCompletion(id)
    expect(done.output).toEqual(['slow new', 'kid 10'])
    // the child of the first execution ran to its end on its own; ids count within an execution
    const children = await stack.client.listInstances({ idPrefix: 'gen:' })
    expect(children.instances.map((i) => [i.id, i.status])).toEqual([
      ['gen:1', 'Completed'],
      ['gen:2:1', 'Completed'],
    ])
  })

  it('complete no task of the instance that replaced theirs', async () => {
    await stack.client.start(once, 'old', { instanceId: 'replaced' })
    await stack.client.terminate('replaced')
    await stack.client.start(once, 'new', { instanceId: 'replaced', replace: true })
    const done = await stack.client.waitForCompletion('replaced')
    expect(done.output).toBe('slow new')
  })
})
