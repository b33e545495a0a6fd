/** The shared helpers of runtime/util (and actors/thenable.ts), without a server. */
import { describe, expect, it } from 'vitest'
import { isThenable } from '../../actors/thenable.ts'
import { BatchWorker } from '../../runtime/util/batch-worker.ts'
import { Conditions, whenSlow } from '../../runtime/util/conditions.ts'
import { during } from '../../runtime/util/during.ts'
import { FencedError } from '../../actors/errors.ts'
import { isTransient } from '../../runtime/nats/errors.ts'
import { retryWithBackoff } from '../../runtime/util/retry.ts'
import { Semaphore } from '../../runtime/util/semaphore.ts'
import {
  LeanPublishError,
  isNoMessage,
  isNoResponders,
  isUnavailable,
  isWrongLastSequence,
} from '../../runtime/nats/errors.ts'
import { JetStreamApiCodes } from '@nats-io/jetstream'
import { NoRespondersError } from '@nats-io/transport-node'

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

describe('Semaphore', () => {
  it('admits `limit` holders, queues the rest first come first served, and counts the waiting', async () => {
    const s = new Semaphore(2)
    expect(s.tryAcquire()).toBe(true)
    expect(s.tryAcquire()).toBe(true)
    expect(s.tryAcquire()).toBe(false)
    const order: number[] = []
    const a = s.acquire().then(() => order.push(1))
    const b = s.acquire().then(() => order.push(2))
    expect(s.waiting).toBe(2)
    s.release()
    await a
    expect(order).toEqual([1])
    expect(s.waiting).toBe(1)
    // a late arrival does not overtake the one waiting
    expect(s.tryAcquire()).toBe(false)
    s.release()
    await b
    expect(order).toEqual([1, 2])
    expect(s.waiting).toBe(0)
  })

  it('keeps first-come order through thousands of waiters, arrivals mixed with releases', async () => {
    const s = new Semaphore(1)
    expect(s.tryAcquire()).toBe(true)
    const order: number[] = []
    const all: Array<Promise<unknown>> = []
    let next = 0
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3000; i++) {
        const id = next++
        all.push(s.acquire().then(() => order.push(id)))
      }
      for (let i = 0; i < 2500; i++) s.release()
    }
    expect(s.waiting).toBe(9000 - 7500)
    for (let i = 0; i < 1500; i++) s.release()
    await Promise.all(all)
    expect(s.waiting).toBe(0)
    expect(order).toEqual(Array.from({ length: 9000 }, (_, i) => i))
    s.release() // the last holder's slot is free again
    expect(s.tryAcquire()).toBe(true)
    expect(s.tryAcquire()).toBe(false)
  })

  it('run() holds a slot for the duration of fn and releases it when fn fails', async () => {
    const s = new Semaphore(1)
    let running = 0
    let most = 0
    const job = async (fail: boolean) => {
      running++
      most = Math.max(most, running)
      await Promise.resolve()
      running--
      if (fail) throw new Error('boom')
      return 'ok'
    }
    const results = await Promise.allSettled([
      s.run(() => job(true)),
      s.run(() => job(false)),
      s.run(() => job(false)),
    ])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled'])
    expect(most).toBe(1)
    expect(s.tryAcquire()).toBe(true)
  })
})

describe('BatchWorker', () => {
  it('runs synchronous work at once, and a kick during a cycle runs another cycle', () => {
    const batches: number[][] = []
    const w: BatchWorker<number> = new BatchWorker<number>((batch) => {
      batches.push(batch)
      if (batch.includes(1)) w.submit(2) // kicked while running
    })
    w.submit(1)
    expect(batches).toEqual([[1], [2]])
    expect(w.running).toBe(false)
  })

  it('each cycle takes all queued work; cycles never overlap', async () => {
    const batches: number[][] = []
    let active = 0
    let gate = deferred()
    const w = new BatchWorker<number>(async (batch) => {
      active++
      expect(active).toBe(1)
      batches.push(batch)
      await gate.promise
      active--
    })
    w.submit(1)
    w.submit(2) // while the first cycle waits
    w.submit(3)
    expect(batches).toEqual([[1]])
    const first = gate
    gate = deferred()
    first.resolve()
    await new Promise((r) => setImmediate(r))
    expect(batches).toEqual([[1], [2, 3]])
    gate.resolve()
    await w.idle()
    expect(w.running).toBe(false)
  })

  it('starts runs through its scheduler, reports errors and idleness, and stops', async () => {
    const scheduled: Array<() => void> = []
    const errors: unknown[] = []
    let idles = 0
    let cycles = 0
    const w = new BatchWorker(
      () => {
        cycles++
        if (cycles === 1) throw new Error('cycle failed')
      },
      { schedule: (run) => scheduled.push(run), onError: (err) => errors.push(err), onIdle: () => idles++ },
    )
    w.kick()
    w.kick() // already scheduled: no second run
    expect(scheduled).toHaveLength(1)
    expect(cycles).toBe(0)
    scheduled.shift()!()
    expect(cycles).toBe(1)
    expect(errors).toHaveLength(1)
    expect(idles).toBe(1)
    w.kick()
    scheduled.shift()!()
    expect(cycles).toBe(2)
    w.stop()
    w.kick()
    expect(scheduled).toHaveLength(0)
  })
})

