/**
 * Activity workers: every node consumes the hub's task work queue, where busy nodes offload
 * activities (docs/DESIGN.md §2). A worker runs the activity in the node's bounded pool and sends
 * the result to the origin partition's mailbox; the task is acknowledged only after that send is
 * durable, so a worker that dies mid-task leaves it to be redelivered (at least once; the
 * orchestration applies one result per task).
 */
import type { ActivityPool, ActivityTask } from './pool.ts'
import {
  activityTaskOf,
  activityTaskTuple,
  type ActivityOutcome,
  type ActivityTaskTuple,
  type ActorMessage,
} from '../../actors/wire/index.ts'
import { PayloadTooLargeError, toErrorInfo } from '../../actors/index.ts'
import {
  decode,
  encode,
  fastJetStream,
  type Hub,
  type NatsConnection,
  type ConsumerMessages,
  type JsMsg,
  consumeTasks,
  isUnloaded,
  type BlobStore,
} from '../nats/index.ts'
import { type Logger, Semaphore } from '../util/index.ts'
import { boundOutcome, sizeOf, valueLimits } from '../partition/index.ts'
import type { Tracing } from '../metrics/index.ts'
import { tracedActivity } from './activity-spans.ts'

const CONSUMER = 'workers'

/**
 * How workers send an activity's result to its instance's partition (a `Client` is one): the
 * message durably in the partition's mailbox before `sendMessage` resolves.
 */
export interface ResultSender {
  sendMessage(msg: ActorMessage): Promise<void>
  /** Where large inputs and results are stored by reference. */
  readonly blobs: BlobStore
  /** Where the spans of the activities run here go (absent: nowhere). */
  readonly tracing?: Tracing
}

/** The task queue of a hub, seen from one node. */
export class ActivityWorkers {
  #messages: ConsumerMessages | undefined
  #slots: Semaphore
  /** Tasks this node offloaded, and tasks it ran for others. */
  offloaded = 0
  ranForOthers = 0

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly pool: ActivityPool,
    readonly client: ResultSender,
    readonly logger: Logger,
  ) {
    this.#slots = new Semaphore(pool.concurrency)
  }

  /** Creates the shared durable consumer if needed and starts consuming. */
  static async start(nc: NatsConnection, hub: Hub, pool: ActivityPool, client: ResultSender, logger: Logger) {
    const workers = new ActivityWorkers(nc, hub, pool, client, logger)
    workers.#messages = await consumeTasks(nc, hub, CONSUMER, Math.max(1, pool.concurrency))
    void workers.#pump(workers.#messages)
    return workers
  }

  /** Hands a task to the work queue (called once the round that scheduled it is durable). */
  publish(task: ActivityTask): void {
    this.offloaded++
    void fastJetStream(this.nc)
      .publish(this.hub.names.tasks, encode(activityTaskTuple(task)), {
        msgID: `${this.hub.names.hub}.task.${task.instanceId}.${task.seq}.${task.attempt}`,
      })
      .catch((err: unknown) => this.logger.warn('offloading an activity failed', { error: String(err) }))
  }

  /** Runs a task, its large input loaded first (a failure to load it fails the task). */
  async #runLoaded(task: ActivityTask): Promise<ActivityOutcome> {
    if (isUnloaded(task.input)) {
      try {
        await this.client.blobs.load(task.input)
      } catch (err) {
        return { ok: 0, error: toErrorInfo(err) }
      }
    }
    return this.pool.run(task)
  }

  async stop(): Promise<void> {
    await this.#messages?.close().catch(() => {})
  }

  async #pump(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      await this.#slots.acquire()
      void this.#run(m).finally(() => this.#slots.release())
    }
  }

  async #run(m: JsMsg): Promise<void> {
    let task: ActivityTask
    try {
      task = activityTaskOf(decode(m.data, 'activity task') as ActivityTaskTuple)
    } catch (err) {
      this.logger.warn('dropping an undecodable activity task', { error: String(err) })
      m.term()
      return
    }
    // a large result goes by reference (the client stores it before it sends the result); one
    // over the ceiling fails the task here (sending it could only fail, and the task would be
    // redelivered and run again for ever)
    const limit = valueLimits(this.nc.info?.max_payload ?? 1024 * 1024).instanceValue
    const ceiling = this.client.blobs.limits.ceiling
    const tracing = this.client.tracing
    const ran = await (tracing?.on === true
      ? tracedActivity(tracing, task, undefined, () => this.#runLoaded(task))
      : this.#runLoaded(task))
    const outcome = boundOutcome(task, ran, limit, (value, what) => {
      const size = sizeOf(value, ceiling)
      if (size > ceiling) throw new PayloadTooLargeError(what(), size, ceiling, 'maxValueBytes')
      return value
    })
    this.ranForOthers++
    try {
      await this.client.sendMessage(
        outcome.ok === 1
          ? { k: 'done', i: task.instanceId, s: task.seq, ok: 1, v: outcome.value }
          : { k: 'done', i: task.instanceId, s: task.seq, ok: 0, err: outcome.error },
      )
      m.ack()
    } catch (err) {
      this.logger.warn('activity result not delivered; the task will be redelivered', { error: String(err) })
      m.nak(1000)
    }
  }
}
