/**
 * Values that orchestration code hands to the engine (activity and child inputs, entity arguments,
 * custom status, continue-as-new input) and activity results hold no function or symbol: one was
 * written as undefined (a symbol failed the instance with msgpack's "Unknown type: symbol"), so
 * the live step saw the value and a replay after a restart saw undefined. Such a value now fails
 * the instance (or, for an activity result, the task) with a BadInputError naming the value and
 * the place in it, as a client refuses one it is asked to send.
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Client, Entity, Node, silentLogger } from '../../runtime/index.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

class Box extends Entity<unknown[]> {
  initialState(): unknown[] {
    return []
  }
  put(value: unknown): void {
    this.state.push(value)
  }
}

const echo = activity('echo', (value: unknown) => value)
const handsBack = activity('handsBack', async (n: number) => {
  await new Promise((r) => setTimeout(r, 1))
  return { n, cb: () => n }
})

const child = orchestration('child', function* (_ctx, input: unknown) {
  return input
})

type Case = 'activityInput' | 'entityArgument' | 'customStatus' | 'continueAsNew' | 'childInput'
const handsOver = orchestration('handsOver', function* (ctx, what: Case) {
  const fn = () => 1
  if (what === 'activityInput') yield* ctx.callActivity(echo, { list: [1, fn] })
  else if (what === 'entityArgument') ctx.signalEntity(Box, 'b').put({ cb: fn })
  else if (what === 'customStatus') ctx.setCustomStatus({ tag: Symbol('s') })
  else if (what === 'continueAsNew') ctx.continueAsNew(fn)
  else yield* ctx.callSubOrchestration(child, fn)
  yield* ctx.createTimer(ctx.now() + 1)
  return 'not refused'
})

/** Fans out activities whose results hold a function; returns the failures they became. */
const collects = orchestration('collects', function* (ctx, n: number) {
  const tasks = Array.from({ length: n }, (_, i) => ctx.callActivity(handsBack, i))
  const failures: string[] = []
  for (const task of tasks) {
    try {
      yield* task
      failures.push('not refused')
    } catch (err) {
      failures.push(String((err as Error).cause))
    }
  }
  return failures
})

const registry = [Box, echo, handsBack, child, handsOver, collects]
const nats = useNatsServer()

describe('functions and symbols in values of orchestrations', () => {
  const stack = useHub(nats, { hub: 'fn-values', registry, partitions: 2 })

  it('fail the instance with an error naming the value and the place in it', async () => {
    const expected: Record<Case, RegExp> = {
      activityInput:
        /^input of activity 'echo' \(task 0\) of instance '[^']+' \(handsOver\) at \.list\[1\] is a function, which cannot be sent/,
      entityArgument: /^argument 1 of Box@b\.put of instance '[^']+' \(handsOver\) at \.cb is a function/,
      customStatus: /^custom status of instance '[^']+' \(handsOver\) at \.tag is a symbol/,
      continueAsNew: /^continue-as-new input of instance '[^']+' \(handsOver\) is a function/,
      childInput: /^input of instance '[^']+:0' started of instance '[^']+' \(handsOver\) is a function/,
    }
    for (const [what, message] of Object.entries(expected) as Array<[Case, RegExp]>) {
      const done = await stack.client.waitForCompletion(await stack.client.start(handsOver, what))
      expect(done.status, what).toBe('Failed')
      expect(done.error?.name, what).toBe('BadInputError')
      expect(done.error?.message, what).toMatch(message)
    }
    // nothing of the failed steps went out
    expect(await stack.client.readEntityState(Box, 'b')).toEqual({ exists: false })
  })

  it('fail the task of an activity whose result holds one, run locally', async () => {
    const done = await stack.client.waitForCompletion(await stack.client.start(collects, 3))
    expect(done.output).toEqual(
      [0, 1, 2].map((i) =>
        expect.stringMatching(
          new RegExp(
            `^BadInputError: result of activity 'handsBack' \\(task ${i} of instance '[^']+'\\) at \\.cb is a function`,
          ),
        ),
      ),
    )
  })
})

describe('an activity result holding a function, run through the work queue', () => {
  it('fails its task as it does when run locally', async () => {
    const hub = 'fn-values-offload'
    const node = await Node.start({
      servers: nats.url,
      hub,
      registry,
      partitions: 2,
      activityConcurrency: 1,
      offloadThreshold: 1,
      logger: silentLogger,
    })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const done = await client.waitForCompletion<string[]>(await client.start(collects, 20), {
        timeoutMs: 30_000,
      })
      expect(node.workers!.ranForOthers).toBeGreaterThan(0)
      expect(done.output).toHaveLength(20)
      for (const failure of done.output!)
        expect(failure).toMatch(/^BadInputError: result of activity 'handsBack' .* at \.cb is a function/)
    } finally {
      await client.close()
      await node.stop()
    }
  })
})
