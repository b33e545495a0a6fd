/**
 * The orchestration executor: runs one instance's generator step by step. It keeps the live
 * generator (the cursor) between steps, so a step costs no replay; when it has none that matches
 * the history (first step after a restart or eviction, or `alwaysReplay`), it re-runs the code from
 * the start over the history, step by step, checking every decision against the record.
 *
 * Pure: no I/O, no clocks, no randomness. The runtime persists `appended`, carries out `commands`
 * and feeds completions back as new events.
 */
import { BadInputError, IllegalStateError, toErrorInfo } from '../errors.ts'
import { describe as describeValue } from '../ids.ts'
import { isThenable } from '../thenable.ts'
import { Execution } from './context.ts'
import { ContinueAsNewSignal } from './support.ts'

import { Task } from './task.ts'
import type {
  FinishedEvent,
  HistoryEvent,
  LogSink,
  NewEvent,
  OrchestrationDefinition,
  PatchEvent,
  ScheduledEvent,
  StartedEvent,
  StartEvent,
  StepResult,
} from './types.ts'

/** Options of an {@link OrchestrationExecutor}. */
export interface ExecutorOptions {
  /** Replay the whole history on every step instead of keeping the cursor (a test mode). */
  alwaysReplay?: boolean
  /** Where `ctx.log` writes; without one the logger is silent. */
  logSink?: LogSink
  /**
   * Turns a value of the history into the value the code gets (input, results, event data): the
   * runtime stores large values by reference and unwraps them here. Default: the value itself.
   */
  unwrap?: (value: unknown) => unknown
}

/** Runs the generator of one execution as far as its tasks allow. */
class Runner {
  readonly exec: Execution
  /** How the code ended, once it has. */
  outcome: { ok: true; output: unknown } | { ok: false; error: unknown } | undefined
  #gen: Generator<unknown, unknown, unknown> | undefined
  #blocked: Task<unknown> | undefined
  #throw: Error | undefined
  /** {@link #throw} refuses a value the code yielded that is not a task. */
  #refusing = false

  constructor(
    readonly definition: OrchestrationDefinition<any, any>,
    instanceId: string,
    readonly started: StartedEvent,
    logSink: LogSink | undefined,
    readonly unwrap: ((value: unknown) => unknown) | undefined,
  ) {
    this.exec = new Execution({
      definition,
      instanceId,
      execution: started.execution ?? 1,
      ...(started.seq === undefined ? {} : { firstSeq: started.seq }),
      ...(logSink === undefined ? {} : { logSink }),
      ...(unwrap === undefined ? {} : { unwrap }),
    })
  }

  /** Whether the code has started and is waiting for a task. */
  get running(): boolean {
    return this.#gen !== undefined && !this.ended
  }

  /** Whether the execution ended (returned, threw, continued as new) or died of non-determinism. */
  get ended(): boolean {
    return this.outcome !== undefined || this.exec.ending !== undefined || this.exec.fatal !== undefined
  }

  /** Resumes the code until it waits for an unfinished task or ends. */
  resume(): void {
    for (;;) {
      if (this.ended) return
      let next: IteratorResult<unknown, unknown>
      try {
        if (this.#gen === undefined) {
          this.#gen = this.#start()
          next = this.#gen.next()
        } else if (this.#throw !== undefined) {
          const err = this.#throw
          this.#throw = undefined
          next = this.#gen.throw(err)
        } else {
          const task = this.#blocked
          if (task === undefined || !task.isCompleted) return
          this.#blocked = undefined
          next = task.isFailed ? this.#gen.throw(task.error) : this.#gen.next(task.result)
        }
        checkIteratorResult(next, this.definition.name)
      } catch (err) {
        if (!(err instanceof ContinueAsNewSignal) || this.exec.ending === undefined)
          this.outcome = { ok: false, error: err }
        return
      }
      const refused = this.#refusing
      this.#refusing = false
      if (next.done === true) {
        // `return ctx.callActivity(…)` without yield*: the output would be the task object itself
        if (next.value instanceof Task)
          this.outcome = { ok: false, error: returnedTask(this.definition.name) }
        else this.outcome = { ok: true, output: next.value }
      } else if (next.value instanceof Task) {
        this.#blocked = next.value
        this.exec.waited()
      } else {
        const what = isThenable(next.value) ? 'a promise' : typeof next.value
        const error = new BadInputError(
          `orchestration '${this.definition.name}' yielded ${what}: await tasks with yield* (e.g. yield* ctx.callActivity(def, input))`,
        )
        // thrown into the code, which may catch it; code that answers it with another such value
        // would be thrown at again for ever (the partition spinning): it ends the instance
        if (refused) {
          this.outcome = { ok: false, error }
          return
        }
        this.#throw = error
        this.#refusing = true
      }
    }
  }

