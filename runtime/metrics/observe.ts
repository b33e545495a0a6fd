/**
 * What a node starts to be seen: the telemetry sample every second on `H.stats.<node>`, and — when
 * asked for — the Prometheus endpoint. One call to start both, one to stop both, so the node's own
 * code stays a few lines.
 */
import type { NodeRecorder } from './counters.ts'
import type { MetricsEndpoint } from './endpoint.ts'
import { nodeStats, publishStats } from './telemetry.ts'

/** What {@link observeNode} started. */
export interface Observer {
  /** The endpoint, when `metrics` was given. */
  readonly endpoint: MetricsEndpoint | undefined
  /** Stops the sample and closes the endpoint. Idempotent. */
  close(): Promise<void>
}

/**
 * Starts publishing the node's telemetry sample with `publish` (what `activities` and `workers` say
 * included); `endpoint`, the node's Prometheus endpoint when it has one (bound before the node
 * connected, see `serveMetrics`), is closed with it.
 */
export function observeNode(
  recorder: NodeRecorder,
  options: {
    node: string
    hub: string
    /** The node's activity pool: activities waiting for a slot, and running. */
    activities: { readonly backlog: number; readonly running: number }
    /** The node's activity workers (absent: the node runs no activities). */
    workers: { readonly offloaded: number } | undefined
    publish: (json: Uint8Array) => void
    endpoint: MetricsEndpoint | undefined
  },
): Observer {
  const { node, hub, endpoint, activities, workers } = options
  recorder.activities = () => ({
    queued: activities.backlog,
    running: activities.running,
    offloaded: workers?.offloaded ?? 0,
  })
  const stop = publishStats(() => nodeStats(recorder, node, hub), options.publish)
  let closed: Promise<void> | undefined
  return {
    endpoint,
    close() {
      if (closed === undefined) {
        stop()
        closed = endpoint?.close() ?? Promise.resolve()
      }
      return closed
    },
  }
}
