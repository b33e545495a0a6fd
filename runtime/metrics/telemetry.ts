/**
 * The node telemetry sample (stats.ts): built from the node's recorder and published every second
 * on `H.stats.<nodeId>` (core NATS, JSON) until stopped. Publishing is fire-and-forget: a sample
 * nobody hears, or one lost while the connection is down, costs nothing (counters are cumulative).
 */
import type { NodeRecorder } from './counters.ts'
import type { NodeStats, PartitionStats } from './stats.ts'

/** How often a node publishes its sample, in ms. */
export const STATS_INTERVAL_MS = 1000

/** The sample of a node now. */
export function nodeStats(recorder: NodeRecorder, node: string, hub: string): NodeStats {
  const partitions: PartitionStats[] = []
  for (const c of recorder.partitions.values()) {
    const stats = c.toStats()
    if (stats !== undefined) partitions.push(stats)
  }
  partitions.sort((a, b) => a.p - b.p)
  return {
    v: 1,
    node,
    hub,
    at: Date.now(),
    startedAt: recorder.startedAt,
    partitions,
    totals: recorder.totals(),
    activities: recorder.activityTotals(),
  }
}

/**
 * Publishes `sample()` with `publish` every {@link STATS_INTERVAL_MS} (and once at once); returns
 * the function that stops it. A failing publish is skipped, never thrown.
 */
export function publishStats(sample: () => NodeStats, publish: (json: Uint8Array) => void): () => void {
  const encoder = new TextEncoder()
  const tick = () => {
    try {
      publish(encoder.encode(JSON.stringify(sample())))
    } catch {
      // the connection is closing or down: the next sample says the same and more
    }
  }
  tick()
  const timer = setInterval(tick, STATS_INTERVAL_MS)
  timer.unref()
  return () => clearInterval(timer)
}
