/**
 * The client's arguments, against a real hub: every public method rejects what it cannot send at
 * once (never after a call timeout) with `BadInputError` naming the argument; `start` takes an
 * orchestration's registered name as well as its definition; `InstanceExistsError` reaches the
 * caller as its own class; functions in values are refused, naming where, and harm nothing else.
 */
import { firstValueFrom } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  BadInputError,
  Client,
  ClientClosedError,
  ErrorCode,
  IllegalStateError,
  InstanceExistsError,
  Node,
  silentLogger,
  type BasaltError,
} from '../../runtime/index.ts'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { allWorkflows, approval, failing } from '../fixtures/workflows.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const hub = 'client-args'
/** An activity whose result holds a function: it is dropped on the way, as the node drops it. */
const withFunction = activity('withFunction', () => ({ n: 1, f: () => 1 }))
const callsWithFunction = orchestration('callsWithFunction', function* (ctx) {
  return yield* ctx.callActivity(withFunction, undefined)
})
const stack = useHub(nats, {
  hub,
  registry: [...allWorkflows, Counter, withFunction, callsWithFunction],
  partitions: 2,
})

/** What a promise (or a call that throws before returning one) was rejected with. */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/** Expects a BadInputError whose message matches `message`. */
async function expectBadInput(fn: () => unknown, message: RegExp): Promise<void> {
  const err = await failure(fn)
  expect(err).toBeInstanceOf(BadInputError)
  expect((err as Error).message).toMatch(message)
}

// a client that waits for nothing: had an argument reached the wire, the call would time out
const any = () => stack.client as unknown as Record<string, (...args: unknown[]) => unknown>

