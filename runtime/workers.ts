/**
 * Activity workers: every node consumes the hub's task work queue, where busy nodes offload
 * activities (DESIGN.md §2). A worker runs the activity in the node's bounded pool and sends the
 * result to the origin partition's mailbox; the task is acknowledged only after that send is
 * durable, so a worker that dies mid-task leaves it to be redelivered (at least once; the
 * orchestration applies one result per task).
 */
import type { NatsConnection } from '@nats-io/transport-node'
import { AckPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream'
import type { ActivityPool, ActivityTask } from './activities.ts'
import type { Client } from './client.ts'
import { decode, encode } from './codec.ts'
import { fastJetStream } from './fast-js.ts'
import type { Hub } from './hub.ts'
import type { Logger } from './logger.ts'
import { boundOutcome, sizeOf, valueLimits } from './value-limits.ts'
import { PayloadTooLargeError, toErrorInfo } from '../actors/errors.ts'
import { isUnloaded } from './blob-ref.ts'
import type { ActivityOutcome } from './activities.ts'

const CONSUMER = 'workers'

/** The task queue of a hub, seen from one node. */
export class ActivityWorkers {
  #messages: ConsumerMessages | undefined
  #running = 0
  #slot: (() => void) | undefined
  /** Tasks this node offloaded, and tasks it ran for others. */
  offloaded = 0
  ranForOthers = 0

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly pool: ActivityPool,
    readonly client: Client,
    readonly logger: Logger,
  ) {}

  /** Creates the shared durable consumer if needed and starts consuming. */
  static async start(nc: NatsConnection, hub: Hub, pool: ActivityPool, client: Client, logger: Logger) {
    const workers = new ActivityWorkers(nc, hub, pool, client, logger)
    try {
      await hub.jsm.consumers.add(hub.names.taskStream, {
        durable_name: CONSUMER,
        ack_policy: AckPolicy.Explicit,
        ack_wait: 60 * 1e9,
        max_ack_pending: 10_000,
      })
    } catch (err) {
      // an equal consumer created by another node is fine
      if (!/already (exists|in use)/i.test(String(err))) throw err
    }
    const consumer = await jetstream(nc).consumers.get(hub.names.taskStream, CONSUMER)
    workers.#messages = await consumer.consume({ max_messages: Math.max(1, pool.concurrency) })
    void workers.#pump(workers.#messages)
    return workers
  }

  /** Hands a task to the work queue (called once the round that scheduled it is durable). */
  publish(task: ActivityTask): void {
    this.offloaded++
    void fastJetStream(this.nc)
      .publish(
        this.hub.names.tasks,
        encode([task.instanceId, task.seq, task.name, task.input, task.attempt]),
        {
          msgID: `${this.hub.names.hub}.task.${task.instanceId}.${task.seq}.${task.attempt}`,
        },
      )
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
      if (this.#running >= this.pool.concurrency) await new Promise<void>((r) => (this.#slot = r))
      this.#running++
      void this.#run(m).finally(() => {
        this.#running--
        this.#slot?.()
        this.#slot = undefined
      })
    }
  }

  async #run(m: JsMsg): Promise<void> {
    let task: ActivityTask
    try {
      const [instanceId, seq, name, input, attempt] = decode(m.data, 'activity task') as [
        string,
        number,
        string,
        unknown,
        number,
      ]
      task = { instanceId, seq, name, input, attempt }
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
    const outcome = boundOutcome(task, await this.#runLoaded(task), limit, (value, what) => {
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
