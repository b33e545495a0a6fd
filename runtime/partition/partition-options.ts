/**
 * The settings and counters of a partition: what the node passes to {@link Partition.start} and
 * what it reads back. Apart from the loop (partition.ts) so the hosts and slices that need these
 * types do not import the loop.
 */
import type { EntityRegistry } from '../../entities/index.ts'
import type { BlobStore } from '../nats/index.ts'
import type { Logger } from '../util/index.ts'
import type { NodeMetrics, Tracing } from '../metrics/index.ts'
import type { HostPort, InstanceHandler } from './host-port.ts'
import type { RecentReplies } from './recent-replies.ts'
import type { TypeDirectory } from './unknown-types.ts'

/** Settings of a partition (see {@link NodeOptions} for the defaults). */
export interface PartitionOptions {
  registry: EntityRegistry
  epoch: number
  logger: Logger
  /** Keep processing while a commit is in flight (speculation). */
  pipelining: boolean
  /**
   * Hand messages for partitions served on the same connection over in memory rather than through
   * their mailbox (local-delivery.ts). Default: true.
   */
  localDelivery?: boolean
  /** Most entities kept in memory. */
  cacheSize: number
  /** Most messages taken from the mailbox in one processing step. */
  maxBatch: number
  /** Take a snapshot after this many records... */
  snapshotRecords: number
  /** ...or this many ms after the first record not yet in a snapshot. */
  snapshotIntervalMs: number
  /**
   * Given exactly when the hub's streams are cut whole from below by one node (`stream-trim.ts`):
   * after this many ms without a record, an idle owner appends a record marked `keep` (then
   * snapshots it), so that its last record does not hold the log's cut back; and the partition
   * does not purge its own subjects after a snapshot. Absent: never a keep record, and on one
   * server the partition purges its subjects of the log and the mailbox after each snapshot.
   */
  keepIdleLogMs?: number
  /**
   * Builds the orchestration host of this partition. A node whose registry has no orchestration
   * builds one too: the hub may hold instances, and their queries, starts and events are answered
   * as on any node that lacks their orchestration (read, kept Pending, kept for a node that runs it).
   */
  instances: (port: HostPort) => InstanceHandler
  /** Replies sent lately, kept across restarts of the partition on one node (else its own). */
  recentReplies?: RecentReplies
  /**
   * Whether this node may still write for its partitions (its own heartbeats are within the lease);
   * snapshot writes wait while it is false. Default: always.
   */
  mayWrite?: () => boolean
  /** Where entity types and orchestrations are known on the hub (see unknown-types.ts). */
  types?: TypeDirectory
  /**
   * Whether calls made with a lock request may travel inside it (every node of the hub runs them:
   * each node record lists the wire feature `f:lock-ops`, see placement/registry.ts). While false
   * the instance host holds such calls and sends them when the grant arrives. Default: always
   * (static placement: the nodes of a hub are taken to run one version).
   */
  carryCalls?: () => boolean
  /**
   * Whether the last call to an entity in the step that releases a critical section may
   * carry the release (`EntityOp.rl`; each node record lists `f:release-ops`). While false an
   * unlock message goes after it. Default: always.
   */
  releaseWithCalls?: () => boolean
  /** Large values by reference (default: a store with the default limits). */
  blobs?: BlobStore
  /** Where the partition's metrics go (default: nowhere). */
  metrics?: NodeMetrics
  /** Where the partition's spans go (default: nowhere; runtime/metrics/tracing.ts). */
  tracing?: Tracing
  /** Called once when the partition stops for any reason other than close(). */
  onStopped(reason: 'fenced' | 'failed', error: Error): void
}

/** Counters of one partition. */
export interface PartitionStats {
  records: number
  messages: number
  snapshots: number
  recoveredRecords: number
  deadLetters: number
  /** Change messages published (records while someone may watch). */
  changes: number
}

/** Counters of a partition that has done nothing yet. */
export function emptyPartitionStats(): PartitionStats {
  return { records: 0, messages: 0, snapshots: 0, recoveredRecords: 0, deadLetters: 0, changes: 0 }
}
