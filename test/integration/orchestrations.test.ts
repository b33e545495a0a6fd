/**
 * Orchestrations on the partition engine, with a real nats-server, in both replay modes (cached
 * cursor, and replay from history at every step).
 */
import { describe, expect, it } from 'vitest'
import { firstValueFrom, filter, take, takeWhile, tap, toArray } from 'rxjs'
import {
  BadInputError,
  Client,
  InstanceExistsError,
  InstanceNotFoundError,
  Node,
  isTerminal,
  silentLogger,
} from '../../runtime/index.ts'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import {
  Account,
  allWorkflows,
  approval,
  double,
  failing,
  fanOut,
  spread,
  helloSequence,
  parent,
  retrying,
  thrower,
  counterLoop,
  failingParent,
  failingChain,
  causesOfChildFailure,
  callsUnknownActivity,
  transfer,
} from '../fixtures/workflows.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()

/**
 * A plain function returning an async iterator: orchestration() cannot tell it from a generator
 * function (only what it returns shows), and the node used to spin at full CPU on its promises.
 */
const returnsAsyncIterator = orchestration('returnsAsyncIterator', ((_ctx: unknown, n: number) =>
  (async function* () {
    yield n
  })()) as never)

for (const alwaysReplay of [false, true]) {
  describe(`orchestrations (alwaysReplay: ${alwaysReplay})`, () => {
    const hub = `orch-${alwaysReplay ? 'replay' : 'cached'}`
    const stack = useHub(nats, {
      hub,
      registry: [...allWorkflows, returnsAsyncIterator],
      partitions: 4,
      alwaysReplay,
    })

    it('runs activities in sequence and returns typed output', async () => {
      const id = await stack.client.start(helloSequence, ['Tokyo', 'Seattle', 'London'])
      const done = await stack.client.waitForCompletion<string[]>(id)
      expect(done.status).toBe('Completed')
      expect(done.output).toEqual(['Hello Tokyo', 'Hello Seattle', 'Hello London'])
      const history = await stack.client.getHistory(id)
      expect(history.length).toBeGreaterThan(3)
    })

    it('answers waitForCompletion with the outcome of the latest start of an id', async () => {
      // fanOut's activities are synchronous: the instance ends in the round that starts it, and
      // the start's reply brings the outcome along
      const id = `replaced-${alwaysReplay}`
      await stack.client.start(fanOut, 2, { instanceId: id })
      expect((await stack.client.waitForCompletion<number>(id)).output).toBe(2)
      await stack.client.start(fanOut, 3, { instanceId: id, replace: true })
      expect((await stack.client.waitForCompletion<number>(id)).output).toBe(6)
      expect((await stack.client.waitForCompletion<number>(id)).output).toBe(6)
      expect((await stack.client.getStatus<number>(id))?.output).toBe(6)
    })

    it('fans out and in', async () => {
      const id = await stack.client.start(fanOut, 50)
      expect((await stack.client.waitForCompletion<number>(id)).output).toBe(2 * ((49 * 50) / 2))
    })

    it('races an external event against a timer', async () => {
      const fast = await stack.client.start(approval, 30_000)
      await stack.client.raiseEvent(fast, 'approve', 'alice')
      expect((await stack.client.waitForCompletion(fast)).output).toBe('approved by alice')
      const slow = await stack.client.start(approval, 100)
      expect((await stack.client.waitForCompletion(slow)).output).toBe('timed out')
    })

    it('retries a failing activity and reports exhausted retries as a failure', async () => {
      const ok = await stack.client.start(retrying, 2)
      expect((await stack.client.waitForCompletion(ok)).output).toBe('ok after 3')
      const exhausted = await stack.client.start(retrying, 5)
      const status = await stack.client.waitForCompletion(exhausted)
      expect(status.status).toBe('Failed')
      expect(status.error?.message).toMatch(/flaky attempt 3/)
    })

    it('fails an orchestration whose activity throws, with the remote message', async () => {
      const id = await stack.client.start(failing, undefined)
      const status = await stack.client.waitForCompletion(id)
      expect(status.status).toBe('Failed')
      expect(status.error?.message).toMatch(/kaboom/)
    })

    it('runs sub-orchestrations', async () => {
      const id = await stack.client.start(parent, 10)
      expect((await stack.client.waitForCompletion<number>(id)).output).toBe(180)
      expect((await stack.client.getStatus(`${id}-child`))?.status).toBe('Completed')
    })

    it('continues as new, with custom status', async () => {
      const id = await stack.client.start(counterLoop, { i: 0, until: 5 })
      const done = await stack.client.waitForCompletion<number>(id)
      expect(done.output).toBe(5)
      expect(done.customStatus).toEqual({ i: 5 })
    })

    it('terminates, suspends and resumes, purges', async () => {
      const waiting = await stack.client.start(approval, 60_000)
      await stack.client.terminate(waiting, 'no longer needed')
      const terminated = await stack.client.waitForCompletion(waiting)
      expect(terminated.status).toBe('Terminated')

      const suspended = await stack.client.start(approval, 60_000)
      await stack.client.suspend(suspended)
      expect((await stack.client.getStatus(suspended))?.status).toBe('Suspended')
      await stack.client.raiseEvent(suspended, 'approve', 'bob')
      await new Promise((r) => setTimeout(r, 100))
      expect((await stack.client.getStatus(suspended))?.status).toBe('Suspended')
      await stack.client.resume(suspended)
      expect((await stack.client.waitForCompletion(suspended)).output).toBe('approved by bob')

      await stack.client.purge(suspended)
      expect(await stack.client.getStatus(suspended)).toBeUndefined()
      // a purged instance is gone: a second purge says so with its own class (a BadInputError)
      const again = await stack.client.purge(suspended).catch((e: unknown) => e)
      expect(again).toBeInstanceOf(InstanceNotFoundError)
      expect(again).toBeInstanceOf(BadInputError)
      expect((again as InstanceNotFoundError).code).toBe('BAD_INPUT')
      expect(String(again)).toMatch(/instance '.*' does not exist/)
    })

    it('rejects a duplicate instance id unless asked to replace a finished one', async () => {
      const id = `dup-${alwaysReplay}`
      await stack.client.start(helloSequence, ['a'], { instanceId: id })
      await stack.client.waitForCompletion(id)
      await expect(stack.client.start(helloSequence, ['b'], { instanceId: id })).rejects.toThrow(
        /already exists/,
      )
      await stack.client.start(helloSequence, ['c'], { instanceId: id, replace: true })
      expect((await stack.client.waitForCompletion(id)).output).toEqual(['Hello c'])
    })

    it('lists instances by status and name prefix', async () => {
      const ids = await Promise.all(Array.from({ length: 5 }, () => stack.client.start(helloSequence, ['x'])))
      await Promise.all(ids.map((id) => stack.client.waitForCompletion(id)))
      const page = await stack.client.listInstances({
        statuses: ['Completed'],
        namePrefix: 'hello',
        pageSize: 1000,
      })
      for (const id of ids) expect(page.instances.map((i) => i.id)).toContain(id)
      expect(page.instances.every((i) => i.status === 'Completed' && i.name === 'helloSequence')).toBe(true)
    })

    it('watches status changes', async () => {
      const id = await stack.client.start(approval, 60_000)
      const seen = firstValueFrom(
        stack.client.watchStatus(id).pipe(
          filter((s) => s?.status === 'Completed'),
          take(1),
          toArray(),
        ),
      )
      await stack.client.raiseEvent(id, 'approve', 'carol')
      expect((await seen)[0]?.status).toBe('Completed')
    })

    it('watches statuses that carry what getStatus does: input, output when Completed, error when Failed', async () => {
      const statuses = (id: string) =>
        firstValueFrom(
          stack.client.watchStatus(id).pipe(
            takeWhile((s) => s === undefined || !isTerminal(s.status), true),
            toArray(),
          ),
        )
      const completedId = `watched-fields-${alwaysReplay}`
      const completed = statuses(completedId)
      await stack.client.start(approval, 60_000, { instanceId: completedId })
      await stack.client.raiseEvent(completedId, 'approve', 'erin')
      const seen = (await completed).filter((s) => s !== undefined)
      expect(seen.map((s) => s.status)).toContain('Running')
      for (const s of seen) expect(s.input).toBe(60_000)
      const last = seen[seen.length - 1]!
      expect(last).toMatchObject({ status: 'Completed', output: 'approved by erin' })
      expect(last).toEqual(await stack.client.getStatus(completedId))

      const failedId = await stack.client.start(thrower, 'watched failure')
      const failed = (await statuses(failedId)).filter((s) => s !== undefined)
      const end = failed[failed.length - 1]!
      expect(end).toMatchObject({ status: 'Failed', input: 'watched failure' })
      expect(end.error).toMatchObject({ name: 'TypeError', message: 'watched failure' })
      expect(end).toEqual(await stack.client.getStatus(failedId))

      const terminatedId = await stack.client.start(approval, 60_000)
      const terminated = statuses(terminatedId)
      await stack.client.terminate(terminatedId, 'no longer needed')
      const gone = (await terminated).filter((s) => s !== undefined)
      expect(gone[gone.length - 1]).toMatchObject({
        status: 'Terminated',
        error: { message: 'no longer needed' },
      })
    })

    it('watches an id before its instance exists: undefined first, then the instance once started', async () => {
      const id = `watched-before-${alwaysReplay}`
      const seen: Array<string | undefined> = []
      const done = firstValueFrom(
        stack.client.watchStatus(id).pipe(
          tap((s) => seen.push(s?.status)),
          filter((s) => s?.status === 'Completed'),
          take(1),
        ),
      )
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(seen).toEqual([undefined])
      await stack.client.start(approval, 60_000, { instanceId: id })
      await stack.client.raiseEvent(id, 'approve', 'dan')
      expect((await done)?.status).toBe('Completed')
      expect(seen[0]).toBeUndefined()
    })

    it('transfers between accounts under a lock: total conserved, no overdraft', async () => {
      const accounts = Array.from({ length: 6 }, (_, i) => `acct-${alwaysReplay}-${i}`)
      await Promise.all(accounts.map((a) => stack.client.entity(Account, a).signal.deposit(100)))
      const ids = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          stack.client.start(transfer, {
            from: accounts[i % 6]!,
            to: accounts[(i * 5 + 1) % 6]!,
            amount: 30 + (i % 50),
          }),
        ),
      )
      const results = await Promise.all(
        ids.map((id) => stack.client.waitForCompletion(id, { timeoutMs: 30_000 })),
      )
      expect(results.every((r) => r.status === 'Completed')).toBe(true)
      const balances = await Promise.all(accounts.map((a) => stack.client.entity(Account, a).call.balance()))
      expect(balances.reduce((a, b) => a + b, 0)).toBe(600)
      expect(balances.every((b) => b >= 0)).toBe(true)
    })

    it('lets 2,000 concurrent random transfers over 20 accounts finish: no deadlock, no overdraft, total kept', async () => {
      const accounts = Array.from({ length: 20 }, (_, i) => `bank-${alwaysReplay}-${i}`)
      await Promise.all(accounts.map((a) => stack.client.entity(Account, a).signal.deposit(1000)))
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const ids: string[] = []
      for (let i = 0; i < 2000; i++) {
        const from = Math.floor(random() * 20)
        const to = (from + 1 + Math.floor(random() * 19)) % 20
        ids.push(
          await stack.client.start(transfer, {
            from: accounts[from]!,
            to: accounts[to]!,
            amount: 1 + Math.floor(random() * 300),
          }),
        )
      }
      const results = await Promise.all(
        ids.map((id) => stack.client.waitForCompletion<boolean>(id, { timeoutMs: 120_000 })),
      )
      expect(results.filter((r) => r.status !== 'Completed').length).toBe(0)
      const balances = await Promise.all(accounts.map((a) => stack.client.entity(Account, a).call.balance()))
      expect(balances.reduce((a, b) => a + b, 0)).toBe(20_000)
      expect(balances.filter((b) => b < 0)).toEqual([])
      expect(results.some((r) => r.output === true)).toBe(true)
    }, 180_000)

    it('never fires the timer of a terminated or purged instance into anything', async () => {
      const terminated = await stack.client.start(approval, 300)
      const purged = await stack.client.start(approval, 300)
      await stack.client.terminate(terminated)
      await stack.client.terminate(purged)
      await stack.client.purge(purged)
      const before = (await stack.client.getHistory(terminated)).length
      await new Promise((r) => setTimeout(r, 600))
      const after = await stack.client.getStatus(terminated, { history: true })
      expect(after?.status).toBe('Terminated')
      expect(after?.history?.length).toBe(before)
      expect(await stack.client.getStatus(purged)).toBeUndefined()
    })

    it('fails an orchestration that throws, with its error, and rejects unserialisable input', async () => {
      const id = await stack.client.start(thrower, 'bad state')
      const status = await stack.client.waitForCompletion(id)
      expect(status.status).toBe('Failed')
      expect(status.error?.name).toBe('TypeError')
      expect(status.error?.message).toBe('bad state')
      await expect(stack.client.start(helloSequence, [Symbol('x')] as unknown as string[])).rejects.toThrow(
        /^input of instance '[^']+' at \[0\] is a symbol, which cannot be sent/,
      )
    })

    it('fails an orchestration whose plain function returns an async iterator, naming it; the node serves the others', async () => {
      // on every partition, beside instances that run to completion
      const bad = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          stack.client.start(returnsAsyncIterator, i, { instanceId: `async-iter-${alwaysReplay}-${i}` }),
        ),
      )
      const good = await Promise.all(Array.from({ length: 8 }, () => stack.client.start(fanOut, 3)))
      for (const status of await Promise.all(bad.map((id) => stack.client.waitForCompletion(id)))) {
        expect(status.status).toBe('Failed')
        expect(status.error?.name).toBe('BadInputError')
        expect(status.error?.message).toBe(
          "orchestration 'returnsAsyncIterator' returned an async iterator: orchestration code must be " +
            'a (sync) generator function (function*) that awaits tasks with yield*',
        )
      }
      for (const status of await Promise.all(good.map((id) => stack.client.waitForCompletion(id))))
        expect(status).toMatchObject({ status: 'Completed', output: 6 })
      const later = await stack.client.start(helloSequence, ['Oslo'])
      expect((await stack.client.waitForCompletion(later)).output).toEqual(['Hello Oslo'])
      expect(stack.node.stats().failures, 'partition failures').toBe(0)
    })

    it('keeps the first failure of a chain of failed tasks: its name, message and stack reach the caller', async () => {
      // (only the message did: a parent saw TaskFailedError wrapping a TaskFailedError with no
      // trace of the RangeError the activity threw two tasks down, and so did a client's status)
      const chain = await stack.client.waitForCompletion(await stack.client.start(failingChain, undefined))
      expect(chain.status).toBe('Failed')
      expect(chain.error).toMatchObject({
        name: 'TaskFailedError',
        message: "sub-orchestration 'failing' failed (seq 0): activity 'boom' failed (seq 0): kaboom",
        cause: {
          name: 'RangeError',
          message: 'kaboom',
          stack: expect.stringMatching(/^RangeError: kaboom\n/),
        },
      })
      expect(chain.error?.cause?.cause).toBeUndefined()
      const caught = await stack.client.waitForCompletion(
        await stack.client.start(causesOfChildFailure, undefined),
      )
      expect(caught.output).toEqual(['TaskFailedError', 'TaskFailedError', 'RemoteError(RangeError: kaboom)'])
    })

    it('reports a failed sub-orchestration to its parent, and an unknown activity as a task failure', async () => {
      const p = await stack.client.waitForCompletion(await stack.client.start(failingParent, undefined))
      expect(p.output).toMatch(/child failed: .*kaboom/)
      const u = await stack.client.waitForCompletion(
        await stack.client.start(callsUnknownActivity, undefined),
      )
      expect(u.status).toBe('Failed')
      expect(u.error?.message).toMatch(/unknown activity 'neverRegistered'/)
    })

    it('starts at a given time (Pending until then), lists by time and id prefix, purges by filter', async () => {
      const prefix = `sched-${alwaysReplay}-`
      const from = Date.now()
      const at = Date.now() + 400
      const id = await stack.client.start(helloSequence, ['later'], { instanceId: `${prefix}1`, startAt: at })
      expect((await stack.client.getStatus(id))?.status).toBe('Pending')
      const done = await stack.client.waitForCompletion(id)
      expect(done.output).toEqual(['Hello later'])
      expect(done.completedAt!.getTime()).toBeGreaterThanOrEqual(at)
      await stack.client.waitForCompletion(
        await stack.client.start(helloSequence, ['x'], { instanceId: `${prefix}2` }),
      )
      const listed = await stack.client.listInstances({
        idPrefix: prefix,
        createdFrom: from,
        createdTo: Date.now(),
      })
      expect(listed.instances.map((i) => i.id).sort()).toEqual([`${prefix}1`, `${prefix}2`])
      expect(await stack.client.purgeInstances({ idPrefix: prefix, statuses: ['Completed'] })).toBe(2)
      expect((await stack.client.listInstances({ idPrefix: prefix })).instances).toEqual([])
    })

    it('refuses a second start of the id of a Pending instance, which then starts once with its input', async () => {
      // (the second start was taken, replacing the Pending one: its input never ran)
      const id = `pending-${alwaysReplay}`
      await stack.client.start(helloSequence, ['first'], { instanceId: id, startAt: Date.now() + 400 })
      for (const options of [{}, { replace: true }, { startAt: Date.now() + 100 }]) {
        const again = await stack.client
          .start(helloSequence, ['second'], { instanceId: id, ...options })
          .catch((e: unknown) => e)
        expect(again, JSON.stringify(options)).toBeInstanceOf(InstanceExistsError)
        expect(String(again)).toMatch(/already exists with status Pending/)
      }
      const done = await stack.client.waitForCompletion(id)
      expect(done.output).toEqual(['Hello first'])
      expect(
        (await stack.client.getHistory(id)).filter((e) => e.e === 'started'),
        'one execution',
      ).toHaveLength(1)
    })

    it('two bulk purges at once purge every instance once, passing over what the other purged', async () => {
      const prefix = `twice-${alwaysReplay}-`
      const ids = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          stack.client.start(helloSequence, ['x'], { instanceId: `${prefix}${i}` }),
        ),
      )
      for (const id of ids) await stack.client.waitForCompletion(id)
      const filter = { idPrefix: prefix, statuses: ['Completed' as const] }
      // both list all 20; each instance is purged by one of them, the other finds it gone
      const [a, b] = await Promise.all([
        stack.client.purgeInstances(filter),
        stack.client.purgeInstances(filter),
      ])
      expect(a + b, `purged ${a} + ${b}`).toBe(20)
      expect((await stack.client.listInstances({ idPrefix: prefix })).instances).toEqual([])
    })

    it('gives clear errors for unknown orchestrations and events to unknown instances', async () => {
      const unknown = { ...helloSequence, name: 'noSuchOrchestration' }
      await expect(stack.client.start(unknown, ['x'])).rejects.toThrow(
        /unknown orchestration 'noSuchOrchestration'/,
      )
      await expect(stack.client.raiseEvent('no-such-instance', 'e', 1)).rejects.toBeInstanceOf(BadInputError)
      await expect(stack.client.waitForCompletion('no-such-instance', { timeoutMs: 2000 })).rejects.toThrow(
        /does not exist/,
      )
    })
  })
}

