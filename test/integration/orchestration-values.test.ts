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
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

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

// ---------------------------------------------------------------------------------------------
// Values the code gets are its own: a change in place reaches neither the history nor an activity

const list = activity('list', () => [1, 2, 3])
const noop = activity('noop', () => 0)
const enrich = activity('enrich', (order: { items: number[] }) => {
  order.items.push(-1)
  return order.items.length
})
const byKey = activity('byKey', () => new Map([['a', 1]]))

/** Changes what it got in place: a result, its input, an event's data; then waits for 'go'. */
const changesInPlace = orchestration('changesInPlace', function* (ctx, order: { items: number[] }) {
  const result = yield* ctx.callActivity(list, undefined)
  result.push(4)
  order.items.push(99)
  // (a synchronous activity: its result and this step are in the same round as the changes)
  const counted = yield* ctx.callActivity(enrich, order)
  ctx.setCustomStatus(order.items.length)
  const data = yield* ctx.waitForEvent<number[]>('data')
  data.push(7)
  yield* ctx.callActivity(noop, undefined)
  yield* ctx.waitForEvent('go')
  const map = yield* ctx.callActivity(byKey, undefined)
  return { result, order, counted, data, map: map instanceof Map ? 'a Map' : map }
})

describe('values the code gets', () => {
  it('are its own: changed in place, they replay as they were received, after a restart too', async () => {
    // (the history's events held the same objects until the seal: the changes were recorded,
    // and a replay after the restart applied them twice — [1, 2, 3, 4, 4]; the activity's push
    // reached the orchestration's object live only; the Map was a Map live, an object later)
    const hub = 'changes-in-place'
    const start = () =>
      Node.start({
        servers: nats.url,
        hub,
        registry: [list, noop, enrich, byKey, changesInPlace],
        partitions: 2,
        logger: silentLogger,
      })
    let node = await start()
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const id = await client.start(changesInPlace, { items: [1] })
      await client.raiseEvent(id, 'data', [5])
      await waitFor(
        async () => (await client.getHistory(id)).filter((e) => e.e === 'completed').length === 3,
        'three activities',
      )
      const results = (await client.getHistory(id)).flatMap((e) => (e.e === 'completed' ? [e.result] : []))
      expect(results).toEqual([[1, 2, 3], 3, 0])
      // the activity's push did not reach the orchestration's object
      expect((await client.getStatus(id))?.customStatus).toBe(2)
      await node.stop()
      node = await start()
      await client.raiseEvent(id, 'go')
      const done = await client.waitForCompletion(id)
      expect(done.output).toEqual({
        result: [1, 2, 3, 4],
        order: { items: [1, 99] },
        counted: 3,
        data: [5, 7],
        map: { a: 1 },
      })
    } finally {
      await client.close()
      await node.stop()
    }
  })
})
