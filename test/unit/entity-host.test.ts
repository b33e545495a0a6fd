/** The entity host (runtime/partition/entity-host.ts) through a fake EntityPort, without a server. */
import { BadInputError, IllegalStateError, PayloadTooLargeError } from '../../actors/index.ts'
import type { BlobStore } from '../../runtime/nats/index.ts'
import { describe, expect, it } from 'vitest'
import type { ActorMessage, EntityOp, LockMessage, ReplyTo } from '../../actors/wire/messages.ts'
import { Entity, EntityRegistry, type StartableOrchestration } from '../../entities/index.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import { EntityHost, type EntityPort } from '../../runtime/partition/entity-host.ts'
import { OpContext } from '../../runtime/partition/entity-context.ts'
import type { RoundReply } from '../../runtime/partition/round.ts'
import { silentLogger } from '../../runtime/util/logger.ts'
import { noPartitionMetrics, noTracing } from '../../runtime/metrics/index.ts'
import { Counter, Log } from '../fixtures/entities.ts'
import { waitFor } from '../tooling/harness.ts'
import { Starter, reportBack, type Starts } from '../fixtures/starters.ts'

/** Starts what it is given (a definition or not, an id or not, any input); counts its runs. */
class Misstarter extends Entity<number> {
  static override operationTimeoutMs = 50
  initialState() {
    return 0
  }
  startWith(def: unknown, instanceId?: unknown, input?: unknown) {
    this.state += 1
    const options = instanceId === undefined ? undefined : { instanceId: instanceId as string }
    return this.startOrchestration(def as StartableOrchestration<unknown>, input, options)
  }
  /** Starts with the options given as they are (a misspelt key, say). */
  startWithOptions(options: unknown) {
    return this.startOrchestration(reportBack, { key: this.key, n: 0 }, options as never)
  }
  /** Starts once `go` resolves: after its timeout, when `go` is late. */
  async startAfter(go: string) {
    await gates.get(go)
    try {
      return this.startOrchestration(reportBack, { key: this.key, n: 0 })
    } catch (err) {
      lateErrors.push(err)
      throw err
    }
  }
}

/** Promises {@link Misstarter.startAfter} waits for, by name. */
const gates = new Map<string, Promise<void>>()
/** What {@link Misstarter.startAfter} ran into when it tried to start. */
const lateErrors: unknown[] = []

function fake(overrides: Partial<EntityPort> = {}) {
  const seen = {
    writes: new Map<string, Uint8Array | null>(),
    replies: [] as Array<[ReplyTo, RoundReply]>,
    sent: [] as ActorMessage[],
    routed: [] as ActorMessage[],
    dead: [] as Array<[ActorMessage, string]>,
    deferred: [] as ActorMessage[],
    notRunHere: [] as string[],
    next: [] as ActorMessage[],
    charged: 0,
  }
  const stored = new Map<string, Uint8Array>()
  const port: EntityPort = {
    p: 0,
    logger: silentLogger,
    valueLimit: 1000,
    // values over the round's limit go to the blob store, whose ceiling this fake puts right there
    blobs: {
      limits: { threshold: 1 << 20, ceiling: 1 << 20 },
      put(bytes: Uint8Array): never {
        throw new PayloadTooLargeError('a value', bytes.length, 8, 'maxValueBytes')
      },
    } as unknown as BlobStore,
    metrics: noPartitionMetrics,
    tracing: noTracing,
    holdFor: () => {},
    roundNumber: 1,
    charge: (bytes) => (seen.charged += bytes),
    writeCharged: (key, bytes) => seen.writes.set(key, bytes),
    replyTo: (to, reply) => seen.replies.push([to, reply]),
    send: (msg) => seen.sent.push(msg),
    deadLetterMessage: async (msg, reason) => void seen.dead.push([msg, reason]),
    route: (msg) => seen.routed.push(msg),
    runNext: (msgs) => seen.next.push(...msgs),
    readItem: async (key) => stored.get(key) ?? null,
    isPinned: (key) => seen.writes.has(key),
    forget: () => {},
    afterCommit: (fn) => fn(),
    listStoredKeys: async () => [],
    dirtyWrites: function* () {},
    knownElsewhere: () => false,
    defer: (msg) => void seen.deferred.push(msg),
    notRunHere: (name) => void seen.notRunHere.push(name),
    ...overrides,
  }
  const host = new EntityHost(port, new EntityRegistry([Counter, Log, Starter, Misstarter]), 100)
  return { host, seen, stored }
}

