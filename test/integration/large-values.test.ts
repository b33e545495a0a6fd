/**
 * Large values by reference (issue 8, "Large values"): orchestration inputs and outputs, activity
 * results and entity states of 5 MB and 50 MB travel through the hub's blob stream, transparently
 * to user code; a value over the ceiling is refused with PayloadTooLargeError naming it and both
 * sizes; other work on the partition keeps its exact counts.
 */
import { filter, firstValueFrom, takeWhile, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Entity } from '../../entities/index.ts'
import { Client, Node, PayloadTooLargeError, silentLogger } from '../../runtime/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const MB = 1024 * 1024

class Doc extends Entity<string> {
  initialState() {
    return ''
  }
  set(text: string) {
    this.state = text
  }
  append(text: string) {
    this.state += text
  }
  size() {
    return this.state.length
  }
  text() {
    return this.state
  }
  clear() {
    this.deleteState()
  }
}

const makeText = activity('makeText', (n: number) => 't'.repeat(n))
const measure = activity('measure', (text: string) => text.length)

/** Returns its input's length and a copy of its input. */
const echo = orchestration('echoLarge', function* (_ctx, input: { text: string }) {
  return { length: input.text.length, text: input.text }
})

/** Makes a large text in an activity, passes it to another activity and to an entity. */
const pipeline = orchestration('pipeline', function* (ctx, n: number) {
  const text = yield* ctx.callActivity(makeText, n)
  const measured = yield* ctx.callActivity(measure, text)
  yield* ctx.callEntity(Doc, 'from-orchestration').set(text)
  const stored = yield* ctx.callEntity(Doc, 'from-orchestration').size()
  return { got: text.length, measured, stored, head: text.slice(0, 3) }
})

const waitsForData = orchestration('waitsForData', function* (ctx) {
  const data = yield* ctx.waitForEvent<string>('data')
  ctx.setCustomStatus({ seen: data.length, sample: data })
  return data.length
})

/** Hands a large input to a sub-orchestration and returns what it got back. */
const parentOfLarge = orchestration('parentOfLarge', function* (ctx, n: number) {
  const out = yield* ctx.callSubOrchestration(echo, { text: 'p'.repeat(n) })
  return out.text.length
})

/** Carries a large text through continue-as-new, growing it each time. */
const growing = orchestration('growing', function* (ctx, s: { text: string; round: number }) {
  if (s.round < 3) ctx.continueAsNew({ text: s.text + 'g'.repeat(MB), round: s.round + 1 })
  return s.text.length
})

/** Reads two docs with calls that travel with the lock request: their large texts ride to the grant. */
const readsLocked = orchestration('readsLocked', function* (ctx, keys: [string, string]) {
  const locking = ctx.lock(ctx.entityRef(Doc, keys[0]), ctx.entityRef(Doc, keys[1]))
  const texts = ctx.all([ctx.callEntity(Doc, keys[0]).text(), ctx.callEntity(Doc, keys[1]).text()])
  const lock = yield* locking
  try {
    const [a, b] = yield* texts
    return [a.length, b.length, a.slice(0, 1), b.slice(0, 1)]
  } finally {
    lock.release()
  }
})

const nats = useNatsServer()
const stack = useHub(nats, {
  hub: 'large',
  partitions: 2,
  registry: [
    Counter,
    Doc,
    makeText,
    measure,
    echo,
    pipeline,
    waitsForData,
    parentOfLarge,
    growing,
    readsLocked,
  ],
})

/** Number of chunks stored in the hub's blob stream. */
async function storedChunks(): Promise<number> {
  const { jsm, names } = stack.node.hub
  const info = await jsm.streams.info(names.blobStream, { subjects_filter: '>' })
  return Object.keys(info.state.subjects ?? {}).length
}

async function otherWorkExact(key: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await stack.client.entity(Counter, key).signal.add(1)
  expect(await stack.client.entity(Counter, key).call.get(), `counter ${key}`).toBe(times)
  expect(stack.node.stats().failures, 'partition failures').toBe(0)
}

