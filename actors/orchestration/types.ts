/**
 * Contracts of the orchestration replay engine: the history an instance records, the events that
 * drive a step, the commands a step emits for the runtime to carry out, and the context that
 * orchestration code sees. Everything here is plain data (msgpack-able: no classes, no functions,
 * no `undefined` fields) except {@link OrchestrationContext}.
 *
 * History layout, one execution (continue-as-new starts a new history):
 *
 * ```text
 * started                      the first event: name, input, version, execution number
 * step t                       one per step; ctx.now() is the t of the latest step
 *   completed|failed|timerFired|event   the new events the step consumed, in arrival order
 *   scheduled|patch            the decisions the code made in the step, in the order it made them
 *   customStatus               the custom status, when the step changed it
 *   finished                   the outcome, when the step ended the execution
 * step t
 *   ...
 * ```
 *
 * Every command the code issues takes the next sequence number (`seq`), in issue order, and is
 * recorded as a `scheduled` event; replay checks the commands of re-run code against those records.
 */
import type { ErrorInfo } from '../errors.ts'
import type { Entity, EntityClass, OperationName, StandardSchemaV1 } from '../../entities/index.ts'
import type { Task, TimerTask } from './task.ts'

/** An entity as it travels in commands and history: `[type name, key]`. */
export type EntityKey = [type: string, key: string]

// -------------------------------------------------------------------------------------------------
// History

/** First event of an execution. */
export interface StartedEvent {
  e: 'started'
  /** Time of the step that started the execution (ms since the epoch). */
  t: number
  /** Orchestration name. */
  name: string
  input?: unknown
  /** The definition's version when the execution started, if it has one. */
  version?: string
  /** Execution number (1 for a fresh instance, +1 per continue-as-new), when the runtime gave it. */
  execution?: number
  /** The sequence number of the execution's first command, when not 0 (see {@link StartEvent.seq}). */
  seq?: number
}

/** Marks the start of a step; `t` is what `ctx.now()` returns during the step. */
export interface StepEvent {
  e: 'step'
  t: number
}

/** A command the code issued, recorded under its sequence number. Inputs are not recorded. */
export type ScheduledEvent = { e: 'scheduled'; seq: number } & (
  | { kind: 'activity'; name: string; attempt: number }
  | { kind: 'timer'; fireAt: number }
  | { kind: 'cancelTimer'; timer: number }
  | { kind: 'sub'; name: string; instanceId: string; attempt: number }
  | { kind: 'call'; entity: EntityKey; op: string }
  | { kind: 'signal'; entity: EntityKey; op: string }
  | { kind: 'start'; name: string; instanceId: string }
  | { kind: 'lock'; entities: EntityKey[] }
  | { kind: 'unlock'; entities: EntityKey[] }
)

/** The kinds of command a scheduled event records. */
export type ScheduledKind = ScheduledEvent['kind']

/** A task (activity, sub-orchestration, entity call, lock, timer) completed with `result`. */
export interface CompletedEvent {
  e: 'completed'
  seq: number
  result?: unknown
}

/** A task (activity, sub-orchestration, entity call, lock) failed. */
export interface FailedEvent {
  e: 'failed'
  seq: number
  error: ErrorInfo
}

/** A durable timer fired. (A `completed` event for a timer's seq means the same.) */
export interface TimerFiredEvent {
  e: 'timerFired'
  seq: number
}

/** An external event raised to the instance. */
export interface ExternalEvent {
  e: 'event'
  name: string
  data?: unknown
}

/** `ctx.patched(id)` returned true here when the code first ran (versioning marker). */
export interface PatchEvent {
  e: 'patch'
  id: string
}

/** The custom status after the step that set it. */
export interface CustomStatusEvent {
  e: 'customStatus'
  value: unknown
}

/** How an execution ended. */
export type FinishedEvent =
  | { e: 'finished'; status: 'completed'; output?: unknown }
  | { e: 'finished'; status: 'failed'; error: ErrorInfo }
  | { e: 'finished'; status: 'continuedAsNew'; input?: unknown }

