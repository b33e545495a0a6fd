/**
 * A Basalt node: connects to NATS, opens (or creates) the hub, joins placement and runs the
 * partitions assigned to it. Nodes heartbeat through the hub's metadata KV bucket; a placement
 * leader (a lease in the same bucket) spreads partitions evenly over live nodes and moves them on
 * join, leave and missed heartbeats (see `placement/agent.ts`). The node obeys: it starts what is
 * assigned to it, with the assigned epoch, and stops what was moved away, releasing it for the new
 * owner. With `placement: 'static'` a node instead claims the partitions it is told to run (all, by
 * default) with fresh epochs, fencing out whoever ran them before. With `workers > 1` the
 * partitions run on worker threads (partition-threads.ts); placement stays here, on one thread.
 */
import { availableParallelism, hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { BadInputError, FencedError, IllegalStateError } from '../../actors/index.ts'
import {
  isActivityDefinition,
  isOrchestrationDefinition,
  type ActivityDefinition,
  type OrchestrationDefinition,
} from '../../actors/orchestration/index.ts'
import { ActivityPool, ActivityWorkers } from '../activities/index.ts'
import { Client } from '../client/index.ts'
import { startDashboard, type Dashboard } from '../dashboard/index.ts'
import { type Workflows, InstanceHost } from '../instances/index.ts'
import { EntityRegistry, entityTypeName, type EntityClass } from '../../entities/index.ts'
import {
  claimPartition,
  PlacementAgent,
  type Assignment,
  type AssignmentStore,
} from '../../placement/index.ts'
import {
  decode,
  encode,
  ensureHub,
  serverWarnings,
  type Hub,
  type HubOptions,
  isWrongLastSequence,
  whileConnected,
  closeConnection,
  connectTo,
  pickConnection,
  type ConnectionOptions,
  type NatsConnection,
  type KV,
  BlobStore,
  checkedBlobLimits,
} from '../nats/index.ts'
import { BatchWorker, Conditions, consoleLogger, type Logger } from '../util/index.ts'
import { Partition, type PartitionOptions, RecentReplies } from '../partition/index.ts'
import {
  NodeRecorder,
  metricsRegistry,
  observeNode,
  type MetricsOptions,
  type Observer,
  type Registry,
  loadTracing,
  type Tracing,
  type TracingOptions,
} from '../metrics/index.ts'
import { PartitionThreads, type RunningPartition, type ThreadView } from './partition-threads.ts'
import { loadRegistry, type RegistryItem } from './registry-module.ts'

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
  /** Replay every orchestration from its history at every step (a test mode; default false). */
  alwaysReplay?: boolean
  /** Most activities running at once on this node (default 100). */
  activityConcurrency?: number
  /** Activities waiting locally beyond which new ones go to the hub's work queue (default 200). */
  offloadThreshold?: number
  /** Node id (default: random). */
  nodeId?: string
  /** Keep processing while a commit is in flight (default true). */
  pipelining?: boolean
  /** Most entity states kept in memory over all partitions (default 100,000). */
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
   * published either way. See docs/OPERATIONS.md for every metric.
   */
  metrics?: MetricsOptions
  /**
   * Serve the hub's web dashboard from this node (runtime/dashboard/): `port` (0: any free one),
   * `host` (default 127.0.0.1), `allowActions` (default false: read-only). Default: none.
   */
  dashboard?: { port: number; host?: string; allowActions?: boolean }
  /**
   * OpenTelemetry spans of orchestration steps, activities and entity operations (default: the
   * global tracer provider's tracer when `@opentelemetry/api` is installed and a provider is
   * registered before the node starts; else none, at no cost). See docs/OPERATIONS.md, "Tracing".
   */
  tracing?: TracingOptions
}

