/**
 * How entity operations run on a node with several partitions: each operation sees its own
 * entity (asynchronous operations on different partitions never share one), a hung asynchronous
 * operation times out without blocking its partition, operations and types a node does not know
 * are refused or dead-lettered (never dropped), and arguments are checked against the schemas an
 * entity class declares (Standard Schema), and the signals scheduled for an entity can be listed.
 */
import { describe, expect, it } from 'vitest'
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import {
  BadInputError,
  Client,
  Entity,
  Node,
  silentLogger,
  IllegalStateError,
  RemoteError,
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
  type OperationSchemas,
  type StandardSchemaV1,
} from '../../runtime/index.ts'
import { connectTo } from '../../runtime/internal.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

class SlowCounter extends Entity<number> {
  initialState() {
    return 0
  }
  async slowAdd(n: number) {
    await sleep(5)
    this.state += n
  }
  get() {
    return this.state
  }
}

/** Lets the test decide when the hung operation of {@link Hanging} wakes up again. */
let wake: () => void = () => {}
const woken = new Promise<void>((resolve) => (wake = resolve))
/** What the hung operation ran into once it woke up after its timeout. */
let zombie: Promise<unknown> | undefined

class Hanging extends Entity<number> {
  static override operationTimeoutMs = 150
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
  get() {
    return this.state
  }
  async hang(n: number) {
    this.state += n
    this.entity(Hanging, 'hang-target').signal.add(1)
    const after = woken.then(() => {
      this.state += 1000
      this.entity(Hanging, 'hang-target').signal.add(1000)
    })
    zombie = after.then(
      () => 'wrote',
      (err: unknown) => err,
    )
    await after
  }
}

/** Has no timeout of its own: the node's `entityOperationTimeoutMs` applies. */
class Stuck extends Entity<number> {
  initialState() {
    return 0
  }
  async forever() {
    this.state = 99
    await new Promise(() => {})
  }
  get() {
    return this.state
  }
}

/** An operation that takes longer than the caller waits, well within its own timeout. */
class Lengthy extends Entity<number> {
  static override operationTimeoutMs = 20_000
  initialState() {
    return 0
  }
  async take(ms: number) {
    await sleep(ms)
    this.state += 1
  }
  get() {
    return this.state
  }
}

/** A hand-written Standard Schema (what zod, valibot or arktype objects provide). */
function schema<T>(
  check: (value: unknown) => string | undefined,
  map?: (value: T) => T,
): StandardSchemaV1<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (value) => {
        const problem = check(value)
        if (problem !== undefined) return { issues: [{ message: problem }] }
        return { value: map === undefined ? (value as T) : map(value as T) }
      },
    },
  }
}
const finiteNumber = schema<number>((v) =>
  typeof v === 'number' && Number.isFinite(v) ? undefined : `expected a finite number, got ${typeof v}`,
)
const lowerCased = schema<string>(
  (v) => (typeof v === 'string' ? undefined : `expected a string, got ${typeof v}`),
  (s) => s.toLowerCase(),
)
const asyncPositive: StandardSchemaV1<number> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: async (v) =>
      typeof v === 'number' && v > 0 ? { value: v } : { issues: [{ message: 'must be positive', path: [] }] },
  },
}

class Checked extends Entity<{ n: number; tags: string[] }> {
  static override schemas: OperationSchemas<Checked> = {
    add: finiteNumber,
    tag: [lowerCased, finiteNumber],
    addPositive: asyncPositive,
  }
  initialState() {
    return { n: 0, tags: [] }
  }
  add(n: number) {
    this.state.n += n
  }
  addPositive(n: number) {
    this.state.n += n
  }
  tag(name: string, times: number) {
    for (let i = 0; i < times; i++) this.state.tags.push(name)
  }
  get() {
    return this.state
  }
}

/** The same type as the node's `Checked`, as an older client knows it: no schemas, one more op. */
class CheckedUnchecked extends Entity<{ n: number; tags: string[] }> {
  static override entityName = 'Checked'
  initialState() {
    return { n: 0, tags: [] }
  }
  add(n: number) {
    void n
  }
  tag(name: string, times: number) {
    void name
    void times
  }
  retired() {}
  get() {
    return this.state
  }
}

/** Known to the client but not registered on the node. */
/** Starts from its key, and refuses keys it does not take: a throw in `initialState()`. */
class Keyed extends Entity<{ owner: string; visits: number }> {
  initialState() {
    if (this.key.startsWith('bad')) throw new RangeError(`no account for key '${this.key}'`)
    return { owner: this.key, visits: 0 }
  }
  visit() {
    this.state.visits++
    return this.state
  }
  close() {
    this.deleteState()
  }
  /** A change in place after deleteState() goes with the deleted state (README says so). */
  closeAndTouch() {
    this.deleteState()
    this.state.visits = 99
  }
  /** An assignment after deleteState() stores a state again. */
  closeAndReplace() {
    this.deleteState()
    this.state = { owner: 'replaced', visits: 7 }
  }
}

