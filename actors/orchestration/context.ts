/**
 * The state of one running execution and the context its code sees. Every decision the code makes
 * (schedule an activity, start a timer, call an entity, …) takes the next sequence number and is
 * either recorded and emitted as a command (live) or checked against the history's record of the
 * same step (replay): the numbering, recording and check of decisions are decisions.ts, so this
 * file reads as what each call of the API decides. Completions reach tasks through
 * {@link Execution.apply}.
 */
import { BadInputError, IllegalStateError, TimeoutError, type NonDeterminismError } from '../errors.ts'
import { checkInstanceId } from '../ids.ts'
import { checkKnownKeys, keysOf } from '../options.ts'
import {
  EARLIEST_TIME_MS,
  LATEST_TIME_MS,
  checkValueNow,
  signalProxy,
  type Entity,
  type EntityClass,
  type StandardSchemaV1,
} from '../../entities/index.ts'
import {
  checkRetryPolicy,
  isActivityDefinition,
  isOrchestrationDefinition,
  retryDelay,
} from './definitions.ts'
import { Decisions } from './decisions.ts'
import { uuidV5 } from './guid.ts'
import { CriticalSection, canonicalOrder, checkRef, list } from './locks.ts'
import { Task, TimerTask, completeTask, failTask, whenAll, whenAny, type TaskClock } from './task.ts'
import type {
  ActivityDefinition,
  CallActivityOptions,
  CallSubOrchestrationOptions,
  Command,
  CompletedEvent,
  ContinueAsNewOptions,
  EntityCallProxy,
  EntityKey,
  EntityRef,
  EntitySignalProxy,
  EventDefinition,
  ExternalEvent,
  FailedEvent,
  HistoryEvent,
  LockHandle,
  LogLevel,
  LogSink,
  OrchestrationContext,
  OrchestrationDefinition,
  ReplaySafeLogger,
  RetryPolicy,
  StartOrchestrationOptions,
  TaskResult,
  TimerFiredEvent,
  WaitForEventOptions,
} from './types.ts'
import {
  ContinueAsNewSignal,
  checkOperation,
  checkTasks,
  entityKeyOf,
  format,
  retryable,
  taskFailed,
  type Decision,
} from './support.ts'

/** What an execution needs to start. */
export interface ExecutionInit {
  definition: OrchestrationDefinition<any, any>
  instanceId: string
  /** Execution number of the instance (1 unless continued as new). */
  execution: number
  /** The seq of the execution's first decision (see `StartEvent.seq`; default 0). */
  firstSeq?: number
  logSink?: LogSink
  /** Turns a recorded value into the value the code gets (see `ExecutorOptions.unwrap`). */
  unwrap?: (value: unknown) => unknown
}

/**
 * The keys each options argument of the context takes: anything else is refused with a
 * `BadInputError` naming it and these (see actors/options.ts), as the client's methods do.
 */
const CALL_ACTIVITY_KEYS = keysOf<CallActivityOptions>({ retry: true })
const CALL_SUB_KEYS = keysOf<CallSubOrchestrationOptions>({ instanceId: true, retry: true })
const START_KEYS = keysOf<StartOrchestrationOptions>({ instanceId: true })
const WAIT_KEYS = keysOf<WaitForEventOptions>({ timeoutMs: true })
const CONTINUE_KEYS = keysOf<ContinueAsNewOptions>({ preserveUnprocessedEvents: true })

type Completion = CompletedEvent | FailedEvent | TimerFiredEvent
type Pending = { timer: boolean; run: (ev: Completion) => void }

/**
 * One execution of an orchestration instance: its tasks, buffered events, locks and decisions.
 * Orchestration code sees it as an {@link OrchestrationContext}; the other public members are for
 * the executor only. @internal
 */

export class Execution implements OrchestrationContext {
  readonly instanceId: string
  readonly log: ReplaySafeLogger
  /** Completion order of this execution's tasks. */
  readonly clock: TaskClock = { n: 0 }
  /** Set by continueAsNew. */
  ending: { input: unknown; preserve: boolean } | undefined