describe('retryWithBackoff', () => {
  it('retries retryable errors with doubling waits up to the cap, then succeeds', async () => {
    const waits: number[] = []
    let n = 0
    const value = await retryWithBackoff(
      async () => {
        if (++n < 5) throw new Error(`try ${n}`)
        return 'done'
      },
      { firstDelayMs: 1, maxDelayMs: 4, onRetry: (_err, ms) => waits.push(ms) },
    )
    expect(value).toBe('done')
    expect(waits).toEqual([1, 2, 4, 4])
  })

  it('throws at once an error that is not retryable, and the last one past the deadline', async () => {
    let n = 0
    await expect(
      retryWithBackoff(
        async () => {
          n++
          throw new Error('fatal')
        },
        { firstDelayMs: 1, maxDelayMs: 1, retryable: () => false },
      ),
    ).rejects.toThrow('fatal')
    expect(n).toBe(1)
    const start = Date.now()
    await expect(
      retryWithBackoff(
        async (i) => {
          throw new Error(`attempt ${i}`)
        },
        { firstDelayMs: 5, maxDelayMs: 10, deadline: Date.now() + 30 },
      ),
    ).rejects.toThrow(/attempt \d+/)
    expect(Date.now() - start).toBeLessThan(1000)
  })
})

describe('Conditions', () => {
  it('resolves a wait when a check finds its condition true, not before', async () => {
    const c = new Conditions()
    let ready = false
    let done = false
    const wait = c.until(() => ready).then((ok) => (done = ok))
    c.check()
    await Promise.resolve()
    expect(done).toBe(false)
    ready = true
    c.check()
    await wait
    expect(done).toBe(true)
    expect(c.pending).toBe(0)
    expect(await c.until(() => true)).toBe(true)
  })

  it('resolves false when the timeout passes first', async () => {
    const c = new Conditions()
    expect(await c.until(() => false, 10)).toBe(false)
    expect(c.pending).toBe(0)
  })
})

describe('whenSlow', () => {
  it('calls onSlow once when the work is still running after the time, and never when it settles first', async () => {
    let slow = 0
    const late = await whenSlow(
      new Promise((resolve) => setTimeout(() => resolve('late'), 40)),
      5,
      () => slow++,
    )
    expect([late, slow]).toEqual(['late', 1])
    const quick = await whenSlow(Promise.resolve('quick'), 5, () => slow++)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect([quick, slow]).toEqual(['quick', 1])
    await expect(whenSlow(Promise.reject(new Error('refused')), 5, () => slow++)).rejects.toThrow('refused')
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(slow).toBe(1)
  })
})

describe('isThenable', () => {
  it('accepts objects and functions with a then method (Promises/A+), nothing else', () => {
    const fn = Object.assign(() => {}, { then: () => {} })
    expect(isThenable(Promise.resolve())).toBe(true)
    expect(isThenable({ then: () => {} })).toBe(true)
    expect(isThenable(fn)).toBe(true)
    for (const v of [null, undefined, 1, 'then', {}, { then: 1 }, () => {}]) expect(isThenable(v)).toBe(false)
  })
})

describe('JetStream error predicates', () => {
  it('recognise the lean path errors and the client library errors by code', () => {
    const wrong = new LeanPublishError('publish: wrong last', JetStreamApiCodes.StreamWrongLastSequence)
    expect(isWrongLastSequence(wrong)).toBe(true)
    expect(isWrongLastSequence(new Error('outer', { cause: wrong }))).toBe(true)
    expect(isWrongLastSequence(new Error('wrong last sequence: 7'))).toBe(true)
    expect(isWrongLastSequence(new LeanPublishError('other', 10059))).toBe(false)
    expect(isNoMessage(new LeanPublishError('get', JetStreamApiCodes.NoMessageFound))).toBe(true)
    expect(isNoMessage(new Error('no message found'))).toBe(true)
    expect(isNoMessage(new Error('timeout'))).toBe(false)
    expect(isUnavailable(new LeanPublishError('publish: no responders (503)', 503))).toBe(true)
    expect(isUnavailable(wrong)).toBe(false)
    expect(isNoResponders(new NoRespondersError('H.q.1'))).toBe(true)
    expect(isNoResponders(new LeanPublishError('request: no responders (503)', 503))).toBe(true)
    expect(isNoResponders(new Error('timeout'))).toBe(false)
  })
})

describe('during', () => {
  it('names the step in the message of an error from below, once, and keeps the error', async () => {
    const timeout = Object.assign(new Error('timeout'), { name: 'TimeoutError' })
    const caught = await during('reading the log', Promise.reject(timeout)).catch((e: unknown) => e)
    expect(caught).toBe(timeout)
    expect(timeout.message).toBe('timeout (while reading the log)')
    expect(isTransient(caught)).toBe(true)
    // an outer step leaves the inner one's name
    await during('starting partition 3', Promise.reject(timeout)).catch(() => {})
    expect(timeout.message).toBe('timeout (while reading the log)')
    await expect(during('x', Promise.resolve(7))).resolves.toBe(7)
  })

  it("leaves Basalt's own errors as they are", async () => {
    const fenced = new FencedError(2, 'checkpoint was claimed by a newer owner')
    const message = fenced.message
    await expect(during('claiming the checkpoint', Promise.reject(fenced))).rejects.toBe(fenced)
    expect(fenced.message).toBe(message)
  })
})