/** Sends what the wire cannot carry: a function in a signal's arguments, or in its own result. */
class Sender extends Entity<number> {
  initialState() {
    return 0
  }
  relay(withFunction: boolean) {
    this.state += 1
    this.entity(SlowCounter, 'relayed').signal.slowAdd((withFunction ? { n: 1, cb: () => 1 } : 1) as number)
  }
  handle() {
    this.state += 1
    return { ok: true, cb: () => 1 }
  }
  get() {
    return this.state
  }
}

class Unregistered extends Entity<number> {
  initialState() {
    return 0
  }
  poke() {}
}

const nats = useNatsServer()
const hub = 'entity-ops'
const stack = useHub(nats, {
  hub,
  registry: [SlowCounter, Hanging, Stuck, Checked, Lengthy, Keyed, Sender],
  partitions: 4,
  entityOperationTimeoutMs: 1_000,
})

/** The reasons of the hub's dead letters so far, oldest first. */
async function deadLetters(nc: NatsConnection): Promise<string[]> {
  const names = new HubNames(hub)
  const jsm = await jetstreamManager(nc)
  const { messages, first_seq } = (await jsm.streams.info(names.deadLetterStream)).state
  const reasons: string[] = []
  for (let seq = first_seq; seq < first_seq + messages; seq++) {
    const m = await jsm.streams.getMessage(names.deadLetterStream, { seq })
    reasons.push(m?.header.get('Basalt-Reason') ?? '(no reason)')
  }
  return reasons
}

async function expectDeadLetter(pattern: RegExp, what: string): Promise<void> {
  const nc = await connectTo(nats.url, 'dlq-reader')
  try {
    const found = await waitFor(
      async () => (await deadLetters(nc)).some((r) => pattern.test(r)),
      `dead letter for ${what} matching ${pattern}`,
    ).then(
      () => true,
      (err: unknown) => err,
    )
    if (found !== true) {
      throw new Error(`${String(found)}; reasons found: ${JSON.stringify(await deadLetters(nc))}`)
    }
  } finally {
    await nc.close()
  }
}