describe('activity offloading', () => {
  it('sends activities through the work queue when the local backlog is high; results apply once', async () => {
    const hub = 'offload'
    const node = await Node.start({
      servers: nats.url,
      hub,
      registry: allWorkflows,
      partitions: 2,
      activityConcurrency: 2,
      offloadThreshold: 1,
      logger: silentLogger,
    })
    const client = await Client.connect({ servers: nats.url, hub })
    // asynchronous activities hold their slot (a synchronous one finishes inline: no backlog)
    const ids = await Promise.all(Array.from({ length: 10 }, () => client.start(spread, { n: 20, ms: 1 })))
    const results = await Promise.all(
      ids.map((id) => client.waitForCompletion<number[]>(id, { timeoutMs: 30_000 })),
    )
    expect(results.map((r) => r.output?.length)).toEqual(ids.map(() => 20))
    expect(node.workers!.offloaded).toBeGreaterThan(0)
    expect(node.workers!.ranForOthers).toBe(node.workers!.offloaded)
    await client.close()
    await node.stop()
  })
})

const neverSettles = activity('neverSettles', () => new Promise<never>(() => {}))
/** Races an activity that never settles against a short timer, and moves on. */
const racesHung = orchestration('racesHung', function* (ctx) {
  yield* ctx.any([ctx.callActivity(neverSettles, null), ctx.createTimer(ctx.now() + 100)])
  return 'moved on'
})

