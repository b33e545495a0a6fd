/**
 * The activities of a partition's instances: scheduled by a step, run on this node at once (before
 * the commit) or handed to every node's workers when this one is busy, and their outcomes passed
 * to the instance's next step. A synchronous activity this node runs completes as it is scheduled:
 * its outcome goes straight to the host, which runs the next step right after the current one, in
 * the same round — no item, no pending entry, no trip through the partition's local queue (about a
 * third of what each activity of a hello-sequence cost). Any other is pending: its item
 * `a.<p>.<id>.<seq>` is written in the round that scheduled it, and its outcome is queued for the
 * instance's next step. The pending set survives a crash in those items: after recovery every
 * activity scheduled but not completed runs again (at least once). One this node lacks but the
 * hub knows (a rolling deploy, or a node with no orchestrations that took over) stays pending, its
 * item kept, for an owner that runs it. Apart from the instance host (instance-host.ts).
 */
import { toErrorInfo, isThenable } from '../../actors/index.ts'
import {
  activityTaskOf,
  activityTaskTuple,
  type ActivityOutcome,
  type ActivityTask,
  type ActivityTaskTuple,
  type DoneMessage,
} from '../../actors/wire/index.ts'
import { BlobRef, copyOf, decode, encode, isUnloaded, itemKey } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'
import { tracedActivity } from '../activities/index.ts'
import type { Workflows } from './instance-model.ts'
import type { InstanceValues } from './instance-values.ts'

/** An activity that completed as it was scheduled: its outcome, for the instance's next step. */
export interface CompletedAtOnce {
  task: ActivityTask
  /** Its encoded size, as the step measured it (for its item, should it become pending after all). */
  size: number
  msg: DoneMessage
}

/** The pending activities of one partition's instances. */
export class InstanceActivities {
  readonly #pending = new Map<string, ActivityTask>()
  /**
   * Pending activities whose outcome their suspended instance could not hold (instance-host.ts):
   * they run again when it resumes. In memory only: after a crash every pending activity runs
   * again anyway.
   */
  readonly #dropped = new Set<string>()
  #closed = false

  constructor(
    readonly port: HostPort,
    readonly workflows: Workflows,
    readonly values: InstanceValues,
    /** Takes the outcome of an activity that completed as it was scheduled (see {@link schedule}). */
    readonly completedAtOnce: (done: CompletedAtOnce) => void,
  ) {}

