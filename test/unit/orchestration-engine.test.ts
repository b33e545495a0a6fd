/**
 * Unit tests of the orchestration replay engine (actors/orchestration), driven by a tiny in-memory
 * runtime: it keeps the history, carries out commands (activities, timers, children, entity calls,
 * locks) and feeds their completions back as new events. Every scenario runs in three modes —
 * cached cursor, alwaysReplay, and a fresh executor per step over a msgpack round-tripped history
 * (eviction/restart) — and the modes must produce identical histories and commands.
 */
import { pack, unpack } from 'msgpackr'
import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  ErrorCode,
  NonDeterminismError,
  TaskFailedError,
  fromErrorInfo,
  toErrorInfo,
  type ErrorInfo,
} from '../../actors/errors.ts'
import {
  OrchestrationExecutor,
  Task,
  activity,
  externalEvent,
  orchestration,
  sha1,
  uuidV5,
  type Command,
  type HistoryEvent,
  type LockHandle,
  type NewEvent,
  type OrchestrationDefinition,
  type StepResult,
} from '../../actors/orchestration/index.ts'
import { Entity } from '../../entities/index.ts'

// -------------------------------------------------------------------------------------------------
// Fixtures

class Counter extends Entity<number> {
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
    return this.state
  }
  get() {
    return this.state
  }
}

class Account extends Entity<number> {
  initialState() {
    return 0
  }
  balance() {
    return this.state
  }
  deposit(n: number) {
    this.state += n
  }
}

const sayHello = activity('sayHello', async (city: string) => `Hello ${city}`)
const flaky = activity('flaky', (n: number) => n * 2)
const echo = activity('echo', (x: unknown) => x)

const MODES = ['cached', 'alwaysReplay', 'evict'] as const
type Mode = (typeof MODES)[number]
const T0 = 1_700_000_000_000

/** What the simulated world does when the engine asks for work. Throw to fail. */
interface World {
  activities?: Record<string, (input: any, attempt: number) => unknown>
  entity?: (entity: [string, string], op: string, args: unknown[]) => unknown
  children?: Record<string, OrchestrationDefinition<any, any>>
}

/** A tiny runtime for one instance. */
class Sim {
  history: HistoryEvent[] = []
  results: StepResult[] = []
  commands: Command[] = []
  histories: HistoryEvent[][] = []
  logs: string[] = []
  clock = T0
  timers = new Map<number, number>()
  sent: Command[] = []
  execution = 1
  children: Sim[] = []
  #done = 0
  executor: OrchestrationExecutor

  constructor(
    public def: OrchestrationDefinition<any, any>,
    readonly mode: Mode,
    readonly id = 'inst-1',
  ) {
    this.executor = this.#make()
  }

  #make(): OrchestrationExecutor {
    return new OrchestrationExecutor(this.def, this.id, {
      alwaysReplay: this.mode === 'alwaysReplay',
      logSink: (line, level) => this.logs.push(`${level}: ${line}`),
    })
  }

  get last(): StepResult {
    const r = this.results.at(-1)
    if (r === undefined) throw new Error(`instance ${this.id} has not run`)
    return r
  }

  /** Swaps the orchestration code, as a deployment would (takes effect on the next replay). */
  redeploy(def: OrchestrationDefinition<any, any>): void {
    this.def = def
    this.executor = this.#make()
  }

  step(events: NewEvent[], at = this.clock): StepResult {
    if (this.mode === 'evict') {
      this.executor = this.#make()
      this.history = unpack(pack(this.history)) as HistoryEvent[]
    }
    const r = this.executor.step(this.history, events, at)
    this.history.push(...r.appended)
    this.results.push(r)
    this.commands.push(...r.commands)
    if (r.status === 'continuedAsNew') {
      this.histories.push(this.history)
      this.history = []
      this.execution++
      if (this.mode !== 'cached') this.executor = this.#make()
      const next = r.continueAsNew!
      return this.step(
        [{ e: 'started', input: next.input, execution: this.execution }, ...next.carriedEvents],
        at,
      )
    }
    return r
  }

  start(input?: unknown): StepResult {
    return this.step([{ e: 'started', input }])
  }

  /** Commands not yet handed to {@link drain}. */
  takeNew(): Command[] {
    const fresh = this.commands.slice(this.#done)
    this.#done = this.commands.length
    return fresh
  }

  /** Runs the world until the instance ends or waits for something only a test can give. */
  drain(world: World = {}, maxSteps = 200): StepResult {
    let last = this.last
    for (let n = 0; n < maxSteps && last.status === 'running'; n++) {
      const events: NewEvent[] = []
      for (const c of this.takeNew()) {
        switch (c.c) {
          case 'activity':
            events.push(outcome(c.seq, () => world.activities![c.name]!(c.input, c.attempt)))
            break
          case 'timer':
            this.timers.set(c.seq, c.fireAt)
            break
          case 'cancelTimer':
            this.timers.delete(c.seq)
            break
          case 'sub': {
            const child = new Sim(world.children![c.name]!, this.mode, c.instanceId)
            this.children.push(child)
            child.clock = this.clock
            child.start(c.input)
            const end = child.drain(world)
            events.push(
              end.status === 'completed'
                ? { e: 'completed', seq: c.seq, result: end.output }
                : { e: 'failed', seq: c.seq, error: end.error! },
            )
            break
          }
          case 'call':
            events.push(outcome(c.seq, () => world.entity!(c.entity, c.op, c.args)))
            break
          case 'lock':
            events.push({ e: 'completed', seq: c.seq })
            this.sent.push(c)
            break
          default:
            this.sent.push(c)
        }
      }
      if (events.length === 0) {
        if (this.timers.size === 0) break
        this.clock = Math.max(this.clock, Math.min(...this.timers.values()))
        for (const [seq, at] of this.timers) {
          if (at > this.clock) continue
          this.timers.delete(seq)
          events.push({ e: 'completed', seq })
        }
      } else this.clock += 10
      last = this.step(events)
    }
    return last
  }
}

function outcome(seq: number, run: () => unknown): NewEvent {
  try {
    return { e: 'completed', seq, result: run() }
  } catch (err) {
    return { e: 'failed', seq, error: { name: 'Error', message: (err as Error).message } }
  }
}

function scheduled(history: HistoryEvent[]) {
  return history.flatMap((ev) => (ev.e === 'scheduled' ? [ev] : []))
}

/** Results without stack traces (they name engine frames, which differ between modes). */
function strip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strip)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (k === 'stack' ? [] : [[k, strip(v)]])))
}

function trace(sims: Sim[]): unknown {
  return strip(
    sims.map((s) => ({
      id: s.id,
      results: s.results,
      histories: [...s.histories, s.history],
      logs: s.logs,
      children: trace(s.children),
    })),
  )
}

// -------------------------------------------------------------------------------------------------
// Scenarios (each runs in every mode; each returns the sims whose traces must match across modes)

const helloSequence = orchestration('helloSequence', function* (ctx, cities: string[]) {
  const out: string[] = []
  for (const city of cities) out.push(yield* ctx.callActivity(sayHello, city))
  return out
})

const fanOut = orchestration('fanOut', function* (ctx, n: number) {
  const tasks = Array.from({ length: n }, (_, i) => ctx.callActivity(flaky, i))
  const results = yield* ctx.all(tasks)
  return results.reduce((a, b) => a + b, 0)
})

const approval = orchestration('approval', function* (ctx, timeoutMs: number) {
  const approved = ctx.waitForEvent<boolean>('approve')
  const timeout = ctx.createTimer(ctx.now() + timeoutMs)
  const winner = yield* ctx.any([approved, timeout])
  if (winner === approved) {
    timeout.cancel()
    return approved.result ? 'approved' : 'rejected'
  }
  return 'timed out'
})

/** Waits with a timeout in a loop: the natural form, which an abandoned wait made lose events. */
const polls = orchestration('polls', function* (ctx) {
  const got: string[] = []
  let timeouts = 0
  while (got.length < 2) {
    try {
      got.push(yield* ctx.waitForEvent<string>('msg', { timeoutMs: 1000 }))
    } catch (err) {
      if (!(err instanceof Error) || err.name !== 'TimeoutError') throw err
      timeouts++
    }
  }
  return { got, timeouts }
})

const go = externalEvent<{ by: string }>('go')
const typedWait = orchestration('typedWait', function* (ctx) {
  const { by } = yield* ctx.waitForEvent(go)
  return `go by ${by}`
})

const retrying = orchestration('retrying', function* (ctx, attempts: number) {
  try {
    return yield* ctx.callActivity(flaky, 21, {
      retry: {
        firstRetryIntervalMs: 1000,
        backoffCoefficient: 2,
        maxRetryIntervalMs: 3000,
        maxAttempts: attempts,
      },
    })
  } catch (err) {
    if (!(err instanceof TaskFailedError)) throw err
    return { code: err.code, failure: err.failure.message, message: err.message }
  }
})

const child = orchestration('child', function* (ctx, n: number) {
  const doubled = yield* ctx.callActivity(flaky, n)
  if (doubled > 10) throw new RangeError(`too big: ${doubled}`)
  return doubled
})

