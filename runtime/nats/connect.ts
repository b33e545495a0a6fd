/**
 * Connecting to NATS and closing a connection, for nodes, clients, workers and the CLI: the one
 * place that calls the NATS client's `connect`.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { ConnectionError } from '../../actors/index.ts'
import { isReachable } from './connection-health.ts'

/** Connects to NATS; the error names the URL(s) when the server cannot be reached. */
export async function connectTo(servers: string | string[], name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250 })
  } catch (err) {
    const list = Array.isArray(servers) ? servers.join(', ') : servers
    throw new ConnectionError(`cannot reach NATS at ${list}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Drains a connection, and closes it when draining fails or cannot happen (the server is gone:
 * closed at once, without waiting for a drain that would only time out), so that a stopped node
 * or client never keeps reconnecting in the background.
 */
export async function closeConnection(nc: NatsConnection): Promise<void> {
  if (await isReachable(nc)) await nc.drain().catch(() => {})
  if (!nc.isClosed()) await nc.close().catch(() => {})
}
