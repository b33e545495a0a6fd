/**
 * The JetStream consumers the layers above read with: a partition's mailbox (an ordered consumer
 * from a stream position) and the hub's activity task work queue (one durable pull consumer shared
 * by every node's workers). Here so that the partition and the workers need no `@nats-io/*`
 * import of their own.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  type ConsumerMessages,
  type JetStreamClient,
} from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Hub } from './hub.ts'

/**
 * Consumes the messages of `subject` in `stream` from sequence `fromSeq` on, with an ordered
 * consumer (recreated by the client library when it loses its place).
 */
export async function consumeFrom(
  js: JetStreamClient,
  stream: string,
  subject: string,
  fromSeq: number,
  options: { max_messages: number; expires: number },
): Promise<ConsumerMessages> {
  const consumer = await js.consumers.get(stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
  })
  return consumer.consume(options)
}

/**
 * Consumes the hub's task work queue through the durable consumer `durable`, creating it if needed
 * (an equal consumer another node created first is fine). Each task is acknowledged explicitly;
 * an unacknowledged one is redelivered after a minute.
 */
export async function consumeTasks(
  nc: NatsConnection,
  hub: Hub,
  durable: string,
  maxMessages: number,
): Promise<ConsumerMessages> {
  try {
    await hub.jsm.consumers.add(hub.names.taskStream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: 60 * 1e9,
      max_ack_pending: 10_000,
    })
  } catch (err) {
    if (!/already (exists|in use)/i.test(String(err))) throw err
  }
  const consumer = await jetstream(nc).consumers.get(hub.names.taskStream, durable)
  return consumer.consume({ max_messages: maxMessages })
}