  /**
   * Schedules a task a step asked for. True when it completed at once (a synchronous activity this
   * node runs, while the round has room): its outcome went to `completedAtOnce`, nothing is
   * pending. Else its item is written in the open round and it runs (see the module comment).
   */
  schedule(task: ActivityTask, size: number): boolean {
    if (this.#mayRunAtOnce(task)) {
      const outcome = this.workflows.activities.start(ownInput(task))
      if (!isThenable(outcome)) {
        this.completedAtOnce({ task, size, msg: this.#doneMessage(task, outcome) })
        return true
      }
      const key = this.#writeItem(task, size)
      this.#pending.set(key, task)
      void outcome.then((done) => this.#deliver(key, task, done))
      return false
    }
    this.#run(this.#writeItem(task, size), task)
    return false
  }

  /**
   * Makes an activity that completed at once pending after all, its outcome queued as any other's:
   * the host could not run the next step in this round (the round is full).
   */
  pend({ task, size, msg }: CompletedAtOnce): void {
    this.#pending.set(this.#writeItem(task, size), task)
    this.port.enqueueLocal(msg, true)
  }

  /** Whether `task` may run as it is scheduled: known here, not traced, nothing to load or offload. */
  #mayRunAtOnce(task: ActivityTask): boolean {
    const { activities, offload } = this.workflows
    return (
      !this.#closed &&
      !this.port.tracing.on &&
      activities.has(task.name) &&
      (offload === undefined || activities.backlog < offload.threshold) &&
      !isUnloaded(task.input) &&
      this.port.hasRoom()
    )
  }

  /** Writes a pending task's item in the open round; returns its key. */
  #writeItem(task: ActivityTask, size: number): string {
    const key = itemKey.activity(this.port.p, task.instanceId, task.seq)
    // encoded at the seal, if the activity is still pending then (a fast one is not)
    this.port.write(key, () => encode(activityTaskTuple(task)), size)
    return key
  }

  /** Runs every activity scheduled but not completed again (after recovery: at least once). */
  recovered(): void {
    for (const [key, task] of [...this.#pending]) this.#run(key, task, false)
  }

  /** Stops delivering outcomes (the partition stopped). */
  close(): void {
    this.#closed = true
  }

  #run(key: string, task: ActivityTask, mayOffload = true): void {
    this.#pending.set(key, task)
    const { activities, offload } = this.workflows
    // run here it would fail as unknown (offloaded too: a worker fails what its own node lacks)
    if (!activities.has(task.name) && this.port.knownElsewhere(`a:${task.name}`)) {
      this.port.notRunHere(`a:${task.name}`)
      return
    }
    if (mayOffload && offload !== undefined && activities.backlog >= offload.threshold) {
      // this node is busy: hand the task to every node's workers once the schedule is durable
      this.port.afterCommit(() => offload.publish(task))
      return
    }
    if (isUnloaded(task.input)) {
      // a large input stored by reference (a task re-run after recovery): load it first
      void this.port.blobs.load(task.input).then(
        () => this.#run(key, task, false),
        (err: unknown) => this.#deliver(key, task, { ok: 0, error: toErrorInfo(err) }),
      )
      return
    }
    // a synchronous activity's result is queued at once: the instance's next step runs in the
    // same round (one record, one encode of the instance for its whole run)
    const local = ownInput(task)
    const outcome = this.port.tracing.on
      ? tracedActivity(this.port.tracing, task, this.port.p, () => activities.start(local))
      : activities.start(local)
    if (isThenable(outcome)) void outcome.then((done) => this.#deliver(key, task, done))
    else this.#deliver(key, task, outcome)
  }

  /** Queues a task's outcome for its instance (unless forgotten meanwhile). */
  #deliver(key: string, task: ActivityTask, outcome: ActivityOutcome): void {
    if (this.#closed || !this.#pending.has(key)) return
    // the result waits in the partition's local queue, which is part of the commit record; a
    // record too full for every queued outcome leaves some out — recreatable: the task's item
    // stays pending until a record consumes the outcome, so after a crash the activity runs again
    this.port.enqueueLocal(this.#doneMessage(task, outcome), true)
  }

  /**
   * The message that brings a task's outcome to its instance: a large result goes by reference
   * (the round waits for its blob), one over the ceiling fails the task.
   */
  #doneMessage(task: ActivityTask, outcome: ActivityOutcome): DoneMessage {
    outcome = this.values.boundOutcome(task, outcome)
    return outcome.ok === 1
      ? { k: 'done', i: task.instanceId, s: task.seq, ok: 1, v: outcome.value }
      : { k: 'done', i: task.instanceId, s: task.seq, ok: 0, err: outcome.error }
  }

  /** Drops the outcome of a pending activity, which stays pending, to run again by {@link rerunDropped}. */
  dropOutcome(id: string, seq: number): void {
    this.#dropped.add(itemKey.activity(this.port.p, id, seq))
  }

  /** Runs again the pending activities of instance `id` whose outcomes were dropped. */
  rerunDropped(id: string): void {
    for (const key of this.#dropped) {
      const task = this.#pending.get(key)
      if (task !== undefined && task.instanceId !== id) continue
      this.#dropped.delete(key)
      if (task !== undefined) this.#run(key, task)
    }
  }

  /**
   * Forgets an activity of an instance (it completed, or the instance ended); a pending one's item
   * goes, and its large input (only in the item) once the round is durable. One that completed at
   * once has neither.
   */
  forget(id: string, seq: number): void {
    const key = itemKey.activity(this.port.p, id, seq)
    const task = this.#pending.get(key)
    if (task === undefined) return
    this.#pending.delete(key)
    this.#dropped.delete(key)
    this.port.dropItem(key)
    if (task.input instanceof BlobRef) this.values.dropAfterCommit([task.input])
  }

  /** Rebuilds a pending activity from its item `a.*` (at recovery). */
  replay(key: string, value: Uint8Array | null): void {
    if (value === null) {
      this.#pending.delete(key)
      return
    }
    // (with the trace context of the step that scheduled it: a re-run after recovery parents there)
    const task = activityTaskOf(decode(value, `activity ${key}`) as ActivityTaskTuple)
    this.#pending.set(key, task)
  }
}

/**
 * A task as an activity run on this node gets it: its input decoded, as a worker (or a re-run
 * after a crash) gets it — not the object the orchestration code holds, which a change in place
 * by the activity would change under the code, and not on replay. A large input (by reference)
 * as it is.
 */
function ownInput(task: ActivityTask): ActivityTask {
  const input = task.input
  // (a scalar or string is its own copy: no new task for it)
  if (typeof input !== 'object' || input === null || input instanceof BlobRef) return task
  return { ...task, input: copyOf(input) }
}
