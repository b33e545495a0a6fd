/**
 * The recorders behind {@link NodeMetrics} and {@link PartitionMetrics}: plain numbers and bucket
 * arrays, cumulative since the node started. The hot path only adds to them; the Prometheus
 * registry (prometheus.ts) and the telemetry sample (telemetry.ts) read them when asked. A
 * partition's counters outlive its runs on the node (it may move away and back, or restart after a
 * failure), so they only ever grow, as Prometheus counters must.
 */
import { performance } from 'node:perf_hooks'
import type { NodeMetrics, PartitionMetrics, PartitionProbe } from './recorder.ts'
import { zeroCounters, type PartitionStats, type StatsCounters } from './stats.ts'

/** A histogram in plain numbers: counts per upper bound (the last one is +Inf), sum and count. */
export class Buckets {
  readonly counts: number[]
  sum = 0
  count = 0

  constructor(
    /** Upper bounds, ascending. */
    readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  /** Adds one observation. */
  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

/** Bucket bounds of each histogram. */
export const BOUNDS = {
  recordMessages: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
  commitSeconds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  snapshotSeconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  stepSeconds: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1],
} as const

/** What a node counts of one partition, over all its runs on the node. */
export class PartitionCounters {
  /** What the partition's own stats said when its earlier runs stopped. */
  readonly base = { records: 0, messages: 0, snapshots: 0, deadLetters: 0 }
  /** The run now on this node, if any. */
  probe: PartitionProbe | undefined
  steps = 0
  signals = 0
  entityOps = 0
  started = 0
  completed = 0
  failed = 0
  cacheHits = 0
  cacheMisses = 0
  duplicates = 0
  /** Records counted when the last completed snapshot started. */
  recordsAtSnapshot = 0
  /** Unix ms of the last completed snapshot, or null before the first. */
  lastSnapshotAt: number | null = null
  readonly recordMessages = new Buckets(BOUNDS.recordMessages)
  readonly commitSeconds = new Buckets(BOUNDS.commitSeconds)
  readonly snapshotSeconds = new Buckets(BOUNDS.snapshotSeconds)

  constructor(readonly p: number) {}

  /** Records, messages, snapshots and dead letters: earlier runs plus the current one. */
  get records(): number {
    return this.base.records + (this.probe?.stats.records ?? 0)
  }
  get messages(): number {
    return this.base.messages + (this.probe?.stats.messages ?? 0)
  }
  get snapshots(): number {
    return this.base.snapshots + (this.probe?.stats.snapshots ?? 0)
  }
  get deadLetters(): number {
    return this.base.deadLetters + (this.probe?.stats.deadLetters ?? 0)
  }
  /** Records committed on this node since the partition's last snapshot here. */
  get snapshotLag(): number {
    return this.records - this.recordsAtSnapshot
  }

  /** The cumulative counters of the telemetry sample. */
  toCounters(): StatsCounters {
    return {
      steps: this.steps,
      signals: this.signals,
      entityOps: this.entityOps,
      started: this.started,
      completed: this.completed,
      failed: this.failed,
      records: this.records,
      messages: this.messages,
      deadLetters: this.deadLetters,
    }
  }

  /** This partition in the telemetry sample; undefined when it does not run here now. */
  toStats(): PartitionStats | undefined {
    const probe = this.probe
    if (probe === undefined) return undefined
    return {
      p: this.p,
      epoch: probe.options.epoch,
      backlog: probe.backlog,
      lastSnapshotAt: this.lastSnapshotAt,
      cacheSize: probe.cachedEntities,
      counters: this.toCounters(),
    }
  }
}

/** What a node counts per orchestration name. */
export class NameCounters {
  started = 0
  completed = 0
  failed = 0
  readonly stepSeconds = new Buckets(BOUNDS.stepSeconds)
}

/** The recorder of one run of a partition (see {@link PartitionMetrics}). */
class PartitionRecorder implements PartitionMetrics {
  #sealedAt = 0
  #messagesAtSeal = 0
  #snapshotAt = 0
  #recordsAtSnapshotStart = 0
  #stepAt = 0

  constructor(
    readonly node: NodeRecorder,
    readonly counters: PartitionCounters,
    readonly probe: PartitionProbe,
  ) {}

