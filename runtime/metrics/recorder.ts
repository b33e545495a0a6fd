/**
 * What the engine tells the metrics: the small recorder interfaces the partition loop, the entity
 * and instance hosts and the node call, one short line per event, and a no-op implementation (the
 * default where no node wires real ones, e.g. in unit tests). The engine never imports prom-client:
 * the recorders (counters.ts) keep plain numbers, and the Prometheus registry (prometheus.ts) and
 * the telemetry sample (telemetry.ts) read them when asked. May import nothing but types.
 */

/** What a recorder reads from its partition when asked (a scrape, a telemetry sample). */
export interface PartitionProbe {
  readonly p: number
  readonly options: { readonly epoch: number }
  /** The partition's own counters, since it started (on this node, this time). */
  readonly stats: {
    readonly records: number
    readonly messages: number
    readonly snapshots: number
    readonly deadLetters: number
  }
  /** Entity states held in memory. */
  readonly cachedEntities: number
  /** Mailbox envelopes received but not yet processed. */
  readonly backlog: number
}

/**
 * Events of one partition (one recorder per run of a partition on a node). Every method is cheap:
 * it adds to plain numbers; nothing is formatted or sent.
 */
export interface PartitionMetrics {
  /** A commit record was sealed; `messages`: the partition's `stats.messages` at the seal. */
  sealed(messages: number): void
  /** The record sealed last was acknowledged by the log. */
  committed(): void
  /** A background snapshot started... */
  snapshotStarted(): void
  /** ...and completed. */
  snapshotted(): void
  /** An entity operation found its state in memory. */
  cacheHit(): void
  /** An entity state was read from the state bucket. */
  cacheMiss(): void
  /** A mailbox envelope (or one partition's group in it) was dropped as a duplicate. */
  duplicate(): void
  /** An orchestration instance of `name` started running. */
  started(name: string): void
  /** An instance of `name` completed. */
  completed(name: string): void
  /** An instance of `name` failed. */
  failed(name: string): void
  /** An orchestration step begins (its duration ends at {@link stepped}). */
  stepping(): void
  /** The step begun last, of an instance of `name`, ended. */
  stepped(name: string): void
  /** An entity operation runs: `signal` when nobody waits for its result. */
  entityOp(type: string, operation: string, signal: boolean): void
  /** The partition stopped: its counters are kept, its probe is no longer read. */
  closed(): void
}

/** Events of a node. */
export interface NodeMetrics {
  /** The recorder of a partition that starts on this node now. */
  partition(probe: PartitionProbe): PartitionMetrics
  /** The node started running a partition (placement gave it one, or it restarted one)... */
  gained(): void
  /** ...or stopped running one (moved away, fenced, failed, node stopping). */
  lost(): void
}

const nothing = (): void => {}

/** A partition recorder that records nothing. */
export const noPartitionMetrics: PartitionMetrics = {
  sealed: nothing,
  committed: nothing,
  snapshotStarted: nothing,
  snapshotted: nothing,
  cacheHit: nothing,
  cacheMiss: nothing,
  duplicate: nothing,
  started: nothing,
  completed: nothing,
  failed: nothing,
  stepping: nothing,
  stepped: nothing,
  entityOp: nothing,
  closed: nothing,
}

/** A node recorder that records nothing. */
export const noNodeMetrics: NodeMetrics = {
  partition: () => noPartitionMetrics,
  gained: nothing,
  lost: nothing,
}