const parent = orchestration('parent', function* (ctx, n: number) {
  const a = yield* ctx.callSubOrchestration(child, n)
  try {
    yield* ctx.callSubOrchestration(child, n * 10, { instanceId: 'fixed-child' })
    return { a, b: 'no failure' }
  } catch (err) {
    return { a, b: (err as TaskFailedError).failure }
  }
})

const eternal = orchestration('eternal', function* (ctx, state: { n: number; seen: string[] }) {
  const item = yield* ctx.waitForEvent<string>('item')
  const seen = [...state.seen, item]
  if (seen.length >= 4) return seen
  return ctx.continueAsNew({ n: state.n + 1, seen })
})

const fifo = orchestration('fifo', function* (ctx) {
  yield* ctx.createTimer(ctx.now() + 1000)
  const a = yield* ctx.waitForEvent<number>('x')
  const b = yield* ctx.waitForEvent<number>('x')
  const c = yield* ctx.waitForEvent<number>('y')
  return [a, b, c]
})

const statusful = orchestration('statusful', function* (ctx) {
  ctx.setCustomStatus({ phase: 'one' })
  yield* ctx.callActivity(echo, 1)
  ctx.setCustomStatus({ phase: 'two' })
  yield* ctx.callActivity(echo, 2)
  return 'done'
})

const replaySafe = orchestration('replaySafe', function* (ctx) {
  const seen: Array<[number, string, boolean]> = []
  for (let i = 0; i < 3; i++) {
    seen.push([ctx.now(), ctx.newGuid(), ctx.isReplaying])
    ctx.log.info('step', i, { now: ctx.now() })
    yield* ctx.callActivity(echo, i)
  }
  return seen.map(([now, guid]) => [now, guid])
})

const locking = orchestration('locking', function* (ctx, t: { from: string; to: string; amount: number }) {
  const src = ctx.entityRef(Account, t.from)
  const dst = ctx.entityRef(Account, t.to)
  const lock = yield* ctx.lock(dst, src, dst)
  const balance = yield* ctx.callEntity(Account, t.from).balance()
  if (balance < t.amount) return false
  yield* ctx.all([
    ctx.callEntity(Account, t.from).deposit(-t.amount),
    ctx.callEntity(Account, t.to).deposit(t.amount),
  ])
  lock.release()
  ctx.signalEntity(Counter, 'transfers').add(1)
  return true
})

