/**
 * runtime/metrics/ — what a node tells about itself: the recorder interfaces the engine calls
 * (recorder.ts, with no-op defaults), the recorders keeping plain numbers (counters.ts), the
 * Prometheus registry and endpoint read from them at scrape time (prometheus.ts, endpoint.ts), and
 * the telemetry sample published on `H.stats.<node>` every second (stats.ts, telemetry.ts), and the
 * reports that bring partition threads' counts into the node's recorder (threads.ts). Imports
 * nothing of the engine (runtime/util/ at most); the only folder that imports prom-client.
 */
export {
  noNodeMetrics,
  noPartitionMetrics,
  type NodeMetrics,
  type PartitionMetrics,
  type PartitionProbe,
} from './recorder.ts'
export { Buckets, NodeRecorder, PartitionCounters, NameCounters, BOUNDS } from './counters.ts'
export { metricsRegistry } from './prometheus.ts'
export {
  checkListenOptions,
  checkMetricsOptions,
  listenError,
  serveMetrics,
  type ListenTarget,
  type MetricsEndpoint,
  type MetricsOptions,
} from './endpoint.ts'
/** prom-client's registry, for those who hold Basalt's (`node.metricsRegistry`). */
export type { Registry } from 'prom-client'
export { nodeStats, publishStats, STATS_INTERVAL_MS } from './telemetry.ts'
export { observeNode, type Observer } from './observe.ts'
export {
  threadReport,
  ThreadMetrics,
  type ThreadReport,
  type PartitionReport,
  type BucketsReport,
} from './threads.ts'
export { zeroCounters, type NodeStats, type PartitionStats, type StatsCounters } from './stats.ts'
export {
  SpanKind,
  checkTracingOptions,
  loadTracing,
  noSpan,
  noTracing,
  parseTraceContext,
  formatTraceContext,
  type SpanAttributes,
  type SpanError,
  type TracerLike,
  type TraceSpan,
  type Tracing,
  type TracingOptions,
} from './tracing.ts'
