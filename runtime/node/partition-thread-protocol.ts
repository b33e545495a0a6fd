/**
 * What the main thread and a partition thread say to each other (runtime/node/partition-threads.ts
 * is the main thread's side, partition-thread-main.ts the thread's): the setup a thread starts
 * with, the orders it takes and what it tells back. Plain data only — it crosses threads by
 * structured clone — so these are types, apart from both sides that use them.
 */
import type { ErrorInfo } from '../../actors/index.ts'
import type { ActivityTask } from '../../actors/wire/index.ts'
import type { ThreadReport } from '../metrics/index.ts'
import type { ConnectionOptions, HubOptions } from '../nats/index.ts'
import type { PartitionStats } from '../partition/index.ts'

/** Everything a partition thread needs to start: plain data, it crosses threads. */
export interface ThreadSetup {
  /** The thread's number, 0-based (names its connection and its log lines). */
  index: number
  hub: string
  hubOptions: HubOptions
  connection: ConnectionOptions
  nodeId: string
  /** Module specifier (or absolute path) of the registry, resolved against `cwd`. */
  registryModule: string
  cwd: string
  /** The node's registry names, as its heartbeats publish them. */
  registryNames: string[]
  /** Whether the node runs under dynamic placement (the thread then asks for the hub's types). */
  dynamic: boolean
  /** Shared flags: [0] 1 while the node holds its placement lease, [1] 1 while calls may travel with lock requests. */
  flags: SharedArrayBuffer
  /**
   * Event-loop beats, one Int32 per thread index: each thread bumps its own every
   * {@link BEAT_MS}; the main thread terminates one whose beat stops for `hangTimeoutMs`.
   */
  beats: SharedArrayBuffer
  /** How long a thread's event loop may not answer before the thread is terminated, in ms (0: never). */
  hangTimeoutMs: number
  pipelining: boolean
  localDelivery: boolean
  /** Entity states kept in memory per partition. */
  cacheSize: number
  maxBatch: number
  snapshotRecords: number
  snapshotIntervalMs: number
  /** See `PartitionOptions.keepIdleLogMs`. */
  keepIdleLogMs?: number
  alwaysReplay: boolean
  /** Whether errors that escape user code are logged instead of ending the thread (uncaught-errors.ts). */
  handleUncaughtErrors: boolean
  activityConcurrency: number
  /** Per-attempt timeout of activities without their own (NodeOptions.activityTimeoutMs). */
  activityTimeoutMs: number
  /** Offload threshold: absent when the node has no activity workers (then every activity runs here). */
  offloadThreshold?: number
  entityOperationTimeoutMs?: number
  blobThresholdBytes: number
  maxValueBytes: number
  /** How often the thread posts its partitions' counters and metrics to the main thread, in ms. */
  statsIntervalMs: number
}

/** How often a partition thread bumps its event-loop beat, in ms (see {@link ThreadSetup.beats}). */
export const BEAT_MS = 250

/** Orders from the main thread. */
export type ToThread =
  | { t: 'start'; id: number; p: number; epoch: number }
  | { t: 'close'; id: number; p: number; snapshot: boolean }
  | { t: 'abandon' }
  | { t: 'shutdown'; id: number }
  | { t: 'hubNames'; names: string[] }
  /** Post a `stats` message now, then reply (a scrape wants fresh counts). */
  | { t: 'report'; id: number }

/** Counters of one partition, as a thread reports them. */
export interface PartitionCounters {
  p: number
  epoch: number
  stats: PartitionStats
  cached: number
}

/** What a thread tells the main thread. */
export type FromThread =
  | { t: 'ready' }
  | { t: 'setupFailed'; error: ErrorInfo }
  | { t: 'reply'; id: number; error?: ErrorInfo }
  | { t: 'stopped'; p: number; epoch: number; reason: 'fenced' | 'failed'; error: ErrorInfo }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; message: string; fields?: Record<string, unknown> }
  | { t: 'offload'; task: ActivityTask }
  | { t: 'stats'; partitions: PartitionCounters[]; metrics: ThreadReport }
