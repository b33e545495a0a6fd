/**
 * Tasks: what orchestration code awaits with `yield*`. A task is created (and its work scheduled)
 * by the context; it completes or fails when the executor applies the matching history event, and
 * the combinators `all`/`any` complete from their children's completions in the order those
 * arrived. Nothing here is asynchronous: the executor decides when code resumes.
 */
import { IllegalStateError } from '../errors.ts'

/** Counts completions within one execution, so combinators can tell which child finished first. */
export interface TaskClock {
  n: number
}

type TaskState = 'pending' | 'completed' | 'failed'

let settle!: <T>(
  task: Task<T>,
  state: 'completed' | 'failed',
  value: T | undefined,
  error: Error | undefined,
) => void

/**
 * Something an orchestration waits for: an activity, a timer, an event, a child instance, an
 * entity call, a lock or a combination of those. Await it with `yield*`, which returns the result
 * or throws the failure (a {@link TaskFailedError} for activities, children and entity calls).
 *
 * @example
 * ```ts
 * const t = ctx.callActivity(sayHello, 'Tokyo') // scheduled now
 * const greeting = yield* t                    // waits for it
 * ```
 */
export class Task<T> {
  #state: TaskState = 'pending'
  #result: T | undefined
  #error: Error | undefined
  #order = -1
  #listeners: Array<() => void> | undefined

  /** @internal Tasks are made by the orchestration context. */
  constructor(readonly clock: TaskClock) {}

  /** True once the task finished, successfully or not. */
  get isCompleted(): boolean {
    return this.#state !== 'pending'
  }

  /** True when the task failed. */
  get isFailed(): boolean {
    return this.#state === 'failed'
  }

  /** The result of a task that completed successfully (undefined otherwise). */
  get result(): T | undefined {
    return this.#result
  }

  /** The failure of a failed task (undefined otherwise). */
  get error(): Error | undefined {
    return this.#error
  }

  /** @internal Position of this task's completion in its execution (-1 while pending). */
  get order(): number {
    return this.#order
  }

  /** @internal Runs `fn` when the task finishes (at once if it has). */
  onDone(fn: () => void): void {
    if (this.#state !== 'pending') fn()
    else (this.#listeners ??= []).push(fn)
  }

  /** Yields the task until it has finished, then returns its result or throws its failure. */
  *[Symbol.iterator](): Generator<Task<unknown>, T, unknown> {
    if (this.#state === 'pending') yield this
    if (this.#state === 'failed') throw this.#error
    if (this.#state === 'pending')
      throw new IllegalStateError('an orchestration resumed before its task finished')
    return this.#result as T
  }

  static {
    settle = (task, state, value, error) => {
      if (task.#state !== 'pending') return
      task.#state = state
      task.#result = value
      task.#error = error
      task.#order = task.clock.n++
      const listeners = task.#listeners
      task.#listeners = undefined
      if (listeners !== undefined) for (const fn of listeners) fn()
    }
  }
}

/** @internal Completes a pending task (no effect on a finished one). */
export function completeTask<T>(task: Task<T>, value: T): void {
  settle(task, 'completed', value, undefined)
}

/** @internal Fails a pending task (no effect on a finished one). */
export function failTask(task: Task<unknown>, error: Error): void {
  settle(task, 'failed', undefined, error)
}

/**
 * A durable timer. A cancelled timer never completes (and a fire that still arrives is ignored);
 * cancelling a timer that already fired does nothing.
 */
export class TimerTask extends Task<void> {
  #cancelled = false
  readonly #onCancel: (timer: TimerTask) => void

  /** @internal */
  constructor(
    clock: TaskClock,
    /** Timer sequence number. */
    readonly seq: number,
    /** When it fires (ms since the epoch). */
    readonly fireAt: number,
    onCancel: (timer: TimerTask) => void,
  ) {
    super(clock)
    this.#onCancel = onCancel
  }

  /** True once {@link cancel} took effect. */
  get isCancelled(): boolean {
    return this.#cancelled
  }

  /** Cancels the timer (emits a cancel command) unless it already fired or was cancelled. */
  cancel(): void {
    if (this.#cancelled || this.isCompleted) return
    this.#onCancel(this)
    this.#cancelled = true
  }
}

/**
 * Completes when every task has completed, with their results in order; fails as soon as one
 * fails, with the failure that arrived first (children that already finished count in the order
 * they finished).
 */
export function whenAll(clock: TaskClock, tasks: readonly Task<unknown>[]): Task<unknown[]> {
  const all = new Task<unknown[]>(clock)
  const results = () => tasks.map((t) => t.result)
  let firstFailed: Task<unknown> | undefined
  let pending = 0
  for (const t of tasks) {
    if (!t.isCompleted) pending++
    else if (t.isFailed && (firstFailed === undefined || t.order < firstFailed.order)) firstFailed = t
  }
  if (firstFailed !== undefined) failTask(all, firstFailed.error!)
  else if (pending === 0) completeTask(all, results())
  else {
    for (const t of tasks) {
      if (t.isCompleted) continue
      t.onDone(() => {
        if (t.isFailed) failTask(all, t.error!)
        else if (--pending === 0) completeTask(all, results())
      })
    }
  }
  return all
}

/** Completes with the first task to finish (successfully or not); children already done count first. */
export function whenAny<T extends Task<unknown>>(clock: TaskClock, tasks: readonly T[]): Task<T> {
  const any = new Task<T>(clock)
  let winner: T | undefined
  for (const t of tasks) {
    if (t.isCompleted && (winner === undefined || t.order < winner.order)) winner = t
  }
  if (winner !== undefined) completeTask(any, winner)
  else for (const t of tasks) t.onDone(() => completeTask(any, t))
  return any
}