const call = (op: string, a: unknown[], key = 'a', rid = 1): EntityOp => ({
  k: 'op',
  t: 'Counter',
  key,
  op,
  a,
  r: ['_INBOX_basalt.x', rid],
})

describe('entity host', () => {
  it('runs a call on the stored state, writes the new state and replies with the result', async () => {
    const { host, seen, stored } = fake()
    const key = itemKey.entity(0, 'Counter', 'a')
    stored.set(key, encode(10))
    await host.handle(call('add', [5]))
    expect(decode(seen.writes.get(key)!, 'state')).toBe(15)
    await host.handle(call('get', [], 'a', 2))
    expect(seen.replies.map(([, r]) => [r[0], r[1], decode(r[2] as Uint8Array, 'result')])).toEqual([
      [1, 1, undefined],
      [2, 1, 15],
    ])
    expect(seen.charged).toBeGreaterThan(0)
  })

  it('discards the state change of an operation that throws, and the caller gets the error', async () => {
    const { host, seen } = fake()
    await host.handle(call('add', [1]))
    await host.handle(call('failAfterAdding', [100], 'a', 2))
    await host.handle(call('get', [], 'a', 3))
    const [, failed] = seen.replies[1]!
    expect(failed[1]).toBe(0)
    expect(failed[2]).toMatchObject({ name: 'RangeError', message: 'refusing after adding 100' })
    expect(decode(seen.replies[2]![1][2] as Uint8Array, 'result')).toBe(1)
  })

  it('routes the signals an operation sends, once it succeeded', async () => {
    const { host, seen } = fake()
    await host.handle(call('forward', ['b', 3]))
    expect(seen.routed).toEqual([{ k: 'op', t: 'Counter', key: 'b', op: 'add', a: [3] }])
  })

  it('dead-letters a signal for an unknown type, fails such a call, and defers a type known elsewhere', async () => {
    const { host, seen } = fake({ knownElsewhere: (name) => name === 'e:Later' })
    await host.handle({ k: 'op', t: 'Nope', key: 'k', op: 'x', a: [] })
    expect(seen.dead[0]?.[1]).toMatch(/UnknownEntityError/)
    await host.handle({ k: 'op', t: 'Nope', key: 'k', op: 'x', a: [], r: ['_INBOX_basalt.x', 9] })
    expect(seen.replies[0]?.[1]).toMatchObject([9, 0, { name: 'UnknownEntityError' }])
    await host.handle({ k: 'op', t: 'Later', key: 'k', op: 'x', a: [] })
    expect(seen.deferred).toHaveLength(1)
    expect(seen.notRunHere).toEqual(['e:Later'])
    await host.handle(call('nope', []))
    expect(seen.replies[1]?.[1]).toMatchObject([1, 0, { name: 'UnknownOperationError' }])
  })

  it('a forced unlock of a type no node registers, not locked, answers UnknownEntityError', async () => {
    const { host, seen } = fake({ knownElsewhere: (name) => name === 'e:Later' })
    const forced = (t: string, rid: number) =>
      host.handle({ k: 'unlock', t, key: 'k', o: '', f: 1, r: ['_INBOX_basalt.x', rid] })
    await forced('Nope', 1)
    await forced('Counter', 2)
    await forced('Later', 3)
    // a lock of a type no longer registered is still released, naming its holder
    host.replayLock(itemKey.lockOf(itemKey.entity(0, 'Gone', 'k')), encode(['orch-1', []]))
    await forced('Gone', 4)
    await forced('Gone', 5)
    const answers = seen.replies.map(([, [rid, ok, value]]) => [
      rid,
      ok,
      ok === 1 ? decode(value as Uint8Array, 'holder') : value,
    ])
    expect(answers).toEqual([
      [
        1,
        0,
        expect.objectContaining({
          name: 'UnknownEntityError',
          message: "unknown entity type 'Nope' (not in the registry of any node of this hub)",
        }),
      ],
      [2, 1, null],
      [3, 1, null],
      [4, 1, 'orch-1'],
      [5, 0, expect.objectContaining({ name: 'UnknownEntityError' })],
    ])
  })

  it('holds operations of other callers while an orchestration holds the lock, and runs them after the unlock', async () => {
    const { host, seen } = fake()
    const lockKey = itemKey.lock(0, 'Counter', 'a')
    void host.handle({ k: 'lock', t: 'Counter', key: 'a', o: ['orch', 4], rest: [] })
    expect(seen.sent).toEqual([{ k: 'done', i: 'orch', s: 4, ok: 1 }])
    expect(decode(seen.writes.get(lockKey)!, 'lock')).toEqual(['orch', []])
    const blocked = call('add', [1])
    await host.handle(blocked)
    expect(seen.writes.has(itemKey.entity(0, 'Counter', 'a'))).toBe(false)
    expect(decode(seen.writes.get(lockKey)!, 'lock')).toEqual(['orch', [blocked]])
    // the holder's own operations run
    await host.handle({ ...call('add', [2]), r: undefined, ro: ['orch', 5] })
    expect(decode(seen.writes.get(itemKey.entity(0, 'Counter', 'a'))!, 'state')).toBe(2)
    void host.handle({ k: 'unlock', t: 'Counter', key: 'a', o: 'orch' })
    expect(seen.writes.get(lockKey)).toBeNull()
    expect(seen.next).toEqual([blocked])
  })

  it('runs the calls a lock request carries for its entity once locked, and passes the others on', async () => {
    const { host, seen } = fake()
    const onA: EntityOp = { k: 'op', t: 'Counter', key: 'a', op: 'add', a: [2], ro: ['orch', 5] }
    const onB: EntityOp = { k: 'op', t: 'Counter', key: 'b', op: 'add', a: [3], ro: ['orch', 6] }
    const all: Array<[string, string]> = [
      ['Counter', 'a'],
      ['Counter', 'b'],
    ]
    const request = { k: 'lock', t: 'Counter', key: 'a', o: ['orch', 4], rest: [['Counter', 'b']], all }
    void host.handle({ ...request, ops: [onA, onB] } as LockMessage)
    // the request goes on only once the call completed: it is attached to the call
    const onward = { k: 'lock', t: 'Counter', key: 'b', o: ['orch', 4], rest: [], all, ops: [onB] }
    expect(seen.next).toEqual([{ ...onA, fw: onward }])
    expect(seen.sent).toEqual([])
    await host.handle(seen.next[0] as EntityOp)
    // …with the call's outcome, instead of a done of its own
    expect(seen.sent).toEqual([{ ...onward, res: [{ k: 'done', i: 'orch', s: 5, ok: 1 }] }])
    // held by another orchestration: the request and its calls wait for the unlock
    const other = fake()
    void other.host.handle({ k: 'lock', t: 'Counter', key: 'a', o: ['first', 1], rest: [] })
    void other.host.handle({ ...request, ops: [onA, onB] } as LockMessage)
    expect(other.seen.next).toEqual([])
    void other.host.handle({ k: 'unlock', t: 'Counter', key: 'a', o: 'first' })
    const [queued] = other.seen.next as LockMessage[]
    expect(queued?.ops).toEqual([onA, onB])
  })

  it('sends the grant with every outcome that rode along, after the last entity’s call', async () => {
    const { host, seen } = fake()
    const earlier = { k: 'done', i: 'orch', s: 5, ok: 1, v: 2 } as const
    const onB: EntityOp = { k: 'op', t: 'Counter', key: 'b', op: 'slowAdd', a: [3], ro: ['orch', 6] }
    const all: Array<[string, string]> = [
      ['Counter', 'a'],
      ['Counter', 'b'],
    ]
    void host.handle({
      k: 'lock',
      t: 'Counter',
      key: 'b',
      o: ['orch', 4],
      rest: [],
      all,
      ops: [onB],
      res: [earlier],
    })
    expect(seen.sent).toEqual([])
    // an asynchronous operation: the grant leaves when it resolved, in the round it completes in
    await host.handle(seen.next[0] as EntityOp)
    expect(seen.sent).toEqual([
      {
        k: 'done',
        i: 'orch',
        s: 4,
        ok: 1,
        lk: all,
        res: [earlier, { k: 'done', i: 'orch', s: 6, ok: 1, v: 3 }],
      },
    ])
  })

  it('carries a failed call’s outcome on with the request, its changes discarded', async () => {
    const { host, seen } = fake()
    const op: EntityOp = { k: 'op', t: 'Counter', key: 'a', op: 'failAfterAdding', a: [3], ro: ['orch', 5] }
    const refused: EntityOp = { k: 'op', t: 'Counter', key: 'b', op: 'nope', a: [], ro: ['orch', 6] }
    void host.handle({
      k: 'lock',
      t: 'Counter',
      key: 'a',
      o: ['orch', 4],
      rest: [['Counter', 'b']],
      ops: [op, refused],
    })
    await host.handle(seen.next[0] as EntityOp)
    expect(seen.writes.has(itemKey.entity(0, 'Counter', 'a'))).toBe(false)
    const [forward] = seen.sent as LockMessage[]
    expect(forward).toMatchObject({ k: 'lock', key: 'b', ops: [refused] })
    expect(forward!.res).toMatchObject([{ k: 'done', i: 'orch', s: 5, ok: 0, err: { name: 'RangeError' } }])
    // an operation that cannot run at all (unknown operation) carries its refusal the same way
    seen.sent.length = 0
    void host.handle(forward!)
    await host.handle(seen.next[1] as EntityOp)
    const [grant] = seen.sent
    expect(grant).toMatchObject({ k: 'done', i: 'orch', s: 4, ok: 1 })
    expect((grant as { res: unknown[] }).res).toMatchObject([
      { s: 5, ok: 0 },
      { s: 6, ok: 0, err: { name: 'UnknownOperationError' } },
    ])
  })

  it('sends an outcome on its own beside the request when carrying it would outgrow a message', async () => {
    const sent: ActorMessage[] = []
    const { host, seen } = fake({
      send: (msg) => {
        if ('res' in msg && msg.res !== undefined) throw new PayloadTooLargeError('a message', 9, 8)
        sent.push(msg)
      },
    })
    const op: EntityOp = { k: 'op', t: 'Counter', key: 'a', op: 'get', a: [], ro: ['orch', 5] }
    void host.handle({
      k: 'lock',
      t: 'Counter',
      key: 'a',
      o: ['orch', 4],
      rest: [['Counter', 'b']],
      ops: [op],
    })
    await host.handle(seen.next[0] as EntityOp)
    expect(sent).toEqual([
      { k: 'done', i: 'orch', s: 5, ok: 1, v: 0 },
      { k: 'lock', t: 'Counter', key: 'b', o: ['orch', 4], rest: [] },
    ])
  })

  it('lets earlier calls to one entity answer on their own if a request ever carried several', () => {
    const { host, seen } = fake()
    const first: EntityOp = { k: 'op', t: 'Counter', key: 'a', op: 'add', a: [1], ro: ['orch', 5] }
    const second: EntityOp = { ...first, a: [2], ro: ['orch', 6] }
    void host.handle({ k: 'lock', t: 'Counter', key: 'a', o: ['orch', 4], rest: [], ops: [first, second] })
    expect(seen.next).toEqual([first, { ...second, fw: { k: 'done', i: 'orch', s: 4, ok: 1 } }])
  })

  it('rebuilds locks from their items at recovery', async () => {
    const { host, seen } = fake()
    const lockKey = itemKey.lock(0, 'Counter', 'a')
    host.replayLock(lockKey, encode(['orch', []]))
    await host.handle(call('add', [1]))
    expect(seen.replies).toEqual([])
    host.replayLock(lockKey, null)
    await host.handle(call('add', [1], 'a', 2))
    expect(seen.replies).toHaveLength(1)
  })

  it('refuses a state the round cannot hold and the blob store refuses, keeping the old state', async () => {
    const { host, seen } = fake({ valueLimit: 8 })
    await host.handle({
      k: 'op',
      t: 'Log',
      key: 'l',
      op: 'append',
      a: ['x'.repeat(50)],
      r: ['_INBOX_basalt.x', 1],
    })
    expect(seen.replies[0]?.[1]).toMatchObject([1, 0, { name: 'PayloadTooLargeError' }])
    expect(seen.writes.size).toBe(0)
  })
})