describe("the node's activity timeout", () => {
  it('frees the slots of activities that never settle, so later activities run', async () => {
    const hub = 'activity-timeout'
    const node = await Node.start({
      servers: nats.url,
      hub,
      registry: [...allWorkflows, neverSettles, racesHung],
      partitions: 2,
      activityConcurrency: 2,
      activityTimeoutMs: 1_000,
      logger: silentLogger,
    })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      // two hung activities hold both slots; their orchestrations complete anyway
      for (let i = 0; i < 2; i++) {
        const done = await client.waitForCompletion(await client.start(racesHung, null))
        expect(done.status, `racesHung ${i}`).toBe('Completed')
      }
      // before, an activity after them waited the fixed 5 minutes for a slot
      const id = await client.start(helloSequence, ['Lima'])
      const done = await client.waitForCompletion<string[]>(id, { timeoutMs: 20_000 })
      expect(done.output).toEqual(['Hello Lima'])
    } finally {
      await client.close()
      await node.stop()
    }
  })

  it('is refused when it is not a positive number', async () => {
    const err = await Node.start({
      servers: nats.url,
      hub: 'activity-timeout-bad',
      activityTimeoutMs: 0,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BadInputError)
    expect((err as Error).message).toBe('activityTimeoutMs must be a positive number of ms (got number 0)')
  })
})