describe('large values by reference', () => {
  for (const size of [5 * MB, 50 * MB]) {
    it(`carries a ${size / MB} MB orchestration input and output through the client`, async () => {
      const text = 'i'.repeat(size)
      const id = await stack.client.start(echo, { text })
      const done = await stack.client.waitForCompletion<{ length: number; text: string }>(id, {
        timeoutMs: 120_000,
      })
      expect(done.status, `instance ${id}`).toBe('Completed')
      expect(done.output?.length).toBe(size)
      expect(done.output?.text === text, 'output text equals the input text').toBe(true)
      expect((done.input as { text: string }).text.length).toBe(size)
      const status = await stack.client.getStatus<{ length: number }>(id)
      expect(status?.output?.length).toBe(size)
      await otherWorkExact(`after-${size}`, 3)
    }, 180_000)
  }

  it('passes a 5 MB activity result to another activity and into an entity state', async () => {
    const id = await stack.client.start(pipeline, 5 * MB)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.output, `instance ${id}: ${JSON.stringify(done.error)}`).toEqual({
      got: 5 * MB,
      measured: 5 * MB,
      stored: 5 * MB,
      head: 'ttt',
    })
    const read = await stack.client.readEntityState(Doc, 'from-orchestration')
    expect(read.state?.length).toBe(5 * MB)
    const history = await stack.client.getHistory(id)
    const results = history.filter((e) => e.e === 'completed').map((e) => (e as { result?: unknown }).result)
    expect(typeof results[0] === 'string' && results[0].length, 'activity result in history').toBe(5 * MB)
  }, 120_000)

  it('delivers 5 MB event data and a large custom status', async () => {
    const id = await stack.client.start(waitsForData, undefined)
    await stack.client.raiseEvent(id, 'data', 'd'.repeat(5 * MB))
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.output).toBe(5 * MB)
    expect((done.customStatus as { seen: number }).seen).toBe(5 * MB)
    const page = await stack.client.listInstances({ namePrefix: 'waitsForData' })
    expect((page.instances[0]?.customStatus as { sample: string }).sample.length).toBe(5 * MB)
  }, 120_000)

  it('keeps a 5 MB entity state set by a call, readable and replaceable; the old blob is deleted', async () => {
    const doc = stack.client.entity(Doc, 'big')
    await doc.call.set('s'.repeat(5 * MB))
    expect(await doc.call.size()).toBe(5 * MB)
    const read = await stack.client.readEntityState(Doc, 'big')
    expect(read.exists).toBe(true)
    expect(read.state?.length).toBe(5 * MB)
    // (the node's partitions share one blob store)
    const blobs = stack.node.partitions.get(0)!.blobs
    const deletedBefore = blobs.deleted
    await doc.call.append('!')
    expect(await doc.call.size()).toBe(5 * MB + 1)
    expect(blobs.deleted - deletedBefore, 'blobs deleted when the state was replaced').toBe(1)
    await doc.signal.clear()
    expect((await stack.client.readEntityState(Doc, 'big')).exists).toBe(false)
    await otherWorkExact('after-entity', 3)
  }, 60_000)

  it('brings the large results of calls made with a lock request to the instance with the grant', async () => {
    const keys: [string, string] = ['locked-a!0', 'locked-b!1']
    await stack.client.entity(Doc, keys[0]).call.set('a'.repeat(2 * MB))
    await stack.client.entity(Doc, keys[1]).call.set('b'.repeat(3 * MB))
    const id = await stack.client.start(readsLocked, keys)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.status).toBe('Completed')
    expect(done.output).toEqual([2 * MB, 3 * MB, 'a', 'b'])
    // the release is sent in the step that completes the instance: the entities take it a little later
    for (const key of keys)
      await waitFor(async () => (await stack.client.getLock(Doc, key)) === null, `${key} released`)
    await otherWorkExact('after-locked-reads', 2)
  }, 60_000)

  it('refuses a value over the ceiling with PayloadTooLargeError naming it and both sizes', async () => {
    const small = await Client.connect({ servers: nats.url, hub: 'large', maxValueBytes: 4 * MB })
    try {
      const err = await small.start(echo, { text: 'x'.repeat(5 * MB) }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PayloadTooLargeError)
      expect((err as Error).message).toMatch(
        /^input of instance '.+' \(echoLarge\) is \d+ bytes, over the limit of 4194304 bytes \(maxValueBytes\)$/,
      )
      const arg = await small
        .entity(Doc, 'too-big')
        .signal.set('x'.repeat(5 * MB))
        .catch((e: unknown) => e)
      expect(arg).toBeInstanceOf(PayloadTooLargeError)
      expect((arg as Error).message).toMatch(/^argument 1 of Doc@too-big.set is \d+ bytes/)
    } finally {
      await small.close()
    }
    await otherWorkExact('after-ceiling', 3)
  })
})