  sealed(messages: number): void {
    this.counters.recordMessages.observe(messages - this.#messagesAtSeal)
    this.#messagesAtSeal = messages
    this.#sealedAt = performance.now()
  }
  committed(): void {
    this.counters.commitSeconds.observe((performance.now() - this.#sealedAt) / 1000)
  }
  snapshotStarted(): void {
    this.#snapshotAt = performance.now()
    this.#recordsAtSnapshotStart = this.counters.records
  }
  snapshotted(): void {
    const c = this.counters
    c.snapshotSeconds.observe((performance.now() - this.#snapshotAt) / 1000)
    c.recordsAtSnapshot = this.#recordsAtSnapshotStart
    c.lastSnapshotAt = Date.now()
  }
  cacheHit(): void {
    this.counters.cacheHits++
  }
  cacheMiss(): void {
    this.counters.cacheMisses++
  }
  duplicate(): void {
    this.counters.duplicates++
  }
  started(name: string): void {
    this.counters.started++
    this.node.byName(name).started++
  }
  completed(name: string): void {
    this.counters.completed++
    this.node.byName(name).completed++
  }
  failed(name: string): void {
    this.counters.failed++
    this.node.byName(name).failed++
  }
  stepping(): void {
    this.#stepAt = performance.now()
  }
  stepped(name: string): void {
    this.counters.steps++
    this.node.byName(name).stepSeconds.observe((performance.now() - this.#stepAt) / 1000)
  }
  entityOp(type: string, operation: string, signal: boolean): void {
    this.counters.entityOps++
    if (signal) this.counters.signals++
    this.node.entityOp(type, operation)
  }
  closed(): void {
    const c = this.counters
    if (c.probe !== this.probe) return // a newer run of the partition took over already
    const { stats } = this.probe
    c.base.records += stats.records
    c.base.messages += stats.messages
    c.base.snapshots += stats.snapshots
    c.base.deadLetters += stats.deadLetters
    c.probe = undefined
  }
}

/**
 * What a node and its partitions counted since the node started, in plain numbers (see the
 * module comment). `activities` reads the node's activity pool and workers when asked.
 */
export class NodeRecorder implements NodeMetrics {
  readonly startedAt = Date.now()
  /** Per partition ever run on this node. */
  readonly partitions = new Map<number, PartitionCounters>()
  /** Per orchestration name. */
  readonly names = new Map<string, NameCounters>()
  /** Entity operations per type, then per operation (boxed: the hot path only increments). */
  readonly entityOps = new Map<string, Map<string, { n: number }>>()
  partitionsGained = 0
  partitionsLost = 0
  /** What the node's activities look like now (set by the node; zeros without activities). */
  activities: () => { queued: number; running: number; offloaded: number } = () => ({
    queued: 0,
    running: 0,
    offloaded: 0,
  })
  /** The activity pools of the node's partition threads now (set by `ThreadMetrics`, threads.ts). */
  threadActivities: () => { queued: number; running: number } = () => ({ queued: 0, running: 0 })
  /**
   * Brings in what the node's partition threads counted since their last report (set by the
   * node when it has threads); read through {@link refreshed} before a scrape.
   */
  refresh: () => Promise<void> = () => Promise.resolve()
  #refreshing: Promise<void> | undefined

  partition(probe: PartitionProbe): PartitionMetrics {
    let counters = this.partitions.get(probe.p)
    if (counters === undefined) this.partitions.set(probe.p, (counters = new PartitionCounters(probe.p)))
    if (counters.probe !== undefined && counters.probe !== probe) {
      // an earlier run that never said it closed: keep what it counted
      new PartitionRecorder(this, counters, counters.probe).closed()
    }
    counters.probe = probe
    return new PartitionRecorder(this, counters, probe)
  }
  gained(): void {
    this.partitionsGained++
  }
  lost(): void {
    this.partitionsLost++
  }

  /** The counters of orchestration `name` (created on first use). */
  byName(name: string): NameCounters {
    let counters = this.names.get(name)
    if (counters === undefined) this.names.set(name, (counters = new NameCounters()))
    return counters
  }

  /** Counts `n` (default 1) operations of an entity type. */
  entityOp(type: string, operation: string, n = 1): void {
    let ops = this.entityOps.get(type)
    if (ops === undefined) this.entityOps.set(type, (ops = new Map()))
    const count = ops.get(operation)
    if (count === undefined) ops.set(operation, { n })
    else count.n += n
  }

  /** The node's activities with its partition threads' pools added. */
  activityTotals(): { queued: number; running: number; offloaded: number } {
    const own = this.activities()
    const threads = this.threadActivities()
    return {
      queued: own.queued + threads.queued,
      running: own.running + threads.running,
      offloaded: own.offloaded,
    }
  }

  /**
   * Resolves once {@link refresh} ran; calls made while one runs share it (a scrape reads every
   * metric at once). Never rejects.
   */
  refreshed(): Promise<void> {
    return (this.#refreshing ??= this.refresh()
      .catch(() => {})
      .finally(() => {
        this.#refreshing = undefined
      }))
  }

  /** Partitions running on this node now. */
  get owned(): number {
    let n = 0
    for (const c of this.partitions.values()) if (c.probe !== undefined) n++
    return n
  }

  /** Sum of the counters of every partition run on this node since it started. */
  totals(): StatsCounters {
    const total = zeroCounters()
    for (const c of this.partitions.values()) {
      const counters = c.toCounters()
      for (const k of Object.keys(total) as Array<keyof StatsCounters>) total[k] += counters[k]
    }
    return total
  }
}
