/**
 * Metrics of partitions run on worker threads (runtime/node/partition-threads.ts). Each thread
 * records into its own {@link NodeRecorder}; {@link threadReport} turns it into plain data
 * (cumulative since the thread started) that the thread posts to the main thread every 500 ms and
 * whenever a scrape asks; the main thread's {@link ThreadMetrics} adds what changed since that
 * thread's previous report into the node's own recorder. So the node's Prometheus registry and
 * telemetry sample read one recorder, whatever thread a partition runs on:
 *
 * - counters and histograms only ever grow on the main side: a thread that dies takes with it only
 *   what it counted since its last report, and a new thread in its place starts from zero reports
 *   without setting anything back;
 * - a partition that moves between threads keeps one series (labels are the partition, never the
 *   thread);
 * - node-level figures (partitions owned, gained, lost; activity offloads) stay the main thread's,
 *   counted once; the gauges of a partition (backlog, cache size, snapshot lag) are those of its
 *   thread's latest report.
 *
 * Chosen over prom-client's `AggregatorRegistry` (threads serving `getMetricsAsJSON` on each
 * scrape, summed per series): that sum forgets a dead thread's counters, so a node's counters
 * would go backwards whenever a thread dies, and the telemetry sample would need its own path.
 */
import { Buckets, PartitionCounters, type NodeRecorder } from './counters.ts'
import type { PartitionProbe } from './recorder.ts'
import type { StatsCounters } from './stats.ts'

/** A histogram as plain data. */
export interface BucketsReport {
  counts: number[]
  sum: number
  count: number
}

/** One partition in a {@link ThreadReport}: cumulative over its runs on the thread. */
export interface PartitionReport extends StatsCounters {
  p: number
  cacheHits: number
  cacheMisses: number
  duplicates: number
  snapshots: number
  lastSnapshotAt: number | null
  recordMessages: BucketsReport
  commitSeconds: BucketsReport
  snapshotSeconds: BucketsReport
  /** Present while the partition runs on the thread: its gauges now. */
  running?: { epoch: number; backlog: number; cachedEntities: number; snapshotLag: number }
}

/** What a thread's recorder counted since the thread started, as plain data (it crosses threads). */
export interface ThreadReport {
  partitions: PartitionReport[]
  names: Array<{
    name: string
    started: number
    completed: number
    failed: number
    stepSeconds: BucketsReport
  }>
  /** `[type, operation, count]`. */
  entityOps: Array<[string, string, number]>
  /** The thread's own activity pool now. */
  activities: { queued: number; running: number }
}

const plain = (b: Buckets): BucketsReport => ({ counts: [...b.counts], sum: b.sum, count: b.count })

/** The report of a thread's `recorder` now, with its activity pool's figures. */
export function threadReport(
  recorder: NodeRecorder,
  activities: { queued: number; running: number },
): ThreadReport {
  const partitions: PartitionReport[] = []
  for (const c of recorder.partitions.values()) {
    const probe = c.probe
    partitions.push({
      p: c.p,
      steps: c.steps,
      signals: c.signals,
      entityOps: c.entityOps,
      started: c.started,
      completed: c.completed,
      failed: c.failed,
      cacheHits: c.cacheHits,
      cacheMisses: c.cacheMisses,
      duplicates: c.duplicates,
      records: c.records,
      messages: c.messages,
      snapshots: c.snapshots,
      deadLetters: c.deadLetters,
      lastSnapshotAt: c.lastSnapshotAt,
      recordMessages: plain(c.recordMessages),
      commitSeconds: plain(c.commitSeconds),
      snapshotSeconds: plain(c.snapshotSeconds),
      ...(probe === undefined
        ? {}
        : {
            running: {
              epoch: probe.options.epoch,
              backlog: probe.backlog,
              cachedEntities: probe.cachedEntities,
              snapshotLag: c.snapshotLag,
            },
          }),
    })
  }
  const names = [...recorder.names].map(([name, n]) => ({
    name,
    started: n.started,
    completed: n.completed,
    failed: n.failed,
    stepSeconds: plain(n.stepSeconds),
  }))
  const entityOps: Array<[string, string, number]> = []
  for (const [type, ops] of recorder.entityOps) {
    for (const [operation, count] of ops) entityOps.push([type, operation, count.n])
  }
  return { partitions, names, entityOps, activities }
}

/**
 * A partition running on a worker thread, as the main recorder probes it: the gauges of the
 * thread's last report. Its `stats` stay zero: the counts are added to the partition's `base`.
 */
class RemoteProbe implements PartitionProbe {
  readonly stats = { records: 0, messages: 0, snapshots: 0, deadLetters: 0 }