/** A running node. */
export class Node {
  /** The partitions this node runs: `Partition`s, or handles of partitions run by worker threads. */
  readonly #running = new Map<number, RunningPartition>()
  /** The worker threads that run the partitions (absent: they run on this thread). */
  #threads: PartitionThreads | undefined
  #leaseWatch: NodeJS.Timeout | undefined
  #stopped = false
  readonly #restarts = new Set<NodeJS.Timeout>()
  #agent: PlacementAgent | undefined
  readonly #starting = new Set<number>()
  /** Partitions being stopped and released, with the promise that settles when done. */
  readonly #closing = new Map<number, Promise<void>>()
  /** Replies each partition sent lately; kept while p restarts here after a failure. */
  readonly #recentReplies = new Map<number, RecentReplies>()
  /** Highest epoch per partition at which this node was fenced: never start it at that epoch again. */
  readonly #fenced = new Map<number, number>()
  /** Partition failures on this node (each followed by a restart), and per partition the last one. */
  #failures = 0
  readonly #lastFailure = new Map<number, { at: number; delayMs: number }>()
  /** Brings the running partitions in line with the assignment; a kick while it runs runs it again. */
  readonly #reconciler = new BatchWorker(() => this.#reconcileOnce(), {
    onError: (err) => this.options.logger.error('reconciling partitions failed', { error: String(err) }),
    onIdle: () => this.#waits.check(),
  })
  /** Waits on this node's state (joining waits until placement has settled). */
  readonly #waits = new Conditions()
  /** @internal What this node counted (runtime/metrics/), read by scrapes and the telemetry sample. */
  readonly metrics = new NodeRecorder()
  #registry: Registry | undefined
  #observer: Observer | undefined
  /** The web dashboard this node serves (`options.dashboard`), if any. */
  #dashboard: Dashboard | undefined

  private constructor(
    /** @internal */ readonly nc: NatsConnection,
    /** @internal */ readonly hub: Hub,
    readonly nodeId: string,
    /** @internal */ readonly registry: EntityRegistry,
    /** @internal */ readonly workflows: Workflows,
    /** @internal */ readonly workers: ActivityWorkers | undefined,
    /** @internal The client through which the workers send results (its own connection). */
    readonly workerClient: Client | undefined,
    /** @internal */ readonly options: Required<
      Pick<
        NodeOptions,
        | 'pipelining'
        | 'cacheSize'
        | 'maxBatch'
        | 'snapshotRecords'
        | 'snapshotIntervalMs'
        | 'heartbeatMs'
        | 'leaseMs'
      >
    > & { logger: Logger; registryNames: string[]; blobs: BlobStore; tracing: Tracing },
  ) {}

  /**
   * Connects, opens or creates the hub, joins placement and starts (recovers) the partitions
   * assigned to this node; resolves once the placement has settled (every partition assigned to a
   * live node, shares even to within one, this node running its share) or `readyTimeoutMs` passed. Throws
   * `ConnectionError` naming the URL when NATS cannot be reached, `AuthorizationError` when it
   * refuses the credentials, and `BadInputError` for a bad hub name or registry, a registry module
   * that cannot be loaded, `workers > 1` without `registryModule`, or both `registry` and
   * `registryModule`. With `workers > 1` the partitions run on worker threads (see
   * `runtime/node/partition-threads.ts`).
   *
   * @example
   * const node = await Node.start({ servers: 'nats://127.0.0.1:4222', hub: 'demo', registry: [Counter] })
   */
  static async start(options: NodeOptions): Promise<Node> {
    const threadCount = workerCount(options)
    const registryModule = moduleSpecifier(options.registryModule)
    if (registryModule !== undefined && options.registry !== undefined) {
      throw new BadInputError('give either registry or registryModule, not both')
    }
    const items = registryModule === undefined ? (options.registry ?? []) : await loadRegistry(registryModule)
    const { entities, orchestrations, activities } = splitRegistry(items)
    const registry = new EntityRegistry(entities, { operationTimeoutMs: options.entityOperationTimeoutMs })
    const workflows: Workflows = {
      orchestrations: new Map(orchestrations.map((o) => [o.name, o])),
      activities: new ActivityPool(activities, options.activityConcurrency ?? 100),
      alwaysReplay: options.alwaysReplay ?? false,
      cacheSize: 0,
    }
    const heartbeatMs = positive(options.heartbeatMs ?? 1000, 'heartbeatMs')
    const leaseMs = positive(options.leaseMs ?? 3000, 'leaseMs')
    if (leaseMs < 2 * heartbeatMs) {
      throw new BadInputError(`leaseMs (${leaseMs}) must be at least twice heartbeatMs (${heartbeatMs})`)
    }
    const limits = checkedBlobLimits(options)
    const nc = await connectTo(pickConnection(options), 'basalt-node')
    let workers: ActivityWorkers | undefined
    let workerClient: Client | undefined
    let node: Node | undefined
    try {
      const hub = await ensureHub(nc, options.hub, options)
      const logger = options.logger ?? consoleLogger(`basalt[${options.hub}]`)
      for (const warning of serverWarnings(nc.info?.version, hub.meta.replicas)) {
        logger.warn(warning, { server: nc.info?.version })
      }
      if (activities.length > 0) {
        workerClient = await Client.connect({
          ...pickConnection(options),
          hub: options.hub,
          blobThresholdBytes: limits.threshold,
          maxValueBytes: limits.ceiling,
          ...(options.tracing === undefined ? {} : { tracing: options.tracing }),
        })
        workers = await ActivityWorkers.start(nc, hub, workflows.activities, workerClient, logger)
        const w = workers
        workflows.offload = { threshold: options.offloadThreshold ?? 200, publish: (task) => w.publish(task) }
      }
      node = new Node(
        nc,
        hub,
        options.nodeId ?? defaultNodeId(),
        registry,
        workflows,
        workers,
        workerClient,
        {
          pipelining: options.pipelining ?? true,
          cacheSize: options.cacheSize ?? 100_000,
          maxBatch: options.maxBatch ?? 1000,
          snapshotRecords: options.snapshotRecords ?? 1000,
          snapshotIntervalMs: options.snapshotIntervalMs ?? 2000,
          heartbeatMs,
          leaseMs,
          logger,
          // what this node runs, published in its heartbeats (placement/registry.ts)
          registryNames: [
            ...entities.map((e) => `e:${entityTypeName(e)}`),
            ...orchestrations.map((o) => `o:${o.name}`),
            ...activities.map((a) => `a:${a.name}`),
          ].sort(),
          blobs: new BlobStore(nc, hub.jsm, hub.names, limits),
          tracing: await loadTracing(options.tracing, options.hub),
        },
      )
      node.#observer = await node.#observe(options.metrics)
      if (threadCount > 1) await node.#startThreads(threadCount, registryModule!, options)
      if ((options.placement ?? 'dynamic') === 'static') {
        const all = Array.from({ length: hub.meta.partitions }, (_, p) => p)
        const store = assignmentStore(hub.metaKv)
        const n = node
        await Promise.all(
          (options.partitionsToRun ?? all).map(async (p) =>
            n.#startPartition(p, await claimPartition(store, p, n.nodeId)),
          ),
        )
      } else await node.#join(options.readyTimeoutMs ?? 3 * leaseMs + 10_000)
      if (options.dashboard !== undefined) {
        const dashboard = { ...pickConnection(options), hub: options.hub, ...options.dashboard }
        node.#dashboard = await startDashboard(dashboard).catch(async (err: unknown) => {
          await node!.stop()
          throw err
        })
      }
      return node
    } catch (err) {
      if (node !== undefined) {
        node.#agent?.close()
        clearInterval(node.#leaseWatch)
        await node.#observer?.close()
        await node.#threads?.stop()
      }
      await workers?.stop()
      await workerClient?.close()
      await nc.close().catch(() => {})
      throw err
    }
  }

  /**
   * Basalt's Prometheus registry of this node (prom-client); to serve it with your own metrics,
   * merge it: `Registry.merge([yours, node.metricsRegistry])`.
   */
  get metricsRegistry(): Registry {
    return (this.#registry ??= metricsRegistry(this.metrics))
  }

  /** Where `GET /metrics` is served (`http://host:port/metrics`), when `metrics` was given. */
  get metricsUrl(): string | undefined {
    return this.#observer?.endpoint?.url
  }

  /** Publishes the telemetry sample and serves the metrics endpoint (runtime/metrics/observe.ts). */
  #observe(metrics: MetricsOptions | undefined): Promise<Observer> {
    const subject = this.hub.names.stats(this.nodeId)
    return observeNode(this.metrics, {
      node: this.nodeId,
      hub: this.hub.names.hub,
      activities: this.workflows.activities,
      workers: this.workers,
      publish: (json) => this.nc.publish(subject, json),
      registry: () => this.metricsRegistry,
      metrics,
    })
  }

  /** The hub's partition count. */
  get partitionCount(): number {
    return this.hub.meta.partitions
  }

  /** Where this node's web dashboard is (`options.dashboard`), e.g. `http://127.0.0.1:8233/`; else undefined. */
  get dashboardUrl(): string | undefined {
    return this.#dashboard?.url
  }

  /** @internal This node's placement agent (dynamic placement only). */
  get placement(): PlacementAgent | undefined {
    return this.#agent
  }

  /**
   * Stops the node: it leaves placement (its partitions are reassigned at once), its partitions
   * finish their in-flight commits and stop — with `snapshot`, each writes a final snapshot first —
   * and are released to their new owners. Idempotent.
   *
   * With the NATS server unreachable (or lost while stopping) nothing can be handed over: the node
   * stops its partitions at once, as a crash would (their next owner recovers them from the log
   * once this node's lease ran out), and closes its connection without draining; it takes at most
   * about two seconds (a ping's wait), not the sum of every request's timeout.
   */
  async stop(options: { snapshot?: boolean } = {}): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    await this.#dashboard?.close()
    await this.#observer?.close()
    for (const t of this.#restarts) clearTimeout(t)
    clearInterval(this.#leaseWatch)
    const agent = this.#agent
    const running = [...this.#running.values()]
    const handedOver = await whileConnected(this.nc, async () => {
      await agent?.leave()
      await this.workers?.stop()
      // every partition stops and is released; hand-offs already under way are awaited too
      for (const [p, partition] of this.#running) void this.#handOff(p, partition, options.snapshot ?? false)
      await Promise.all(this.#closing.values())
    })
    if (!handedOver) await this.#abandon(running)
    await this.#threads?.stop()
    agent?.close()
    await this.workerClient?.close()
    await closeConnection(this.nc)
  }

  /** The server is unreachable: stops every partition now, without commits or hand-overs. */
  async #abandon(partitions: RunningPartition[]): Promise<void> {
    this.options.logger.warn('NATS server unreachable; stopping without handing partitions over', {
      node: this.nodeId,
      partitions: partitions.map((p) => p.p),
    })
    for (const partition of partitions) partition.abandon()
    this.#threads?.abandon()
    void this.workers?.stop()
    await this.workerClient?.nc.close().catch(() => {})
    await this.nc.close().catch(() => {})
  }

  /**
   * @internal The partitions this node runs on its own thread (tests and benchmarks look inside).
   * Throws `IllegalStateError` on a node with worker threads: use {@link partitionIds} or
   * {@link threadView} there.
   */
  get partitions(): Map<number, Partition> {
    if (this.#threads !== undefined) {
      throw new IllegalStateError(
        'this node runs its partitions on worker threads: use partitionIds() or threadView()',
      )
    }
    return this.#running as Map<number, Partition>
  }

  /** The partitions this node runs now, ascending, whatever thread runs them. */
  async partitionIds(): Promise<number[]> {
    return [...this.#running.keys()].sort((a, b) => a - b)
  }

  /**
   * Which worker thread runs which partition (one entry per thread); a node without worker threads
   * reports itself as thread 0.
   */
  async threadView(): Promise<ThreadView[]> {
    return this.#threads?.view() ?? [{ thread: 0, partitions: await this.partitionIds() }]
  }

  /** Worker threads running this node's partitions (1: the calling thread, no worker thread). */
  get threadCount(): number {
    return this.#threads?.count ?? 1
  }

  /** @internal Terminates worker thread `index` as a crash would (tests: its partitions come back). */
  async crashThreadForTest(index: number): Promise<void> {
    await this.#threads?.terminate(index)
  }

  /**
   * Records committed, messages processed and snapshots taken, summed over partitions. On a node
   * with worker threads the partitions' counters are those the threads last posted (every 500 ms).
   */
  stats(): {
    records: number
    messages: number
    snapshots: number
    deadLetters: number
    changes: number
    cached: number
    failures: number
  } {
    const total = {
      records: 0,
      messages: 0,
      snapshots: 0,
      deadLetters: 0,
      changes: 0,
      cached: 0,
      failures: this.#failures,
    }
    for (const p of this.#running.values()) {
      total.records += p.stats.records
      total.messages += p.stats.messages
      total.snapshots += p.stats.snapshots
      total.deadLetters += p.stats.deadLetters
      total.changes += p.stats.changes
      total.cached += p.cachedEntities
    }
    return total
  }

  /** Starts the worker threads that will run this node's partitions. */
  async #startThreads(count: number, registryModule: string, options: NodeOptions): Promise<void> {
    const lease = new SharedArrayBuffer(4)
    const dynamic = (options.placement ?? 'dynamic') === 'dynamic'
    const { blobs, ...o } = this.options
    this.#threads = await PartitionThreads.start(
      count,
      {
        hub: options.hub,
        hubOptions: {
          ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
          ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
        },
        connection: pickConnection(options),
        nodeId: this.nodeId,
        registryModule,
        cwd: process.cwd(),
        registryNames: o.registryNames,
        dynamic,
        lease,
        pipelining: o.pipelining,
        cacheSize: Math.max(16, Math.ceil(o.cacheSize / this.hub.meta.partitions)),
        maxBatch: o.maxBatch,
        snapshotRecords: o.snapshotRecords,
        snapshotIntervalMs: o.snapshotIntervalMs,
        alwaysReplay: this.workflows.alwaysReplay,
        activityConcurrency: options.activityConcurrency ?? 100,
        ...(this.workflows.offload === undefined
          ? {}
          : { offloadThreshold: this.workflows.offload.threshold }),
        ...(options.entityOperationTimeoutMs === undefined
          ? {}
          : { entityOperationTimeoutMs: options.entityOperationTimeoutMs }),
        blobThresholdBytes: blobs.limits.threshold,
        maxValueBytes: blobs.limits.ceiling,
        statsIntervalMs: 500,
      },
      {
        logger: o.logger,
        stopped: (p, epoch, reason, error) => this.#onStopped(p, epoch, reason, error),
        lost: (p, epoch, error) => this.#onStopped(p, epoch, 'failed', error),
        offload: (task) => this.workflows.offload?.publish(task),
        metrics: this.metrics,
      },
    )
    const threads = this.#threads
    threads.setLease(true)
    if (dynamic) {
      // the threads read the lease flag before snapshot writes: keep it within 50 ms of the agent's
      this.#leaseWatch = setInterval(() => threads.setLease(this.#agent?.holdsLease() ?? true), 50)
      this.#leaseWatch.unref()
    }
  }

  /** Joins placement and waits until it has settled with this node running its share. */
  async #join(readyTimeoutMs: number): Promise<void> {
    const { heartbeatMs, leaseMs, logger } = this.options
    this.#agent = await PlacementAgent.start(this.hub.metaKv, {
      nodeId: this.nodeId,
      host: hostname(),
      partitions: this.hub.meta.partitions,
      heartbeatMs,
      leaseMs,
      logger,
      running: () => [...this.#running.keys()].sort((a, b) => a - b),
      onChange: () => this.#reconcile(),
      onLeaseLost: () => this.#stopAll(),
      types: this.options.registryNames,
    })
    if (!(await this.#waits.until(() => this.#settled(), readyTimeoutMs))) {
      logger.warn('placement not settled yet; serving what is assigned so far', { node: this.nodeId })
      return
    }
    // ready: the heartbeat record lists what this node serves from now on
    await this.#agent.heartbeatNow()
  }

  #settled(): boolean {
    const agent = this.#agent!
    if (!agent.settled()) return false
    for (let p = 0; p < this.hub.meta.partitions; p++) {
      if (agent.assignment(p)?.node === this.nodeId && !this.#running.has(p)) return false
    }
    return true
  }

  /** Brings the running partitions in line with the assignment soon (see {@link #reconcileOnce}). */
  #reconcile(): void {
    this.#reconciler.kick()
  }

  /** Brings the running partitions in line with the assignment; never waits for starts or stops. */
  #reconcileOnce(): void {
    const agent = this.#agent
    if (this.#stopped || agent === undefined) return
    this.#threads?.hubNames([...agent.types.hubNames()])
    const want = agent.wanted()
    for (const [p, partition] of this.#running) {
      if (want.get(p) !== partition.options.epoch) void this.#handOff(p, partition)
    }
    for (const [p, epoch] of agent.handoffs()) {
      if (!this.#running.has(p) && !this.#starting.has(p) && !this.#closing.has(p))
        void agent.release(p, epoch).catch(() => {})
    }
    for (const [p, epoch] of want) {
      if (this.#running.has(p) || this.#starting.has(p) || this.#closing.has(p)) continue
      if ((this.#fenced.get(p) ?? 0) >= epoch) continue
      this.#starting.add(p)
      this.#startPartition(p, epoch)
        .catch((err: unknown) => {
          if (err instanceof FencedError) this.#fenced.set(p, epoch)
          else
            this.options.logger.error('partition start failed; will retry', {
              p,
              error: String((err as Error).stack ?? err),
            })
        })
        .finally(() => {
          this.#starting.delete(p)
          this.#reconcile() // it may have been moved away meanwhile
        })
    }
  }

  /** Stops partition p gracefully (its in-flight commit completes) and releases it. */
  #handOff(p: number, partition: RunningPartition, snapshot = false): Promise<void> {
    this.#running.delete(p)
    this.metrics.lost()
    this.#recentReplies.delete(p) // the next owner answers for p
    const epoch = partition.options.epoch
    const done = partition
      .close(snapshot)
      .then(() => this.#agent?.release(p, epoch))
      .catch((err: unknown) => this.options.logger.warn('hand-off failed', { p, error: String(err) }))
      .finally(() => {
        this.#closing.delete(p)
        this.#reconcile()
      })
    this.#closing.set(p, done)
    return done
  }

  /** Our lease lapsed (we were paused or cut off): stop serving everything at once. */
  #stopAll(): void {
    for (const [p, partition] of this.#running) void this.#handOff(p, partition)
  }

  async #startPartition(p: number, epoch: number): Promise<void> {
    if (this.#stopped) throw new IllegalStateError('node is stopped')
    if (this.#threads !== undefined) {
      const running = await this.#threads.startPartition(p, epoch)
      if (this.#stopped) await running.close()
      else {
        this.#running.set(p, running)
        this.metrics.gained()
      }
      return
    }
    const perPartition = Math.max(16, Math.ceil(this.options.cacheSize / this.hub.meta.partitions))
    const options: PartitionOptions = {
      ...this.options,
      registry: this.registry,
      epoch,
      cacheSize: perPartition,
      ...(this.workflows.orchestrations.size === 0
        ? {}
        : {
            instances: (port) => new InstanceHost(port, { ...this.workflows, cacheSize: perPartition }),
          }),
      onStopped: (reason, error) => this.#onStopped(p, epoch, reason, error),
      ...(this.#agent === undefined ? {} : { mayWrite: () => this.#agent?.holdsLease() ?? true }),
      ...(this.#agent === undefined ? {} : { types: this.#agent.types }),
      recentReplies: this.#recentReplies.get(p) ?? new RecentReplies(),
      metrics: this.metrics,
    }
    this.#recentReplies.set(p, options.recentReplies!)
    const partition = await Partition.start(this.nc, this.hub, p, options)
    if (this.#stopped) {
      await partition.close()
      return
    }
    this.#running.set(p, partition)
    this.metrics.gained()
  }

  #onStopped(p: number, epoch: number, reason: 'fenced' | 'failed', error: Error): void {
    if (this.#running.get(p)?.options.epoch === epoch) this.#running.delete(p)
    this.metrics.lost()
    if (this.#stopped) return
    const agent = this.#agent
    if (reason === 'fenced') {
      this.#fenced.set(p, Math.max(epoch, this.#fenced.get(p) ?? 0))
      this.options.logger.warn('partition taken over by a newer owner; stopped it here', {
        p,
        error: error.message,
      })
      // If placement still gives p to this node at that epoch, nobody else runs it: the newer epoch
      // came from outside placement (a static claim). Ask for a fresh epoch rather than leave p
      // unserved; the assignment's watch then starts it again.
      void agent?.renew(p, epoch).catch(() => {})
      this.#reconcile()
      return
    }
    // An internal failure: never continue on suspect state; recover from the log — after a delay
    // that doubles while the partition keeps failing, so a failure that recurs is never retried
    // in a tight loop — with a fresh epoch when placement gives one (else the same epoch: the new
    // run's token tells its records apart).
    this.#failures++
    const delayMs = this.#restartDelay(p)
    const timer = setTimeout(() => {
      this.#restarts.delete(timer)
      if (agent !== undefined) {
        // (once renewed, the assignment's watch brings the new epoch and the next step starts it)
        void agent
          .renew(p, epoch)
          .catch(() => false)
          .then((renewed) => {
            if (!renewed) this.#reconcile()
          })
        return
      }
      claimPartition(assignmentStore(this.hub.metaKv), p, this.nodeId)
        .then((next) => this.#startPartition(p, next))
        .catch((err: unknown) => {
          if (err instanceof FencedError) return
          this.options.logger.error('partition restart failed', { p, error: String(err) })
          this.#onStopped(p, epoch, 'failed', err as Error)
        })
    }, delayMs)
    this.#restarts.add(timer)
  }

  /**
   * Delay before restarting a failed partition: 200 ms, doubled for every failure that follows
   * the previous one within a minute, at most 30 s.
   */
  #restartDelay(p: number): number {
    const now = Date.now()
    const last = this.#lastFailure.get(p)
    const delayMs = last !== undefined && now - last.at < 60_000 ? Math.min(last.delayMs * 2, 30_000) : 200
    this.#lastFailure.set(p, { at: now, delayMs })
    return delayMs
  }
}

/** How many partition threads the options ask for (1: none, partitions on the calling thread). */
function workerCount(options: NodeOptions): number {
  const workers = options.workers ?? (options.registryModule === undefined ? 1 : availableParallelism())
  if (!Number.isSafeInteger(workers) || workers < 0) {
    throw new BadInputError(`workers must be a whole number of threads, 0 or more (got ${workers})`)
  }
  if (workers > 1 && options.registryModule === undefined) {
    throw new BadInputError(
      `workers: ${workers} needs registryModule: worker threads import the registry from a module ` +
        `(classes cannot be passed to a thread); give registryModule, or workers: 1`,
    )
  }
  return Math.max(1, workers)
}

/** The registry module as a specifier `loadRegistry` takes (a file URL becomes its path). */
function moduleSpecifier(module: string | URL | undefined): string | undefined {
  if (module === undefined) return undefined
  if (module instanceof URL) return fileURLToPath(module)
  if (module.startsWith('file:')) return fileURLToPath(module)
  return module
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new BadInputError(`${name} must be a positive number (got ${value})`)
  return value
}

/** A node id unique on the hub: host, process id and a random suffix, in key-safe characters. */
function defaultNodeId(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 40)
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}

export type { RegistryItem }

/** Sorts a registry into entity classes, orchestrations and activities; rejects anything else. */
export function splitRegistry(items: RegistryItem[]): {
  entities: Array<EntityClass>
  orchestrations: Array<OrchestrationDefinition<any, any>>
  activities: Array<ActivityDefinition<any, any>>
} {
  const entities: Array<EntityClass> = []
  const orchestrations: Array<OrchestrationDefinition<any, any>> = []
  const activities: Array<ActivityDefinition<any, any>> = []
  const names = new Set<string>()
  for (const item of items) {
    if (typeof item === 'function') entities.push(item)
    else if (isOrchestrationDefinition(item)) orchestrations.push(item)
    else if (isActivityDefinition(item)) activities.push(item)
    else
      throw new BadInputError(
        `registry item ${String(item)} is not an entity class, orchestration or activity`,
      )
    if (typeof item !== 'function') {
      const key = `${isOrchestrationDefinition(item) ? 'o' : 'a'}:${item.name}`
      if (names.has(key)) throw new BadInputError(`'${item.name}' is registered twice`)
      names.add(key)
    }
  }
  return { entities, orchestrations, activities }
}

/** Assignment records in the hub's metadata bucket, keys `assign.<p>`. */
export function assignmentStore(kv: KV): AssignmentStore {
  return {
    async get(p) {
      const entry = await kv.get(`assign.${p}`)
      if (entry === null || entry.operation !== 'PUT') return { value: null, rev: entry?.revision ?? 0 }
      return { value: decode(entry.value, 'assignment') as Assignment, rev: entry.revision }
    },
    async compareAndSet(p, value, rev) {
      try {
        if (rev === 0) await kv.create(`assign.${p}`, encode(value))
        else await kv.update(`assign.${p}`, encode(value), rev)
        return true
      } catch (err) {
        if (isWrongLastSequence(err)) return false
        throw err
      }
    },
  }
}