  #start(): Generator<unknown, unknown, unknown> {
    const input = this.unwrap === undefined ? this.started.input : this.unwrap(this.started.input)
    const gen = this.definition.fn(this.exec, input) as unknown
    if (isSyncIterator(gen)) return gen as Generator<unknown, unknown, unknown>
    // a plain function returning an async iterator or a promise passes orchestration()'s check
    // (only the function's kind can be seen there); its values would come as promises the engine
    // cannot replay. A promise's rejection has nobody else to handle it: dropped here.
    if (isThenable(gen)) gen.then(undefined, () => {})
    throw notGenerator(this.definition.name, `returned ${describeReturned(gen)}`)
  }
}

/**
 * The error of an orchestration whose function is not a (sync) generator function, saying what
 * it `did`: `returned an async iterator`, `returned a promise`, `returned number`, …
 */
function notGenerator(name: string, did: string): BadInputError {
  return new BadInputError(
    `orchestration '${name}' ${did}: orchestration code must be a (sync) generator function ` +
      `(function*) that awaits tasks with yield*`,
  )
}

/**
 * Whether a value is a synchronous iterator the runner can drive: `next` and `throw` methods,
 * and no `Symbol.asyncIterator` (an async generator has `next` and `throw` too, but they return
 * promises).
 */
function isSyncIterator(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  const it = value as Partial<Generator> & { [Symbol.asyncIterator]?: unknown }
  return (
    typeof it.next === 'function' &&
    typeof it.throw === 'function' &&
    typeof it[Symbol.asyncIterator] !== 'function' &&
    !isThenable(value)
  )
}