const scenarios: Array<[string, (mode: Mode) => Sim[]]> = [
  [
    'sequence of activities',
    (mode) => {
      const sim = new Sim(helloSequence, mode)
      const first = sim.start(['Tokyo', 'Seattle', 'London'])
      expect(first.status).toBe('running')
      expect(first.commands).toEqual([
        { c: 'activity', seq: 0, name: 'sayHello', input: 'Tokyo', attempt: 1 },
      ])
      expect(first.appended.map((e) => e.e)).toEqual(['started', 'step', 'scheduled'])
      const end = sim.drain({ activities: { sayHello: (c: string) => `Hello ${c}` } })
      expect(end).toMatchObject({
        status: 'completed',
        output: ['Hello Tokyo', 'Hello Seattle', 'Hello London'],
      })
      expect(scheduled(sim.history).map((s) => s.seq)).toEqual([0, 1, 2])
      expect(sim.history.at(-1)).toEqual({
        e: 'finished',
        status: 'completed',
        output: ['Hello Tokyo', 'Hello Seattle', 'Hello London'],
      })
      return [sim]
    },
  ],
  [
    'fan-out/fan-in: results by task, completions in any order',
    (mode) => {
      const sim = new Sim(fanOut, mode)
      const first = sim.start(5)
      expect(first.commands.map((c) => (c.c === 'activity' ? c.input : null))).toEqual([0, 1, 2, 3, 4])
      // completions arrive in reverse order, in two steps
      expect(sim.step([4, 3].map((seq) => ({ e: 'completed', seq, result: seq * 2 }) as const)).status).toBe(
        'running',
      )
      const end = sim.step([2, 1, 0].map((seq) => ({ e: 'completed', seq, result: seq * 2 }) as const))
      expect(end).toMatchObject({ status: 'completed', output: 20 })
      return [sim]
    },
  ],
  [
    'fan-in fails with the first failure to arrive',
    (mode) => {
      const sim = new Sim(fanOut, mode)
      sim.start(3)
      const fail = (seq: number, message: string) =>
        ({ e: 'failed', seq, error: { name: 'Error', message } }) as const
      sim.step([{ e: 'completed', seq: 0, result: 0 }])
      const end = sim.step([fail(2, 'second task'), fail(1, 'first task')])
      expect(end.status).toBe('failed')
      expect(end.error).toMatchObject({ name: 'TaskFailedError', code: ErrorCode.TaskFailed })
      expect(end.error!.message).toContain("activity 'flaky' failed (seq 2): second task")
      return [sim]
    },
  ],
  [
    'any: the event beats the timer, and the timer is cancelled',
    (mode) => {
      const sim = new Sim(approval, mode)
      const first = sim.start(60_000)
      expect(first.commands).toEqual([{ c: 'timer', seq: 0, fireAt: T0 + 60_000 }])
      const end = sim.step([{ e: 'event', name: 'approve', data: true }], T0 + 5)
      expect(end).toMatchObject({ status: 'completed', output: 'approved' })
      expect(end.commands).toEqual([{ c: 'cancelTimer', seq: 0 }])
      return [sim]
    },
  ],
  [
    'an externalEvent definition waits for the event of its name',
    (mode) => {
      const sim = new Sim(typedWait, mode)
      expect(sim.start().status).toBe('running')
      const end = sim.step([{ e: 'event', name: 'go', data: { by: 'ana' } }], T0 + 5)
      expect(end).toMatchObject({ status: 'completed', output: 'go by ana' })
      return [sim]
    },
  ],
  [
    'a wait with a timeout gives up, and an event after it goes to the next wait',
    (mode) => {
      // (with ctx.any([wait, timer]) in this loop the first, abandoned wait took the event)
      const sim = new Sim(polls, mode)
      expect(sim.start().commands).toEqual([{ c: 'timer', seq: 0, fireAt: T0 + 1000 }])
      const timedOut = sim.step([{ e: 'timerFired', seq: 0 }], T0 + 1000)
      expect(timedOut.commands).toEqual([{ c: 'timer', seq: 1, fireAt: T0 + 2000 }])
      // an event cancels the timer of the wait it ends; the next wait has a timer of its own
      const first = sim.step([{ e: 'event', name: 'msg', data: 'a' }], T0 + 1500)
      expect(first.commands).toEqual([
        { c: 'cancelTimer', seq: 1 },
        { c: 'timer', seq: 3, fireAt: T0 + 2500 },
      ])
      // a late fire of the cancelled timer is ignored; two events: the second is kept for no wait
      expect(sim.step([{ e: 'timerFired', seq: 1 }], T0 + 2000).appended).toEqual([])
      const end = sim.step(
        [
          { e: 'event', name: 'msg', data: 'b' },
          { e: 'event', name: 'msg', data: 'c' },
        ],
        T0 + 2100,
      )
      expect(end).toMatchObject({ status: 'completed', output: { got: ['a', 'b'], timeouts: 1 } })
      expect(end.commands).toEqual([{ c: 'cancelTimer', seq: 3 }])
      return [sim]
    },
  ],
  [
    'a wait with a timeout takes an event that arrived before it, with no timer',
    (mode) => {
      const sim = new Sim(polls, mode)
      sim.start()
      const end = sim.step(
        [
          { e: 'event', name: 'msg', data: 'a' },
          { e: 'event', name: 'msg', data: 'b' },
        ],
        T0 + 10,
      )
      expect(end).toMatchObject({ status: 'completed', output: { got: ['a', 'b'], timeouts: 0 } })
      // the first event ended the first wait (its timer cancelled); the second was there already
      expect(end.commands).toEqual([{ c: 'cancelTimer', seq: 0 }])
      return [sim]
    },
  ],
  [
    'any: the timer beats the event',
    (mode) => {
      const sim = new Sim(approval, mode)
      sim.start(60_000)
      const end = sim.step([{ e: 'timerFired', seq: 0 }], T0 + 60_000)
      expect(end).toMatchObject({ status: 'completed', output: 'timed out' })
      expect(end.commands).toEqual([])
      return [sim]
    },
  ],
  [
    'retries: durable timers with backoff between attempts, then success',
    (mode) => {
      const sim = new Sim(retrying, mode)
      sim.start(5)
      const end = sim.drain({
        activities: {
          flaky: (n: number, attempt: number) => {
            if (attempt < 4) throw new Error(`attempt ${attempt} failed`)
            return n * 2
          },
        },
      })
      expect(end).toMatchObject({ status: 'completed', output: 42 })
      const kinds = sim.commands.map((c) =>
        c.c === 'activity' ? `a${c.attempt}` : c.c === 'timer' ? 't' : c.c,
      )
      expect(kinds).toEqual(['a1', 't', 'a2', 't', 'a3', 't', 'a4'])
      // waits: 1000, 2000, then 4000 capped at 3000, each from the time of the failure
      const timers = sim.commands.flatMap((c) => (c.c === 'timer' ? [c] : []))
      const failedAt = sim.history.flatMap((e, i) => (e.e === 'failed' ? [stepTimeAt(sim.history, i)] : []))
      expect(timers.map((t, i) => t.fireAt - failedAt[i]!)).toEqual([1000, 2000, 3000])
      return [sim]
    },
  ],
  [
    'retries exhausted: TaskFailedError with the last failure',
    (mode) => {
      const sim = new Sim(retrying, mode)
      sim.start(3)
      const end = sim.drain({
        activities: {
          flaky: (_: number, attempt: number) => {
            throw new Error(`attempt ${attempt} failed`)
          },
        },
      })
      expect(end.status).toBe('completed')
      expect(end.output).toEqual({
        code: 'TASK_FAILED',
        failure: 'attempt 3 failed',
        message: "activity 'flaky' (after 3 attempts) failed (seq 4): attempt 3 failed",
      })
      expect(sim.commands.filter((c) => c.c === 'activity')).toHaveLength(3)
      return [sim]
    },
  ],
  [
    'sub-orchestrations: results and failures',
    (mode) => {
      const sim = new Sim(parent, mode, 'p1')
      sim.start(3)
      const end = sim.drain({ activities: { flaky: (n: number) => n * 2 }, children: { child } })
      expect(end.status).toBe('completed')
      expect(end.output).toMatchObject({ a: 6, b: { name: 'RangeError', message: 'too big: 60' } })
      const subs = sim.commands.flatMap((c) => (c.c === 'sub' ? [c] : []))
      expect(subs.map((c) => [c.seq, c.name, c.instanceId, c.input])).toEqual([
        [0, 'child', 'p1:0', 3],
        [1, 'child', 'fixed-child', 30],
      ])
      return [sim]
    },
  ],
  [
    'continueAsNew carries unconsumed events into the next execution',
    (mode) => {
      const sim = new Sim(eternal, mode, 'e1')
      sim.start({ n: 0, seen: [] })
      // three events in one step: the first is consumed, the other two are carried over
      const r = sim.step([
        { e: 'event', name: 'item', data: 'a' },
        { e: 'event', name: 'item', data: 'b' },
        { e: 'event', name: 'other', data: 1 },
        { e: 'event', name: 'item', data: 'c' },
      ])
      expect(sim.results.find((x) => x.status === 'continuedAsNew')?.continueAsNew).toEqual({
        input: { n: 1, seen: ['a'] },
        carriedEvents: [
          { e: 'event', name: 'item', data: 'b' },
          { e: 'event', name: 'other', data: 1 },
          { e: 'event', name: 'item', data: 'c' },
        ],
      })
      expect(r.status).toBe('running')
      expect(sim.histories).toHaveLength(3)
      expect(sim.history[0]).toMatchObject({
        e: 'started',
        input: { n: 3, seen: ['a', 'b', 'c'] },
        execution: 4,
      })
      const end = sim.step([{ e: 'event', name: 'item', data: 'd' }])
      expect(end).toMatchObject({ status: 'completed', output: ['a', 'b', 'c', 'd'] })
      return [sim]
    },
  ],
  [
    'events that arrive early are buffered and consumed FIFO per name',
    (mode) => {
      const sim = new Sim(fifo, mode)
      sim.step([{ e: 'started' }, { e: 'event', name: 'y', data: 3 }])
      sim.step([{ e: 'event', name: 'x', data: 1 }])
      sim.step([{ e: 'event', name: 'x', data: 2 }])
      const end = sim.step([{ e: 'timerFired', seq: 0 }])
      expect(end).toMatchObject({ status: 'completed', output: [1, 2, 3] })
      return [sim]
    },
  ],
  [
    'custom status is reported and recorded per step',
    (mode) => {
      const sim = new Sim(statusful, mode)
      expect(sim.start().customStatus).toEqual({ phase: 'one' })
      expect(sim.step([{ e: 'completed', seq: 0, result: 1 }]).customStatus).toEqual({ phase: 'two' })
      const end = sim.step([{ e: 'completed', seq: 1, result: 2 }])
      expect(end).toMatchObject({ status: 'completed', customStatus: { phase: 'two' } })
      expect(sim.history.filter((e) => e.e === 'customStatus')).toEqual([
        { e: 'customStatus', value: { phase: 'one' } },
        { e: 'customStatus', value: { phase: 'two' } },
      ])
      return [sim]
    },
  ],
  [
    'now(), newGuid() and the logger are replay-safe',
    (mode) => {
      const sim = new Sim(replaySafe, mode, 'guid-1')
      sim.start()
      sim.step([{ e: 'completed', seq: 0 }], T0 + 100)
      const end = sim.step([{ e: 'completed', seq: 1 }], T0 + 200)
      expect(end.status).toBe('running')
      const done = sim.step([{ e: 'completed', seq: 2 }], T0 + 300)
      const out = done.output as Array<[number, string]>
      expect(out.map(([now]) => now)).toEqual([T0, T0 + 100, T0 + 200])
      for (const [, guid] of out)
        expect(guid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(new Set(out.map(([, g]) => g)).size).toBe(3)
      expect(out[0]![1]).toBe(uuidV5('guid-1_1_0'))
      expect(sim.logs).toEqual([
        `info: step 0 {"now":${T0}}`,
        `info: step 1 {"now":${T0 + 100}}`,
        `info: step 2 {"now":${T0 + 200}}`,
      ])
      return [sim]
    },
  ],
  [
    'critical section: sorted lock, calls to locked entities, release, then a signal',
    (mode) => {
      const sim = new Sim(locking, mode)
      const first = sim.start({ from: 'b', to: 'a', amount: 5 })
      expect(first.commands).toEqual([
        {
          c: 'lock',
          seq: 0,
          entities: [
            ['Account', 'a'],
            ['Account', 'b'],
          ],
        },
      ])
      const balances: Record<string, number> = { a: 0, b: 10 }
      const end = sim.drain({
        entity: ([, key], op, args) => {
          if (op === 'balance') return balances[key]
          balances[key]! += args[0] as number
          return undefined
        },
      })
      expect(end).toMatchObject({ status: 'completed', output: true })
      expect(balances).toEqual({ a: 5, b: 5 })
      expect(sim.commands.map((c) => c.c)).toEqual(['lock', 'call', 'call', 'call', 'unlock', 'signal'])
      expect(sim.commands[5]).toEqual({ c: 'signal', entity: ['Counter', 'transfers'], op: 'add', args: [1] })
      return [sim]
    },
  ],
  [
    'an early return inside a critical section releases the locks',
    (mode) => {
      const sim = new Sim(locking, mode)
      sim.start({ from: 'b', to: 'a', amount: 50 })
      const end = sim.drain({ entity: () => 10 })
      expect(end).toMatchObject({ status: 'completed', output: false })
      expect(end.commands).toEqual([
        {
          c: 'unlock',
          entities: [
            ['Account', 'a'],
            ['Account', 'b'],
          ],
        },
      ])
      return [sim]
    },
  ],
]

function stepTimeAt(history: HistoryEvent[], index: number): number {
  for (let i = index; i >= 0; i--) {
    const ev = history[i]!
    if (ev.e === 'step') return ev.t
  }
  throw new Error(`no step before event ${index}`)
}

describe.each(MODES)('orchestration engine, %s mode', (mode) => {
  it.each(scenarios)('%s', (_name, run) => {
    run(mode)
  })
})

/** Runs `fn`, noting what it throws in `errors` as `Name: message` (orchestration code that tries bad calls). */
function attemptInto(errors: string[]): (fn: () => unknown) => void {
  return (fn) => {
    try {
      fn()
    } catch (err) {
      errors.push(`${(err as Error).name}: ${(err as Error).message}`)
    }
  }
}

describe('cached cursor, alwaysReplay and restarts agree', () => {
  it.each(scenarios)('%s: same histories, commands and logs in every mode', (_name, run) => {
    const reference = trace(run('cached'))
    expect(trace(run('alwaysReplay'))).toEqual(reference)
    expect(trace(run('evict'))).toEqual(reference)
  })
})

// -------------------------------------------------------------------------------------------------
// Non-determinism and versioning

const charge = activity('charge', (x: string) => x)
const receipt = activity('receipt', (x: string) => x)
const ship = activity('ship', (x: string) => x)

const shopV1 = orchestration('shop', function* (ctx) {
  const a = yield* ctx.callActivity(charge, 'charge')
  const b = yield* ctx.callActivity(ship, 'ship')
  return [a, b]
})

describe.each(MODES)('non-determinism detection, %s mode', (mode) => {
  const cases: Array<[string, OrchestrationDefinition<any, any>, string[]]> = [
    [
      'a different activity at the same seq',
      orchestration('shop', function* (ctx) {
        yield* ctx.callActivity(sayHello, 'charge')
      }),
      ['at seq 0', "the history has activity 'charge'", "the code issued activity 'sayHello'"],
    ],
    [
      'a different kind of command at the same seq',
      orchestration('shop', function* (ctx) {
        yield* ctx.createTimer(ctx.now() + 1)
      }),
      ['at seq 0', "the history has activity 'charge'", 'the code issued timer'],
    ],
    [
      'a command the history lacks',
      orchestration('shop', function* (ctx) {
        const a = ctx.callActivity(charge, 'charge')
        ctx.signalEntity(Counter, 'audit').add(1)
        yield* a
      }),
      ['at seq 1', 'the code issued signal of Counter@audit.add, which the history does not have in step 1'],
    ],
    [
      'a command the code no longer issues',
      orchestration('shop', function* (ctx) {
        yield* ctx.waitForEvent('go')
      }),
      ['at seq 0', "the history has activity 'charge', but the code did not issue it"],
    ],
    [
      'code that ends where the history goes on',
      orchestration('shop', function* () {
        return 'nothing to do'
      }),
      ['at seq 0', 'the code returned while replaying a step after which the history goes on'],
    ],
    [
      'code that fails where the history goes on',
      orchestration('shop', function* (ctx) {
        yield* ctx.callActivity(charge, 'charge')
        throw new Error('new bug')
      }),
      ['at seq 1', 'the code threw (new bug) while replaying a step after which the history goes on'],
    ],
  ]

  it.each(cases)('%s', (_name, v2, expected) => {
    const sim = new Sim(shopV1, mode, 'shop-1')
    sim.start()
    sim.step([{ e: 'completed', seq: 0, result: 'charged' }])
    sim.redeploy(v2)
    const r = sim.step([{ e: 'completed', seq: 1, result: 'shipped' }])
    expect(r.status).toBe('failed')
    expect(r.commands).toEqual([])
    expect(r.error).toMatchObject({ name: 'NonDeterminismError', code: ErrorCode.NonDeterminism })
    expect(r.error!.message).toContain("orchestration 'shop' (instance 'shop-1') is not deterministic")
    for (const part of expected) expect(r.error!.message).toContain(part)
    expect(fromErrorInfo(r.error!)).toBeInstanceOf(NonDeterminismError)
    expect(sim.history.at(-1)).toMatchObject({ e: 'finished', status: 'failed' })
    // a failed instance stays failed: stepping again appends nothing
    expect(sim.step([{ e: 'event', name: 'late' }])).toMatchObject({ status: 'failed', appended: [] })
  })

  it('the same code replays its own history without complaint', () => {
    const sim = new Sim(shopV1, mode)
    sim.start()
    sim.step([{ e: 'completed', seq: 0, result: 'charged' }])
    sim.redeploy(shopV1)
    expect(sim.step([{ e: 'completed', seq: 1, result: 'shipped' }])).toMatchObject({
      status: 'completed',
      output: ['charged', 'shipped'],
    })
  })
})

const shopV2 = orchestration('shop', function* (ctx) {
  const a = yield* ctx.callActivity(charge, 'charge')
  const r = ctx.patched('receipt') ? yield* ctx.callActivity(receipt, 'receipt') : 'no receipt'
  const b = yield* ctx.callActivity(ship, 'ship')
  return [a, r, b]
})

const shopV3 = orchestration('shop', function* (ctx) {
  const a = yield* ctx.callActivity(charge, 'charge')
  const r = yield* ctx.callActivity(receipt, 'receipt') // patch removed once old instances are gone
  const b = yield* ctx.callActivity(ship, 'ship')
  return [a, r, b]
})

describe.each(MODES)('versioning with patched(), %s mode', (mode) => {
  const echoAll = {
    activities: { charge: (x: string) => x, receipt: (x: string) => x, ship: (x: string) => x },
  }

  it('a new instance takes the new path and records the marker', () => {
    const sim = new Sim(shopV2, mode)
    sim.start()
    expect(sim.drain(echoAll)).toMatchObject({ status: 'completed', output: ['charge', 'receipt', 'ship'] })
    expect(sim.history.filter((e) => e.e === 'patch')).toEqual([{ e: 'patch', id: 'receipt' }])
  })

  it('an old history that passed the patch point keeps the old path', () => {
    const sim = new Sim(shopV1, mode)
    sim.start()
    sim.step([{ e: 'completed', seq: 0, result: 'charge' }]) // v1 scheduled 'ship' here
    sim.redeploy(shopV2)
    const end = sim.step([{ e: 'completed', seq: 1, result: 'ship' }])
    expect(end).toMatchObject({ status: 'completed', output: ['charge', 'no receipt', 'ship'] })
  })

  it('an old instance that reaches the patch point live takes the new path', () => {
    const sim = new Sim(shopV1, mode)
    sim.start()
    sim.redeploy(shopV2)
    const r = sim.step([{ e: 'completed', seq: 0, result: 'charge' }])
    expect(r.appended.filter((e) => e.e === 'patch' || e.e === 'scheduled')).toEqual([
      { e: 'patch', id: 'receipt' },
      { e: 'scheduled', seq: 1, kind: 'activity', name: 'receipt', attempt: 1 },
    ])
    expect(sim.drain(echoAll)).toMatchObject({ status: 'completed', output: ['charge', 'receipt', 'ship'] })
  })

  it('a history with the marker replays under code whose patch call was removed', () => {
    const sim = new Sim(shopV2, mode)
    sim.start()
    sim.step([{ e: 'completed', seq: 0, result: 'charge' }])
    sim.redeploy(shopV3)
    expect(sim.drain(echoAll)).toMatchObject({ status: 'completed', output: ['charge', 'receipt', 'ship'] })
  })

  it('a history with the marker fails under code that lost the new path', () => {
    const sim = new Sim(shopV2, mode)
    sim.start()
    sim.step([{ e: 'completed', seq: 0, result: 'charge' }])
    sim.redeploy(shopV1)
    const r = sim.step([{ e: 'completed', seq: 1, result: 'receipt' }])
    expect(r.status).toBe('failed')
    expect(r.error!.code).toBe(ErrorCode.NonDeterminism)
  })
})

// -------------------------------------------------------------------------------------------------
// Critical sections

type LockCase =
  'call unlocked' | 'signal locked' | 'nested lock' | 'sub inside' | 'parallel calls' | 'throw inside'

const lockRules = orchestration('lockRules', function* (ctx, which: LockCase) {
  const a = ctx.entityRef(Account, 'a')
  const b = ctx.entityRef(Account, 'b')
  const pending = ctx.lock(b, a)
  try {
    yield* pending
    if (which === 'call unlocked') yield* ctx.callEntity(Account, 'c').balance()
    if (which === 'signal locked') ctx.signalEntity(Account, 'a').deposit(1)
    if (which === 'nested lock') yield* ctx.lock(ctx.entityRef(Counter, 'x'))
    if (which === 'sub inside') yield* ctx.callSubOrchestration(child, 1)
    if (which === 'parallel calls') {
      ctx.callEntity(Account, 'a').balance()
      ctx.callEntity(Account, 'a').balance()
    }
    if (which === 'throw inside') throw new Error('oops inside the section')
    return 'no error'
  } catch (err) {
    if (which === 'throw inside') throw err
    return (err as Error).message
  }
})

describe.each(MODES)('critical section rules, %s mode', (mode) => {
  const run = (which: LockCase) => {
    const sim = new Sim(lockRules, mode)
    sim.start(which)
    return { sim, end: sim.drain({ entity: () => 1 }) }
  }

  it.each<[LockCase, string]>([
    [
      'call unlocked',
      'may call only the entities it locked ([Account@a, Account@b]); called Account@c.balance',
    ],
    ['signal locked', 'cannot signal Account@a, which it locked'],
    ['nested lock', 'critical sections cannot nest'],
    ['sub inside', "a critical section cannot call sub-orchestrations (called 'child')"],
    ['parallel calls', 'cannot call Account@a again before its previous call completed'],
  ])('%s is refused', (which, message) => {
    const { sim, end } = run(which)
    expect(end.status).toBe('completed')
    expect(end.output).toContain(message)
    expect(sim.commands.filter((c) => c.c === 'lock')).toHaveLength(1)
    // the section is released when the instance ends
    expect(end.commands.at(-1)).toEqual({
      c: 'unlock',
      entities: [
        ['Account', 'a'],
        ['Account', 'b'],
      ],
    })
  })

  it('a failure inside the section releases the locks', () => {
    const { end } = run('throw inside')
    expect(end).toMatchObject({ status: 'failed', error: { message: 'oops inside the section' } })
    expect(end.commands).toEqual([
      {
        c: 'unlock',
        entities: [
          ['Account', 'a'],
          ['Account', 'b'],
        ],
      },
    ])
  })

  it('a call made after the code waited, with the lock still pending, is refused', () => {
    const sim = new Sim(
      orchestration('lateCall', function* (ctx) {
        ctx.lock(ctx.entityRef(Account, 'a'))
        yield* ctx.createTimer(ctx.now())
        try {
          ctx.callEntity(Account, 'a').balance()
          return 'called'
        } catch (err) {
          return (err as Error).message
        }
      }),
      mode,
    )
    sim.start()
    const r = sim.step([{ e: 'timerFired', seq: 1 }])
    expect(r.output).toContain('await the lock before calling Account@a.balance')
    expect(r.commands.filter((c) => c.c === 'call')).toEqual([])
  })

  it('calls made right after ctx.lock travel with the lock request; later ones do not', () => {
    const sim = new Sim(
      orchestration('carriedCall', function* (ctx) {
        const locking = ctx.lock(ctx.entityRef(Account, 'b'), ctx.entityRef(Account, 'a'))
        const first = ctx.callEntity(Account, 'a').balance()
        const lock = yield* locking
        try {
          const balance = (yield* first) as number
          yield* ctx.callEntity(Account, 'b').deposit(balance)
          return balance
        } finally {
          lock.release()
        }
      }),
      mode,
    )
    const a: [string, string] = ['Account', 'a']
    const b: [string, string] = ['Account', 'b']
    expect(sim.start().commands).toEqual([
      { c: 'lock', seq: 0, entities: [a, b] },
      { c: 'call', seq: 1, entity: a, op: 'balance', args: [], lock: 0 },
    ])
    // the call's result can come back before the grant (entity a is locked first)
    const early = sim.step([{ e: 'completed', seq: 1, result: 5 }])
    expect(early).toMatchObject({ status: 'running', commands: [] })
    expect(sim.step([{ e: 'completed', seq: 0 }]).commands).toEqual([
      { c: 'call', seq: 2, entity: b, op: 'deposit', args: [5] },
    ])
    const end = sim.step([{ e: 'completed', seq: 2 }])
    expect(end).toMatchObject({ status: 'completed', output: 5 })
    expect(end.commands).toEqual([{ c: 'unlock', entities: [a, b] }])
  })

  it('takes the grant and the outcomes of the calls that rode with it in one step', () => {
    // (the runtime delivers a grant with the outcomes of the calls carried in its request, grant first)
    const a: [string, string] = ['Account', 'a']
    const b: [string, string] = ['Account', 'b']
    const sim = new Sim(
      orchestration('riding', function* (ctx) {
        const locking = ctx.lock(ctx.entityRef(Account, 'a'), ctx.entityRef(Account, 'b'))
        const both = ctx.all([ctx.callEntity(Account, 'a').balance(), ctx.callEntity(Account, 'b').balance()])
        const lock = yield* locking
        try {
          const [x, y] = (yield* both) as [number, number]
          yield* ctx.callEntity(Account, 'b').deposit(x + y)
          return x + y
        } finally {
          lock.release()
        }
      }),
      mode,
    )
    expect(sim.start().commands.map((c) => c.c)).toEqual(['lock', 'call', 'call'])
    const granted = sim.step([
      { e: 'completed', seq: 0 },
      { e: 'completed', seq: 1, result: 2 },
      { e: 'completed', seq: 2, result: 3 },
    ])
    expect(granted.commands).toEqual([{ c: 'call', seq: 3, entity: b, op: 'deposit', args: [5] }])
    const end = sim.step([{ e: 'completed', seq: 3 }])
    expect(end).toMatchObject({ status: 'completed', output: 5 })
    expect(end.commands).toEqual([{ c: 'unlock', entities: [a, b] }])
    expect(sim.history.filter((e) => e.e === 'step')).toHaveLength(3)
  })

  it('a section history written before calls travelled with the lock replays under its code', () => {
    const a: [string, string] = ['Account', 'a']
    const b: [string, string] = ['Account', 'b']
    // as the previous version wrote it: the first call scheduled only after the grant
    const history = [
      { e: 'started', t: T0, name: 'section', input: null },
      { e: 'step', t: T0 },
      { e: 'scheduled', seq: 0, kind: 'lock', entities: [a, b] },
      { e: 'step', t: T0 },
      { e: 'completed', seq: 0 },
      { e: 'scheduled', seq: 1, kind: 'call', entity: a, op: 'balance' },
      { e: 'step', t: T0 },
      { e: 'completed', seq: 1, result: 5 },
      { e: 'scheduled', seq: 2, kind: 'call', entity: b, op: 'deposit' },
    ] as HistoryEvent[]
    const callAfterGrant = orchestration('section', function* (ctx) {
      const lock = yield* ctx.lock(ctx.entityRef(Account, 'a'), ctx.entityRef(Account, 'b'))
      try {
        const balance = (yield* ctx.callEntity(Account, 'a').balance()) as number
        yield* ctx.callEntity(Account, 'b').deposit(balance)
        return balance
      } finally {
        lock.release()
      }
    })
    const callWithRequest = orchestration('section', function* (ctx) {
      const locking = ctx.lock(ctx.entityRef(Account, 'a'), ctx.entityRef(Account, 'b'))
      const first = ctx.callEntity(Account, 'a').balance()
      const lock = yield* locking
      try {
        const balance = (yield* first) as number
        yield* ctx.callEntity(Account, 'b').deposit(balance)
        return balance
      } finally {
        lock.release()
      }
    })
    const replay = (def: OrchestrationDefinition<any, any>) =>
      new OrchestrationExecutor(def, 'inst-old', { alwaysReplay: mode === 'alwaysReplay' }).step(
        structuredClone(history),
        [{ e: 'completed', seq: 2 }],
        T0 + 10,
      )
    expect(replay(callAfterGrant)).toMatchObject({
      status: 'completed',
      output: 5,
      commands: [{ c: 'unlock', entities: [a, b] }],
    })
    // moving the call before the wait is a change of the code like any other (ctx.patched)
    const moved = replay(callWithRequest)
    expect(moved.status).toBe('failed')
    expect(moved.error!.code).toBe(ErrorCode.NonDeterminism)
  })

  it('release() before the lock is acquired is refused', () => {
    const sim = new Sim(
      orchestration('earlyRelease', function* (ctx) {
        const pending = ctx.lock(ctx.entityRef(Counter, 'x'))
        yield* ctx.createTimer(ctx.now())
        try {
          ;(pending.result as LockHandle | undefined)?.release()
          return pending.isCompleted ? 'acquired' : 'pending'
        } catch (err) {
          return (err as Error).message
        }
      }),
      mode,
    )
    sim.start()
    expect(sim.step([{ e: 'timerFired', seq: 1 }]).output).toBe('pending')
  })

  it('a failed lock fails its task and releases what it may hold', () => {
    const sim = new Sim(
      orchestration('lockFails', function* (ctx) {
        try {
          yield* ctx.lock(ctx.entityRef(Counter, 'y'), ctx.entityRef(Counter, 'x'))
          return 'locked'
        } catch (err) {
          return [(err as TaskFailedError).code, (err as TaskFailedError).failure.message]
        }
      }),
      mode,
    )
    sim.start()
    const r = sim.step([{ e: 'failed', seq: 0, error: { name: 'Error', message: 'no such entity' } }])
    expect(r).toMatchObject({ status: 'completed', output: ['TASK_FAILED', 'no such entity'] })
    expect(r.commands).toEqual([
      {
        c: 'unlock',
        entities: [
          ['Counter', 'x'],
          ['Counter', 'y'],
        ],
      },
    ])
  })
})

// -------------------------------------------------------------------------------------------------
// Timers, idempotence, retries in detail, misc

describe.each(MODES)('timers and idempotence, %s mode', (mode) => {
  const raceTwo = orchestration('raceTwo', function* (ctx) {
    const short = ctx.createTimer(new Date(ctx.now() + 10))
    const long = ctx.createTimer(ctx.now() + 1000)
    yield* ctx.any([short, long])
    long.cancel()
    long.cancel() // a second cancel does nothing
    short.cancel() // it fired: nothing to cancel
    const ev = yield* ctx.waitForEvent<string>('go')
    return [ev, long.isCancelled, long.isCompleted, short.isCancelled]
  })

  it('a cancelled timer emits one cancel command and never completes; late fires leave no trace', () => {
    const sim = new Sim(raceTwo, mode)
    expect(sim.start().commands).toEqual([
      { c: 'timer', seq: 0, fireAt: T0 + 10 },
      { c: 'timer', seq: 1, fireAt: T0 + 1000 },
    ])
    expect(sim.step([{ e: 'timerFired', seq: 0 }]).commands).toEqual([{ c: 'cancelTimer', seq: 1 }])
    const length = sim.history.length
    expect(sim.step([{ e: 'timerFired', seq: 1 }])).toEqual({ appended: [], commands: [], status: 'running' })
    expect(sim.step([{ e: 'completed', seq: 0 }])).toEqual({ appended: [], commands: [], status: 'running' })
    expect(sim.step([{ e: 'completed', seq: 99, result: 'stray' }]).appended).toEqual([])
    expect(sim.history).toHaveLength(length)
    expect(sim.step([{ e: 'event', name: 'go', data: 'went' }])).toMatchObject({
      status: 'completed',
      output: ['went', true, false, false],
    })
  })

  it('a duplicate completion in the same step is applied once', () => {
    const sim = new Sim(helloSequence, mode)
    sim.start(['a', 'b'])
    const r = sim.step([
      { e: 'completed', seq: 0, result: 'A' },
      { e: 'completed', seq: 0, result: 'A again' },
    ])
    expect(r.appended.filter((e) => e.e === 'completed')).toEqual([{ e: 'completed', seq: 0, result: 'A' }])
    expect(sim.step([{ e: 'completed', seq: 1, result: 'B' }]).output).toEqual(['A', 'B'])
  })

  it('retries stop when isRetryable says no, or when the total timeout would be passed', () => {
    const policies = {
      notRetryable: {
        firstRetryIntervalMs: 10,
        maxAttempts: 5,
        isRetryable: (e: ErrorInfo) => e.name !== 'Fatal',
      },
      totalTimeout: {
        firstRetryIntervalMs: 1000,
        backoffCoefficient: 1,
        maxAttempts: 10,
        totalTimeoutMs: 2500,
      },
      // the third wait, 1e20 ms, would end past the latest time a Date can hold: never
      endOfTime: {
        firstRetryIntervalMs: 1000,
        backoffCoefficient: 1e17,
        maxAttempts: 10,
      },
    }
    const calls = orchestration('calls', function* (ctx, which: keyof typeof policies) {
      try {
        return yield* ctx.callActivity(flaky, 1, { retry: policies[which] })
      } catch (err) {
        return (err as TaskFailedError).failure.name
      }
    })
    const a = new Sim(calls, mode)
    a.start('notRetryable')
    a.step([{ e: 'failed', seq: 0, error: { name: 'Error', message: 'transient' } }])
    expect(a.last.commands).toEqual([{ c: 'timer', seq: 1, fireAt: T0 + 10 }])
    a.step([{ e: 'timerFired', seq: 1 }])
    // a retry names the call's first attempt (ActivityContext.activityId)
    expect(a.last.commands).toEqual([
      { c: 'activity', seq: 2, name: 'flaky', input: 1, attempt: 2, first: 0 },
    ])
    expect(a.step([{ e: 'failed', seq: 2, error: { name: 'Fatal', message: 'give up' } }]).output).toBe(
      'Fatal',
    )

    const b = new Sim(calls, mode)
    b.start('totalTimeout')
    const end = b.drain({
      activities: {
        flaky: () => {
          throw new Error('always')
        },
      },
    })
    expect(end.output).toBe('Error')
    // attempts at T0, ~T0+1000, ~T0+2000; a third wait would end after T0+2500
    expect(b.commands.filter((c) => c.c === 'activity')).toHaveLength(3)

    const c = new Sim(calls, mode)
    c.start('endOfTime')
    const never = () => {
      throw new Error('always')
    }
    expect(c.drain({ activities: { flaky: never } }).output).toBe('Error')
    expect(c.commands.filter((cmd) => cmd.c === 'activity')).toHaveLength(2)
    expect(c.commands.filter((cmd) => cmd.c === 'timer')).toHaveLength(1)
  })

  it('sub-orchestration retries use a new child instance per attempt', () => {
    const retryPolicy = { firstRetryIntervalMs: 5, maxAttempts: 2 }
    const p = orchestration('subRetry', function* (ctx) {
      const x = ctx.callSubOrchestration(child, 1, { retry: retryPolicy })
      const y = ctx.callSubOrchestration(child, 2, { instanceId: 'named', retry: retryPolicy })
      return yield* ctx.all([x, y])
    })
    const sim = new Sim(p, mode, 'sr')
    sim.start()
    sim.step([
      { e: 'failed', seq: 0, error: { name: 'Error', message: 'x1' } },
      { e: 'failed', seq: 1, error: { name: 'Error', message: 'y1' } },
    ])
    sim.step([
      { e: 'timerFired', seq: 2 },
      { e: 'timerFired', seq: 3 },
    ])
    const subs = sim.commands.flatMap((c) => (c.c === 'sub' ? [[c.seq, c.instanceId, c.attempt]] : []))
    expect(subs).toEqual([
      [0, 'sr:0', 1],
      [1, 'named', 1],
      [4, 'sr:4', 2],
      [5, 'named:2', 2],
    ])
    const end = sim.step([
      { e: 'completed', seq: 5, result: 'y' },
      { e: 'completed', seq: 4, result: 'x' },
    ])
    expect(end.output).toEqual(['x', 'y'])
  })

  it('continueAsNew without preserving events drops them; later executions get fresh ids and guids', () => {
    const loop = orchestration('loop', function* (ctx, n: number) {
      ctx.startOrchestration(child, n)
      const guid = ctx.newGuid()
      if (n < 2) return ctx.continueAsNew(n + 1, { preserveUnprocessedEvents: false })
      return guid
    })
    const sim = new Sim(loop, mode, 'lp')
    sim.step([
      { e: 'started', input: 0 },
      { e: 'event', name: 'lost' },
    ])
    const cans = sim.results.filter((r) => r.status === 'continuedAsNew')
    expect(cans.map((r) => r.continueAsNew)).toEqual([
      { input: 1, carriedEvents: [] },
      { input: 2, carriedEvents: [] },
    ])
    expect(sim.commands.map((c) => (c.c === 'start' ? c.instanceId : c.c))).toEqual([
      'lp:0',
      'lp:2:0',
      'lp:3:0',
    ])
    expect(sim.last).toMatchObject({ status: 'completed', output: uuidV5('lp_3_0') })
    expect(sim.histories[0]!.at(-1)).toEqual({ e: 'finished', status: 'continuedAsNew', input: 1 })
  })

  it('isReplaying is true exactly while the code re-runs recorded steps', () => {
    const flags: boolean[] = []
    const watch = orchestration('watch', function* (ctx) {
      flags.push(ctx.isReplaying)
      yield* ctx.callActivity(echo, 1)
      flags.push(ctx.isReplaying)
      yield* ctx.callActivity(echo, 2)
      flags.push(ctx.isReplaying)
    })
    const sim = new Sim(watch, mode)
    sim.start()
    sim.step([{ e: 'completed', seq: 0 }])
    flags.length = 0
    sim.step([{ e: 'completed', seq: 1 }])
    expect(flags).toEqual(mode === 'cached' ? [false] : [true, true, false])
  })
})

describe('engine edge cases', () => {
  const once = (def: OrchestrationDefinition<any, any>, input?: unknown) =>
    new OrchestrationExecutor(def, 'x').step([], [{ e: 'started', input }], T0)

  it('an orchestration that throws fails with the error described', () => {
    const r = once(
      orchestration('throws', function* () {
        throw new RangeError('bad range')
      }),
    )
    expect(r).toMatchObject({ status: 'failed', error: { name: 'RangeError', message: 'bad range' } })
    expect(r.appended.at(-1)).toMatchObject({
      e: 'finished',
      status: 'failed',
      error: { message: 'bad range' },
    })
  })

  it('a step that fails sends nothing it issued before throwing, and releases its lock', () => {
    const h: HistoryEvent[] = []
    const ex = new OrchestrationExecutor(
      orchestration('halfway', function* (ctx) {
        const lock = yield* ctx.lock(ctx.entityRef(Account, 'a'))
        try {
          // the second call breaks the rule of critical sections: one call per locked entity at once
          yield* ctx.all([
            ctx.callEntity(Account, 'a').deposit(-10),
            ctx.callEntity(Account, 'a').deposit(10),
          ])
        } finally {
          lock.release()
        }
      }),
      'x',
    )
    const first = ex.step(h, [{ e: 'started' }], T0)
    h.push(...first.appended)
    expect(first.commands.map((c) => c.c)).toEqual(['lock'])
    const failed = ex.step(h, [{ e: 'completed', seq: 0 }], T0)
    expect(failed.status).toBe('failed')
    expect(failed.commands, 'no call goes out').toEqual([{ c: 'unlock', entities: [['Account', 'a']] }])
    expect(
      failed.appended.filter((ev) => ev.e === 'scheduled').map((ev) => (ev as { kind: string }).kind),
    ).toEqual(['unlock'])

    const sideEffects = once(
      orchestration('issuesThenThrows', function* (ctx) {
        ctx.callEntity(Account, 'b').deposit(1)
        ctx.signalEntity(Account, 'b').deposit(1)
        ctx.callActivity(echo, 1)
        ctx.createTimer(T0 + 1000)
        ctx.startOrchestration(
          orchestration('other', function* () {}),
          null,
        )
        throw new Error('bug')
      }),
    )
    expect(sideEffects).toMatchObject({ status: 'failed', commands: [] })
    expect(sideEffects.appended.some((ev) => ev.e === 'scheduled')).toBe(false)
  })

  it('yielding something other than a task throws into the code', () => {
    const r = once(
      orchestration('yieldsPromise', function* () {
        try {
          yield Promise.resolve(1) as unknown as Task<number>
          return 'not reached'
        } catch (err) {
          return (err as Error).message
        }
      }),
    )
    expect(r.output).toContain("orchestration 'yieldsPromise' yielded a promise: await tasks with yield*")
  })

  it('returning a task without yield* fails the instance, saying how to return its result', () => {
    const r = once(
      orchestration('returnsTask', function* (ctx) {
        return ctx.callActivity(echo, 'x')
      }),
    )
    expect(r).toMatchObject({ status: 'failed', commands: [] })
    expect((r.error as { message: string }).message).toBe(
      "orchestration 'returnsTask' returned a task instead of its result: return yield* task " +
        '(e.g. return yield* ctx.callActivity(def, input))',
    )
  })

  it('a plain yield of a task resumes with its result', () => {
    const ex = new OrchestrationExecutor(
      orchestration('plainYield', function* (ctx) {
        const v = yield ctx.callActivity(echo, 'x')
        return `got ${String(v)}`
      }),
      'x',
    )
    const h: HistoryEvent[] = []
    h.push(...ex.step(h, [{ e: 'started' }], T0).appended)
    expect(ex.step(h, [{ e: 'completed', seq: 0, result: 'y' }], T0).output).toBe('got y')
  })

  it('a function that is not a generator fails the instance', () => {
    const def = orchestration('notGen', (() => 42) as never)
    expect(once(def).error?.message).toBe(
      "orchestration 'notGen' returned number: orchestration code must be a (sync) generator " +
        'function (function*) that awaits tasks with yield*',
    )
  })

  it('a plain function returning an async iterator or a promise fails the instance at once (it used to spin)', () => {
    // orchestration() sees only a plain function; what it returns shows at the first step
    let ran = false
    const asyncGen = async function* () {
      ran = true
      yield 1
    }
    const returnsAsyncIterator = orchestration('returnsAsyncIterator', (() => asyncGen()) as never)
    const r = once(returnsAsyncIterator)
    expect(r).toMatchObject({ status: 'failed', commands: [] })
    expect(r.error?.message).toBe(
      "orchestration 'returnsAsyncIterator' returned an async iterator: orchestration code must be a " +
        '(sync) generator function (function*) that awaits tasks with yield*',
    )
    expect(r.error?.code).toBe(ErrorCode.BadInput)
    expect(ran).toBe(false) // its body never started
    // a promise, rejected later: the failure says so, and the rejection is nobody's unhandled one
    const returnsPromise = orchestration(
      'returnsPromise',
      (() => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 1))) as never,
    )
    expect(once(returnsPromise).error?.message).toMatch(
      /^orchestration 'returnsPromise' returned a promise: orchestration code must be a \(sync\) generator function/,
    )
  })

  it('a hand-written iterator whose next() answers promises fails the instance instead of spinning', () => {
    const asyncNext = orchestration('asyncNext', (() => ({
      next: () => Promise.resolve({ done: false, value: 1 }),
      throw: () => Promise.resolve({ done: true, value: undefined }),
      return: () => Promise.resolve({ done: true, value: undefined }),
      [Symbol.iterator]() {
        return this
      },
    })) as never)
    expect(once(asyncNext).error?.message).toMatch(
      /^orchestration 'asyncNext' answered next\(\) with a promise: orchestration code must be a \(sync\) generator function/,
    )
  })

  it('code that answers the error for a non-task yield with another one fails instead of spinning', () => {
    let refusals = 0
    const r = once(
      orchestration('yieldsForever', function* () {
        for (;;) {
          try {
            yield Promise.resolve(1) as unknown as Task<number>
          } catch {
            refusals++
          }
        }
      }),
    )
    expect(refusals).toBe(1)
    expect(r).toMatchObject({ status: 'failed' })
    expect(r.error?.message).toContain(
      "orchestration 'yieldsForever' yielded a promise: await tasks with yield*",
    )
  })

  it('bad calls throw into the code with clear messages', () => {
    const r = once(
      orchestration('badCalls', function* (ctx) {
        const errors: string[] = []
        const attempt = attemptInto(errors)
        attempt(() => ctx.callActivity(echo, 1, { retry: { firstRetryIntervalMs: 1, maxAttempts: 0 } }))
        attempt(() => (ctx.callEntity(Counter, 'c') as unknown as Record<string, () => void>).nope!())
        attempt(() => ctx.callEntity(Counter, ''))
        attempt(() => ctx.createTimer(Number.NaN))
        attempt(() => ctx.createTimer(5000))
        // (it never fires, and `basalt history` failed on it with "RangeError: Invalid time value")
        attempt(() => ctx.createTimer(9e15))
        attempt(() => ctx.waitForEvent('x', { timeoutMs: 0 }))
        attempt(() => ctx.waitForEvent('x', { timeoutMs: 9e15 }))
        attempt(() => ctx.any([]))
        attempt(() => ctx.callActivity(child as never, 1))
        attempt(() => ctx.startOrchestration(child, 1, { instanceId: '' }))
        return errors
      }),
    )
    expect(r.output).toEqual([
      "BadInputError: retry policy of activity 'echo': maxAttempts must be an integer ≥ 1 (got 0)",
      "UnknownOperationError: entity type 'Counter' has no operation 'nope'",
      'BadInputError: key of entity \'Counter\' given to ctx.callEntity must be a non-empty string (got string "")',
      'BadInputError: createTimer needs a Date or ms since the epoch (got NaN)',
      'BadInputError: createTimer takes the time to fire, not a delay: 5000 is 1970-01-01T00:00:05.000Z; ' +
        'for a delay of 5000 ms write ctx.createTimer(ctx.now() + 5000)',
      'BadInputError: createTimer: 9000000000000000 is past the latest time a Date can hold (at most 8640000000000000)',
      "BadInputError: waitForEvent('x'): timeoutMs must be a positive number of ms, ending before the latest time a Date can hold (got 0)",
      "BadInputError: waitForEvent('x'): timeoutMs must be a positive number of ms, ending before the latest time a Date can hold (got 9000000000000000)",
      'BadInputError: any needs at least one task',
      'BadInputError: callActivity needs a definition made by activity()',
      'BadInputError: instance id must be a non-empty string (got string "")',
    ])
    expect(r.commands).toEqual([])
  })

  it('refuses option keys the orchestration API does not take, naming them and the known ones', () => {
    const r = once(
      orchestration('misspelt', function* (ctx) {
        const errors: string[] = []
        const attempt = attemptInto(errors)
        const opts = (o: object) => o as never
        attempt(() => ctx.callActivity(echo, 1, opts({ retyr: { firstRetryIntervalMs: 1, maxAttempts: 3 } })))
        attempt(() => ctx.callActivity(echo, 1, { retry: opts({ firstRetryIntervalMs: 1, maxAttempt: 3 }) }))
        attempt(() =>
          ctx.callActivity(echo, 1, {
            retry: opts({ firstRetryIntervalMs: 1, maxAttempts: 3, backoffCoeficient: 1.5 }),
          }),
        )
        attempt(() => ctx.callActivity(echo, 1, 5 as never))
        attempt(() => ctx.callSubOrchestration(child, 1, opts({ instanceID: 'c1' })))
        attempt(() =>
          ctx.callSubOrchestration(child, 1, { retry: opts({ maxAttempts: 2, firstRetryInterval: 5 }) }),
        )
        attempt(() => ctx.startOrchestration(child, 1, opts({ id: 'c2' })))
        attempt(() => ctx.waitForEvent('x', opts({ timeout: 5 })))
        attempt(() => ctx.continueAsNew(1, opts({ preserveEvents: false })))
        // what it does take still works, and nothing refused was issued
        ctx.callActivity(echo, 1, {
          retry: { firstRetryIntervalMs: 1, maxAttempts: 2, backoffCoefficient: 1 },
        })
        return errors
      }),
    )
    const retryKeys =
      'firstRetryIntervalMs, backoffCoefficient, maxRetryIntervalMs, maxAttempts, totalTimeoutMs, isRetryable'
    expect(r.output).toEqual([
      "BadInputError: callActivity('echo'): unknown option 'retyr' (known: retry)",
      `BadInputError: retry policy of activity 'echo': unknown policy key 'maxAttempt' (known: ${retryKeys})`,
      `BadInputError: retry policy of activity 'echo': unknown policy key 'backoffCoeficient' (known: ${retryKeys})`,
      "BadInputError: the options of callActivity('echo') must be an object (got number 5)",
      "BadInputError: callSubOrchestration('child'): unknown option 'instanceID' (known: instanceId, retry)",
      `BadInputError: retry policy of sub-orchestration 'child': unknown policy key 'firstRetryInterval' (known: ${retryKeys})`,
      "BadInputError: startOrchestration('child'): unknown option 'id' (known: instanceId)",
      "BadInputError: waitForEvent('x'): unknown option 'timeout' (known: timeoutMs)",
      "BadInputError: continueAsNew: unknown option 'preserveEvents' (known: preserveUnprocessedEvents)",
    ])
    expect(r.status).toBe('completed')
    expect(r.commands.map((c) => c.c)).toEqual(['activity'])
  })

  it('refuses option keys activity() and orchestration() do not take, and misspelt retry policies', () => {
    expect(() => activity('a', () => 1, { timeout: 5 } as never)).toThrow(
      "activity('a'): unknown option 'timeout' (known: timeoutMs, retry, input)",
    )
    expect(() =>
      activity('a', () => 1, { retry: { firstRetryIntervalMs: 1, maxAttempts: 2, maxInterval: 9 } as never }),
    ).toThrow(
      "retry policy of activity 'a': unknown policy key 'maxInterval' (known: firstRetryIntervalMs, backoffCoefficient, maxRetryIntervalMs, maxAttempts, totalTimeoutMs, isRetryable)",
    )
    expect(() => orchestration('o', function* () {}, { versoin: '2' } as never)).toThrow(
      "orchestration('o'): unknown option 'versoin' (known: version, input)",
    )
    expect(
      activity('a', () => 1, { timeoutMs: 5, retry: { firstRetryIntervalMs: 1, maxAttempts: 2 } }).timeoutMs,
    ).toBe(5)
    expect(orchestration('o', function* () {}, { version: '2' }).version).toBe('2')
  })

  it('all([]) completes at once with no results', () => {
    const r = once(
      orchestration('allEmpty', function* (ctx) {
        return yield* ctx.all([])
      }),
    )
    expect(r).toMatchObject({ status: 'completed', output: [] })
  })

  it('the first step needs a started event, and a finished history answers with its outcome', () => {
    const ex = new OrchestrationExecutor(helloSequence, 'x')
    expect(() => ex.step([], [], T0)).toThrow(
      "instance 'x' has no history: its first step needs a { e: 'started', input } event",
    )
    const r = ex.step([], [{ e: 'started', input: [] }], T0)
    expect(r).toMatchObject({ status: 'completed', output: [] })
    expect(ex.step(r.appended, [{ e: 'event', name: 'late' }], T0 + 1)).toEqual({
      appended: [],
      commands: [],
      status: 'completed',
      output: [],
    })
  })

  it('a history that does not begin with a started event is refused', () => {
    const ex = new OrchestrationExecutor(helloSequence, 'x')
    expect(() => ex.step([{ e: 'step', t: T0 }], [], T0)).toThrow('does not begin with a started event')
  })

  it('the started event records name, input, version and execution', () => {
    const versioned = orchestration(
      'versioned',
      function* () {
        return 1
      },
      { version: '2.1' },
    )
    const r = new OrchestrationExecutor(versioned, 'v').step(
      [],
      [{ e: 'started', input: 'in', execution: 3 }],
      T0,
    )
    expect(r.appended[0]).toEqual({
      e: 'started',
      t: T0,
      name: 'versioned',
      input: 'in',
      version: '2.1',
      execution: 3,
    })
  })

  it('an execution given a first seq numbers its commands from it, in replay too', () => {
    // (so that outcomes an earlier execution left on their way match no task of this one)
    const numbered = orchestration('numbered', function* (ctx) {
      const a = ctx.callActivity(echo, 1)
      ctx.startOrchestration(child, 2)
      yield* a
      return ctx.instanceId
    })
    const ex = new OrchestrationExecutor(numbered, 'n', { alwaysReplay: true })
    const first = ex.step([], [{ e: 'started', execution: 3, seq: 2_000_000 }], T0)
    expect(first.appended[0]).toMatchObject({ e: 'started', execution: 3, seq: 2_000_000 })
    expect(first.commands).toEqual([
      { c: 'activity', seq: 2_000_000, name: 'echo', input: 1, attempt: 1 },
      // default child ids count within the execution
      { c: 'start', name: 'child', instanceId: 'n:3:1', input: 2 },
    ])
    // an outcome of seq 0 (an earlier execution's) is not this execution's
    expect(ex.step(first.appended, [{ e: 'completed', seq: 0, result: 'stale' }], T0 + 1).appended).toEqual(
      [],
    )
    const end = ex.step(first.appended, [{ e: 'completed', seq: 2_000_000, result: 1 }], T0 + 2)
    expect(end).toMatchObject({ status: 'completed', output: 'n' })
  })

  it('the logger is silent without a sink and formats errors and objects', () => {
    const lines: string[] = []
    const def = orchestration('logs', function* (ctx) {
      ctx.log.warn('warned', { a: 1 }, 7)
      ctx.log.error(new Error('shown'))
    })
    new OrchestrationExecutor(def, 'x').step([], [{ e: 'started' }], T0)
    new OrchestrationExecutor(def, 'x', { logSink: (line, level) => lines.push(`${level} ${line}`) }).step(
      [],
      [{ e: 'started' }],
      T0,
    )
    expect(lines[0]).toBe('warn warned {"a":1} 7')
    expect(lines[1]).toMatch(/^error Error: shown\n/)
  })

  it('definitions are checked', () => {
    expect(() => activity('', () => 1)).toThrow('activity name must be a non-empty string')
    expect(() => activity('a', () => 1, { timeoutMs: -1 })).toThrow('positive number of ms')
    expect(() => activity('a', () => 1, { retry: { firstRetryIntervalMs: -1, maxAttempts: 2 } })).toThrow(
      'firstRetryIntervalMs must be a number ≥ 0',
    )
    expect(helloSequence).toMatchObject({ kind: 'orchestration', name: 'helloSequence' })
    expect(Object.isFrozen(sayHello)).toBe(true)
  })
})

