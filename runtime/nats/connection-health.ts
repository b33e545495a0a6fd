/**
 * Whether a NATS connection can still reach its server, for shutdowns that must not wait on
 * answers that cannot come. A graceful stop (hand-overs, final snapshots, releases, a drain) is a
 * series of JetStream requests; with the server gone each one only times out, one after another,
 * and a node took about 25 s to exit on SIGTERM. These helpers let a stop give up on the graceful
 * path at once when the server is unreachable, or the moment it becomes so.
 */
import type { NatsConnection } from '@nats-io/transport-node'

/** How long a connected server may take to answer a ping before it counts as unreachable. */
const PING_MS = 2_000

/**
 * Whether `nc` is connected and its server answers a ping within `ms`. Resolves false at once
 * while the client is disconnected or reconnecting, and for a closed connection.
 */
export async function isReachable(nc: NatsConnection, ms = PING_MS): Promise<boolean> {
  if (nc.isClosed()) return false
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([nc.rtt().then(() => true as const), late])
  } catch {
    return false // rtt() rejects at once while disconnected
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs `work` while `nc` stays connected: resolves true once it completed, false at once when the
 * server is unreachable before it starts, or as soon as the connection is lost while it runs (the
 * work is left to fail on its own; the caller goes on without it).
 */
export async function whileConnected(nc: NatsConnection, work: () => Promise<void>): Promise<boolean> {
  if (!(await isReachable(nc))) return false
  let lost: () => void = () => {}
  const disconnected = new Promise<false>((resolve) => (lost = () => resolve(false)))
  const watch = (async () => {
    for await (const status of nc.status()) {
      if (
        status.type === 'disconnect' ||
        status.type === 'reconnecting' ||
        status.type === 'staleConnection'
      ) {
        lost()
        return
      }
    }
  })()
  void watch.catch(() => {})
  return Promise.race([work().then(() => true as const), disconnected])
}
