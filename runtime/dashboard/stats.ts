/**
 * Live rates from the node telemetry samples (`H.stats.<node>`, {@link NodeStats}): keeps the last
 * two samples of each node and turns their cumulative counters into per-second rates. A figure
 * that needs two samples is null until the second arrives; nothing is invented in between.
 */
import type { NodeStats, StatsCounters } from '../metrics/index.ts'

/** Per-second rates of one node or of the whole hub. */
export interface Rates {
  steps: number
  signals: number
  started: number
  completed: number
  failed: number
  records: number
}

/** One partition's figures as the dashboard shows them (null: not known). */
export interface PartitionFigures {
  p: number
  node: string
  epoch: number
  backlog: number
  recordsPerSec: number | null
  lastSnapshotAt: number | null
}

/** What the stats stream pushes: every node's latest sample summarised, and the hub's rates. */
export interface StatsView {
  /** Unix ms of the newest sample, or null before any. */
  at: number | null
  nodes: Array<{
    node: string
    at: number
    startedAt: number
    rates: Rates | null
    activities: NodeStats['activities']
  }>
  /** Sum of the nodes' rates, or null while no node has two samples. */
  rates: Rates | null
  partitions: PartitionFigures[]
}

const RATE_KEYS = ['steps', 'signals', 'started', 'completed', 'failed', 'records'] as const

/** A node sample is dropped from the view once it is this old (the node left or stopped). */
const STALE_MS = 10_000

/** Keeps the latest two samples per node; {@link view} computes the rates. */
export class StatsTracker {
  readonly #samples = new Map<string, { prev?: NodeStats; last: NodeStats }>()

  /**
   * Takes one sample as it arrived on the wire (JSON bytes); returns false, and keeps nothing,
   * for one that is not a version-1 `NodeStats`.
   */
  add(data: Uint8Array): boolean {
    let sample: NodeStats
    try {
      sample = JSON.parse(Buffer.from(data).toString('utf8')) as NodeStats
    } catch {
      return false
    }
    if (!isSample(sample)) return false
    const held = this.#samples.get(sample.node)
    if (held !== undefined && sample.at <= held.last.at) return false
    this.#samples.set(sample.node, { ...(held === undefined ? {} : { prev: held.last }), last: sample })
    return true
  }

  /** The current view, measured against `now` to drop nodes that stopped publishing. */
  view(now = Date.now()): StatsView {
    const nodes: StatsView['nodes'] = []
    const partitions: PartitionFigures[] = []
    let total: Rates | null = null
    let at: number | null = null
    for (const [id, { prev, last }] of [...this.#samples].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (now - last.at > STALE_MS) {
        this.#samples.delete(id)
        continue
      }
      at = Math.max(at ?? 0, last.at)
      const rates = prev === undefined ? null : ratesOf(prev.totals, last.totals, last.at - prev.at)
      if (rates !== null) total = total === null ? rates : sum(total, rates)
      nodes.push({ node: id, at: last.at, startedAt: last.startedAt, rates, activities: last.activities })
      for (const part of last.partitions) {
        const before = prev?.partitions.find((q) => q.p === part.p && q.epoch === part.epoch)
        partitions.push({
          p: part.p,
          node: id,
          epoch: part.epoch,
          backlog: part.backlog,
          recordsPerSec:
            before === undefined || prev === undefined
              ? null
              : perSecond(part.counters.records - before.counters.records, last.at - prev.at),
          lastSnapshotAt: part.lastSnapshotAt,
        })
      }
    }
    return { at, nodes, rates: total, partitions: newestOwners(partitions) }
  }
}

function isSample(s: NodeStats): boolean {
  return (
    typeof s === 'object' &&
    s !== null &&
    s.v === 1 &&
    typeof s.node === 'string' &&
    typeof s.at === 'number' &&
    Array.isArray(s.partitions) &&
    typeof s.totals === 'object' &&
    s.totals !== null
  )
}

function ratesOf(a: StatsCounters, b: StatsCounters, ms: number): Rates | null {
  if (ms <= 0) return null
  const rates = {} as Rates
  for (const k of RATE_KEYS) rates[k] = perSecond(b[k] - a[k], ms)
  return rates
}

function perSecond(delta: number, ms: number): number {
  // counters restart with the node: a negative step is a restart, not a negative rate
  return ms <= 0 || delta < 0 ? 0 : Math.round((delta * 1000 * 10) / ms) / 10
}

function sum(a: Rates, b: Rates): Rates {
  const out = {} as Rates
  for (const k of RATE_KEYS) out[k] = a[k] + b[k]
  return out
}

/**
 * One row per partition, in partition order: while a partition moves, the old owner's last sample
 * and the new owner's both list it for a moment; the higher epoch is the owner.
 */
function newestOwners(rows: PartitionFigures[]): PartitionFigures[] {
  const byPartition = new Map<number, PartitionFigures>()
  for (const row of rows) {
    const held = byPartition.get(row.p)
    if (held === undefined || row.epoch > held.epoch) byPartition.set(row.p, row)
  }
  return [...byPartition.values()].sort((a, b) => a.p - b.p)
}