describe('large values, more ways', () => {
  it('pushes statuses with a large input and custom status to a watcher, reading the input once', async () => {
    const id = 'watched-large'
    const text = 'w'.repeat(2 * MB)
    const reads = stack.client.blobs.read
    const watched = firstValueFrom(
      stack.client.watchStatus(id).pipe(
        takeWhile((s) => s?.status !== 'Completed', true),
        toArray(),
      ),
    )
    // (waitsForData ignores its input: it waits for the event, so it runs two steps)
    await new Promise((resolve) => setTimeout(resolve, 100))
    await stack.client.start(waitsForData, text as never, { instanceId: id })
    await stack.client.raiseEvent(id, 'data', 'd'.repeat(MB))
    const seen = (await watched).filter((s) => s !== undefined)
    expect(seen.map((s) => s.status)).toEqual(['Running', 'Completed'])
    for (const s of seen) expect(s.input === text, 'input loaded').toBe(true)
    expect(seen[1]).toMatchObject({ output: MB, customStatus: { seen: MB } })
    expect((seen[1]!.customStatus as { sample: string }).sample.length).toBe(MB)
    // the input once, then the custom status (one value, by reference) once
    expect(stack.client.blobs.read - reads).toBe(2)
  })

  it('pushes a 2 MB entity state to a watcher', async () => {
    const seen = firstValueFrom(
      stack.client.watchEntity(Doc, 'watched').pipe(filter((s) => s !== undefined && s.length === 2 * MB)),
    )
    await stack.client.entity(Doc, 'watched').signal.set('w'.repeat(2 * MB))
    expect((await seen)?.slice(0, 2)).toBe('ww')
  }, 60_000)

  it('passes a 2 MB input to a sub-orchestration and its 2 MB output back', async () => {
    const id = await stack.client.start(parentOfLarge, 2 * MB)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.output, `instance ${id}: ${JSON.stringify(done.error)}`).toBe(2 * MB)
  }, 60_000)

  it('carries a large input through continue-as-new', async () => {
    const id = await stack.client.start(growing, { text: 'g'.repeat(MB), round: 0 })
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.output, `instance ${id}: ${JSON.stringify(done.error)}`).toBe(4 * MB)
    expect((done.input as { round: number }).round).toBe(3)
  }, 60_000)

  it('deletes the blobs of an instance when it is purged', async () => {
    const id = await stack.client.start(pipeline, 1 * MB)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.status).toBe('Completed')
    const before = await storedChunks()
    await stack.client.purge(id)
    // the activity result (1 MB, 4 chunks) is in the instance's history: it goes with the purge
    let after = before
    await waitFor(
      async () => (after = await storedChunks()) <= before - 4,
      `chunks of purged instance ${id} deleted (before ${before}, now ${after})`,
    )
    expect(await stack.client.getStatus(id)).toBeUndefined()
  }, 60_000)
})

describe('large values through the task queue', () => {
  const offloading = useHub(nats, {
    hub: 'large-offload',
    partitions: 1,
    offloadThreshold: 0,
    registry: [makeText, measure, Doc, pipeline],
  })

  it('runs offloaded activities with a 5 MB result and a 5 MB input', async () => {
    const id = await offloading.client.start(pipeline, 5 * MB)
    const done = await offloading.client.waitForCompletion(id, { timeoutMs: 60_000 })
    expect(done.output, `instance ${id}: ${JSON.stringify(done.error)}`).toEqual({
      got: 5 * MB,
      measured: 5 * MB,
      stored: 5 * MB,
      head: 'ttt',
    })
    expect(offloading.node.workers?.ranForOthers, 'tasks run from the queue').toBe(2)
  }, 60_000)
})

describe('large values across a node restart', () => {
  it('recovers a 5 MB entity state and a finished 5 MB output after the node restarts', async () => {
    const registry = [Counter, Doc, makeText, measure, echo, pipeline, waitsForData]
    const options = { servers: nats.url, hub: 'large-restart', partitions: 1, registry, logger: silentLogger }
    let node = await Node.start(options)
    const client = await Client.connect({ servers: nats.url, hub: 'large-restart' })
    try {
      await client.entity(Doc, 'kept').call.set('k'.repeat(5 * MB))
      const id = await client.start(echo, { text: 'e'.repeat(5 * MB) })
      await client.waitForCompletion(id, { timeoutMs: 60_000 })
      await node.stop()
      node = await Node.start(options)
      const read = await client.readEntityState(Doc, 'kept')
      expect(read.state?.length, 'entity state after restart').toBe(5 * MB)
      expect(await client.entity(Doc, 'kept').call.size()).toBe(5 * MB)
      const status = await client.getStatus<{ length: number }>(id)
      expect(status?.output?.length, 'output after restart').toBe(5 * MB)
      await client.purge(id)
      expect(await client.getStatus(id)).toBeUndefined()
    } finally {
      await client.close()
      await node.stop()
    }
  }, 120_000)
})