describe('entity operations', () => {
  it('gives every asynchronous operation its own entity, across partitions (no lost updates)', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `slow-${i}`)
    const calls = keys.flatMap((key) =>
      [1, 2, 3].map(() => stack.client.entity(SlowCounter, key).call.slowAdd(1)),
    )
    const outcomes = await Promise.allSettled(calls)
    const rejected = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []))
    expect(rejected, 'rejected slowAdd calls').toEqual([])
    const values = await Promise.all(keys.map((key) => stack.client.entity(SlowCounter, key).call.get()))
    expect(Object.fromEntries(keys.map((k, i) => [k, values[i]]))).toEqual(
      Object.fromEntries(keys.map((k) => [k, 3])),
    )
    expect(values.reduce((a, b) => a + b, 0)).toBe(60)
  })

  it('times out a hung asynchronous operation (per-type timeout): changes discarded, partition goes on', async () => {
    const h = stack.client.entity(Hanging, 'hung')
    await h.signal.add(5)
    const started = Date.now()
    const err = await h.call.hang(7).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect((err as Error).message).toMatch(/Hanging@hung\.hang did not finish within 150 ms/)
    expect(Date.now() - started).toBeLessThan(5_000)
    // the partition goes on: the same entity, and others, answer; the hung op's changes are gone
    expect(await h.call.get()).toBe(5)
    await h.signal.add(1)
    expect(await h.call.get()).toBe(6)
    expect(await stack.client.entity(SlowCounter, 'after-hang').call.slowAdd(2)).toBeUndefined()
    // the abandoned operation wakes up later: what it does then lands nowhere
    wake()
    const outcome = await zombie
    expect(outcome).toBeInstanceOf(IllegalStateError)
    await h.signal.add(1)
    expect(await h.call.get()).toBe(7)
    expect(await stack.client.entity(Hanging, 'hang-target').call.get()).toBe(0)
  })

  it("rejects a call at the caller's callTimeoutMs, not when the slow operation ends", async () => {
    const impatient = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 200 })
    try {
      const started = Date.now()
      const err = await impatient
        .entity(Lengthy, 'long')
        .call.take(4_000)
        .catch((e: unknown) => e)
      const waited = Date.now() - started
      expect(err).toBeInstanceOf(TimeoutError)
      expect((err as Error).message).toBe(
        'call Lengthy@long.take got no result in 200 ms; the request is stored and may still take effect ' +
          '(a timeout does not cancel it)',
      )
      // before, the lock-holder lookup waited behind the call itself: the rejection came at 4 s
      expect(waited, 'ms until the call was rejected').toBeLessThan(3_000)
      // the call still takes effect: a timeout is not a cancellation
      await waitFor(async () => (await impatient.entity(Lengthy, 'long').call.get()) === 1, 'take applied')
    } finally {
      await impatient.close()
    }
  })

  it('says when a timed-out call waits for a node: stored, it runs once a node serves its partition', async () => {
    const idleHub = `${hub}-idle`
    const options = {
      servers: nats.url,
      hub: idleHub,
      registry: [Lengthy],
      partitions: 2,
      logger: silentLogger,
    }
    await (await Node.start(options)).stop()
    const client = await Client.connect({
      servers: nats.url,
      hub: idleHub,
      callTimeoutMs: 1_500,
      reaskMs: 200,
    })
    try {
      const err = await client
        .entity(Lengthy, 'later')
        .call.take(0)
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TimeoutError)
      expect((err as Error).message).toMatch(
        /^call Lengthy@later\.take got no result in 1500 ms; partition \d had no owner when last asked \(no node running on this hub, or its owner restarting it after a failure\): the request is stored and takes effect once it is served$/,
      )
      const node = await Node.start(options)
      try {
        await waitFor(async () => (await client.entity(Lengthy, 'later').call.get()) === 1, 'take applied')
      } finally {
        await node.stop()
      }
    } finally {
      await client.close()
    }
  })

  it("times out with the node's default when the type sets none", async () => {
    const s = stack.client.entity(Stuck, 'stuck')
    const err = await s.call.forever().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect((err as Error).message).toMatch(/Stuck@stuck\.forever did not finish within 1000 ms/)
    expect(await s.call.get()).toBe(0)
  })

  it('refuses an operation the class does not have at the client, before sending it', async () => {
    const proxy = stack.client.entity(SlowCounter, 'ops').signal as unknown as Record<
      string,
      () => Promise<void>
    >
    for (const op of ['explode', 'initialState', 'deleteState', 'constructor']) {
      const err = await proxy[op]!().catch((e: unknown) => e)
      expect(err, `signal of '${op}'`).toBeInstanceOf(UnknownOperationError)
      expect((err as Error).message).toBe(`entity type 'SlowCounter' has no operation '${op}'`)
    }
  })

  it('dead-letters a signal for an operation the node does not know; a call gets UnknownOperationError', async () => {
    const old = stack.client.entity(CheckedUnchecked, 'old-client')
    await old.signal.retired()
    await expectDeadLetter(/entity type 'Checked' has no operation 'retired'/, 'Checked@old-client.retired')
    const err = await old.call.retired().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownOperationError)
    expect(await stack.client.entity(Checked, 'old-client').call.get()).toEqual({ n: 0, tags: [] })
  })

  it('dead-letters a signal for an entity type the node does not know; a call gets UnknownEntityError', async () => {
    await stack.client.entity(Unregistered, 'nobody').signal.poke()
    await expectDeadLetter(/unknown entity type 'Unregistered'/, 'Unregistered@nobody.poke')
    const err = await stack.client
      .entity(Unregistered, 'nobody')
      .call.poke()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownEntityError)
  })

  it('checks arguments against the declared schemas at the client', async () => {
    const c = stack.client.entity(Checked, 'client-side')
    const add = c.call.add as unknown as (n: unknown) => Promise<void>
    const err = await add('abc').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BadInputError)
    expect((err as Error).message).toBe(
      'bad arguments for Checked@client-side.add: expected a finite number, got string',
    )
    const tag = c.signal.tag as unknown as (name: unknown, times: unknown) => Promise<void>
    const tagErr = await tag('x', 'twice').catch((e: unknown) => e)
    expect(tagErr).toBeInstanceOf(BadInputError)
    expect((tagErr as Error).message).toMatch(
      /Checked@client-side\.tag: argument 2: expected a finite number/,
    )
    const tooMany = await (c.signal.add as unknown as (...a: unknown[]) => Promise<void>)(1, 2).catch(
      (e: unknown) => e,
    )
    expect((tooMany as Error).message).toMatch(/Checked@client-side\.add: expects 1 argument, got 2/)
    const asyncErr = await c.call.addPositive(-1).catch((e: unknown) => e)
    expect((asyncErr as Error).message).toMatch(/Checked@client-side\.addPositive: must be positive/)
    // valid arguments pass; the node applies the schema's output (here: lower-cased)
    await c.signal.add(2)
    await c.signal.tag('HeLLo', 2)
    await c.call.addPositive(3)
    expect(await c.call.get()).toEqual({ n: 5, tags: ['hello', 'hello'] })
  })

  it('checks arguments on the node too: a call gets BadInputError, a signal is dead-lettered', async () => {
    const old = stack.client.entity(CheckedUnchecked, 'node-side')
    const add = old.call.add as unknown as (n: unknown) => Promise<void>
    const err = await add('abc').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BadInputError)
    expect((err as Error).message).toBe(
      'bad arguments for Checked@node-side.add: expected a finite number, got string',
    )
    const tag = old.signal.tag as unknown as (name: unknown, times: unknown) => Promise<void>
    await tag(5, 1)
    await expectDeadLetter(
      /bad arguments for Checked@node-side\.tag: argument 1: expected a string, got number/,
      'Checked@node-side.tag',
    )
    expect(await stack.client.entity(Checked, 'node-side').call.get()).toEqual({ n: 0, tags: [] })
  })

  it('lists the signals scheduled for an entity, earliest first; a delivered one leaves the list', async () => {
    const key = 'scheduled'
    const far = Date.now() + 10 * 60_000
    const soon = Date.now() + 2_000
    const counter = stack.client.entity(SlowCounter, key)
    await counter.signalAt(far).slowAdd(5)
    await counter.signalAt(soon).slowAdd(2)
    await stack.client.entity(SlowCounter, 'scheduled-other').signalAt(far).slowAdd(9)
    expect(await stack.client.scheduledSignals(SlowCounter, key)).toEqual([
      { at: soon, op: 'slowAdd', args: [2] },
      { at: far, op: 'slowAdd', args: [5] },
    ])
    await waitFor(
      async () => (await counter.call.get()) === 2,
      `delivery of the signal due at ${soon} to SlowCounter@${key} (expected state 2)`,
    )
    expect(await stack.client.scheduledSignals('SlowCounter', key)).toEqual([
      { at: far, op: 'slowAdd', args: [5] },
    ])
    expect(await stack.client.scheduledSignals(SlowCounter, 'never-scheduled')).toEqual([])
  })

  it('runs initialState() as part of the first operation: it reads this.key, and a throw fails that operation only', async () => {
    const good = stack.client.entity(Keyed, 'alice')
    expect(await good.call.visit()).toEqual({ owner: 'alice', visits: 1 })
    // made at load time, outside any operation, it had no key, and a throw stopped the partition
    // at every restart: every entity of the partition went unanswered
    const err = await stack.client
      .entity(Keyed, 'bad-1')
      .call.visit()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RemoteError)
    expect((err as RemoteError).message).toBe("no account for key 'bad-1'")
    expect(await stack.client.readEntityState(Keyed, 'bad-1')).toEqual({ exists: false })
    await stack.client.entity(Keyed, 'bad-2').signal.visit() // logged, as any signal that throws
    // every partition still answers, and a deleted entity starts again from its key
    for (let i = 0; i < 8; i++)
      expect((await stack.client.entity(Keyed, `k${i}`).call.visit()).owner).toBe(`k${i}`)
    await good.signal.close()
    expect(await good.call.visit()).toEqual({ owner: 'alice', visits: 1 })
  })

  it('fails an operation that sends or returns a function, naming where; nothing of it is kept', async () => {
    const sender = stack.client.entity(Sender, 'fn')
    await expect(sender.call.relay(true)).rejects.toThrow(
      /signal sent by Sender@fn\.relay.* at \.a\[0\]\.cb is a function, which cannot be sent/,
    )
    await expect(sender.call.handle()).rejects.toThrow(/result of Sender@fn\.handle.* at \.cb is a function/)
    await expect(sender.call.handle()).rejects.toBeInstanceOf(BadInputError)
    // the failed operations changed nothing and sent nothing; a good one goes through
    await sender.call.relay(false)
    expect(await sender.call.get()).toBe(1)
    await waitFor(
      async () => (await stack.client.entity(SlowCounter, 'relayed').call.get()) === 1,
      'relayed once',
    )
  })

  it('keeps a state after deleteState() only when the operation assigns one', async () => {
    const e = stack.client.entity(Keyed, 'reopened')
    await e.call.visit()
    await e.call.closeAndTouch()
    expect(await stack.client.readEntityState(Keyed, 'reopened')).toEqual({ exists: false })
    await e.call.closeAndReplace()
    expect(await stack.client.readEntityState(Keyed, 'reopened')).toEqual({
      exists: true,
      state: { owner: 'replaced', visits: 7 },
    })
  })

  it('answers a scheduled signals query for an entity type the node does not know with UnknownEntityError', async () => {
    const err = await stack.client.scheduledSignals(Unregistered, 'nobody').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownEntityError)
    expect((err as Error).message).toMatch(/unknown entity type 'Unregistered'/)
  })
})
