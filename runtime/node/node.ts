/**
 * A Basalt node: connects to NATS, opens (or creates) the hub, joins placement and runs the
 * partitions assigned to it. Nodes heartbeat through the hub's metadata KV bucket; a placement
 * leader (a lease in the same bucket) spreads partitions evenly over live nodes and moves them on
 * join, leave and missed heartbeats (see `placement/agent.ts`). The node obeys: it starts what is
 * assigned to it, with the assigned epoch, and stops what was moved away, releasing it for the new
 * owner. With `placement: 'static'` a node instead claims the partitions it is told to run (all, by
 * default) with fresh epochs, fencing out whoever ran them before. With `workers > 1` the
 * partitions run on worker threads (partition-threads.ts); placement stays here, on one thread.
 *
 * This file is the one place that wires the components: the `Node` class and its public API. The
 * pieces it wires live beside it: the options and their checks (node-options.ts), the registry
 * (registry-module.ts), the reconcile loop that starts, hands off and restarts partitions
 * (partition-runner.ts), the assignment records of static placement (assignment-store.ts) and the
 * partition threads (partition-threads.ts).
 */
import { hostname } from 'node:os'
import { BadInputError, HubNotFoundError, IllegalStateError, StorageFullError } from '../../actors/index.ts'
import { ActivityPool, ActivityWorkers } from '../activities/index.ts'
import { Client } from '../client/index.ts'
import type { Dashboard } from '../dashboard/index.ts'
import { type Workflows } from '../instances/index.ts'
import { EntityRegistry } from '../../entities/index.ts'
import { claimPartition, PlacementAgent, rememberOperations } from '../../placement/index.ts'
import { StreamTrimmer } from './stream-trimmer.ts'
import {
  ensureHub,
  fateOf,
  hubFate,
  purgesReplaySafely,
  serverWarnings,
  type Hub,
  whileConnected,
  closeConnection,
  connectTo,
  pickConnection,
  type NatsConnection,
  BlobStore,
  checkedBlobLimits,
  latestKvEntry,
  isStorageFull,
  STORAGE_FULL_HINT,
} from '../nats/index.ts'
import { Conditions, checkOptionalMs, consoleLogger, whenSlow, type Logger } from '../util/index.ts'
import type { Partition } from '../partition/index.ts'
import {
  NodeRecorder,
  metricsRegistry,
  noNodeMetrics,
  observeNode,
  serveMetrics,
  type MetricsEndpoint,
  type Observer,
  type Registry,
  loadTracing,
} from '../metrics/index.ts'
import { assignmentStore } from './assignment-store.ts'
import {
  checkNodeOptions,
  defaultNodeId,
  engineDefaults,
  moduleSpecifier,
  placementTiming,
  activityTimeout,
  workerCount,
  type NodeOptions,
  type NodeSettings,
} from './node-options.ts'
import { PartitionRunner } from './partition-runner.ts'
import { watchUncaughtErrors } from './uncaught-errors.ts'
import { PartitionThreads, type RunningPartition, type ThreadView } from './partition-threads.ts'
import { loadRegistry, registryNames, splitRegistry, type RegistryItem } from './registry-module.ts'

export type { NodeOptions, RegistryItem }

/** A running node. */
export class Node {
  /** Starts, hands off and restarts this node's partitions, following placement. */
  readonly #partitions: PartitionRunner
  /** The worker threads that run the partitions (absent: they run on this thread). */
  #threads: PartitionThreads | undefined
  #leaseWatch: NodeJS.Timeout | undefined
  #streamTrim: StreamTrimmer | undefined
  #stopped = false
  #agent: PlacementAgent | undefined
  /** Waits on this node's state (joining waits until placement has settled). */
  readonly #waits = new Conditions()
  /** @internal What this node counted (runtime/metrics/), read by scrapes and the telemetry sample. */
  readonly metrics = new NodeRecorder()
  #registry: Registry | undefined
  #observer: Observer | undefined
  /** The web dashboard this node serves (`options.dashboard`), if any. */
  #dashboard: Dashboard | undefined
  /** Stops watching this thread's uncaught errors (uncaught-errors.ts). */
  #unwatchErrors: (() => void) | undefined
  /** Settles {@link ended}: the node stopped on its own. */
  #end: (why: Error) => void = () => {}
  readonly #ended = new Promise<Error>((resolve) => (this.#end = resolve))
  #stoppingBecause: Error | undefined

