/**
 * Poison pills (issue 8, item 3): whatever size user code returns, the partition goes on. Large
 * values go by reference (test/large-values.test.ts); one over the ceiling — set low here,
 * `maxValueBytes` 300 kB, so these values are over it — fails its task or its instance with
 * PayloadTooLargeError; the partition never fails, so it is never restarted in a loop, and other
 * work on the same partition keeps its exact counts.
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Entity } from '../../entities/index.ts'
import { PayloadTooLargeError, TaskFailedError } from '../../runtime/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

class Blob extends Entity<string> {
  initialState() {
    return ''
  }
  grow(n: number) {
    this.state += 'y'.repeat(n)
  }
  make(n: number) {
    return 'z'.repeat(n)
  }
  size() {
    return this.state.length
  }
}

const bigResult = activity('bigResult', (n: number) => 'r'.repeat(n))
const bigResultAsync = activity('bigResultAsync', async (n: number) => 'a'.repeat(n))

const bigOutput = orchestration('bigOutput', function* (_ctx, n: number) {
  return 'o'.repeat(n)
})

const echo = orchestration('echo', function* (_ctx, input: string) {
  return input.length
})

/** Catches what its task failed with and returns the code of the cause. */
const catchesActivity = orchestration('catchesActivity', function* (ctx, a: { n: number; async: boolean }) {
  try {
    const r = yield* ctx.callActivity(a.async ? bigResultAsync : bigResult, a.n)
    return `ok ${r.length}`
  } catch (err) {
    const cause = (err as TaskFailedError).failure
    return `caught ${cause.code ?? cause.name}: ${cause.message}`
  }
})

const catchesEntity = orchestration('catchesEntity', function* (ctx, n: number) {
  try {
    const r = yield* ctx.callEntity(Blob, 'maker').make(n)
    return `ok ${r.length}`
  } catch (err) {
    return `caught ${(err as TaskFailedError).failure.code ?? 'no code'}`
  }
})

const waitsForEvents = orchestration('waitsForEvents', function* (ctx, n: number) {
  let total = 0
  for (let i = 0; i < n; i++) total += (yield* ctx.waitForEvent<string>('e')).length
  return total
})

const bigStatus = orchestration('bigStatus', function* (ctx, n: number) {
  ctx.setCustomStatus('s'.repeat(n))
  yield* ctx.createTimer(ctx.now() + 1)
  return 'done'
})

/** Issues `n` activities in one step. */
const fansOutWide = orchestration('fansOutWide', function* (ctx, n: number) {
  return (yield* ctx.all(Array.from({ length: n }, () => ctx.callActivity(bigResult, 1)))).length
})

/** Results of ~30 kB, under the size that goes by reference: each stays inline where it is kept. */
const slowResult = activity('slowResult', async (i: number) => {
  await new Promise((r) => setTimeout(r, 300))
  return `${i}:${'s'.repeat(30_000)}`
})
const fansOutSlowly = orchestration('fansOutSlowly', function* (ctx, n: number) {
  const results = yield* ctx.all(Array.from({ length: n }, (_, i) => ctx.callActivity(slowResult, i)))
  return results.map((r) => r.split(':')[0]).join(',')
})

/** Waits for 'next', then continues as new with the 'e' events that arrived before it. */
const carriesEvents = orchestration('carriesEvents', function* (ctx, generation: number) {
  if (generation === 2) return 'second'
  yield* ctx.waitForEvent('next')
  return ctx.continueAsNew(2)
})

/** The ceiling of values stored by reference on these hubs. */
const CEILING = 300_000

const nats = useNatsServer()
const stack = useHub(nats, {
  hub: 'poison',
  partitions: 1,
  maxValueBytes: CEILING,
  registry: [
    Counter,
    Blob,
    bigResult,
    bigResultAsync,
    bigOutput,
    echo,
    catchesActivity,
    catchesEntity,
    bigStatus,
    waitsForEvents,
    carriesEvents,
    fansOutWide,
    slowResult,
    fansOutSlowly,
  ],
})