  readonly #init: ExecutionInit
  /** The decisions made so far, recorded (live) or checked against the history (replay). */
  readonly #decisions: Decisions
  #now = 0
  #guids = 0
  readonly #pending = new Map<number, Pending>()
  readonly #waiters = new Map<string, Task<unknown>[]>()
  /** The schemas of the waits made with an event definition that has one. */
  readonly #eventSchemas = new WeakMap<Task<unknown>, StandardSchemaV1>()
  readonly #buffer: ExternalEvent[] = []
  #custom: { value: unknown } | undefined
  #customChanged = false
  #lock: CriticalSection | undefined

  constructor(init: ExecutionInit) {
    this.#init = init
    this.instanceId = init.instanceId
    this.#decisions = new Decisions(init.definition, init.instanceId, init.firstSeq)
    const line =
      (level: LogLevel) =>
      (...parts: unknown[]) => {
        if (!this.#decisions.replaying && init.logSink !== undefined)
          init.logSink(parts.map(format).join(' '), level)
      }
    this.log = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
  }

  // -----------------------------------------------------------------------------------------------
  // Driven by the executor

  /** Set when replay diverged from the history; the execution is dead. */
  get fatal(): NonDeterminismError | undefined {
    return this.#decisions.fatal
  }

  set fatal(error: NonDeterminismError | undefined) {
    this.#decisions.fatal = error
  }

  /** Where live decisions and consumed events go (the step's appended events). */
  get out(): HistoryEvent[] {
    return this.#decisions.out
  }

  /** New commands of the live step. */
  get commands(): Command[] {
    return this.#decisions.commands
  }

  /** Starts a step: replaying the history's decisions `expected`, or live (`expected` undefined). */
  beginStep(t: number, expected: Decision[] | undefined): void {
    this.#now = t
    this.#decisions.beginStep(expected)
    this.#customChanged = false
  }

  /** Ends a replayed step: every decision the history recorded must have been made again. */
  endReplayedStep(): void {
    this.#decisions.endReplayedStep()
  }

  /**
   * Completes a wait with an event's data — through the schema of the event definition it waits
   * with, if any: data the schema refuses (or a schema that cannot answer at once) fails the wait
   * with a `BadInputError` the code can catch; else the wait gets the schema's output.
   */
  #deliver(task: Task<unknown>, name: string, data: unknown): void {
    const value = this.#unwrap(data)
    const schema = this.#eventSchemas.get(task)
    if (schema === undefined) return completeTask(task, value)
    let checked: ReturnType<typeof checkValueNow>
    try {
      checked = checkValueNow(schema, value, `data of event '${name}'`)
    } catch (err) {
      return failTask(task, err instanceof Error ? err : new BadInputError(String(err)))
    }
    if (checked.checkedNow) return completeTask(task, checked.value)
    failTask(
      task,
      new BadInputError(
        `the schema of event '${name}' validates asynchronously; an orchestration can apply only a synchronous schema`,
      ),
    )
  }