/** One entry of an instance's history. Plain data; the runtime encodes it. */
export type HistoryEvent =
  | StartedEvent
  | StepEvent
  | ScheduledEvent
  | CompletedEvent
  | FailedEvent
  | TimerFiredEvent
  | ExternalEvent
  | PatchEvent
  | CustomStatusEvent
  | FinishedEvent

// -------------------------------------------------------------------------------------------------
// Step input and output

/**
 * Starts an execution: the first step of an instance (and of each continue-as-new) must carry one.
 * `execution` (1, 2, … per continue-as-new) makes `newGuid()` and default child instance ids
 * differ between executions of one instance.
 */
export interface StartEvent {
  e: 'started'
  input?: unknown
  execution?: number
  /**
   * The sequence number the execution's first command takes (default 0). The runtime gives each
   * execution a range of its own, so that an outcome still on its way from an earlier execution
   * (of an activity, child, entity call or timer it left behind) never matches a task of this one.
   */
  seq?: number
}

/** What can arrive for a step: a start, task completions and failures, timer fires, events. */
export type NewEvent = StartEvent | CompletedEvent | FailedEvent | TimerFiredEvent | ExternalEvent

/** Something the runtime must do for the instance. Only new commands are emitted, never replayed ones. */
export type Command =
  /**
   * Run an activity; answer with `completed`/`failed` for `seq`. `attempt` counts from 1; `first`:
   * the seq of the call's first attempt, on a retry (absent on the first attempt).
   */
  | { c: 'activity'; seq: number; name: string; input: unknown; attempt: number; first?: number }
  /** Fire a durable timer at `fireAt` (ms since the epoch); answer with `timerFired` (or `completed`). */
  | { c: 'timer'; seq: number; fireAt: number }
  /** Forget the timer `seq`; a fire that still arrives is ignored. */
  | { c: 'cancelTimer'; seq: number }
  /** Start a child instance; answer with its outcome as `completed`/`failed` for `seq`. */
  | { c: 'sub'; seq: number; name: string; instanceId: string; input: unknown; attempt: number }
  /**
   * Call an entity operation; answer with its result as `completed`/`failed` for `seq`. `lock`: the
   * call was made right after the lock request `lock` (before the code waited), so it travels with
   * that request and runs as soon as its entity is locked.
   */
  | { c: 'call'; seq: number; entity: EntityKey; op: string; args: unknown[]; lock?: number }
  /** Signal an entity operation (one-way). */
  | { c: 'signal'; entity: EntityKey; op: string; args: unknown[] }
  /** Start an instance, fire and forget. */
  | { c: 'start'; name: string; instanceId: string; input: unknown }
  /** Lock the entities, in this (canonical, sorted) order; answer with `completed` for `seq`. */
  | { c: 'lock'; seq: number; entities: EntityKey[] }
  /** Release the entities locked by this instance. */
  | { c: 'unlock'; entities: EntityKey[] }

/** Status of an instance after a step. */
export type StepStatus = 'running' | 'completed' | 'failed' | 'continuedAsNew'

/** Outcome of {@link OrchestrationExecutor.step}. */
export interface StepResult {
  /** Events to append to the history (step marker, consumed events, decisions, outcome). */
  appended: HistoryEvent[]
  /** New commands, in issue order. */
  commands: Command[]
  status: StepStatus
  /** The return value, when `completed`. */
  output?: unknown
  /** The failure, when `failed` (a {@link NonDeterminismError} when replay diverged). */
  error?: ErrorInfo
  /** The current custom status, once the code has set one. */
  customStatus?: unknown
  /** When `continuedAsNew`: the next execution's input and the unconsumed events it inherits. */
  continueAsNew?: { input: unknown; carriedEvents: NewEvent[] }
}

// -------------------------------------------------------------------------------------------------
// The context orchestration code sees

/** Retry policy of an activity or sub-orchestration; the waits between attempts are durable timers. */
export interface RetryPolicy {
  /** Wait before the second attempt (ms). */
  firstRetryIntervalMs: number
  /** Factor applied to the wait after each failed attempt (default 2). */
  backoffCoefficient?: number
  /** Upper bound of one wait (ms; default unbounded). */
  maxRetryIntervalMs?: number
  /** Attempts in all, the first included (≥ 1). */
  maxAttempts: number
  /**
   * No attempt starts later than this long after the first one was scheduled (ms); nor does one
   * whose wait would end past the latest time a Date can hold.
   */
  totalTimeoutMs?: number
  /** Whether a failure is worth another attempt (default: every failure is). */
  isRetryable?: (err: ErrorInfo) => boolean
}