/** Other work on the (only) partition: exact counts, and no partition failure so far. */
async function partitionStillWorks(key: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await stack.client.entity(Counter, key).signal.add(1)
  expect(await stack.client.entity(Counter, key).call.get()).toBe(times)
  expect(stack.node.stats().failures, 'partition failures on the node').toBe(0)
  expect([...stack.node.partitions.keys()]).toEqual([0])
}

describe('poison pills', () => {
  it('fails an orchestration whose output is ~600 kB with PayloadTooLargeError; the partition goes on', async () => {
    const id = await stack.client.start(bigOutput, 600_000)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 15_000 })
    expect(done.status).toBe('Failed')
    expect(done.error?.code).toBe('PAYLOAD_TOO_LARGE')
    expect(done.error?.message).toMatch(
      /output of instance '.+' \(bigOutput\) is \d+ bytes, over the limit of 300000 bytes \(maxValueBytes\)/,
    )
    expect(done.output).toBeUndefined()
    await partitionStillWorks('after-output', 5)
  })

  it('fails an activity task whose result is 2 MB; the orchestration catches it', async () => {
    for (const async of [false, true]) {
      const id = await stack.client.start(catchesActivity, { n: 2 * 1024 * 1024, async })
      const done = await stack.client.waitForCompletion<string>(id, { timeoutMs: 15_000 })
      expect(done.status, `instance ${id} (async ${async})`).toBe('Completed')
      expect(done.output).toMatch(/^caught PAYLOAD_TOO_LARGE: result of activity '\w+' .* is \d+ bytes/)
    }
    await partitionStillWorks('after-activity', 5)
  })

  it('fails an entity call whose result is huge; the orchestration catches it', async () => {
    const id = await stack.client.start(catchesEntity, 900_000)
    const done = await stack.client.waitForCompletion<string>(id, { timeoutMs: 15_000 })
    expect(done.output).toBe('caught PAYLOAD_TOO_LARGE')
    await partitionStillWorks('after-entity-call', 5)
  })

  it('refuses a huge entity state from a call or a signal; the entity keeps its state', async () => {
    await stack.client.entity(Blob, 'b').call.grow(10)
    await expect(stack.client.entity(Blob, 'b').call.grow(900_000)).rejects.toBeInstanceOf(
      PayloadTooLargeError,
    )
    await stack.client.entity(Blob, 'b').signal.grow(900_000)
    expect(await stack.client.entity(Blob, 'b').call.size()).toBe(10)
    await partitionStillWorks('after-state', 5)
  })

  it('refuses a start whose input would not fit the instance record', async () => {
    const err = await stack.client.start(echo, 'i'.repeat(600_000)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PayloadTooLargeError)
    expect((err as Error).message).toMatch(/input of instance '.+' \(echo\) is \d+ bytes/)
    await partitionStillWorks('after-input', 5)
  })

  it('refuses event data over the ceiling, and events past the bound while suspended', async () => {
    const id = await stack.client.start(waitsForEvents, 100)
    await expect(stack.client.raiseEvent(id, 'e', 'd'.repeat(600_000))).rejects.toBeInstanceOf(
      PayloadTooLargeError,
    )
    await stack.client.suspend(id)
    let accepted = 0
    let refused: unknown
    // (events under the threshold of values by reference stay inline in the instance record)
    for (let i = 0; i < 30 && refused === undefined; i++) {
      await stack.client.raiseEvent(id, 'e', 'd'.repeat(20_000)).then(
        () => accepted++,
        (err: unknown) => (refused = err),
      )
    }
    expect(refused, `refusal after ${accepted} events held`).toBeInstanceOf(PayloadTooLargeError)
    expect((refused as Error).message).toMatch(/events held for Suspended instance/)
    await stack.client.resume(id)
    await stack.client.terminate(id)
    await partitionStillWorks('after-events', 5)
  })

  it('fails an instance whose continue-as-new carries more events than one step holds, saying so', async () => {
    // (each event arrived in a step of its own; the first step of the next execution takes them
    // all, and one commit record holds it: see README, "What is guaranteed". The error named only
    // "a step of instance … (0 commands and 17 history events)")
    const id = await stack.client.start(carriesEvents, 1)
    for (let i = 0; i < 15; i++) await stack.client.raiseEvent(id, 'e', 'd'.repeat(20_000))
    await stack.client.raiseEvent(id, 'next')
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 15_000 })
    expect(done.status).toBe('Failed')
    expect(done.error?.code).toBe('PAYLOAD_TOO_LARGE')
    expect(done.error?.message).toMatch(
      /^the first step of execution 2 of instance '.+' \(carriesEvents\), with the 15 unconsumed events continue-as-new carried over \(consume them before continuing, or continue with \{ preserveUnprocessedEvents: false \}\), is \d+ bytes, over the limit of \d+ bytes \(max_payload\)$/,
    )
    await partitionStillWorks('after-carried', 5)
  })

  it('fails an instance that fans out past what one step holds, saying how to issue the tasks', async () => {
    const id = await stack.client.start(fansOutWide, 3_000)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 15_000 })
    expect(done.status).toBe('Failed')
    expect(done.error?.message).toMatch(
      /^a step of instance '.+' \(fansOutWide\) \(3000 commands and 3002 history events; issue fewer tasks in one step: await them in batches, or fan out through sub-orchestrations\) is \d+ bytes/,
    )
    await partitionStillWorks('after-fan-out', 5)
  })

  it('keeps the outcomes that reach a suspended instance within one step; the rest wait', async () => {
    // (100 results of 30 kB held in the instance record made every commit record 3 MB: the
    // partition failed at each commit, and the instance failed on resume with a step of 3 MB)
    const id = await stack.client.start(fansOutSlowly, 100)
    await stack.client.suspend(id)
    await new Promise((r) => setTimeout(r, 1_000))
    expect(stack.node.stats().failures, 'partition failures while suspended').toBe(0)
    expect((await stack.client.getStatus(id))?.status).toBe('Suspended')
    await stack.client.resume(id)
    const done = await stack.client.waitForCompletion<string>(id, { timeoutMs: 20_000 })
    expect(done.status).toBe('Completed')
    expect(done.output).toBe(Array.from({ length: 100 }, (_, i) => i).join(','))
    await partitionStillWorks('after-suspended-fan-out', 5)
  })

  it('fails an orchestration whose custom status is huge', async () => {
    const id = await stack.client.start(bigStatus, 600_000)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 15_000 })
    expect(done.status).toBe('Failed')
    expect(done.error?.code).toBe('PAYLOAD_TOO_LARGE')
    await partitionStillWorks('after-status', 5)
  })
})

describe('poison pills through the task queue', () => {
  const offloading = useHub(nats, {
    hub: 'poison-offload',
    partitions: 1,
    maxValueBytes: CEILING,
    offloadThreshold: 0,
    registry: [Counter, bigResult, bigResultAsync, catchesActivity],
  })

  it('fails an offloaded activity task whose result is 2 MB, once; the orchestration catches it', async () => {
    const id = await offloading.client.start(catchesActivity, { n: 2 * 1024 * 1024, async: true })
    const done = await offloading.client.waitForCompletion<string>(id, { timeoutMs: 15_000 })
    expect(done.output).toMatch(/^caught PAYLOAD_TOO_LARGE: result of activity 'bigResultAsync'/)
    expect(offloading.node.workers?.offloaded, 'tasks offloaded').toBe(1)
    expect(offloading.node.workers?.ranForOthers, 'tasks run from the queue').toBe(1)
    expect(offloading.node.stats().failures).toBe(0)
  })
})