describe('errors, guids and types', () => {
  it('TaskFailedError and NonDeterminismError keep their class and code across the wire', () => {
    const failed = new TaskFailedError("activity 'x' failed (seq 1): boom", {
      name: 'RangeError',
      message: 'boom',
    })
    expect(failed.cause).toMatchObject({ remoteName: 'RangeError', message: 'boom' })
    const back = fromErrorInfo(toErrorInfo(failed))
    expect(back).toBeInstanceOf(TaskFailedError)
    expect(back).toMatchObject({ code: 'TASK_FAILED', message: failed.message })
    expect(fromErrorInfo(toErrorInfo(new NonDeterminismError('diverged')))).toBeInstanceOf(
      NonDeterminismError,
    )
  })

  it('sha1 and uuidV5 match the standard test vectors', () => {
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
    const text = (s: string) => new TextEncoder().encode(s)
    expect(hex(sha1(text('abc')))).toBe('a9993e364706816aba3e25717850c26c9cd0d89d')
    expect(hex(sha1(text('')))).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709')
    expect(hex(sha1(text('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '84983e441c3bd26ebaae4aa1f95129e5e54670f1',
    )
    expect(hex(sha1(text('a'.repeat(1000))))).toBe('291e9a6c66994949b57ba5e650361e98fc36b1ba')
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    )
  })

  it('types flow from definitions and entity classes', () => {
    const typed = orchestration('typed', function* (ctx, input: string[]) {
      const a = yield* ctx.callActivity(sayHello, 'Tokyo')
      expectTypeOf(a).toEqualTypeOf<string>()
      const [b, c] = yield* ctx.all([ctx.callActivity(sayHello, 'x'), ctx.callActivity(flaky, 2)])
      expectTypeOf(b).toEqualTypeOf<string>()
      expectTypeOf(c).toEqualTypeOf<number>()
      const many = yield* ctx.all(input.map((s) => ctx.callActivity(sayHello, s)))
      expectTypeOf(many).toEqualTypeOf<string[]>()
      const n = yield* ctx.callEntity(Counter, 'c').add(5)
      expectTypeOf(n).toEqualTypeOf<number>()
      expectTypeOf(ctx.signalEntity(Counter, 'c').add).returns.toEqualTypeOf<void>()
      const approve = ctx.waitForEvent<boolean>('approve')
      const winner = yield* ctx.any([approve, ctx.createTimer(ctx.now() + 1)])
      if (winner === approve) expectTypeOf(winner.result).toEqualTypeOf<boolean | undefined>()
      const lock = yield* ctx.lock(ctx.entityRef(Counter, 'c'), ctx.entityRef(Account, 'a'))
      expectTypeOf(lock).toEqualTypeOf<LockHandle>()
      const sub = yield* ctx.callSubOrchestration(child, 3)
      expectTypeOf(sub).toEqualTypeOf<number>()
      // @ts-expect-error the activity takes a string
      ctx.callActivity(sayHello, 5)
      // @ts-expect-error Counter has no operation 'nope'
      ctx.callEntity(Counter, 'c').nope()
      // @ts-expect-error add takes a number
      ctx.signalEntity(Counter, 'c').add('1')
      return input.length
    })
    expectTypeOf(typed).toEqualTypeOf<OrchestrationDefinition<string[], number>>()
    expectTypeOf(sayHello.fn).returns.toEqualTypeOf<string | Promise<string>>()
  })
})

describe('definitions', () => {
  it('refuses an async function or async generator as an orchestration, naming it (its node would spin on the promises)', () => {
    expect(() => orchestration('asyncGen', async function* () {} as never)).toThrow(
      /orchestration 'asyncGen' must be a generator function \(function\*\), not an async generator/,
    )
    expect(() => orchestration('asyncFn', (async () => 1) as never)).toThrow(
      /orchestration 'asyncFn' must be a generator function \(function\*\), not an async function/,
    )
  })
})
