/**
 * The telemetry sample a node publishes every second on `H.stats.<nodeId>` (core NATS, JSON; see
 * `HubNames.stats`). The dashboard and `basalt` tooling read it to show live rates and the
 * partition map without scraping each node's Prometheus endpoint: counters are cumulative since
 * the node started, so a reader computes rates from two samples and a missed sample costs nothing.
 * Bump `v` on an incompatible change; readers ignore samples of a version they do not know.
 */

/** Cumulative counters of one node (or one partition), since the node started. */
export interface StatsCounters {
  /** Orchestration steps executed (replays excluded). */
  steps: number
  /** Entity signals applied. */
  signals: number
  /** Entity operations applied (signals and calls). */
  entityOps: number
  /** Orchestrations started / completed / failed on this node. */
  started: number
  completed: number
  failed: number
  /** Commit records appended. */
  records: number
  /** Mailbox messages consumed. */
  messages: number
  /** Messages moved to the dead-letter stream. */
  deadLetters: number
}

/** One partition as its owner sees it. */
export interface PartitionStats {
  p: number
  epoch: number
  /** Mailbox messages stored but not yet consumed by this partition. */
  backlog: number
  /** Unix ms of the last completed snapshot, or null before the first. */
  lastSnapshotAt: number | null
  /** Items held in the partition's state cache. */
  cacheSize: number
  counters: StatsCounters
}

/** One node's sample. */
export interface NodeStats {
  v: 1
  node: string
  hub: string
  /** Unix ms when the sample was taken, and when the node started. */
  at: number
  startedAt: number
  partitions: PartitionStats[]
  /** Sum over the node's partitions, plus what belongs to the node (activities). */
  totals: StatsCounters
  activities: { queued: number; running: number; offloaded: number }
}

/** Counters all zero, to start from. */
export function zeroCounters(): StatsCounters {
  return {
    steps: 0,
    signals: 0,
    entityOps: 0,
    started: 0,
    completed: 0,
    failed: 0,
    records: 0,
    messages: 0,
    deadLetters: 0,
  }
}