/** What an orchestration's function returned, in an error message. */
function describeReturned(value: unknown): string {
  if (typeof value === 'object' && value !== null) {
    if (typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function')
      return 'an async iterator'
    if (isThenable(value)) return 'a promise'
    if (typeof (value as { next?: unknown }).next === 'function') return 'an iterator without throw()'
    return 'an object that is not a generator'
  }
  return isThenable(value) ? 'a promise' : value === null ? 'null' : typeof value
}

/**
 * Checks what the code's iterator answered: an iterator result, not a promise of one (a
 * hand-written iterator whose `next` is async: the runner would take the promise for a yielded
 * value, throw into the code, get another promise, and so on without end).
 */
function checkIteratorResult(next: unknown, name: string): asserts next is IteratorResult<unknown> {
  if (typeof next === 'object' && next !== null && !isThenable(next)) return
  if (isThenable(next)) next.then(undefined, () => {})
  throw notGenerator(name, `answered next() with ${isThenable(next) ? 'a promise' : describeValue(next)}`)
}

/**
 * Executes the steps of one orchestration instance. Create one per instance and call
 * {@link step} with the instance's history and the events that arrived; keep the executor to keep
 * the cursor. Steps are synchronous and never throw for problems of the orchestration code: those
 * end the instance as `failed`. They throw {@link BadInputError} when the history or the events are
 * malformed (a runtime bug).
 *
 * @example
 * ```ts
 * const ex = new OrchestrationExecutor(hello, 'order-1', { logSink: (line) => console.log(line) })
 * let r = ex.step([], [{ e: 'started', input: ['Tokyo'] }], Date.now())
 * history.push(...r.appended)      // persist with the step, then carry out r.commands
 * r = ex.step(history, [{ e: 'completed', seq: 0, result: 'Hello Tokyo' }], Date.now())
 * ```
 */
export class OrchestrationExecutor {
  #cached: { runner: Runner; length: number } | undefined

  constructor(
    readonly definition: OrchestrationDefinition<any, any>,
    readonly instanceId: string,
    readonly options: ExecutorOptions = {},
  ) {}

  /**
   * Runs one step: applies `newEvents` (a `started` event first for a new execution, then task
   * completions, timer fires and external events, in arrival order) at time `now`, runs the code
   * until it waits again or ends, and returns what to append to the history and the new commands.
   * Completions for unknown or already finished tasks are ignored. A history that already ended
   * returns its outcome again, with nothing appended.
   */
  step(history: readonly HistoryEvent[], newEvents: readonly NewEvent[], now: number): StepResult {
    if (!Number.isFinite(now))
      throw new BadInputError(`step needs the time in ms since the epoch (got ${now})`)
    const finished = finishedOf(history)
    if (finished !== undefined) {
      this.#cached = undefined
      return outcomeOf(finished, history)
    }
    try {
      let runner =
        this.#cached?.length === history.length && !this.options.alwaysReplay
          ? this.#cached.runner
          : undefined
      this.#cached = undefined
      const prefix: HistoryEvent[] = []
      if (runner === undefined && history.length === 0) {
        const start = newEvents.find((ev): ev is StartEvent => ev.e === 'started')
        if (start === undefined) {
          throw new BadInputError(
            `instance '${this.instanceId}' has no history: its first step needs a { e: 'started', input } event`,
          )
        }
        const started: StartedEvent = {
          e: 'started',
          t: now,
          name: this.definition.name,
          ...(start.input === undefined ? {} : { input: start.input }),
          ...(this.definition.version === undefined ? {} : { version: this.definition.version }),
          ...(start.execution === undefined ? {} : { execution: start.execution }),
          ...(start.seq === undefined ? {} : { seq: start.seq }),
        }
        prefix.push(started)
        runner = this.#runner(started)
      } else if (runner === undefined) {
        runner = this.#replay(history)
        const fatal = runner.exec.fatal
        if (fatal !== undefined) return this.#fail(runner, toErrorInfo(fatal), now)
      }
      const result = this.#live(runner, newEvents, now, prefix)
      if (result.status === 'running')
        this.#cached = { runner, length: history.length + result.appended.length }
      return result
    } catch (err) {
      this.#cached = undefined
      throw err
    }
  }

  #runner(started: StartedEvent): Runner {
    return new Runner(this.definition, this.instanceId, started, this.options.logSink, this.options.unwrap)
  }

  /** Re-runs the code over the history; the runner's execution is fatal when replay diverged. */
  #replay(history: readonly HistoryEvent[]): Runner {
    const started = history[0]
    if (started?.e !== 'started') {
      throw new BadInputError(`history of instance '${this.instanceId}' does not begin with a started event`)
    }
    const runner = this.#runner(started)
    const exec = runner.exec
    let i = 1
    while (i < history.length) {
      const marker = history[i]!
      if (marker.e !== 'step') {
        throw new BadInputError(
          `history of instance '${this.instanceId}': event ${i} (${marker.e}) is not in a step`,
        )
      }
      let end = i + 1
      while (end < history.length && history[end]!.e !== 'step') end++
      const events = history.slice(i + 1, end)
      const decisions = events.filter(
        (ev): ev is ScheduledEvent | PatchEvent => ev.e === 'scheduled' || ev.e === 'patch',
      )
      exec.beginStep(marker.t, decisions)
      for (const ev of events) {
        if (ev.e === 'completed' || ev.e === 'failed' || ev.e === 'timerFired' || ev.e === 'event')
          exec.apply(ev)
        if (exec.fatal !== undefined) return runner
      }
      runner.resume()
      if (exec.fatal !== undefined) return runner
      if (runner.ended) {
        const how = exec.ending !== undefined ? 'continued as new' : runner.outcome?.ok ? 'returned' : 'threw'
        const error = runner.outcome?.ok === false ? ` (${toErrorInfo(runner.outcome.error).message})` : ''
        exec.fatal = exec.nonDeterminism(
          `the code ${how}${error} while replaying a step after which the history goes on`,
        )
        return runner
      }
      exec.endReplayedStep()
      if (exec.fatal !== undefined) return runner
      i = end
    }
    return runner
  }

  /** Applies the new events, runs the code and assembles the step's result. */
  #live(runner: Runner, newEvents: readonly NewEvent[], now: number, prefix: HistoryEvent[]): StepResult {
    const exec = runner.exec
    exec.beginStep(now, undefined)
    exec.out.push(...prefix, { e: 'step', t: now })
    let accepted = 0
    for (const ev of newEvents) {
      if (ev.e === 'started') continue
      if (ev.e !== 'completed' && ev.e !== 'failed' && ev.e !== 'timerFired' && ev.e !== 'event') {
        throw new BadInputError(
          `instance '${this.instanceId}': unknown new event ${JSON.stringify((ev as { e: unknown }).e)}`,
        )
      }
      if (exec.apply(ev)) accepted++
    }
    if (accepted === 0 && runner.running) {
      // nothing the code waits for changed (duplicates, late fires): leave no trace in history
      const current = exec.customStatus
      return {
        appended: [],
        commands: [],
        status: 'running',
        ...(current === undefined ? {} : { customStatus: current.value }),
      }
    }
    runner.resume()
    const custom = exec.customStatus
    if (exec.customStatusChanged) exec.out.push({ e: 'customStatus', value: custom?.value })
    const customPart: Pick<StepResult, 'customStatus'> =
      custom === undefined ? {} : { customStatus: custom.value }
    if (!runner.ended)
      return { appended: exec.out, commands: exec.commands, status: 'running', ...customPart }
    exec.releaseLocks()
    const ending = exec.ending
    if (ending !== undefined) {
      exec.out.push(
        ending.input === undefined
          ? { e: 'finished', status: 'continuedAsNew' }
          : { e: 'finished', status: 'continuedAsNew', input: ending.input },
      )
      const carriedEvents = ending.preserve ? exec.unconsumedEvents : []
      return {
        appended: exec.out,
        commands: exec.commands,
        status: 'continuedAsNew',
        ...customPart,
        continueAsNew: { input: ending.input, carriedEvents },
      }
    }
    const outcome = runner.outcome!
    if (outcome.ok) {
      exec.out.push(
        outcome.output === undefined
          ? { e: 'finished', status: 'completed' }
          : { e: 'finished', status: 'completed', output: outcome.output },
      )
      return {
        appended: exec.out,
        commands: exec.commands,
        status: 'completed',
        output: outcome.output,
        ...customPart,
      }
    }
    const error = toErrorInfo(outcome.error)
    // A step that fails the instance leaves no trace but the failure, as an entity operation that
    // throws does: what it issued before throwing (a withdraw before the deposit that broke a
    // rule) is dropped, from the commands and from the history. Its locks are still released.
    const appended = exec.out.filter((ev) => ev.e !== 'scheduled' || !DROPPED_ON_FAILURE.has(ev.kind))
    appended.push({ e: 'finished', status: 'failed', error })
    const commands = exec.commands.filter((c) => !DROPPED_ON_FAILURE.has(c.c))
    return { appended, commands, status: 'failed', error, ...customPart }
  }

  /** Ends an execution whose replay diverged: a failed step that releases any locks. */
  #fail(runner: Runner, error: ReturnType<typeof toErrorInfo>, now: number): StepResult {
    const exec = runner.exec
    exec.beginStep(now, undefined)
    exec.out.push({ e: 'step', t: now })
    exec.releaseLocks()
    exec.out.push({ e: 'finished', status: 'failed', error })
    const custom = exec.customStatus
    return {
      appended: exec.out,
      commands: exec.commands,
      status: 'failed',
      error,
      ...(custom === undefined ? {} : { customStatus: custom.value }),
    }
  }
}

