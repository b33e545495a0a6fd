/**
 * runtime/partition/ — the partition: one single-writer loop per partition and its state slices,
 * one file each (recovery and commit in partition.ts, the round, the outbox, timers, snapshots,
 * the mailbox reader, queries, the change feed, recent replies, the stall watch, unknown types,
 * value limits), the entity host, and the one port both hosts act through (host-port.ts). May import runtime/nats/, runtime/util/,
 * runtime/metrics/ (its recorders), actors/ and entities/; never the
 * hosts above it (runtime/instances/, activities/, client/, node/): they import it.
 */
export { Partition, type PartitionOptions, type PartitionStats } from './partition.ts'
export { emptyPartitionStats } from './partition-options.ts'
export { targetOf } from './host-port-impl.ts'
export type { HostPort, InstanceHandler } from './host-port.ts'
export { RecentReplies } from './recent-replies.ts'
export { DEFER_UNKNOWN_MS } from './unknown-types.ts'
export { boundOutcome, checkSize, sizeOf, valueLimits, type ValueLimits } from './value-limits.ts'