describe('client arguments', () => {
  it('starts an orchestration by its registered name, end to end', async () => {
    const id = await stack.client.start<number>('fanOut', 3, { instanceId: 'by-name' })
    expect(id).toBe('by-name')
    const done = await stack.client.waitForCompletion(id)
    expect(done.status).toBe('Completed')
    expect(done.output).toBe(6)
    expect(done.name).toBe('fanOut')
  })

  it('rejects a name the node has not registered with BadInputError naming it', async () => {
    const err = await failure(() =>
      stack.client.start('noSuchOrchestration', 1, { instanceId: 'unknown-name' }),
    )
    expect(err).toBeInstanceOf(BadInputError)
    expect((err as Error).message).toBe("unknown orchestration 'noSuchOrchestration'")
    expect(await stack.client.getStatus('unknown-name')).toBeUndefined()
  })

  it('rejects an orchestration that is neither a definition nor a name, at once', async () => {
    await expectBadInput(() => any().start!(null, 1), /orchestration must be a definition .*\(got null\)/)
    await expectBadInput(() => any().start!(42, 1), /\(got number 42\)/)
    await expectBadInput(() => any().start!({ name: 'fanOut' }, 1), /\(got object\)/)
    await expectBadInput(() => any().start!('', 1), /orchestration name must be a non-empty string/)
    await expectBadInput(
      () => stack.client.start(approval, 1, { instanceId: 7 as never }),
      /^instance id must/,
    )
    await expectBadInput(
      () => stack.client.start(approval, 1, { startAt: 'soon' as never }),
      /^startAt must be a Date or milliseconds since the epoch \(got soon\)$/,
    )
    // a delay where the time is expected, and a time no Date can hold
    await expectBadInput(
      () => stack.client.start(approval, 1, { startAt: 5000 }),
      /^startAt takes a time \(a Date or ms since the epoch\), not a delay: 5000 is 1970-01-01T00:00:05\.000Z; for a delay of 5000 ms give Date\.now\(\) \+ 5000$/,
    )
    await expectBadInput(
      () => stack.client.entity(Counter, 'k').signalAt(5000).add(1),
      /^signalAt takes a time .*not a delay: 5000 is/,
    )
    await expectBadInput(
      () =>
        stack.client
          .entity(Counter, 'k')
          .signalAt(8.64e15 + 1)
          .add(1),
      /^signalAt is past the latest time a Date can hold \(got 8640000000000001, at most 8640000000000000\)$/,
    )
  })

  it('gives InstanceExistsError, as its own class, for an id that is taken', async () => {
    await stack.client.start(approval, 60_000, { instanceId: 'taken' })
    const err = await failure(() => stack.client.start(approval, 60_000, { instanceId: 'taken' }))
    expect(err).toBeInstanceOf(InstanceExistsError)
    expect(err).toBeInstanceOf(BadInputError)
    expect((err as BasaltError).name).toBe('InstanceExistsError')
    expect((err as BasaltError).code).toBe(ErrorCode.BadInput)
    expect((err as Error).message).toBe("instance 'taken' already exists with status Running")
    await stack.client.terminate('taken')
  })

  it('checks instance ids and event names in every instance method, at once', async () => {
    await expectBadInput(
      () => any().raiseEvent!('m1', 42, 1),
      /^event name must be a non-empty string .*number 42/,
    )
    await expectBadInput(
      () => any().raiseEvent!(42, 'x', 1),
      /^instance id must be a non-empty string \(got number 42\)/,
    )
    await expectBadInput(() => any().raiseEvent!('m1', { name: '' }, 1), /^event name/)
    for (const method of [
      'terminate',
      'suspend',
      'resume',
      'purge',
      'getStatus',
      'waitForCompletion',
      'getHistory',
    ]) {
      await expectBadInput(() => any()[method]!(null), /^instance id must be a non-empty string \(got null\)/)
    }
    await expectBadInput(() => any().watchStatus!(''), /^instance id must/)
    await expectBadInput(() => any().terminate!('m1', 5), /reason of terminate must be a string/)
    await expectBadInput(() => any().getStatus!('m1', 'history'), /options of getStatus must be an object/)
  })

  it('checks timeouts', async () => {
    await expectBadInput(
      () => stack.client.waitForCompletion('m1', { timeoutMs: 'abc' as never }),
      /^timeoutMs must be a positive number of ms.*\(got string "abc"\)/,
    )
    await expectBadInput(() => stack.client.waitForCompletion('m1', { timeoutMs: -5 }), /timeoutMs/)
    await expectBadInput(
      () => Client.connect({ servers: nats.url, hub, callTimeoutMs: 'x' as never }),
      /^callTimeoutMs must be a positive number/,
    )
  })

  it('checks the filter of listInstances and purgeInstances, naming the field', async () => {
    await expectBadInput(
      () => stack.client.listInstances({ pageSize: -1 }),
      /^pageSize must be a whole number in 1\.\.1000/,
    )
    await expectBadInput(() => stack.client.listInstances({ pageSize: 0 }), /pageSize/)
    await expectBadInput(() => stack.client.listInstances({ pageSize: 1e9 }), /pageSize/)
    await expectBadInput(
      () => stack.client.listInstances({ statuses: ['Bogus' as never] }),
      /unknown status string "Bogus"/,
    )
    await expectBadInput(
      () => stack.client.listInstances({ statuses: 'Completed' as never }),
      /^statuses must be an array/,
    )
    await expectBadInput(
      () => stack.client.listInstances({ createdFrom: 'yesterday' as never }),
      /^createdFrom must be a Date/,
    )
    await expectBadInput(
      () => stack.client.listInstances({ continuation: 'garbage!!' }),
      /^continuation is not a token/,
    )
    await expectBadInput(
      () => stack.client.purgeInstances({ idPrefix: 3 as never }),
      /^idPrefix must be a string/,
    )
    // a Date works as well as ms
    const page = await stack.client.listInstances({ createdFrom: new Date(0), idPrefix: 'by-name' })
    expect(page.instances.map((i) => i.id)).toEqual(['by-name'])
  })

  it('refuses a filter key it does not have, purging nothing (a misspelt key purged every finished instance)', async () => {
    const prefix = 'typo-'
    for (const i of [1, 2, 3]) {
      await stack.client.waitForCompletion(
        await stack.client.start('fanOut', i, { instanceId: `${prefix}${i}` }),
      )
    }
    const failed = await stack.client.start(failing, undefined, { instanceId: `${prefix}failed` })
    expect((await stack.client.waitForCompletion(failed)).status).toBe('Failed')
    const all = async () => (await stack.client.listInstances({ pageSize: 1000 })).instances.map((i) => i.id)
    const before = await all()
    expect(before).toEqual(
      expect.arrayContaining([`${prefix}1`, `${prefix}2`, `${prefix}3`, `${prefix}failed`]),
    )

    await expectBadInput(
      () => stack.client.purgeInstances({ status: 'Failed' } as never),
      /^purgeInstances: unknown filter key 'status' \(known: statuses, createdFrom, createdTo, namePrefix, idPrefix\)$/,
    )
    await expectBadInput(
      () => stack.client.purgeInstances({ idPrefix: prefix, pageSize: 1 } as never),
      /^purgeInstances: unknown filter key 'pageSize'/,
    )
    expect(await all()).toEqual(before)

    await expectBadInput(
      () => stack.client.listInstances({ pagesize: 2, status: ['Bogus'] } as never),
      /^listInstances: unknown query keys 'pagesize', 'status' \(known: statuses, .*, pageSize, continuation\)$/,
    )
    // spelt right, it purges what it names
    expect(await stack.client.purgeInstances({ idPrefix: prefix, statuses: ['Failed'] })).toBe(1)
    expect(await all()).toEqual(before.filter((id) => id !== `${prefix}failed`))
  })

  it('refuses option keys it does not have in every method that takes options, at once', async () => {
    await expectBadInput(
      () => stack.client.start(approval, 1, { instanceID: 'typo-start' } as never),
      /^start: unknown option 'instanceID' \(known: instanceId, startAt, replace\)$/,
    )
    expect(await stack.client.getStatus('typo-start')).toBeUndefined()
    await expectBadInput(
      () => stack.client.getStatus('typo-1', { histroy: true } as never),
      /^getStatus: unknown option 'histroy' \(known: history\)$/,
    )
    await expectBadInput(
      () => stack.client.waitForCompletion('typo-1', { timeout: 5 } as never),
      /^waitForCompletion: unknown option 'timeout' \(known: timeoutMs\)$/,
    )
    await expectBadInput(
      () => stack.client.listEntities({ type: Counter, prefix: 'a' } as never),
      /^listEntities: unknown query key 'prefix' \(known: type, keyPrefix, pageSize, continuation\)$/,
    )
    await expectBadInput(
      () => Client.connect({ servers: nats.url, hub, queryTimeout: 5 } as never),
      /^Client\.connect: unknown option 'queryTimeout' \(known: servers, .*, queryTimeoutMs, .*\)$/,
    )
  })

  it('checks entity types, keys and listing options', async () => {
    await expectBadInput(() => any().entity!(null, 'k'), /^entity type must be an entity class \(got null\)/)
    await expectBadInput(() => any().entity!('Counter', 'k'), /entity class \(got string "Counter"\)/)
    await expectBadInput(
      () => stack.client.entity(Counter, 5 as never),
      /^entity key must be a non-empty string/,
    )
    await expectBadInput(() => any().readEntityState!(null, 'k'), /^entity type must be an entity class/)
    await expectBadInput(() => stack.client.readEntityState('Counter', ''), /^entity key/)
    await expectBadInput(() => stack.client.getLock('Not a name', 'k'), /^entity type name must match/)
    await expectBadInput(
      () => stack.client.listEntities({ type: Counter, keyPrefix: 5 as never }),
      /^keyPrefix must be a string/,
    )
    await expectBadInput(
      () => stack.client.listEntities({ type: Counter, pageSize: 0 }),
      /^pageSize must be a whole number/,
    )
  })

  it('refuses functions in arguments and inputs, naming where, and harms nothing else', async () => {
    const add = stack.client.entity(Counter, 'fn').signal.add as unknown as (n: unknown) => Promise<void>
    const results = await Promise.allSettled([add(() => 1), stack.client.entity(Counter, 'fn').signal.add(2)])
    expect(results[0].status).toBe('rejected')
    const err = (results[0] as PromiseRejectedResult).reason as Error
    expect(err).toBeInstanceOf(BadInputError)
    expect(err.message).toBe(
      "argument 1 of Counter.add (entity 'fn') is a function, which cannot be sent (functions and symbols do not cross the wire)",
    )
    expect(results[1].status).toBe('fulfilled')
    expect(await stack.client.entity(Counter, 'fn').call.get()).toBe(2)
    await expectBadInput(
      () => stack.client.start('fanOut', { n: 1, cb: () => 1 }, { instanceId: 'fn-input' }),
      /^input of instance 'fn-input' at \.cb is a function/,
    )
    expect(await stack.client.getStatus('fn-input')).toBeUndefined()
  })

  it('fails the task of an activity whose result holds a function (user code on a node), naming where', async () => {
    // (it was delivered without the function, which the live step still saw and a replay did not:
    // see orchestration-values.test.ts)
    const id = await stack.client.start(callsWithFunction, undefined)
    const done = await stack.client.waitForCompletion(id, { timeoutMs: 20_000 })
    expect(done.status).toBe('Failed')
    expect(done.error?.message).toMatch(
      /^activity 'withFunction' failed \(seq 0\): result of activity 'withFunction' \(task 0 of instance '[^']+'\) at \.f is a function, which cannot be sent/,
    )
  })

  it('refuses connect options without servers or with a bad hub, at once', async () => {
    await expectBadInput(
      () => Client.connect({ hub } as never),
      /^servers must be a NATS server URL .*\(got none\)/,
    )
    await expectBadInput(() => Client.connect({ servers: nats.url, hub: 'a.b' }), /^hub name must match/)
    await expectBadInput(
      () => Client.connect(undefined as never),
      /options of Client.connect must be an object/,
    )
  })
})