/**
 * What a step that fails its instance does not carry out (see {@link OrchestrationExecutor}): every
 * effect but the release of its locks and the cancellation of its timers.
 */
const DROPPED_ON_FAILURE: ReadonlySet<string> = new Set([
  'activity',
  'timer',
  'sub',
  'call',
  'signal',
  'start',
  'lock',
])

/** The `finished` event of the history's last step, if the execution ended. */
function finishedOf(history: readonly HistoryEvent[]): FinishedEvent | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const ev = history[i]!
    if (ev.e === 'finished') return ev
    if (ev.e === 'step') return undefined
  }
  return undefined
}

function outcomeOf(finished: FinishedEvent, history: readonly HistoryEvent[]): StepResult {
  let custom: { customStatus?: unknown } = {}
  for (let i = history.length - 1; i >= 0; i--) {
    const ev = history[i]!
    if (ev.e === 'customStatus') {
      custom = { customStatus: ev.value }
      break
    }
  }
  const base = { appended: [], commands: [], ...custom }
  switch (finished.status) {
    case 'completed':
      return { ...base, status: 'completed', output: finished.output }
    case 'failed':
      return { ...base, status: 'failed', error: finished.error }
    case 'continuedAsNew':
      return {
        ...base,
        status: 'continuedAsNew',
        continueAsNew: { input: finished.input, carriedEvents: [] },
      }
    default: {
      const never: never = finished
      throw new IllegalStateError(`unknown outcome ${JSON.stringify(never)}`)
    }
  }
}

function returnedTask(name: string): BadInputError {
  return new BadInputError(
    `orchestration '${name}' returned a task instead of its result: return yield* task ` +
      `(e.g. return yield* ctx.callActivity(def, input))`,
  )
}