  constructor(
    readonly thread: number,
    readonly p: number,
    readonly options: { readonly epoch: number },
    readonly backlog: number,
    readonly cachedEntities: number,
  ) {}
}

const EMPTY: ThreadReport = {
  partitions: [],
  names: [],
  entityOps: [],
  activities: { queued: 0, running: 0 },
}

/** Adds `now - was` of a histogram into `into` (same bounds on both sides). */
function addBuckets(into: Buckets, now: BucketsReport, was: BucketsReport | undefined): void {
  for (let i = 0; i < into.counts.length; i++) into.counts[i]! += now.counts[i]! - (was?.counts[i] ?? 0)
  into.sum += now.sum - (was?.sum ?? 0)
  into.count += now.count - (was?.count ?? 0)
}

/** The main thread's side: folds the threads' reports into the node's recorder (see the module comment). */
export class ThreadMetrics {
  /** The last report of each live thread, by thread index. */
  readonly #last = new Map<number, ThreadReport>()

  constructor(readonly node: NodeRecorder) {
    node.threadActivities = () => {
      const total = { queued: 0, running: 0 }
      for (const r of this.#last.values()) {
        total.queued += r.activities.queued
        total.running += r.activities.running
      }
      return total
    }
  }

  /** Adds what thread `index` counted since its previous report. */
  absorb(index: number, report: ThreadReport): void {
    const was = this.#last.get(index) ?? EMPTY
    const node = this.node
    const wasPartitions = new Map(was.partitions.map((r) => [r.p, r]))
    for (const r of report.partitions) {
      const before = wasPartitions.get(r.p)
      let c = node.partitions.get(r.p)
      if (c === undefined) node.partitions.set(r.p, (c = new PartitionCounters(r.p)))
      c.steps += r.steps - (before?.steps ?? 0)
      c.signals += r.signals - (before?.signals ?? 0)
      c.entityOps += r.entityOps - (before?.entityOps ?? 0)
      c.started += r.started - (before?.started ?? 0)
      c.completed += r.completed - (before?.completed ?? 0)
      c.failed += r.failed - (before?.failed ?? 0)
      c.cacheHits += r.cacheHits - (before?.cacheHits ?? 0)
      c.cacheMisses += r.cacheMisses - (before?.cacheMisses ?? 0)
      c.duplicates += r.duplicates - (before?.duplicates ?? 0)
      c.base.records += r.records - (before?.records ?? 0)
      c.base.messages += r.messages - (before?.messages ?? 0)
      c.base.snapshots += r.snapshots - (before?.snapshots ?? 0)
      c.base.deadLetters += r.deadLetters - (before?.deadLetters ?? 0)
      addBuckets(c.recordMessages, r.recordMessages, before?.recordMessages)
      addBuckets(c.commitSeconds, r.commitSeconds, before?.commitSeconds)
      addBuckets(c.snapshotSeconds, r.snapshotSeconds, before?.snapshotSeconds)
      if (r.lastSnapshotAt !== null && r.lastSnapshotAt > (c.lastSnapshotAt ?? 0)) {
        c.lastSnapshotAt = r.lastSnapshotAt
      }
      const run = r.running
      if (run !== undefined) {
        c.probe = new RemoteProbe(index, r.p, { epoch: run.epoch }, run.backlog, run.cachedEntities)
        c.recordsAtSnapshot = c.records - run.snapshotLag
      } else if (c.probe instanceof RemoteProbe && c.probe.thread === index) c.probe = undefined
    }
    const wasNames = new Map(was.names.map((n) => [n.name, n]))
    for (const n of report.names) {
      const before = wasNames.get(n.name)
      const c = node.byName(n.name)
      c.started += n.started - (before?.started ?? 0)
      c.completed += n.completed - (before?.completed ?? 0)
      c.failed += n.failed - (before?.failed ?? 0)
      addBuckets(c.stepSeconds, n.stepSeconds, before?.stepSeconds)
    }
    const wasOps = new Map(was.entityOps.map(([type, op, n]) => [`${type}\u0000${op}`, n]))
    for (const [type, operation, n] of report.entityOps) {
      const delta = n - (wasOps.get(`${type}\u0000${operation}`) ?? 0)
      if (delta > 0) node.entityOp(type, operation, delta)
    }
    this.#last.set(index, report)
  }

  /**
   * Thread `index` ended: its partitions no longer run there, and the thread that takes its place
   * reports from zero. What it counted after its last report is lost.
   */
  exited(index: number): void {
    this.#last.delete(index)
    for (const c of this.node.partitions.values()) {
      if (c.probe instanceof RemoteProbe && c.probe.thread === index) c.probe = undefined
    }
  }
}