/** Levels of the replay-safe logger. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** Where the replay-safe logger writes: the runtime's logger, a test array, … */
export type LogSink = (line: string, level: LogLevel) => void

/** A logger whose lines appear once: it is silent while the code replays history. */
export interface ReplaySafeLogger {
  debug(...parts: unknown[]): void
  info(...parts: unknown[]): void
  warn(...parts: unknown[]): void
  error(...parts: unknown[]): void
}

/** A held critical section (see {@link OrchestrationContext.lock}). */
export interface LockHandle {
  /** The locked entities, in acquisition order. */
  readonly entities: readonly EntityKey[]
  /** Leaves the critical section (emits the unlock command); later calls do nothing. */
  release(): void
}

/** An entity addressed by class and key, for {@link OrchestrationContext.lock}. */
export interface EntityRef<E extends Entity = Entity> {
  readonly type: EntityClass<E>
  readonly key: string
}

type OpArgs<E, K extends keyof E> = E[K] extends (...args: infer A) => unknown ? A : never
type OpResult<E, K extends keyof E> = E[K] extends (...args: never[]) => infer R ? Awaited<R> : never

/** Two-way entity proxy of an orchestration: each operation returns a task of its result. */
export type EntityCallProxy<E> = { [K in OperationName<E>]: (...args: OpArgs<E, K>) => Task<OpResult<E, K>> }

/** One-way entity proxy of an orchestration: each operation is a fire-and-forget signal. */
export type EntitySignalProxy<E> = { [K in OperationName<E>]: (...args: OpArgs<E, K>) => void }

/** Options of {@link OrchestrationContext.callActivity}. */
export interface CallActivityOptions {
  /** Retry policy of this call (default: the activity's own, if it has one). */
  retry?: RetryPolicy
}

/** Options of {@link OrchestrationContext.callSubOrchestration}. */
export interface CallSubOrchestrationOptions {
  /** The child's instance id (default `<this id>:<seq>`). */
  instanceId?: string
  /** Retry policy of this call (default: none). */
  retry?: RetryPolicy
}

/** Options of {@link OrchestrationContext.startOrchestration}. */
export interface StartOrchestrationOptions {
  /** The instance id (default `<this id>:<seq>`). */
  instanceId?: string
}

/** Options of {@link OrchestrationContext.continueAsNew}. */
export interface ContinueAsNewOptions {
  /** Carry the events not yet consumed over to the new execution (default true). */
  preserveUnprocessedEvents?: boolean
}

/** Options of {@link OrchestrationContext.waitForEvent}. */
export interface WaitForEventOptions {
  /**
   * Give up after this many ms (a durable timer): the wait fails with `TimeoutError` and no
   * longer takes an event. Positive; default: wait for ever.
   */
  timeoutMs?: number
}

/** The result type of a task. */
export type TaskResult<T> = T extends Task<infer R> ? R : never

/**
 * What orchestration code gets instead of I/O, clocks and randomness. Every method that creates a
 * task schedules the work at once (like Durable Functions); awaiting it with `yield*` is separate,
 * so tasks created together run in parallel.
 */
export interface OrchestrationContext {
  /** This instance's id. */
  readonly instanceId: string
  /** True while the code re-runs events already in history (no new effects happen then). */
  readonly isReplaying: boolean
  /** Logger that is silent during replay. */
  readonly log: ReplaySafeLogger

  /** Time of the current step (ms since the epoch): the same value on every replay. */
  now(): number
  /** A UUID (v5 form) derived from the instance id, execution and a counter: the same on every replay. */
  newGuid(): string