  private constructor(
    /** @internal */ readonly nc: NatsConnection,
    /** @internal */ readonly hub: Hub,
    readonly nodeId: string,
    /** @internal */ readonly registry: EntityRegistry,
    /** @internal */ readonly workflows: Workflows,
    /** @internal */ readonly workers: ActivityWorkers | undefined,
    /** @internal The client through which the workers send results (its own connection). */
    readonly workerClient: Client | undefined,
    /** @internal */ readonly options: NodeSettings,
  ) {
    this.#partitions = new PartitionRunner({
      nc,
      hub,
      nodeId,
      registry,
      workflows,
      settings: options,
      metrics: options.recordMetrics ? this.metrics : noNodeMetrics,
      onIdle: () => this.#waits.check(),
      onHubGone: (fate) => void this.#hubGone(fate),
    })
  }

  /**
   * Resolves when the node stopped on its own, with why: its hub was deleted while it ran (`basalt
   * hub delete --force`), perhaps created again since (a `HubNotFoundError`). Never after
   * {@link stop}. `basalt node` exits with the reason; an app that embeds a node can do the same,
   * or start a new node to join the hub as it is now.
   */
  get ended(): Promise<Error> {
    return this.#ended
  }

  /** @internal Why the node is stopping on its own, as soon as it starts to (before {@link ended}). */
  get stoppingBecause(): Error | undefined {
    return this.#stoppingBecause
  }

  /**
   * Connects, opens or creates the hub, joins placement and starts (recovers) the partitions
   * assigned to this node; resolves once the placement has settled (every partition assigned to a
   * live node, shares even to within one, this node running its share) or `readyTimeoutMs` passed. Throws
   * `ConnectionError` naming the URL when NATS cannot be reached, `AuthorizationError` when it
   * refuses the credentials, and `BadInputError` for an option it does not know (in `options` or
   * in an object of them: `tls`, `metrics`, `dashboard`, `tracing`) or of the wrong type (see
   * `checkNodeOptions`), a bad hub name or registry, a registry module
   * that cannot be loaded, `workers > 1` without `registryModule`, both `registry` and
   * `registryModule`, or a metrics or dashboard port that is taken or a host that is no address
   * of this machine (both are bound before it connects). With `workers > 1` the partitions run on worker threads (see
   * `runtime/node/partition-threads.ts`).
   *
   * @example
   * const node = await Node.start({ servers: 'nats://127.0.0.1:4222', hub: 'demo', registry: [Counter] })
   */
  static async start(options: NodeOptions): Promise<Node> {
    checkNodeOptions(options)
    const threadCount = workerCount(options)
    const registryModule = moduleSpecifier(options.registryModule)
    if (registryModule !== undefined && options.registry !== undefined) {
      throw new BadInputError('give either registry or registryModule, not both')
    }
    const items = registryModule === undefined ? (options.registry ?? []) : await loadRegistry(registryModule)
    const split = splitRegistry(items)
    const { entities, orchestrations, activities } = split
    const registry = new EntityRegistry(entities, { operationTimeoutMs: options.entityOperationTimeoutMs })
    const workflows: Workflows = {
      orchestrations: new Map(orchestrations.map((o) => [o.name, o])),
      activities: new ActivityPool(activities, options.activityConcurrency ?? 100, activityTimeout(options)),
      alwaysReplay: options.alwaysReplay ?? false,
      cacheSize: 0,
    }
    const { heartbeatMs, leaseMs } = placementTiming(options)
    const limits = checkedBlobLimits(options)
    let node: Node | undefined
    // the metrics and dashboard ports are bound first: a taken one fails the start before anything
    // is created (the dashboard connects once it listens, and says so while the hub is not there)
    const endpoint =
      options.metrics === undefined || options.metrics === false
        ? undefined
        : await serveMetrics(() => node?.metricsRegistry, options.metrics)
    const dashboard = await startNodeDashboard(options).catch(async (err: unknown) => {
      await endpoint?.close()
      throw err
    })
    const logger = options.logger ?? consoleLogger(`basalt[${options.hub}]`)
    // a server that answers slowly or not at all: the start says what it waits for, not nothing
    const slowly = (step: string) => () =>
      logger.warn(`node start: still ${step} after ${SLOW_START_MS / 1000} s`, { hub: options.hub })
    const nodeId = options.nodeId ?? defaultNodeId()
    // (named by node: the server's connection list tells the nodes of a hub apart)
    const connecting = connectTo(pickConnection(options), `basalt-node ${nodeId}`)
    const nc = await whenSlow(connecting, SLOW_START_MS, slowly('connecting to NATS')).catch(
      async (err: unknown) => {
        await dashboard?.close()
        await endpoint?.close()
        throw err
      },
    )
    let workers: ActivityWorkers | undefined
    let workerClient: Client | undefined
    try {
      const hub = await whenSlow(
        ensureHub(nc, options.hub, options),
        SLOW_START_MS,
        slowly(
          `opening hub '${options.hub}' (JetStream answers slowly; a request that times out is tried again for up to 30 s)`,
        ),
      )
      for (const warning of serverWarnings(nc.info?.version, hub.meta.replicas)) {
        logger.warn(warning, { server: nc.info?.version })
      }
      // for `basalt entity signal` to refuse an operation no node has (placement needs none)
      const operations = new Map(registry.names().map((t) => [t, registry.get(t).operations]))
      await rememberOperations(hub.metaKv, operations).catch((err: unknown) =>
        logger.warn('could not record the operations of the entity types in the hub', {
          error: String(err),
        }),
      )
      if (activities.length > 0) {
        workerClient = await Client.connect({
          name: `basalt-node ${nodeId} activities`,
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
      // the hub's streams are cut whole from below (stream-trimmer.ts); an idle partition moves
      // its last record up after two intervals, so that it does not hold the log's cut there
      const trimEveryMs = streamTrimInterval(options.streamTrimIntervalMs, hub.meta.replicas, nc, logger)
      const trims = trimEveryMs > 0
      node = new Node(nc, hub, nodeId, registry, workflows, workers, workerClient, {
        ...engineDefaults(options),
        ...(trims ? { keepIdleLogMs: 2 * trimEveryMs } : {}),
        heartbeatMs,
        leaseMs,
        logger,
        registryNames: registryNames(split, options.wireFeatures),
        blobs: new BlobStore(nc, hub.jsm, hub.names, limits),
        tracing: await loadTracing(options.tracing, options.hub),
        recordMetrics: options.metrics !== false,
      })
      if (options.handleUncaughtErrors !== false) {
        const n = node
        node.#unwatchErrors = watchUncaughtErrors({
          logger,
          failPartitions: (err) => n.#partitions.failAll(err),
        })
      }
      if (options.metrics !== false) node.#observer = node.#observe(endpoint)
      if (threadCount > 1) {
        // a thread runs whole partitions: more threads than partitions only cost memory (each
        // thread about 50 MB), so they are not started
        const threads = Math.max(2, Math.min(threadCount, hub.meta.partitions))
        if (threads < threadCount) {
          logger.warn(
            `workers: ${threadCount} is more than the hub's ${hub.meta.partitions} partitions; ` +
              `starting ${threads} partition threads`,
            { node: node.nodeId },
          )
        }
        await node.#startThreads(threads, registryModule!, options)
      }
      if ((options.placement ?? 'dynamic') === 'static') {
        const all = Array.from({ length: hub.meta.partitions }, (_, p) => p)
        const store = assignmentStore(hub.metaKv)
        const n = node
        await Promise.all(
          (options.partitionsToRun ?? all).map(async (p) =>
            n.#partitions.start(p, await claimPartition(store, p, n.nodeId)),
          ),
        )
      } else await node.#join(options.readyTimeoutMs ?? 3 * leaseMs + 10_000)
      node.#dashboard = dashboard
      if (trims) {
        const n = node
        node.#streamTrim = new StreamTrimmer(nc, hub, trimEveryMs, logger, () => n.#partitions.running.has(0))
      }
      return node
    } catch (err) {
      await dashboard?.close()
      if (node !== undefined) {
        node.#unwatchErrors?.()
        node.#agent?.close()
        clearInterval(node.#leaseWatch)
        await node.#threads?.stop()
      }
      // the observer closes the endpoint; before there was one, the endpoint closes here
      const observer = node === undefined ? undefined : node.#observer
      await (observer?.close() ?? endpoint?.close())
      await workers?.stop()
      await workerClient?.close()
      await nc.close().catch(() => {})
      // (a hub that could not be created for want of space says so itself, with the server's words)
      if (isStorageFull(err) && !(err instanceof StorageFullError))
        throw new StorageFullError(`node could not join hub '${options.hub}': ${STORAGE_FULL_HINT}`, {
          cause: err,
        })
      throw err
    }
  }

  /**
   * Basalt's Prometheus registry of this node (prom-client); to serve it with your own metrics,
   * merge it: `Registry.merge([yours, node.metricsRegistry])`.
   */
  get metricsRegistry(): Registry {
    return (this.#registry ??= metricsRegistry(this.metrics, this.hub.names.hub))
  }

  /** Where `GET /metrics` is served (`http://host:port/metrics`), when `metrics` was given. */
  get metricsUrl(): string | undefined {
    return this.#observer?.endpoint?.url
  }

  /** Publishes the telemetry sample, and closes `endpoint` with it (runtime/metrics/observe.ts). */
  #observe(endpoint: MetricsEndpoint | undefined): Observer {
    const subject = this.hub.names.stats(this.nodeId)
    return observeNode(this.metrics, {
      node: this.nodeId,
      hub: this.hub.names.hub,
      activities: this.workflows.activities,
      workers: this.workers,
      publish: (json) => this.nc.publish(subject, json),
      endpoint,
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
    this.#partitions.halt()
    await this.#dashboard?.close()
    await this.#observer?.close()
    this.#partitions.cancelRestarts()
    clearInterval(this.#leaseWatch)
    this.#streamTrim?.stop()
    const agent = this.#agent
    const running = [...this.#partitions.running.values()]
    const handedOver = await whileConnected(this.nc, async () => {
      await agent?.leave()
      await this.workers?.stop()
      // every partition stops and is released; hand-offs already under way are awaited too
      await this.#partitions.handOffAll(options.snapshot ?? false)
    })
    if (!handedOver) await this.#abandon(running)
    await this.#threads?.stop()
    agent?.close()
    await this.workerClient?.close()
    await closeConnection(this.nc)
    this.#unwatchErrors?.()
  }

  /**
   * The hub this node opened was deleted under it (and perhaps created again): nothing it holds
   * belongs to the hub there is now. It stops at once, hands nothing over and writes nothing more
   * (a graceful stop would mark its partitions left in a new hub's log, and its placement record
   * would join the new hub), and {@link ended} says why. A new node joins the hub as it is now.
   */
  async #hubGone(fate: 'deleted' | 'recreated'): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const hub = this.hub.names.hub
    const why = new HubNotFoundError(
      hub,
      `hub '${hub}' was deleted while node ${this.nodeId} ran on it` +
        `${fate === 'recreated' ? ' (and created again since)' : ''}: the node stopped; ` +
        `start it again to join the hub as it is now`,
    )
    this.#stoppingBecause = why
    this.options.logger.error(why.message, { node: this.nodeId })
    this.#partitions.hubGone()
    this.#partitions.cancelRestarts()
    clearInterval(this.#leaseWatch)
    this.#streamTrim?.stop()
    this.#agent?.close()
    // what its heartbeats and lease renewals wrote into the hub created again since (a bucket that
    // exists: a deleted one would hold every read here to its timeout)
    if (fate === 'recreated') await this.#agent?.forgetOwnRecords()
    await this.#dashboard?.close()
    await this.#observer?.close()
    // (those being handed over too: after the heartbeats failed, their closes wait on commits to
    // a log that is gone)
    await this.#abandon(this.#partitions.held(), 'hub deleted under the node')
    await this.#threads?.stop()
    this.#unwatchErrors?.()
    this.#end(why)
  }

  /**
   * Stops every partition now, without commits or hand-overs: the server is unreachable, or the
   * hub is gone (`reason`).
   */
  async #abandon(partitions: RunningPartition[], reason = UNREACHABLE): Promise<void> {
    this.options.logger.warn(`${reason}; stopping without handing partitions over`, {
      node: this.nodeId,
      partitions: partitions.map((p) => p.p),
    })
    for (const partition of partitions) partition.abandon()
    this.#threads?.abandon()
    void this.workers?.stop()
    await this.workerClient?.nc.close().catch(() => {})
    // a reachable server still takes what the partitions said last (queries told to ask again)
    if (reason !== UNREACHABLE) await whileConnected(this.nc, () => this.nc.flush())
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
    return this.#partitions.running as Map<number, Partition>
  }

  /** The partitions this node runs now, ascending, whatever thread runs them. */
  async partitionIds(): Promise<number[]> {
    return [...this.#partitions.running.keys()].sort((a, b) => a - b)
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
      failures: this.#partitions.failures,
    }
    for (const p of this.#partitions.running.values()) {
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
    // the lease, the carrying of calls and of releases (partition-threads.ts)
    const flags = new SharedArrayBuffer(12)
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
        connection: { name: `basalt-node ${this.nodeId}`, ...pickConnection(options) },
        nodeId: this.nodeId,
        registryModule,
        cwd: process.cwd(),
        registryNames: o.registryNames,
        dynamic,
        flags,
        beats: new SharedArrayBuffer(4 * count),
        hangTimeoutMs: hangTimeout(options.hangTimeoutMs),
        pipelining: o.pipelining,
        localDelivery: o.localDelivery,
        cacheSize: Math.max(16, Math.ceil(o.cacheSize / this.hub.meta.partitions)),
        maxBatch: o.maxBatch,
        snapshotRecords: o.snapshotRecords,
        snapshotIntervalMs: o.snapshotIntervalMs,
        ...(o.keepIdleLogMs === undefined ? {} : { keepIdleLogMs: o.keepIdleLogMs }),
        alwaysReplay: this.workflows.alwaysReplay,
        handleUncaughtErrors: options.handleUncaughtErrors !== false,
        activityConcurrency: options.activityConcurrency ?? 100,
        activityTimeoutMs: this.workflows.activities.defaultTimeoutMs,
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
        stopped: (p, epoch, reason, error) => this.#partitions.onStopped(p, epoch, reason, error),
        lost: (p, epoch, error) => this.#partitions.onStopped(p, epoch, 'failed', error),
        offload: (task) => this.workflows.offload?.publish(task),
        metrics: this.metrics,
      },
    )
    const threads = this.#threads
    this.#partitions.useThreads(threads)
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
      running: () => [...this.#partitions.running.keys()].sort((a, b) => a - b),
      onChange: () => this.#partitions.reconcile(),
      onLeaseLost: () => {
        this.#partitions.stopAll()
        void this.#checkHub() // the heartbeats fail: was the hub deleted?
      },
      types: this.options.registryNames,
      readLatest: (key) => latestKvEntry(this.hub.jsm, this.hub.names.metaBucket, key),
      onHubInDoubt: () => void this.#checkHub(),
      onHubRecord: (value) => {
        // another creation time is proof that the hub was created again; a missing record is checked
        const fate = fateOf(this.hub.meta, value)
        if (fate === 'recreated') void this.#hubGone(fate)
        else if (fate === 'deleted') void this.#checkHub()
      },
    })
    this.#partitions.follow(this.#agent)
    if (!(await this.#waits.until(() => this.#settled(), readyTimeoutMs))) {
      logger.warn('placement not settled yet; serving what is assigned so far', { node: this.nodeId })
      return
    }
    // ready: the heartbeat record lists what this node serves from now on
    await this.#agent.heartbeatNow()
  }

  #checkingHub = false

  /** Stops the node if its hub was deleted; one check at a time, none when NATS cannot tell. */
  async #checkHub(): Promise<void> {
    if (this.#checkingHub || this.#stopped) return
    this.#checkingHub = true
    try {
      const fate = await hubFate(this.hub)
      if (fate !== 'same') await this.#hubGone(fate)
    } catch {
      // NATS did not answer: the next lapse asks again
    } finally {
      this.#checkingHub = false
    }
  }

  #settled(): boolean {
    const agent = this.#agent!
    if (!agent.settled()) return false
    for (let p = 0; p < this.hub.meta.partitions; p++) {
      if (agent.assignment(p)?.node === this.nodeId && !this.#partitions.running.has(p)) return false
    }
    return true
  }
}

/** After this long a start-up step that still waits (connect, hub open) logs a warning saying so. */
const SLOW_START_MS = 10_000

/** Why a node stops without handing its partitions over, when the server cannot be reached. */
const UNREACHABLE = 'NATS server unreachable'

/** The hang timeout of partition threads, in ms (default 30 s, 0: none); throws `BadInputError`. */
function hangTimeout(ms: number | undefined): number {
  return checkOptionalMs(ms, 'hangTimeoutMs', '0: never') ?? 30_000
}

/**
 * How often the hub's streams are cut (ms; 0: never). Asked for, or by default every 30 s on one
 * server and never on a replicated hub. A replicated hub is never cut through a server before
 * 2.9.18, whatever was asked: such a server replays a purge after a crash as a purge of everything
 * below the stream's end ({@link purgesReplaySafely}), which loses acknowledged messages.
 */
function streamTrimInterval(
  asked: number | undefined,
  replicas: number,
  nc: NatsConnection,
  logger: Logger,
): number {
  if (replicas <= 1) return asked ?? 30_000
  if (asked === undefined || asked === 0) return 0
  const version = nc.info?.version
  if (purgesReplaySafely(version)) return asked
  logger.warn(
    `streamTrimIntervalMs ${asked} ignored: cutting a replicated hub's streams needs nats-server 2.9.18 ` +
      `or later on every server, and this one runs ${version ?? 'an unknown version'}, which after a ` +
      `crash replays a purge as a purge of every message up to the stream's end at the time ` +
      `(nats-server issue 4196) and so loses acknowledged messages; the streams keep every message`,
    { server: version },
  )
  return 0
}

/**
 * The web dashboard of `options.dashboard`, listening (its hub connection follows in the
 * background); undefined without one. Loaded only when asked for: the web server and its
 * dependencies are no part of a node's start.
 */
async function startNodeDashboard(options: NodeOptions): Promise<Dashboard | undefined> {
  if (options.dashboard === undefined) return undefined
  const { startDashboard } = await import('../dashboard/index.ts')
  return startDashboard({
    ...pickConnection(options),
    hub: options.hub,
    ...options.dashboard,
    optionNames: { port: '--dashboard-port, dashboard.port', host: 'dashboard.host' },
  })
}
