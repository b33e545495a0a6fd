/**
 * The activities of a partition's instances: scheduled by a step (their item `a.<p>.<id>.<seq>`
 * is written in the same round), run on this node at once (before the commit) or handed to every
 * node's workers when this one is busy, and their outcomes queued for the instance's next step.
 * The pending set survives a crash in those items: after recovery every activity scheduled but
 * not completed runs again (at least once). One this node lacks but the hub knows (a rolling
 * deploy, or a node with no orchestrations that took over) stays pending, its item kept, for an
 * owner that runs it. Apart from the instance host (instance-host.ts).
 */
import { toErrorInfo, isThenable } from '../../actors/index.ts'
import {
  activityTaskOf,
  activityTaskTuple,
  type ActivityOutcome,
  type ActivityTask,
  type ActivityTaskTuple,
} from '../../actors/wire/index.ts'
import { BlobRef, decode, encode, isUnloaded, itemKey } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'
import { tracedActivity } from '../activities/index.ts'
import type { Workflows } from './instance-model.ts'
import type { InstanceValues } from './instance-values.ts'

/** The pending activities of one partition's instances. */
export class InstanceActivities {
  readonly #pending = new Map<string, ActivityTask>()
  #closed = false

  constructor(
    readonly port: HostPort,
    readonly workflows: Workflows,
    readonly values: InstanceValues,
  ) {}

  /** Schedules a task a step asked for: its item in the open round, and a run. */
  schedule(task: ActivityTask, size: number): void {
    const key = itemKey.activity(this.port.p, task.instanceId, task.seq)
    // encoded at the seal, if the activity is still pending then (a fast one is not)
    this.port.write(key, () => encode(activityTaskTuple(task)), size)
    this.#run(key, task)
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
    if (!activities.has(task.name) && this.port.knownElsewhere(`a:${task.name}`)) return
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
    const outcome = this.port.tracing.on
      ? tracedActivity(this.port.tracing, task, this.port.p, () => activities.start(task))
      : activities.start(task)
    if (isThenable(outcome)) void outcome.then((done) => this.#deliver(key, task, done))
    else this.#deliver(key, task, outcome)
  }

  /** Queues a task's outcome for its instance (unless forgotten meanwhile). */
  #deliver(key: string, task: ActivityTask, outcome: ActivityOutcome): void {
    if (this.#closed || !this.#pending.has(key)) return
    // the result waits in the partition's local queue, which is part of the commit record: a large
    // one goes by reference (the round waits for its blob), one over the ceiling fails the task;
    // a record too full for every queued outcome leaves some out — recreatable: the task's item
    // stays pending until a record consumes the outcome, so after a crash the activity runs again
    outcome = this.values.boundOutcome(task, outcome)
    this.port.enqueueLocal(
      outcome.ok === 1
        ? { k: 'done', i: task.instanceId, s: task.seq, ok: 1, v: outcome.value }
        : { k: 'done', i: task.instanceId, s: task.seq, ok: 0, err: outcome.error },
      true,
    )
  }

  /** Forgets a pending activity; its large input (only in the activity's item) goes after the commit. */
  forget(id: string, seq: number): void {
    const key = itemKey.activity(this.port.p, id, seq)
    const task = this.#pending.get(key)
    this.#pending.delete(key)
    this.port.dropItem(key)
    if (task?.input instanceof BlobRef) this.values.dropAfterCommit([task.input])
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