  /**
   * Runs an activity. With a retry policy (here or on the definition) a failed attempt is
   * retried after a durable timer; the task fails with {@link TaskFailedError} when the policy
   * gives up. @example const s = yield* ctx.callActivity(sayHello, 'Tokyo')
   */
  callActivity<I, O>(def: ActivityDefinition<I, O>, input: I, options?: CallActivityOptions): Task<O>
  /**
   * Runs a child orchestration instance and waits for its output. Its id defaults to
   * `<this id>:<seq>` (`<this id>:<execution>:<seq>` after a continue-as-new). Not allowed inside a
   * critical section.
   */
  callSubOrchestration<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options?: CallSubOrchestrationOptions,
  ): Task<O>
  /** Starts an instance and does not wait for it (fire and forget). Resolves to nothing. */
  startOrchestration<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options?: StartOrchestrationOptions,
  ): void
  /**
   * A durable timer that completes at `fireAt` — a time (Date, or ms since the epoch), not a delay:
   * `ctx.createTimer(ctx.now() + 5_000)` waits five seconds. A time before the year 2000 is refused
   * (`createTimer(5000)` would otherwise fire at once), as is one past the latest time a Date can
   * hold. `cancel()` it when it lost a race.
   */
  createTimer(fireAt: number | Date): TimerTask
  /**
   * Waits for the next external event of that name. Events that arrive before any wait are kept in
   * arrival order and consumed FIFO by later waits; an event goes to the oldest unfinished wait of
   * its name, even one that lost an `any` race to a timer — so to wait with a timeout give
   * `timeoutMs` (the task then fails with `TimeoutError` when no event came in time, and an event
   * arriving later goes to the next wait, or is kept for it), or in a loop keep the same wait task
   * until it wins. @example const { by } = yield* ctx.waitForEvent(approval, { timeoutMs: 60_000 })
   */
  waitForEvent<T>(event: EventDefinition<T>, options?: WaitForEventOptions): Task<T>
  waitForEvent<T = unknown>(name: string, options?: WaitForEventOptions): Task<T>
  /** Completes when every task did (results in order); fails with the first failure to arrive. */
  all<const T extends readonly Task<unknown>[]>(
    tasks: T,
  ): Task<{ -readonly [K in keyof T]: TaskResult<T[K]> }>
  /** Completes with the first task to finish (successfully or not). Empty lists are rejected. */
  any<const T extends readonly Task<unknown>[]>(tasks: T): Task<T[number]>

  /** Calls entity operations: `yield* ctx.callEntity(Counter, 'c1').add(5)`. */
  callEntity<E extends Entity>(type: EntityClass<E>, key: string): EntityCallProxy<E>
  /** Signals entity operations (one-way): `ctx.signalEntity(Counter, 'c1').add(5)`. */
  signalEntity<E extends Entity>(type: EntityClass<E>, key: string): EntitySignalProxy<E>
  /** Names an entity for {@link lock}. */
  entityRef<E extends Entity>(type: EntityClass<E>, key: string): EntityRef<E>
  /**
   * Enters a critical section over the entities (acquired in sorted `type@key` order, so no
   * deadlock). Inside it: no nested lock, no sub-orchestration, calls only to locked entities (one
   * at a time each), signals only to other entities. Released by `release()` or when the
   * execution ends. Calls to locked entities made before the code first waits (`yield*`) after
   * `lock` travel with the lock request: each runs as soon as its entity is locked, which saves a
   * round trip (`const locking = ctx.lock(a, b); const first = ctx.callEntity(A, a).get();
   * const lock = yield* locking`). A `release()` issued while calls are in flight takes effect
   * at each entity after those calls.
   */
  lock(...entities: EntityRef[]): Task<LockHandle>

  /**
   * Versioning: true for code running live the first time it gets here (recorded in history),
   * and on replay whether the history recorded it here, so old instances keep the old path.
   * @example if (ctx.patched('send-receipt')) yield* ctx.callActivity(sendReceipt, order)
   */
  patched(id: string): boolean
  /** Sets the custom status (persisted with the step, visible to status queries). */
  setCustomStatus(value: unknown): void
  /**
   * Ends this execution and starts a new one with a fresh history and `input`. Events not yet
   * consumed are carried over unless `preserveUnprocessedEvents` is false; the new execution's
   * first step takes them all, which fails the instance when they are more than one step may add
   * (~256 kB with the default `max_payload`). Never returns.
   * @example return ctx.continueAsNew(count + 1)
   */
  continueAsNew(input: unknown, options?: ContinueAsNewOptions): never
}

