/**
 * What the client's API helpers (entity-api.ts, instance-api.ts) share of the client: its
 * connection, hub, large-value store, call transport and its open watches. One
 * small type so the helpers need not see the public {@link Client} (no import cycle).
 */
import type { BlobStore, Hub, NatsConnection } from '../nats/index.ts'
import type { CallTransport } from './transport.ts'
import type { Watches } from './watch.ts'

/** The parts of a client its API helpers use. */
export interface ApiCore {
  readonly nc: NatsConnection
  readonly hub: Hub
  readonly blobs: BlobStore
  /** How messages, calls and queries travel (transport.ts). */
  readonly transport: CallTransport
  /** The open watches: caught up after a reconnect, completed by close(). */
  readonly watches: Watches
  /** Number of partitions of the hub. */
  readonly partitions: number
  /** How long reads wait for the partition owner, in ms. */
  readonly queryTimeoutMs: number
}
