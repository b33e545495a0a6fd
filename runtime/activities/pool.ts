/**
 * Runs activities on this node: bounded concurrency, a per-call timeout, results as values or
 * error descriptions. Activities run at least once (they are re-run after a crash); their results
 * are applied once by the orchestration that scheduled them.
 */
import { TimeoutError, toErrorInfo, isThenable } from '../../actors/index.ts'
import type { ActivityDefinition } from '../../actors/orchestration/index.ts'
import type { ActivityOutcome, ActivityTask } from '../../actors/wire/index.ts'
import { checkValue } from '../../entities/index.ts'
import { valueOf } from '../nats/index.ts'

import { Semaphore } from '../util/index.ts'

export type { ActivityOutcome, ActivityTask }

/** Activity definitions by name, with a bounded pool that runs them. */
export class ActivityPool {
  readonly #defs = new Map<string, ActivityDefinition<any, any>>()
  readonly #slots: Semaphore
  /** Activities started (for tests and benchmarks), and running now. */
  started = 0
  running = 0

  constructor(
    defs: Iterable<ActivityDefinition<any, any>>,
    /** Most activities running at once on this node. */
    readonly concurrency = 100,
    /** Timeout of an activity attempt without its own `timeoutMs` (the node's `activityTimeoutMs`). */
    readonly defaultTimeoutMs = 5 * 60_000,
  ) {
    for (const def of defs) this.#defs.set(def.name, def)
    this.#slots = new Semaphore(concurrency)
  }

  /** Whether an activity of that name is registered. */
  has(name: string): boolean {
    return this.#defs.has(name)
  }

  /** Activities waiting for a free slot. */
  get backlog(): number {
    return this.#slots.waiting
  }

  /** Runs an activity (waiting for a free slot); never rejects. */
  async run(task: ActivityTask): Promise<ActivityOutcome> {
    return this.start(task)
  }

  /**
   * Runs an activity; the outcome of a synchronous one that found a free slot (or of an unknown
   * activity) comes back at once, without a promise. Never throws or rejects.
   */
  start(task: ActivityTask): ActivityOutcome | Promise<ActivityOutcome> {
    const def = this.#defs.get(task.name)
    if (def === undefined) {
      return {
        ok: 0,
        error: {
          name: 'UnknownActivityError',
          message: `unknown activity '${task.name}'`,
          code: 'BAD_INPUT',
        },
      }
    }
    if (!this.#slots.tryAcquire()) return this.#queued(def, task)
    return this.#invoke(def, task)
  }

  async #queued(def: ActivityDefinition<any, any>, task: ActivityTask): Promise<ActivityOutcome> {
    await this.#slots.acquire()
    return this.#invoke(def, task)
  }

  /** Runs an activity in a slot already held. */
  #invoke(def: ActivityDefinition<any, any>, task: ActivityTask): ActivityOutcome | Promise<ActivityOutcome> {
    this.started++
    this.running++
    try {
      // (a large input is a reference, loaded before the task starts)
      const input = valueOf(task.input)
      if (def.input !== undefined) {
        const checked = checkValue(def.input, input, `input of activity '${task.name}'`)
        if (isThenable(checked)) return this.#checkedFirst(def, task, checked)
        return this.#run(def, task, checked)
      }
      return this.#run(def, task, input)
    } catch (err) {
      this.#release()
      return { ok: 0, error: toErrorInfo(err) }
    }
  }

  /** Runs an activity whose schema validates asynchronously, once it has. */
  async #checkedFirst(
    def: ActivityDefinition<any, any>,
    task: ActivityTask,
    checked: PromiseLike<unknown>,
  ): Promise<ActivityOutcome> {
    let input: unknown
    try {
      input = await checked
    } catch (err) {
      this.#release()
      return { ok: 0, error: toErrorInfo(err) }
    }
    return this.#run(def, task, input)
  }

  /** Calls the activity's function with its (checked) input, in a slot already held. */
  #run(
    def: ActivityDefinition<any, any>,
    task: ActivityTask,
    input: unknown,
  ): ActivityOutcome | Promise<ActivityOutcome> {
    let value: unknown
    try {
      value = def.fn(input, {
        instanceId: task.instanceId,
        activityName: task.name,
        attempt: task.attempt,
        // (a task of an older version: its seq, unique within the execution)
        activityId: task.id ?? `${task.instanceId}:${task.seq}`,
      })
    } catch (err) {
      this.#release()
      return { ok: 0, error: toErrorInfo(err) }
    }
    if (!isThenable(value)) {
      // a synchronous activity: no timer, no race, no promise
      this.#release()
      return { ok: 1, value }
    }
    return this.#settle(def, task, value)
  }

  async #settle(
    def: ActivityDefinition<any, any>,
    task: ActivityTask,
    value: PromiseLike<unknown>,
  ): Promise<ActivityOutcome> {
    const timeoutMs = def.timeoutMs ?? this.defaultTimeoutMs
    let timer: NodeJS.Timeout | undefined
    try {
      return {
        ok: 1,
        value: await Promise.race([
          value,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new TimeoutError(`activity '${task.name}' did not finish in ${timeoutMs} ms`)),
              timeoutMs,
            )
            // a stopped node's process exits although an activity never settled
            timer.unref()
          }),
        ]),
      }
    } catch (err) {
      return { ok: 0, error: toErrorInfo(err) }
    } finally {
      clearTimeout(timer)
      this.#release()
    }
  }

  #release(): void {
    this.running--
    this.#slots.release()
  }
}
