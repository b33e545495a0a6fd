/**
 * A stand-in NATS connection for unit tests that build a `PartitionStorage` over a fake hub: enough
 * for the JetStream clients its constructor makes, and nothing ever sent through it.
 */
import type { NatsConnection } from '@nats-io/transport-node'

/** A connection that is never closed and to which nothing is ever delivered. */
export function idleConnection(): NatsConnection {
  return {
    info: { client_id: 1 },
    subscribe: () => ({ unsubscribe() {} }),
    closed: () => new Promise(() => {}),
    options: {},
  } as unknown as NatsConnection
}