/** A long history (more than one chunk), then a wait: its replay after eviction reads the chunks. */
const longThenWait = orchestration('longThenWait', function* (ctx, n: number) {
  let sum = 0
  for (let i = 0; i < n; i++) sum += yield* ctx.callActivity(double, i)
  const extra = yield* ctx.waitForEvent<number>('go')
  return sum + extra
})

describe('durable histories', () => {
  it('keep every event across chunks, snapshots, eviction, replay and restarts', async () => {
    const hub = 'histories'
    const options = {
      servers: nats.url,
      hub,
      registry: [...allWorkflows, longThenWait],
      partitions: 2,
      cacheSize: 32, // 16 instances per partition: most are evicted and read back
      snapshotRecords: 5,
      snapshotIntervalMs: 100,
      logger: silentLogger,
    }
    let node = await Node.start(options)
    const client = await Client.connect({ servers: nats.url, hub })
    const waiting = await Promise.all(Array.from({ length: 30 }, () => client.start(longThenWait, 40)))
    const fanned = await Promise.all(Array.from({ length: 40 }, () => client.start(fanOut, 100)))
    for (const id of fanned) expect((await client.waitForCompletion<number>(id)).output).toBe(9900)
    const before = new Map<string, unknown>()
    for (const id of fanned) before.set(id, await client.getHistory(id))
    for (const id of fanned) {
      const history = await client.getHistory(id)
      expect(history[0]?.e, `first event of ${id}`).toBe('started')
      expect(history.filter((e) => e.e === 'completed').length, `completions in ${id}`).toBe(100)
      expect(history[history.length - 1], `last event of ${id}`).toMatchObject({ e: 'finished' })
    }

    await node.stop()
    node = await Node.start(options)
    for (const id of fanned)
      expect(await client.getHistory(id), `history of ${id} after restart`).toEqual(before.get(id))
    // the waiting instances replay their 40 steps from the stored chunks, then finish
    await Promise.all(waiting.map((id) => client.raiseEvent(id, 'go', 1)))
    for (const id of waiting) {
      const done = await client.waitForCompletion<number>(id)
      expect(done.output, `output of ${id}`).toBe(2 * ((39 * 40) / 2) + 1)
      const history = await client.getHistory(id)
      const seqs = history.filter((e) => e.e === 'completed').map((e) => (e as { seq: number }).seq)
      expect(seqs, `completions in ${id}`).toEqual(Array.from({ length: 40 }, (_, i) => i))
    }
    await client.purge(fanned[0]!)
    expect(await client.getStatus(fanned[0]!)).toBeUndefined()
    await client.close()
    await node.stop()
  }, 60_000)
})