describe('orchestrations started by entities', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
  const op = (t: string, key: string, name: string, a: unknown[], rid = 1): EntityOp => ({
    k: 'op',
    t,
    key,
    op: name,
    a,
    r: ['_INBOX_basalt.x', rid],
  })
  const result = (reply: RoundReply) => decode(reply[2] as Uint8Array, 'result')
  const stateOf = (seen: ReturnType<typeof fake>['seen'], t: string, key: string) =>
    decode(seen.writes.get(itemKey.entity(0, t, key))!, 'state')

  it('sends a client’s kind of start with the commit, under a new id the operation gets at once', async () => {
    const { host, seen } = fake()
    await host.handle(op('Starter', 's', 'kickOff', [3]))
    await host.handle(op('Starter', 's', 'kickOff', [4], 2))
    const [first, second] = seen.replies.map(([, reply]) => result(reply) as string) as [string, string]
    expect(first).toMatch(UUID)
    expect(second).toMatch(UUID)
    expect(second).not.toBe(first)
    // a fresh id: the instance's partition need not look for a stored instance
    expect(seen.routed).toEqual([
      { k: 'start', i: first, n: 'reportBack', in: { key: 's', n: 3 }, fresh: 1 },
      { k: 'start', i: second, n: 'reportBack', in: { key: 's', n: 4 }, fresh: 1 },
    ])
    // the id is committed with the operation's state: the same after any restart
    expect(stateOf(seen, 'Starter', 's')).toEqual({ started: [first, second], reported: [] } satisfies Starts)
  })

  it('starts under the instance id given, which the instance’s partition may find taken', async () => {
    const { host, seen } = fake()
    await host.handle(op('Starter', 's', 'kickOff', [1, 'mine']))
    expect(result(seen.replies[0]![1])).toBe('mine')
    // not fresh: the partition looks the id up and refuses the start if the instance exists
    expect(seen.routed).toEqual([{ k: 'start', i: 'mine', n: 'reportBack', in: { key: 's', n: 1 } }])
  })

  it('starts nothing when the operation throws', async () => {
    const { host, seen } = fake()
    await host.handle(op('Starter', 's', 'kickOffAndFail', [1, 'never']))
    expect(seen.replies[0]![1]).toMatchObject([1, 0, { name: 'RangeError' }])
    expect(seen.routed).toEqual([])
    expect(seen.writes.size).toBe(0)
    // the next operation sends only its own start
    await host.handle(op('Starter', 's', 'kickOff', [2, 'next'], 2))
    expect(seen.routed).toEqual([{ k: 'start', i: 'next', n: 'reportBack', in: { key: 's', n: 2 } }])
    expect(stateOf(seen, 'Starter', 's')).toEqual({ started: ['next'], reported: [] })
  })

  it('starts from an asynchronous operation, with its commit', async () => {
    const { host, seen } = fake()
    const running = host.handle(op('Starter', 's', 'kickOffLater', [5]))
    expect(seen.routed).toEqual([])
    await running
    const id = result(seen.replies[0]![1])
    expect(seen.routed).toEqual([{ k: 'start', i: id, n: 'reportBack', in: { key: 's', n: 5 }, fresh: 1 }])
  })

  it('refuses what is not a definition and a bad instance id with BadInputError, starting nothing', async () => {
    const { host, seen } = fake()
    const bad: Array<[unknown, unknown, RegExp]> = [
      ['reportBack', undefined, /^startOrchestration needs a definition made by orchestration\(\)$/],
      [{ name: 'reportBack' }, undefined, /needs a definition made by orchestration/],
      [reportBack, '', /^instance id must be a non-empty string \(got string ""\)$/],
      [reportBack, 42, /^instance id must be a non-empty string \(got number 42\)$/],
      [reportBack, 'x'.repeat(1025), /^instance id is longer than 1024 bytes/],
    ]
    for (const [i, [def, id, message]] of bad.entries()) {
      await host.handle(op('Misstarter', 'm', 'startWith', [def, id], i))
      const [, [, ok, error]] = seen.replies[i]!
      expect(ok).toBe(0)
      expect(error).toMatchObject({ name: BadInputError.name, message: expect.stringMatching(message) })
    }
    expect(seen.routed).toEqual([])
    expect(seen.writes.size).toBe(0)
    expect(() => new Starter().startOrchestration(reportBack, { key: 'k', n: 1 })).toThrow(IllegalStateError)
  })

  it('refuses an option key startOrchestration does not take, naming it, starting nothing', async () => {
    const { host, seen } = fake()
    await host.handle(op('Misstarter', 'm', 'startWithOptions', [{ instanceID: 'r1' }]))
    expect(seen.replies[0]![1]).toMatchObject([
      1,
      0,
      {
        name: 'BadInputError',
        message: "startOrchestration('reportBack'): unknown option 'instanceID' (known: instanceId)",
      },
    ])
    expect(seen.routed).toEqual([])
    await host.handle(op('Misstarter', 'm', 'startWithOptions', [{ instanceId: 'r1' }], 1))
    expect(seen.routed).toMatchObject([{ k: 'start', i: 'r1', n: 'reportBack' }])
  })

  it('refuses an input the round cannot hold, naming the operation', async () => {
    const { host, seen } = fake()
    await host.handle(op('Misstarter', 'm', 'startWith', [reportBack, undefined, 'x'.repeat(2000)]))
    expect(seen.replies[0]![1]).toMatchObject([
      1,
      0,
      {
        name: 'PayloadTooLargeError',
        message: expect.stringContaining('an orchestration start sent by Misstarter@m.startWith'),
      },
    ])
    expect(seen.routed).toEqual([])
  })

  it('lets an operation that timed out start nothing afterwards', async () => {
    const { host, seen } = fake()
    let go!: () => void
    gates.set('late', new Promise<void>((resolve) => (go = resolve)))
    const late = host.handle(op('Misstarter', 'm', 'startAfter', ['late']))
    await late
    expect(seen.replies[0]![1]).toMatchObject([1, 0, { name: 'TimeoutError' }])
    go()
    // the abandoned operation wakes up and tries to start: it fails, and nothing leaves
    await waitFor(() => lateErrors.length > 0, 'the late start')
    expect(lateErrors[0]).toBeInstanceOf(IllegalStateError)
    expect(seen.routed).toEqual([])
  })

  it('checks what the context is asked to start, and refuses it once retired', () => {
    const ctx = new OpContext({ encodeBounded: () => new Uint8Array(1) })
    ctx.reset(op('Starter', 's', 'kickOff', [1]), undefined)
    expect(() => ctx.start('', null)).toThrow(/^orchestration name must be a non-empty string/)
    expect(() => ctx.start('reportBack', null, '')).toThrow(/^instance id must be a non-empty string/)
    expect(ctx.start('reportBack', null, 'ok')).toBe('ok')
    ctx.retire()
    expect(() => ctx.start('reportBack', null)).toThrow('Starter@s.kickOff timed out: it can send nothing')
    expect(ctx.sends).toEqual([])
  })
})