  #unwrap(value: unknown): unknown {
    return this.#init.unwrap === undefined ? value : this.#init.unwrap(value)
  }

  /** Applies a new or replayed event; false when it is ignored (unknown or finished task). */
  apply(ev: ExternalEvent | Completion): boolean {
    if (ev.e === 'event') {
      const event: ExternalEvent =
        ev.data === undefined ? { e: 'event', name: ev.name } : { e: 'event', name: ev.name, data: ev.data }
      this.#decisions.record(event)
      const waiter = this.#waiters.get(ev.name)?.shift()
      if (waiter !== undefined) this.#deliver(waiter, ev.name, ev.data)
      else this.#buffer.push(event)
      return true
    }
    const pending = this.#pending.get(ev.seq)
    if (pending === undefined || (ev.e === 'timerFired' && !pending.timer)) return false
    this.#pending.delete(ev.seq)
    if (ev.e === 'completed') {
      this.#decisions.record(
        ev.result === undefined
          ? { e: 'completed', seq: ev.seq }
          : { e: 'completed', seq: ev.seq, result: ev.result },
      )
    } else if (ev.e === 'failed') this.#decisions.record({ e: 'failed', seq: ev.seq, error: ev.error })
    else this.#decisions.record({ e: 'timerFired', seq: ev.seq })
    if (ev.e === 'completed' && this.#init.unwrap !== undefined && ev.result !== undefined) {
      // the code gets the value; the history keeps what was recorded (a reference, for a large one)
      const result = this.#init.unwrap(ev.result)
      if (result !== ev.result) {
        pending.run({ e: 'completed', seq: ev.seq, result })
        return true
      }
    }
    pending.run(ev)
    return true
  }

  /** The custom status, once set. */
  get customStatus(): { value: unknown } | undefined {
    return this.#custom
  }

  /** Whether the live step changed the custom status. */
  get customStatusChanged(): boolean {
    return this.#customChanged
  }

  /** External events not consumed by any wait, in arrival order. */
  get unconsumedEvents(): ExternalEvent[] {
    return [...this.#buffer]
  }

  /** The code waits for a task: calls can no longer travel with a lock request it made. */
  waited(): void {
    if (this.#lock !== undefined) this.#lock.sealed = true
  }

  /** Leaves an open critical section (the execution is ending). */
  releaseLocks(): void {
    const lock = this.#lock
    if (lock === undefined) return
    this.#lock = undefined
    this.#decisions.issue({ kind: 'unlock', entities: lock.entities }, () => ({
      c: 'unlock',
      entities: lock.entities,
    }))
  }

  /** Builds a non-determinism error naming the orchestration, instance and seq. */
  nonDeterminism(detail: string): NonDeterminismError {
    return this.#decisions.nonDeterminism(this.#decisions.seq, detail)
  }

  // -----------------------------------------------------------------------------------------------
  // OrchestrationContext

  get isReplaying(): boolean {
    return this.#decisions.replaying
  }

  now(): number {
    return this.#now
  }

  newGuid(): string {
    return uuidV5(`${this.instanceId}_${this.#init.execution}_${this.#guids++}`)
  }

  callActivity<I, O>(def: ActivityDefinition<I, O>, input: I, options?: CallActivityOptions): Task<O> {
    this.#checkOpen('callActivity')
    if (!isActivityDefinition(def))
      throw new BadInputError('callActivity needs a definition made by activity()')
    if (options !== undefined)
      checkKnownKeys(options, `callActivity('${def.name}')`, 'options', CALL_ACTIVITY_KEYS)
    const policy = options?.retry ?? def.retry
    if (options?.retry !== undefined) checkRetryPolicy(options.retry, `activity '${def.name}'`)
    if (def.input !== undefined) checkValueNow(def.input, input, `input of activity '${def.name}'`)
    // (the first attempt's seq names the call for all its attempts: ActivityContext.activityId)
    let first: number | undefined
    return this.#withRetry<O>(`activity '${def.name}'`, policy, (attempt) => {
      const seq = this.#decisions.issue({ kind: 'activity', name: def.name, attempt }, (s) => ({
        c: 'activity',
        seq: s,
        name: def.name,
        input,
        attempt,
        ...(first === undefined ? {} : { first }),
      }))
      first ??= seq
      return seq
    })
  }

  callSubOrchestration<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options?: CallSubOrchestrationOptions,
  ): Task<O> {
    this.#checkOpen('callSubOrchestration')
    if (!isOrchestrationDefinition(def)) {
      throw new BadInputError('callSubOrchestration needs a definition made by orchestration()')
    }
    if (options !== undefined)
      checkKnownKeys(options, `callSubOrchestration('${def.name}')`, 'options', CALL_SUB_KEYS)
    this.#lock?.refuseSub(def.name)
    const given = options?.instanceId === undefined ? undefined : checkInstanceId(options.instanceId)
    if (options?.retry !== undefined) checkRetryPolicy(options.retry, `sub-orchestration '${def.name}'`)
    if (def.input !== undefined) checkValueNow(def.input, input, `input of orchestration '${def.name}'`)
    return this.#withRetry<O>(`sub-orchestration '${def.name}'`, options?.retry, (attempt) => {
      const idOf = (seq: number) =>
        given === undefined ? this.#childId(seq) : attempt === 1 ? given : `${given}:${attempt}`
      return this.#decisions.issue(
        { kind: 'sub', name: def.name, instanceId: idOf(this.#decisions.seq), attempt },
        (seq) => ({
          c: 'sub',
          seq,
          name: def.name,
          instanceId: idOf(seq),
          input,
          attempt,
        }),
      )
    })
  }

  startOrchestration<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options?: StartOrchestrationOptions,
  ): void {
    this.#checkOpen('startOrchestration')
    if (!isOrchestrationDefinition(def))
      throw new BadInputError('startOrchestration needs a definition made by orchestration()')
    if (options !== undefined)
      checkKnownKeys(options, `startOrchestration('${def.name}')`, 'options', START_KEYS)
    if (def.input !== undefined) checkValueNow(def.input, input, `input of orchestration '${def.name}'`)
    const instanceId =
      options?.instanceId === undefined
        ? this.#childId(this.#decisions.seq)
        : checkInstanceId(options.instanceId)
    this.#decisions.issue({ kind: 'start', name: def.name, instanceId }, () => ({
      c: 'start',
      name: def.name,
      instanceId,
      input,
    }))
  }

  createTimer(fireAt: number | Date): TimerTask {
    this.#checkOpen('createTimer')
    const at = fireAt instanceof Date ? fireAt.getTime() : fireAt
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      throw new BadInputError(`createTimer needs a Date or ms since the epoch (got ${String(fireAt)})`)
    }
    if (at < EARLIEST_TIME_MS) {
      // a delay given where the time to fire is expected would fire at once, silently
      throw new BadInputError(
        `createTimer takes the time to fire, not a delay: ${at} is ${new Date(at).toISOString()}; ` +
          `for a delay of ${at} ms write ctx.createTimer(ctx.now() + ${at})`,
      )
    }
    if (at > LATEST_TIME_MS) {
      // it would never fire, and no Date (a history's reader, the CLI, the dashboard) can show it
      throw new BadInputError(
        `createTimer: ${at} is past the latest time a Date can hold (at most ${LATEST_TIME_MS})`,
      )
    }
    return this.#timer(at)
  }

  waitForEvent<T = unknown>(event: string | EventDefinition<T>, options?: WaitForEventOptions): Task<T> {
    this.#checkOpen('waitForEvent')
    const name = typeof event === 'object' && event !== null ? event.name : event
    if (typeof name !== 'string' || name.length === 0)
      throw new BadInputError('waitForEvent needs an event name')
    if (options !== undefined) checkKnownKeys(options, `waitForEvent('${name}')`, 'options', WAIT_KEYS)
    const timeoutMs = options?.timeoutMs
    if (
      timeoutMs !== undefined &&
      !(Number.isFinite(timeoutMs) && timeoutMs > 0 && this.#now + timeoutMs <= LATEST_TIME_MS)
    ) {
      throw new BadInputError(
        `waitForEvent('${name}'): timeoutMs must be a positive number of ms, ending before the ` +
          `latest time a Date can hold (got ${String(timeoutMs)})`,
      )
    }
    const task = new Task<T>(this.clock)
    const schema = typeof event === 'object' ? event.schema : undefined
    if (schema !== undefined) this.#eventSchemas.set(task, schema)
    const at = this.#buffer.findIndex((ev) => ev.name === name)
    if (at >= 0) {
      this.#deliver(task, name, this.#buffer.splice(at, 1)[0]!.data)
      return task
    }
    let queue = this.#waiters.get(name)
    if (queue === undefined) this.#waiters.set(name, (queue = []))
    queue.push(task as Task<unknown>)
    if (timeoutMs !== undefined) this.#giveUpAfter(task as Task<unknown>, name, timeoutMs)
    return task
  }

  all<const T extends readonly Task<unknown>[]>(
    tasks: T,
  ): Task<{ -readonly [K in keyof T]: TaskResult<T[K]> }> {
    checkTasks(tasks, 'all')
    return whenAll(this.clock, tasks) as Task<any>
  }

  any<const T extends readonly Task<unknown>[]>(tasks: T): Task<T[number]> {
    checkTasks(tasks, 'any')
    if (tasks.length === 0) throw new BadInputError('any needs at least one task')
    return whenAny(this.clock, tasks)
  }

  callEntity<E extends Entity>(type: EntityClass<E>, key: string): EntityCallProxy<E> {
    const entity = entityKeyOf(type, key, 'callEntity')
    return signalProxy<EntityCallProxy<E>>((op, args) => this.#call(type, entity, op, args))
  }

  signalEntity<E extends Entity>(type: EntityClass<E>, key: string): EntitySignalProxy<E> {
    const entity = entityKeyOf(type, key, 'signalEntity')
    return signalProxy<EntitySignalProxy<E>>((op, args) => this.#signal(type, entity, op, args))
  }

  entityRef<E extends Entity>(type: EntityClass<E>, key: string): EntityRef<E> {
    entityKeyOf(type, key, 'entityRef')
    return { type, key }
  }

  lock(...entities: EntityRef[]): Task<LockHandle> {
    this.#checkOpen('lock')
    this.#lock?.refuseNested()
    const sorted = canonicalOrder(
      entities.map((ref) => {
        checkRef(ref)
        return entityKeyOf(ref.type, ref.key, 'lock')
      }),
    )
    const seq = this.#decisions.issue({ kind: 'lock', entities: sorted }, (s) => ({
      c: 'lock',
      seq: s,
      entities: sorted,
    }))
    const section = (this.#lock = new CriticalSection(seq, sorted))
    const task = new Task<LockHandle>(this.clock)
    const handle: LockHandle = {
      entities: sorted,
      release: () => {
        if (this.#lock !== section) return
        if (!section.held)
          throw new IllegalStateError('release() before the lock was acquired: await the lock first')
        this.releaseLocks()
      },
    }
    this.#expect(seq, false, (ev) => {
      if (ev.e === 'completed') {
        section.held = true
        completeTask(task, handle)
        return
      }
      if (this.#lock === section) this.releaseLocks()
      failTask(task, taskFailed(`lock on ${list(sorted)}`, ev))
    })
    return task
  }

  patched(id: string): boolean {
    if (typeof id !== 'string' || id.length === 0) throw new BadInputError('patched needs a patch id')
    return this.#decisions.patched(id)
  }

  setCustomStatus(value: unknown): void {
    this.#custom = { value }
    if (!this.#decisions.replaying) this.#customChanged = true
  }

  continueAsNew(input: unknown, options?: ContinueAsNewOptions): never {
    this.#checkOpen('continueAsNew')
    if (options !== undefined) checkKnownKeys(options, 'continueAsNew', 'options', CONTINUE_KEYS)
    this.ending = { input, preserve: options?.preserveUnprocessedEvents ?? true }
    throw new ContinueAsNewSignal()
  }

  // -----------------------------------------------------------------------------------------------
  // Internals

  #expect(seq: number, timer: true, run: (ev: Completion) => void): void
  #expect(seq: number, timer: false, run: (ev: CompletedEvent | FailedEvent) => void): void
  #expect(seq: number, timer: boolean, run: (ev: never) => void): void {
    // a non-timer entry is never run with a timerFired event (see the check where it is run)
    this.#pending.set(seq, { timer, run: run as (ev: Completion) => void })
  }

  #checkOpen(what: string): void {
    if (this.fatal !== undefined) throw this.fatal
    if (this.ending !== undefined) throw new IllegalStateError(`${what} after continueAsNew`)
  }

  #childId(seq: number): string {
    const execution = this.#init.execution
    // (numbered within the execution, whatever its first seq)
    const n = seq - this.#decisions.firstSeq
    return execution > 1 ? `${this.instanceId}:${execution}:${n}` : `${this.instanceId}:${n}`
  }

  #timer(fireAt: number): TimerTask {
    const seq = this.#decisions.issue({ kind: 'timer', fireAt }, (s) => ({ c: 'timer', seq: s, fireAt }))
    const timer = new TimerTask(this.clock, seq, fireAt, () => {
      if (this.ending !== undefined || this.fatal !== undefined) return
      this.#pending.delete(seq)
      this.#decisions.issue({ kind: 'cancelTimer', timer: seq }, () => ({ c: 'cancelTimer', seq }))
    })
    this.#expect(seq, true, (ev) => {
      if (ev.e === 'failed') failTask(timer, taskFailed(`timer ${seq}`, ev))
      else completeTask(timer, undefined)
    })
    return timer
  }

  /**
   * Ends the wait `task` for event `name` after `timeoutMs` (a durable timer): it fails with
   * TimeoutError and leaves the queue of waits, so a later event goes to a later wait (an
   * abandoned wait would take it unseen). An event that comes first cancels the timer.
   */
  #giveUpAfter(task: Task<unknown>, name: string, timeoutMs: number): void {
    const timer = this.#timer(this.#now + timeoutMs)
    timer.onDone(() => {
      const queue = this.#waiters.get(name)
      const at = queue?.indexOf(task) ?? -1
      if (at >= 0) queue!.splice(at, 1)
      failTask(task, new TimeoutError(`waitForEvent('${name}') got no event in ${timeoutMs} ms`))
    })
    task.onDone(() => timer.cancel())
  }

  /** A task over attempts made by `attempt(n)` (which returns the attempt's seq), retried by `policy`. */
  #withRetry<T>(what: string, policy: RetryPolicy | undefined, attempt: (n: number) => number): Task<T> {
    const task = new Task<T>(this.clock)
    this.#attempt(task, what, policy, attempt, this.#now, 1)
    return task
  }

  /** Attempt `n` of a retried task (a method, not a closure: no function made per call). */
  #attempt<T>(
    task: Task<T>,
    what: string,
    policy: RetryPolicy | undefined,
    attempt: (n: number) => number,
    firstAt: number,
    n: number,
  ): void {
    const seq = attempt(n)
    this.#expect(seq, false, (ev) => {
      if (ev.e !== 'failed') return completeTask(task, ev.result as T)
      const next = n + 1
      if (policy !== undefined && next <= policy.maxAttempts && retryable(policy, ev)) {
        const fireAt = this.#now + retryDelay(policy, next)
        // (a wait grown past the latest time a Date can hold never ends: the policy gives up)
        const limit = Math.min(firstAt + (policy.totalTimeoutMs ?? Infinity), LATEST_TIME_MS)
        if (fireAt <= limit) {
          this.#timer(fireAt).onDone(() => this.#attempt(task, what, policy, attempt, firstAt, next))
          return
        }
      }
      failTask(task, taskFailed(n > 1 ? `${what} (after ${n} attempts)` : what, ev))
    })
  }

  #call(type: EntityClass, entity: EntityKey, op: string, args: unknown[]): Task<unknown> {
    this.#checkOpen('callEntity')
    checkOperation(type, entity[0], op)
    const id = `${entity[0]}@${entity[1]}`
    const section = this.#lock
    section?.beginCall(id, op)
    const seq = this.#decisions.issue({ kind: 'call', entity, op }, (s) =>
      section?.carries === true
        ? { c: 'call', seq: s, entity, op, args, lock: section.seq }
        : { c: 'call', seq: s, entity, op, args },
    )
    const task = new Task<unknown>(this.clock)
    this.#expect(seq, false, (ev) => {
      section?.endCall(id)
      if (ev.e === 'failed') failTask(task, taskFailed(`entity call ${id}.${op}`, ev))
      else completeTask(task, ev.result)
    })
    return task
  }

  #signal(type: EntityClass, entity: EntityKey, op: string, args: unknown[]): void {
    this.#checkOpen('signalEntity')
    checkOperation(type, entity[0], op)
    const id = `${entity[0]}@${entity[1]}`
    this.#lock?.checkSignal(id)
    this.#decisions.issue({ kind: 'signal', entity, op }, () => ({ c: 'signal', entity, op, args }))
  }
}