// -------------------------------------------------------------------------------------------------
// Definitions

/** The generator function of an orchestration. It must be deterministic (see the context's API). */
export type OrchestrationFunction<I, O> = (
  ctx: OrchestrationContext,
  input: I,
) => Generator<Task<unknown>, O, unknown>

/** Options of {@link orchestration}. */
export interface OrchestrationOptions<I = unknown> {
  /** Recorded in the `started` event of each execution; informational. */
  version?: string
  /**
   * Schema of the input (any Standard Schema: zod, valibot, arktype, hand-written). A start whose
   * input it refuses is refused with `BadInputError` naming the issues — by the client before
   * sending (synchronous schemas), and by the node, whose instance then runs with, and stores, the
   * schema's output.
   */
  input?: StandardSchemaV1<unknown, I>
}

/** Options of {@link activity}. */
export interface ActivityOptions<I = unknown> {
  /** Per-attempt timeout in ms (default: the node's `activityTimeoutMs`). */
  timeoutMs?: number
  /** Retry policy used when a call gives none. */
  retry?: RetryPolicy
  /**
   * Schema of the input: `ctx.callActivity` throws `BadInputError` at the call when a synchronous
   * schema refuses it, and where the activity runs an attempt fails with `BadInputError` (code
   * `BAD_INPUT`) before the function is called; the function gets the schema's output.
   */
  input?: StandardSchemaV1<unknown, I>
}

/** An orchestration: its name, generator function and optional version. Made by {@link orchestration}. */
export interface OrchestrationDefinition<I, O> {
  readonly kind: 'orchestration'
  readonly name: string
  readonly fn: OrchestrationFunction<I, O>
  /** Recorded in the `started` event of each execution; informational. */
  readonly version?: string
  /** Schema of the input, checked at each start (typed loosely: `I` stays contravariant). */
  readonly input?: StandardSchemaV1
}

/** Key of the type-only member that carries an event's payload type. */
declare const payloadType: unique symbol

/**
 * An external event: its name, and as a type only its payload, so that `ctx.waitForEvent(def)`
 * and `client.raiseEvent(id, def, data)` agree on both. Made by {@link externalEvent}.
 */
export interface EventDefinition<T> {
  readonly kind: 'event'
  readonly name: string
  /**
   * Schema of the payload: `client.raiseEvent(id, def, data)` refuses data it refuses (synchronous
   * schemas), and `ctx.waitForEvent(def)` fails with `BadInputError` on an event it refuses, or
   * completes with the schema's output.
   */
  readonly schema?: StandardSchemaV1<unknown, T>
  /** Never set: carries the payload type `T`. */
  readonly [payloadType]?: T
}

/** What an activity function receives besides its input. */
export interface ActivityContext {
  /** The orchestration instance that scheduled it. */
  instanceId: string
  activityName: string
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: number
  /**
   * This call of the activity, the same for all its attempts and for a run repeated after a crash,
   * and different for every other call (another call in the same code, another execution after
   * continue-as-new, another instance under the same id): an idempotency key for the side effect
   * (`<instanceId>:<execution>:<call>`, opaque). Activities run at least once: pass it to the
   * service the activity calls (a payment API's idempotency key, a unique row id) so that a repeated
   * run does not repeat the effect.
   */
  activityId: string
}

/** The function of an activity: any code, I/O allowed; it runs at least once per attempt. */
export type ActivityFunction<I, O> = (input: I, ctx: ActivityContext) => O | Promise<O>

/** An activity: its name, function, timeout and default retry policy. Made by {@link activity}. */
export interface ActivityDefinition<I, O> {
  readonly kind: 'activity'
  readonly name: string
  readonly fn: ActivityFunction<I, O>
  /** Per-attempt timeout the runtime applies (default: the runtime's). */
  readonly timeoutMs?: number
  /** Retry policy used when a call gives none. */
  readonly retry?: RetryPolicy
  /** Schema of the input, checked at each call and attempt (typed loosely: `I` stays contravariant). */
  readonly input?: StandardSchemaV1
}