describe('a closed client', () => {
  /** Expects a ClientClosedError (an IllegalStateError, code CLOSED) with exactly `message`. */
  async function expectClosed(fn: () => unknown, message: string): Promise<void> {
    const err = await failure(fn)
    expect(err, String(err)).toBeInstanceOf(ClientClosedError)
    expect(err).toBeInstanceOf(IllegalStateError)
    expect((err as BasaltError).code).toBe(ErrorCode.Closed)
    expect((err as Error).message).toBe(message)
  }

  it('rejects every call after close() with ClientClosedError naming it, and the calls it cut off', async () => {
    const client = await Client.connect({ servers: nats.url, hub })
    const id = await client.start(approval, 60_000)
    await client.entity(Counter, 'closing').signal.add(1)
    // a call still waiting when the client closes
    const waiting = client.waitForCompletion(id)
    await new Promise((resolve) => setTimeout(resolve, 100))
    await client.close()
    await expectClosed(
      () => waiting,
      `client closed: close() ended waitForCompletion('${id}') before its answer`,
    )
    const after: Array<[string, () => unknown]> = [
      [`getStatus('${id}')`, () => client.getStatus(id)],
      [`getHistory('${id}')`, () => client.getHistory(id)],
      [`waitForCompletion('${id}')`, () => client.waitForCompletion(id)],
      ['listInstances(…)', () => client.listInstances()],
      ['purgeInstances(…)', () => client.purgeInstances({ statuses: ['Failed'] })],
      ['start(approval, …)', () => client.start(approval, 1)],
      ["start('fanOut', …)", () => client.start('fanOut', 1)],
      [`raiseEvent('${id}', …)`, () => client.raiseEvent(id, 'approve', 'x')],
      [`terminate('${id}')`, () => client.terminate(id)],
      [`suspend('${id}')`, () => client.suspend(id)],
      [`resume('${id}')`, () => client.resume(id)],
      [`purge('${id}')`, () => client.purge(id)],
      ["readEntityState(Counter, 'closing')", () => client.readEntityState(Counter, 'closing')],
      ["readEntityState('Counter', 'closing')", () => client.readEntityState('Counter', 'closing')],
      ["getLock(Counter, 'closing')", () => client.getLock(Counter, 'closing')],
      ["scheduledSignals(Counter, 'closing')", () => client.scheduledSignals(Counter, 'closing')],
      ["forceUnlock(Counter, 'closing')", () => client.forceUnlock(Counter, 'closing')],
      ['listEntities(…)', () => client.listEntities({ type: Counter })],
      ['call Counter@closing.get', () => client.entity(Counter, 'closing').call.get()],
      ['signal Counter@closing.add', () => client.entity(Counter, 'closing').signal.add(1)],
      [`watchStatus('${id}')`, () => firstValueFrom(client.watchStatus(id))],
      ["watchEntity(Counter, 'closing')", () => firstValueFrom(client.watchEntity(Counter, 'closing'))],
    ]
    for (const [call, fn] of after) await expectClosed(fn, `client closed: ${call} after close()`)
    await client.close() // again: nothing
    // another client of the hub goes on
    expect(await stack.client.entity(Counter, 'closing').call.get()).toBe(1)
  })

  it("rejects a read that close() cut off with ClientClosedError, not the connection's error", async () => {
    // a hub no node serves: the reads wait (retrying) for an owner until the client closes
    const unserved = 'client-args-unserved'
    const node = await Node.start({ servers: nats.url, hub: unserved, partitions: 2, logger: silentLogger })
    await node.stop()
    const client = await Client.connect({ servers: nats.url, hub: unserved })
    const status = client.getStatus('o1')
    const page = client.listInstances()
    const state = client.readEntityState('Counter', 'k')
    await new Promise((resolve) => setTimeout(resolve, 200))
    await client.close()
    await expectClosed(() => status, "client closed: close() ended getStatus('o1') before its answer")
    await expectClosed(() => page, 'client closed: close() ended listInstances(…) before its answer')
    await expectClosed(
      () => state,
      "client closed: close() ended readEntityState('Counter', 'k') before its answer",
    )
    const cause = (await failure(() => status)) as Error
    expect(String(cause.cause)).toMatch(/^ClientClosedError: client closed: close\(\) ended a 'status' query/)
  })

  it('fails a waitForCompletion no node answers when its timeoutMs says, naming that timeout', async () => {
    // (it waited its timeout plus the query timeout, 10 s more, and said the wait "takes effect")
    const unserved = 'client-args-unserved-wait'
    const node = await Node.start({ servers: nats.url, hub: unserved, partitions: 2, logger: silentLogger })
    await node.stop()
    // (re-asked every 0.5 s: a re-ask is how a client learns that no node serves the partition)
    const client = await Client.connect({ servers: nats.url, hub: unserved, reaskMs: 500 })
    try {
      const started = Date.now()
      const err = (await failure(() =>
        client.waitForCompletion('nobody-serves', { timeoutMs: 2500 }),
      )) as Error
      const took = Date.now() - started
      expect(err.name).toBe('TimeoutError')
      expect(err.message).toMatch(
        /^instance 'nobody-serves' did not complete in 2500 ms; partition \d had no owner when last asked \(no node running on this hub, or its owner restarting it after a failure\)$/,
      )
      // its own timeout and the grace for an answer in flight, not 10 s more
      expect(took).toBeGreaterThanOrEqual(2500)
      expect(took).toBeLessThan(2500 + 2000)
    } finally {
      await client.close()
    }
  })

  it('completes the watches that were open when the client closed', async () => {
    const client = await Client.connect({ servers: nats.url, hub })
    const id = await client.start(approval, 60_000)
    const ends: string[] = []
    const statuses: unknown[] = []
    const watch = (name: string, source: ReturnType<Client['watchStatus']>, seen: unknown[] = []) =>
      source.subscribe({
        next: (value) => seen.push(value),
        complete: () => ends.push(`${name} completed`),
        error: (err: unknown) => ends.push(`${name} failed: ${String(err)}`),
      })
    watch('status', client.watchStatus(id), statuses)
    watch('entity', client.watchEntity(Counter, 'watched-closing') as never)
    watch('missing instance', client.watchStatus('never-started'))
    // a watch made before close() and subscribed after it: it errors, as a new one does
    const late = client.watchStatus(id)
    await waitFor(() => statuses.length > 0, 'the first status')
    await client.close()
    expect(ends.sort()).toEqual(['entity completed', 'missing instance completed', 'status completed'])
    await expectClosed(() => firstValueFrom(late), `client closed: watchStatus('${id}') after close()`)
  })
})
