/**
 * Basalt's Prometheus metrics: a prom-client registry whose metrics read a node's recorder
 * (counters.ts) at scrape time. Nothing here runs per message; the engine only adds to plain
 * numbers. The only file besides endpoint.ts that imports prom-client. Every metric, with its
 * meaning, is listed in docs/OPERATIONS.md ("Metrics").
 */
import { Registry, type Metric, type MetricValue } from 'prom-client'
import type { Buckets, NodeRecorder, PartitionCounters } from './counters.ts'

type Labels = Record<string, string | number>
type MetricType = 'counter' | 'gauge' | 'histogram'
type Value = MetricValue<string> & { metricName?: string }

/** A metric whose values are computed when the registry is read (prom-client's metric contract). */
class ScrapedMetric {
  readonly aggregator = 'sum' as const

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly values: () => Value[],
    /** Awaited before reading: the node's partition threads report (shared by a scrape's reads). */
    readonly before: () => Promise<void>,
    /** Labels every value carries (`hub`): kept through prom-client's `Registry.merge`. */
    readonly common: Labels,
  ) {}

  async get(): Promise<{
    name: string
    help: string
    type: MetricType
    values: Value[]
    aggregator: 'sum'
  }> {
    await this.before()
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.values().map((v) => ({ ...v, labels: { ...this.common, ...v.labels } })),
      aggregator: this.aggregator,
    }
  }

  reset(): void {}
}

/** The values of one histogram series: cumulative buckets, sum and count. */
function histogramValues(name: string, labels: Labels, buckets: Buckets): Value[] {
  const out: Value[] = []
  let cumulative = 0
  for (let i = 0; i <= buckets.bounds.length; i++) {
    cumulative += buckets.counts[i]!
    const le = i < buckets.bounds.length ? buckets.bounds[i]! : '+Inf'
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative })
  }
  out.push({ metricName: `${name}_sum`, labels, value: buckets.sum })
  out.push({ metricName: `${name}_count`, labels, value: buckets.count })
  return out
}

/**
 * A registry with Basalt's metrics of `node` (every name starts with `basalt_`), each value
 * labelled `hub="<hub>"`, so that one Prometheus scraping the nodes of several hubs, or a process
 * running nodes on several, tells them apart. Merge it into your own with prom-client's
 * `Registry.merge([yours, registry])`.
 *
 * @example
 * const registry = metricsRegistry(node.metrics, 'orders')
 * const text = await registry.metrics()
 */
export function metricsRegistry(node: NodeRecorder, hub: string): Registry {
  const registry = new Registry()
  const add = (name: string, help: string, type: MetricType, values: () => Value[]) =>
    registry.registerMetric(
      new ScrapedMetric(name, help, type, values, () => node.refreshed(), { hub }) as unknown as Metric,
    )
  const partitions = () => [...node.partitions.values()].sort((a, b) => a.p - b.p)
  const perPartition = (read: (c: PartitionCounters) => number | undefined) => () => {
    const out: Value[] = []
    for (const c of partitions()) {
      const value = read(c)
      if (value !== undefined) out.push({ labels: { partition: c.p }, value })
    }
    return out
  }
  const partitionHistogram = (name: string, of: (c: PartitionCounters) => Buckets) => () =>
    partitions().flatMap((c) => histogramValues(name, { partition: c.p }, of(c)))
  const perName = (read: (n: { started: number; completed: number; failed: number }) => number) => () =>
    [...node.names].map(([name, c]) => ({ labels: { name }, value: read(c) }))

  // per partition
  add(
    'basalt_mailbox_backlog',
    'Mailbox envelopes received by the partition and not processed yet',
    'gauge',
    perPartition((c) => c.probe?.backlog),
  )
  add(
    'basalt_record_messages',
    'Messages processed per commit record',
    'histogram',
    partitionHistogram('basalt_record_messages', (c) => c.recordMessages),
  )
  add(
    'basalt_commit_latency_seconds',
    'Time from sealing a commit record to its acknowledgement by the log',
    'histogram',
    partitionHistogram('basalt_commit_latency_seconds', (c) => c.commitSeconds),
  )
  add(
    'basalt_records_total',
    'Commit records appended',
    'counter',
    perPartition((c) => c.records),
  )
  add(
    'basalt_messages_total',
    'Messages processed',
    'counter',
    perPartition((c) => c.messages),
  )
  add(
    'basalt_snapshot_duration_seconds',
    'Duration of background snapshots',
    'histogram',
    partitionHistogram('basalt_snapshot_duration_seconds', (c) => c.snapshotSeconds),
  )
  add(
    'basalt_snapshot_lag_records',
    'Records committed since the last completed snapshot',
    'gauge',
    perPartition((c) => (c.probe === undefined ? undefined : c.snapshotLag)),
  )
  add(
    'basalt_cache_entities',
    'Entity states held in memory',
    'gauge',
    perPartition((c) => c.probe?.cachedEntities),
  )
  add(
    'basalt_cache_hits_total',
    'Entity operations that found their state in memory',
    'counter',
    perPartition((c) => c.cacheHits),
  )
  add(
    'basalt_cache_misses_total',
    'Entity states read from the state bucket',
    'counter',
    perPartition((c) => c.cacheMisses),
  )
  add(
    'basalt_dedup_drops_total',
    'Mailbox envelopes (or groups of another partition) dropped as duplicates',
    'counter',
    perPartition((c) => c.duplicates),
  )
  add(
    'basalt_dead_letters_total',
    'Messages moved to the dead-letter stream',
    'counter',
    perPartition((c) => c.deadLetters),
  )
  // per node
  add('basalt_activity_queue_length', 'Activities waiting for a free slot on this node', 'gauge', () => [
    { labels: {}, value: node.activityTotals().queued },
  ])
  add('basalt_activity_offloads_total', "Activities offloaded to the hub's task queue", 'counter', () => [
    { labels: {}, value: node.activityTotals().offloaded },
  ])
  add('basalt_partitions_gained_total', 'Partitions this node started running', 'counter', () => [
    { labels: {}, value: node.partitionsGained },
  ])
  add('basalt_partitions_lost_total', 'Partitions this node stopped running', 'counter', () => [
    { labels: {}, value: node.partitionsLost },
  ])
  add('basalt_partitions_owned', 'Partitions running on this node', 'gauge', () => [
    { labels: {}, value: node.owned },
  ])
  // per orchestration name
  add(
    'basalt_orchestrations_started_total',
    'Orchestration instances started',
    'counter',
    perName((c) => c.started),
  )
  add(
    'basalt_orchestrations_completed_total',
    'Orchestration instances completed',
    'counter',
    perName((c) => c.completed),
  )
  add(
    'basalt_orchestrations_failed_total',
    'Orchestration instances failed',
    'counter',
    perName((c) => c.failed),
  )
  add(
    'basalt_orchestration_step_duration_seconds',
    'Duration of one orchestration step (running the orchestration code to its next wait)',
    'histogram',
    () =>
      [...node.names].flatMap(([name, c]) =>
        histogramValues('basalt_orchestration_step_duration_seconds', { name }, c.stepSeconds),
      ),
  )
  // per entity type and operation
  add('basalt_entity_operations_total', 'Entity operations run, by type and operation', 'counter', () =>
    [...node.entityOps].flatMap(([type, ops]) =>
      [...ops].map(([operation, count]) => ({ labels: { type, operation }, value: count.n })),
    ),
  )
  return registry
}
