/**
 * What a node is told: {@link NodeOptions} (the public options of `Node.start`), the settings the
 * node and its partitions run with once the defaults are filled in ({@link NodeSettings}), and the
 * checks that turn bad options into a `BadInputError` before anything connects. Kept apart from
 * node.ts so that the options read as one documented type, and the wiring as code.
 */
import { availableParallelism, hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { BadInputError, describeValue } from '../../actors/index.ts'
import {
  checkListenOptions,
  checkMetricsOptions,
  checkTracingOptions,
  type MetricsOptions,
  type Tracing,
  type TracingOptions,
} from '../metrics/index.ts'
import {
  checkConnectionOptions,
  checkHubOptions,
  HubNames,
  type BlobStore,
  type ConnectionOptions,
  type HubOptions,
} from '../nats/index.ts'
import {
  checkKnownKeys,
  checkOptionalBoolean,
  checkOptionalCount,
  checkOptionalMs,
  checkOptionalOneOf,
  checkOptionalString,
  checkOptionalStrings,
  keysOf,
  type Logger,
} from '../util/index.ts'
import type { RegistryItem } from './registry-module.ts'

/**
 * Options of {@link Node.start}: where NATS is and how to log in there (`servers`, credentials,
 * TLS: see {@link ConnectionOptions}; the activity workers' client connects the same way), the hub
 * and what the node runs.
 */
export interface NodeOptions extends HubOptions, ConnectionOptions {
  /** Hub name: letters, digits, `_` and `-`. */
  hub: string
  /** Entity classes, orchestrations and activities this node runs (or give `registryModule`). */
  registry?: Array<RegistryItem>
  /**
   * A module that exports the registry (`export const registry = [...]`, else `export default
   * [...]`; a path or file URL, or a package name, resolved against the working directory), in
   * place of `registry`. Needed with `workers > 1`: every partition thread imports it itself (and
   * so does the calling thread: the module runs once per thread).
   */
  registryModule?: string | URL
  /**
   * Worker threads that run this node's partitions (default: 1 — every partition on the calling
   * thread, no worker thread — or, with `registryModule`, the number of cores,
   * `os.availableParallelism()`). With more than one, each thread has its own NATS connection and
   * runs the partitions the node gives it; placement, heartbeats and offloaded activities stay on
   * the calling thread. `0` counts as 1.
   */
  workers?: number
  /**
   * With `workers > 1`: how long a partition thread's event loop may not answer, in ms, before
   * the node terminates the thread (default 30,000; 0: never). User code stuck in a synchronous
   * endless loop hangs its thread; terminating it fails its partitions over, and crash counting
   * dead-letters the message after it hung two careful owners (docs/OPERATIONS.md, "Poison
   * messages"). Partitions on the calling thread (`workers: 1`) cannot be interrupted: a hang there
   * stops the node's heartbeats, and the partitions move to other nodes.
   */
  hangTimeoutMs?: number
  /**
   * Whether the node catches errors that escape every handler while it runs — thrown in a timer
   * or event callback, or a promise rejected with nobody awaiting it — on this thread and its
   * partition threads (default true). One from user code (an entity operation's or activity's
   * stray callback) is logged with its stack and the node goes on; one from Basalt's own code stops
   * the thread's partitions, which recover from their logs. Without this, such an error ends the
   * process, and the operation that caused it — never committed — runs again on the partition's
   * next owner, which ends too (see runtime/node/uncaught-errors.ts). Set false to keep Node's
   * default (the process ends).
   */
  handleUncaughtErrors?: boolean
  /** Replay every orchestration from its history at every step (a test mode; default false). */
  alwaysReplay?: boolean
  /** Most activities running at once on this node (default 100). */
  activityConcurrency?: number
  /**
   * How long an attempt of an activity without its own `timeoutMs` may run, in ms (default
   * 300 000: 5 minutes). It then fails with `TimeoutError` (retried if its retry policy says so)
   * and frees its slot: an activity that never settles cannot hold one of the node's
   * `activityConcurrency` slots for longer.
   */
  activityTimeoutMs?: number
  /** Activities waiting locally beyond which new ones go to the hub's work queue (default 200). */
  offloadThreshold?: number
  /**
   * Node id (default: host, process id and a random suffix). An id whose record a process left
   * within the last ten leases is taken only once that record has not changed for a lease and a
   * heartbeat (a live process with that id is refused): a node restarted under a fixed id starts
   * about 4 s later than under a fresh one.
   */
  nodeId?: string
  /** Keep processing while a commit is in flight (default true). */
  pipelining?: boolean
  /**
   * Hand messages between partitions run by the same thread of this node over in memory instead
   * of through the destination's mailbox stream (default true). They are durable in the sender's
   * commit record either way; the sender keeps each until the destination's record that took it
   * is durable, and sends it again (through the mailbox) should the destination stop first.
   */
  localDelivery?: boolean
  /**
   * Most entity states, and most orchestration instances, kept in memory over all partitions
   * (default 100,000 each). Ended instances leave memory once their final record is stored.
   */
  cacheSize?: number
  /**
   * How long an asynchronous entity operation may run, in ms, before it fails with `TimeoutError`
   * and its changes are discarded, for types whose class sets no `static operationTimeoutMs`
   * (default 30,000; `Infinity`: no limit).
   */
  entityOperationTimeoutMs?: number
  /** Most mailbox messages per processing step (default 1,000). */
  maxBatch?: number
  /** Snapshot after this many records (default 1,000)... */
  snapshotRecords?: number
  /** ...or this long after the first unsnapshotted record, in ms (default 2,000). */
  snapshotIntervalMs?: number
  /**
   * How often the node running partition 0 cuts the hub's mailbox and log streams whole, below what
   * every partition may still need, in ms. Default 30,000 on one server; 0 on a replicated hub,
   * whose streams then keep every message. A replicated hub is cut only when asked and only through
   * nats-server 2.9.18 or later (asked on an older server, the node warns and does not cut): before
   * 2.9.18 a member killed soon after a purge replays it on restart as a purge of every message up
   * to the stream's end, which loses acknowledged messages (docs/OPERATIONS.md, "Disk"). 0 on one
   * server: each partition purges its own part after a snapshot instead (slower: a purge with a
   * subject walks the stream).
   */
  streamTrimIntervalMs?: number
  /**
   * `'dynamic'` (default): join the hub's placement and run what the leader assigns. `'static'`:
   * claim `partitionsToRun` (default all) with fresh epochs, fencing out any earlier owner.
   */
  placement?: 'dynamic' | 'static'
  /** How often the node heartbeats and the leader renews its lease, in ms (default 1,000). */
  heartbeatMs?: number
  /** How long without heartbeats before a node or the leader counts as gone, in ms (default 3,000). */
  leaseMs?: number
  /** How long {@link Node.start} waits for the placement to settle, in ms (default 3 leases + 10 s). */
  readyTimeoutMs?: number
  /** With `placement: 'static'`: only these partitions (default: all). */
  partitionsToRun?: number[]
  /** Where logs go (default: stderr, info included). */
  logger?: Logger
  /**
   * Encoded size in bytes over which a value (orchestration input, output, results, event data,
   * custom status, entity state) is stored by reference in the hub's blob stream (default 32 kB;
   * values of instances go by reference above ~64 kB whatever this says).
   */
  blobThresholdBytes?: number
  /** Largest value stored by reference, in encoded bytes (default 64 MB); above it: `PayloadTooLargeError`. */
  maxValueBytes?: number
  /**
   * Serve Prometheus metrics on `GET /metrics` (default: not served; `{}` serves them on a free
   * port of 127.0.0.1, see `node.metricsUrl`). The telemetry sample on `H.stats.<node>` is
   * published either way. See docs/OPERATIONS.md for every metric. `false`: record nothing at all
   * (no endpoint, no telemetry sample, the dashboard shows no figures for this node) — what the
   * benchmark compares against to price the metrics.
   */
  metrics?: MetricsOptions | false
  /**
   * Serve the hub's web dashboard from this node (runtime/dashboard/): `port` (0: any free one),
   * `host` (default 127.0.0.1), `allowActions` (default false: read-only), `allowedHosts` (more
   * host names the page may be reached by; see `DashboardOptions`). Default: none.
   */
  dashboard?: NodeDashboardOptions
  /**
   * OpenTelemetry spans of orchestration steps, activities and entity operations (default: the
   * global tracer provider's tracer when `@opentelemetry/api` is installed and a provider is
   * registered before the node starts; else none, at no cost). See docs/OPERATIONS.md, "Tracing".
   */
  tracing?: TracingOptions
  /**
   * @internal For tests of rolling deploys: the wire features this node publishes in its
   * heartbeats (default: every one of this version, `WIRE_FEATURES` in placement/registry.ts).
   * `[]` makes the node count, for placement and for every sender's choice of message, as a node
   * of the previous version (it still runs what it receives).
   */
  wireFeatures?: string[]
}

/** The `dashboard` option of {@link NodeOptions} (see `DashboardOptions` of runtime/dashboard/). */
export interface NodeDashboardOptions {
  port: number
  host?: string
  allowActions?: boolean
  allowedHosts?: readonly string[]
}

/** The keys of {@link NodeOptions} beside the connection's (anything else is refused: see checkNodeOptions). */
const NODE_OWN_KEYS = keysOf<Omit<NodeOptions, keyof ConnectionOptions>>({
  partitions: true,
  replicas: true,
  hub: true,
  registry: true,
  registryModule: true,
  workers: true,
  hangTimeoutMs: true,
  handleUncaughtErrors: true,
  alwaysReplay: true,
  activityConcurrency: true,
  activityTimeoutMs: true,
  offloadThreshold: true,
  nodeId: true,
  pipelining: true,
  localDelivery: true,
  cacheSize: true,
  entityOperationTimeoutMs: true,
  maxBatch: true,
  snapshotRecords: true,
  snapshotIntervalMs: true,
  streamTrimIntervalMs: true,
  placement: true,
  heartbeatMs: true,
  leaseMs: true,
  readyTimeoutMs: true,
  partitionsToRun: true,
  logger: true,
  blobThresholdBytes: true,
  maxValueBytes: true,
  metrics: true,
  dashboard: true,
  tracing: true,
  wireFeatures: true,
})

/** The keys of {@link NodeDashboardOptions}. */
const DASHBOARD_KEYS = keysOf<NodeDashboardOptions>({
  port: true,
  host: true,
  allowActions: true,
  allowedHosts: true,
})

/**
 * Checks the options of {@link Node.start} before anything is bound or connected: no key it does
 * not know (a misspelt `partitons: 8` would otherwise be ignored, and the hub made with 32), none
 * in `tls`, `metrics`, `dashboard` and `tracing` either, and every option of the type it takes
 * (`partitions: '8'`, `workers: 1.5` or `logger: 'x'` are refused, not taken for something
 * else). Throws `BadInputError` naming the option, what it got and what it expects. The registry's
 * items and `entityOperationTimeoutMs` are checked where they are read (splitRegistry,
 * EntityRegistry), `nodeId` by placement, the blob limits by `checkedBlobLimits`: all before the
 * node connects.
 */
export function checkNodeOptions(options: NodeOptions): NodeOptions {
  if (options === undefined) {
    // (checkKnownKeys takes no options as none; a node needs at least servers and a hub)
    throw new BadInputError('the options of Node.start must be an object (got undefined)')
  }
  checkConnectionOptions(options, 'Node.start', NODE_OWN_KEYS)
  new HubNames(options.hub) // checks the name
  checkHubOptions(options)
  if (options.registry !== undefined && !Array.isArray(options.registry)) {
    throw new BadInputError(
      `registry must be an array of entity classes, orchestrations and activities (got ${describeValue(options.registry)})`,
    )
  }
  const module: unknown = options.registryModule
  if (module !== undefined && typeof module !== 'string' && !(module instanceof URL)) {
    throw new BadInputError(
      `registryModule must be a path, a file URL or a package name (got ${describeValue(module)})`,
    )
  }
  workerCount(options)
  placementTiming(options)
  activityTimeout(options)
  checkOptionalMs(options.hangTimeoutMs, 'hangTimeoutMs', '0: never')
  for (const name of ['handleUncaughtErrors', 'alwaysReplay', 'pipelining', 'localDelivery'] as const) {
    checkOptionalBoolean(options[name], name)
  }
  checkOptionalCount(options.activityConcurrency, 'activityConcurrency', 1)
  checkOptionalCount(options.offloadThreshold, 'offloadThreshold', 0)
  checkOptionalString(options.nodeId, 'nodeId')
  checkOptionalCount(options.cacheSize, 'cacheSize', 0)
  checkOptionalCount(options.maxBatch, 'maxBatch', 1)
  checkOptionalCount(options.snapshotRecords, 'snapshotRecords', 1)
  checkOptionalMs(options.snapshotIntervalMs, 'snapshotIntervalMs')
  checkOptionalMs(options.streamTrimIntervalMs, 'streamTrimIntervalMs', '0: never')
  checkOptionalOneOf(options.placement, 'placement', ['dynamic', 'static'])
  checkOptionalMs(options.readyTimeoutMs, 'readyTimeoutMs')
  checkPartitionsToRun(options.partitionsToRun)
  checkLogger(options.logger)
  if (options.metrics !== undefined && options.metrics !== false)
    checkMetricsOptions(options.metrics, 'Node.start')
  if (options.dashboard !== undefined) checkDashboard(options.dashboard)
  checkTracingOptions(options.tracing, 'Node.start')
  checkOptionalStrings(options.wireFeatures, 'wireFeatures')
  return options
}

/** Checks `partitionsToRun`: partition numbers, 0 or more (the hub's count is known only once connected). */
function checkPartitionsToRun(partitions: unknown): void {
  if (partitions === undefined) return
  if (!Array.isArray(partitions) || partitions.some((p) => !Number.isSafeInteger(p) || (p as number) < 0)) {
    throw new BadInputError(
      `partitionsToRun must be an array of partition numbers, 0 or more (got ${describeValue(partitions)})`,
    )
  }
}

/** Checks `logger`: something with the methods of {@link Logger}. */
function checkLogger(logger: unknown): void {
  if (logger === undefined) return
  const missing = (['info', 'warn', 'error'] as const).filter(
    (level) => typeof (logger as Partial<Logger> | null)?.[level] !== 'function',
  )
  if (missing.length > 0) {
    throw new BadInputError(
      `logger must be an object with info, warn and error methods, such as consoleLogger() gives (got ${
        typeof logger === 'object' && logger !== null
          ? `an object without ${missing.join(', ')}`
          : describeValue(logger)
      })`,
    )
  }
}

/** Checks the `dashboard` option: its keys, and its port and host as a listening server takes them. */
function checkDashboard(value: NodeDashboardOptions): void {
  const dashboard = checkKnownKeys(value, 'Node.start', 'dashboard', DASHBOARD_KEYS)
  if (dashboard.port === undefined) throw new BadInputError('dashboard.port is missing (0: any free port)')
  checkListenOptions(dashboard, { port: 'dashboard.port', host: 'dashboard.host' })
  checkOptionalBoolean(dashboard.allowActions, 'dashboard.allowActions')
  checkOptionalStrings(dashboard.allowedHosts, 'dashboard.allowedHosts')
}

/**
 * The settings a running node and its partitions use: the options' defaults filled in, plus what
 * the node resolved at start (logger, the registry's names for heartbeats, blob store, tracer).
 * Spread into every in-thread partition's options.
 */
export type NodeSettings = Required<
  Pick<
    NodeOptions,
    | 'pipelining'
    | 'localDelivery'
    | 'cacheSize'
    | 'maxBatch'
    | 'snapshotRecords'
    | 'snapshotIntervalMs'
    | 'heartbeatMs'
    | 'leaseMs'
  >
> & {
  logger: Logger
  registryNames: string[]
  blobs: BlobStore
  tracing: Tracing
  /** False with `metrics: false`: the partitions record nothing. */
  recordMetrics: boolean
  /** See `PartitionOptions.keepIdleLogMs`: set when the hub's streams are cut whole from below. */
  keepIdleLogMs?: number
}

/** The defaults of the settings the options may leave out. */
export function engineDefaults(
  options: NodeOptions,
): Pick<
  NodeSettings,
  'pipelining' | 'localDelivery' | 'cacheSize' | 'maxBatch' | 'snapshotRecords' | 'snapshotIntervalMs'
> {
  return {
    pipelining: options.pipelining ?? true,
    localDelivery: options.localDelivery ?? true,
    cacheSize: options.cacheSize ?? 100_000,
    maxBatch: options.maxBatch ?? 1000,
    snapshotRecords: options.snapshotRecords ?? 1000,
    snapshotIntervalMs: options.snapshotIntervalMs ?? 2000,
  }
}

/**
 * The heartbeat period and lease, defaults filled in. Throws `BadInputError` when either is not a
 * positive number or the lease is shorter than two heartbeats (a node would count as gone between
 * two of its own heartbeats).
 */
export function placementTiming(options: NodeOptions): { heartbeatMs: number; leaseMs: number } {
  const heartbeatMs = checkOptionalMs(options.heartbeatMs, 'heartbeatMs') ?? 1000
  const leaseMs = checkOptionalMs(options.leaseMs, 'leaseMs') ?? 3000
  if (leaseMs < 2 * heartbeatMs) {
    throw new BadInputError(`leaseMs (${leaseMs}) must be at least twice heartbeatMs (${heartbeatMs})`)
  }
  return { heartbeatMs, leaseMs }
}

/** The default per-attempt timeout of activities (see `activityTimeoutMs`), checked. */
export function activityTimeout(options: NodeOptions): number {
  return checkOptionalMs(options.activityTimeoutMs, 'activityTimeoutMs') ?? DEFAULT_ACTIVITY_TIMEOUT_MS
}

/** Default of `activityTimeoutMs`: 5 minutes. */
export const DEFAULT_ACTIVITY_TIMEOUT_MS = 5 * 60_000

/** How many partition threads the options ask for (1: none, partitions on the calling thread). */
export function workerCount(options: NodeOptions): number {
  const workers =
    checkOptionalCount(options.workers, 'workers', 0) ??
    (options.registryModule === undefined ? 1 : availableParallelism())
  if (workers > 1 && options.registryModule === undefined) {
    throw new BadInputError(
      `workers: ${workers} needs registryModule: worker threads import the registry from a module ` +
        `(classes cannot be passed to a thread); give registryModule, or workers: 1`,
    )
  }
  return Math.max(1, workers)
}

/** The registry module as a specifier `loadRegistry` takes (a file URL becomes its path). */
export function moduleSpecifier(module: string | URL | undefined): string | undefined {
  if (module === undefined) return undefined
  if (module instanceof URL) return fileURLToPath(module)
  if (module.startsWith('file:')) return fileURLToPath(module)
  return module
}

/** A node id unique on the hub: host, process id and a random suffix, in key-safe characters. */
export function defaultNodeId(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 40)
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}
