/**
 * The node's partition runner: brings the partitions this node runs in line with what placement
 * assigns it, and keeps them running. It starts what is assigned (with the assigned epoch), hands
 * off what was moved away (a graceful stop, then a release for the new owner), remembers the
 * epochs at which this node was fenced (never to start a partition at one of them again), and
 * restarts a partition that failed, after a delay that grows while it keeps failing, under a fresh
 * epoch (renewed through placement, or claimed anew with `placement: 'static'`).
 *
 * It runs partitions on this thread (`Partition`) or on worker threads (`PartitionThreads`
 * handles) alike: both are a {@link RunningPartition}. A reconcile step never waits for a start or
 * a stop: it launches them and a step runs again when they finish (a {@link BatchWorker}: a kick
 * while a step runs runs it once more). Apart from node.ts so that the Node class only wires
 * components, and this bookkeeping reads as one piece.
 */
import { AuthorizationError, FencedError, HubNotFoundError, IllegalStateError } from '../../actors/index.ts'
import type { EntityRegistry } from '../../entities/index.ts'
import { claimPartition, LOCK_OPS, RELEASE_OPS, type PlacementAgent } from '../../placement/index.ts'
import { InstanceHost, type Workflows } from '../instances/index.ts'
import type { NodeMetrics } from '../metrics/index.ts'
import {
  describeNatsError,
  hubFate,
  isPermissionDenied,
  isTransient,
  permissionViolation,
  type Hub,
  type HubFate,
  type NatsConnection,
} from '../nats/index.ts'
import { Partition, type PartitionOptions, RecentReplies } from '../partition/index.ts'
import { BatchWorker } from '../util/index.ts'
import { assignmentStore } from './assignment-store.ts'
import type { NodeSettings } from './node-options.ts'
import type { PartitionThreads, RunningPartition } from './partition-threads.ts'

/** Most a start waits for the check that its hub is still there (then it goes ahead). */
const HUB_CHECK_MS = 500

/** Most a start that failed because NATS could not answer yet waits before the next try. */
const TRANSIENT_RETRY_MS = 1000

/**
 * Most a partition refused by the server's permissions waits before the next try: an operator who
 * gives the permission back sees work go on within seconds, not after a 30 s delay.
 */
const PERMISSION_RETRY_MS = 5000

/**
 * The most a partition that failed with `err` waits before it is tried again (undefined: the
 * doubling delay's own cap, 30 s): 1 s when NATS could not answer yet, 5 s when the server's
 * permissions refused it.
 */
export function retryCapMs(err: unknown): number | undefined {
  if (isTransient(err)) return TRANSIENT_RETRY_MS
  return refusedByPermissions(err) ? PERMISSION_RETRY_MS : undefined
}

/** Whether `err` (or one of its causes) is the server's permissions refusing a publish or subscription. */
export function refusedByPermissions(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (isPermissionDenied(e) || e instanceof AuthorizationError) return true
  }
  return permissionViolation(err) !== undefined
}

/** What the runner needs of its node. */
export interface PartitionRunnerDeps {
  nc: NatsConnection
  hub: Hub
  nodeId: string
  registry: EntityRegistry
  workflows: Workflows
  settings: NodeSettings
  metrics: NodeMetrics
  /** Called after every reconcile step (the node re-checks what it waits on). */
  onIdle: () => void
  /** The hub this node opened was deleted (and perhaps created again): the node stops. */
  onHubGone: (fate: Exclude<HubFate, 'same'>) => void
}

/** Starts, hands off, stops and restarts the partitions of one node (see the file header). */
export class PartitionRunner {
  /** The partitions this node runs: `Partition`s, or handles of partitions run by worker threads. */
  readonly #running = new Map<number, RunningPartition>()
  /** The worker threads that run the partitions (absent: they run on this thread). */
  #threads: PartitionThreads | undefined
  /** The placement agent (dynamic placement only). */
  #agent: PlacementAgent | undefined
  #stopped = false
  /** The hub was deleted under the node (see {@link hubGone}). */
  #hubGone = false
  readonly #restarts = new Set<NodeJS.Timeout>()
  readonly #starting = new Set<number>()
  /** Partitions being stopped and released, with the promise that settles when done. */
  readonly #closing = new Map<number, Promise<void>>()
  /** The partitions being stopped gracefully (a close can wait on a commit that never lands). */
  readonly #closingPartitions = new Map<number, RunningPartition>()
  /** Replies each partition sent lately; kept while p restarts here after a failure. */
  readonly #recentReplies = new Map<number, RecentReplies>()
  /** Highest epoch per partition at which this node was fenced: never start it at that epoch again. */
  readonly #fenced = new Map<number, number>()
  /** Partition failures on this node (each followed by a restart), and per partition the last one. */
  #failures = 0
  readonly #lastFailure = new Map<number, { at: number; delayMs: number }>()
  /**
   * Failed partitions waiting for their restart delay, until when: a reconcile step in between
   * (any placement change, a replaced thread) must not start them early — without this, a
   * partition that fails at once on every start was restarted each time the node reconciled.
   */
  readonly #backoff = new Map<number, number>()
  /** Brings the running partitions in line with the assignment; a kick while it runs runs it again. */
  readonly #reconciler: BatchWorker

  constructor(private readonly deps: PartitionRunnerDeps) {
    this.#reconciler = new BatchWorker(() => this.#reconcileOnce(), {
      onError: (err) => deps.settings.logger.error('reconciling partitions failed', { error: String(err) }),
      onIdle: () => deps.onIdle(),
    })
  }

  /** Every partition this node still holds: running, or being stopped gracefully. */
  held(): RunningPartition[] {
    return [...this.#running.values(), ...this.#closingPartitions.values()]
  }

  /** The partitions running now, by partition number. */
  get running(): ReadonlyMap<number, RunningPartition> {
    return this.#running
  }

  /** Partition failures on this node so far (each followed by a restart). */
  get failures(): number {
    return this.#failures
  }

  /** From now on, partitions start on these worker threads instead of this thread. */
  useThreads(threads: PartitionThreads): void {
    this.#threads = threads
  }

  /** From now on, follow this placement agent's assignment (dynamic placement). */
  follow(agent: PlacementAgent): void {
    this.#agent = agent
  }

  /** Brings the running partitions in line with the assignment soon (see {@link #reconcileOnce}). */
  reconcile(): void {
    this.#reconciler.kick()
  }

  /** The node is stopping: start nothing more, and let failures restart nothing. */
  halt(): void {
    this.#stopped = true
  }

  /**
   * The hub was deleted under the node: it stops without handing anything over, and says so once;
   * hand-offs already under way fail (the hub's streams are gone) and are not reported each.
   */
  hubGone(): void {
    this.#stopped = true
    this.#hubGone = true
  }

  /** Cancels the restarts of failed partitions still waiting for their delay. */
  cancelRestarts(): void {
    for (const t of this.#restarts) clearTimeout(t)
  }

  /** Brings the running partitions in line with the assignment; never waits for starts or stops. */
  #reconcileOnce(): void {
    const agent = this.#agent
    if (this.#stopped || agent === undefined) return
    this.#threads?.hubNames([...agent.types.hubNames()])
    this.#threads?.setCarryCalls(agent.everyNodeHas(LOCK_OPS))
    this.#threads?.setReleaseWithCalls(agent.everyNodeHas(RELEASE_OPS))
    const want = agent.wanted()
    for (const [p, partition] of this.#running) {
      if (want.get(p) !== partition.options.epoch) void this.handOff(p, partition)
    }
    for (const [p, epoch] of agent.handoffs()) {
      if (!this.#running.has(p) && !this.#starting.has(p) && !this.#closing.has(p))
        void agent.release(p, epoch).catch(() => {})
    }
    for (const [p, epoch] of want) {
      if (this.#running.has(p) || this.#starting.has(p) || this.#closing.has(p)) continue
      if ((this.#fenced.get(p) ?? 0) >= epoch) continue
      if ((this.#backoff.get(p) ?? 0) > Date.now()) continue
      this.#starting.add(p)
      this.start(p, epoch)
        .catch((err: unknown) => {
          if (err instanceof FencedError) {
            this.#fenced.set(p, epoch)
            return
          }
          if (err instanceof HubNotFoundError) return // the node stops (onHubGone)
          // retried after the same growing delay as a failure (a start that fails at once —
          // the hub's streams deleted under the node, say — must not loop); at most a second
          // when NATS could not answer yet (a cluster electing leaders after a server went down):
          // such a start already waited out a request timeout, and doubled delays of 3–6 s made
          // partitions wait on past the election
          const delayMs = this.#afterDelay(p, () => this.reconcile(), retryCapMs(err))
          this.deps.settings.logger.error('partition start failed; will retry', {
            p,
            retryInMs: delayMs,
            error: describeNatsError(err),
          })
        })
        .finally(() => {
          this.#starting.delete(p)
          this.reconcile() // it may have been moved away meanwhile
        })
    }
  }

  /** Stops partition p gracefully (its in-flight commit completes) and releases it. */
  handOff(p: number, partition: RunningPartition, snapshot = false): Promise<void> {
    this.#running.delete(p)
    this.deps.metrics.lost()
    this.#recentReplies.delete(p) // the next owner answers for p
    const epoch = partition.options.epoch
    const done = partition
      .close(snapshot)
      .then(() => this.#agent?.release(p, epoch))
      .catch((err: unknown) => {
        if (!this.#hubGone)
          this.deps.settings.logger.warn('hand-off failed', { p, error: describeNatsError(err) })
      })
      .finally(() => {
        this.#closing.delete(p)
        this.#closingPartitions.delete(p)
        this.reconcile()
      })
    this.#closing.set(p, done)
    this.#closingPartitions.set(p, partition)
    return done
  }

  /**
   * Hands off every running partition (with `snapshot`, each writes a final snapshot first) and
   * waits until those and the hand-offs already under way are done.
   */
  async handOffAll(snapshot: boolean): Promise<void> {
    for (const [p, partition] of this.#running) void this.handOff(p, partition, snapshot)
    await Promise.all(this.#closing.values())
  }

  /**
   * An error escaped Basalt's own code on this thread (uncaught-errors.ts): every partition run on
   * this thread stops as failed and recovers from its log (those on worker threads are theirs to
   * judge).
   */
  failAll(error: Error): void {
    for (const partition of this.#running.values()) if (partition instanceof Partition) partition.fail(error)
  }

  /** Our lease lapsed (we were paused or cut off): stop serving everything at once. */
  stopAll(): void {
    for (const [p, partition] of this.#running) void this.handOff(p, partition)
  }

  /**
   * Starts partition p at `epoch`, on a worker thread or on this thread. Throws `FencedError` when
   * a newer epoch already owns p, `IllegalStateError` once the node is stopping.
   */
  async start(p: number, epoch: number): Promise<void> {
    if (this.#stopped) throw new IllegalStateError('node is stopped')
    const { nc, hub, registry, workflows, settings, metrics } = this.deps
    await this.#checkHub()
    if (this.#threads !== undefined) {
      const running = await this.#threads.startPartition(p, epoch)
      if (this.#stopped) await running.close()
      else {
        this.#running.set(p, running)
        metrics.gained()
      }
      return
    }
    const perPartition = Math.max(16, Math.ceil(settings.cacheSize / hub.meta.partitions))
    const agent = this.#agent
    const options: PartitionOptions = {
      ...settings,
      registry,
      epoch,
      cacheSize: perPartition,
      // (with no orchestration too: see PartitionOptions.instances)
      instances: (port) => new InstanceHost(port, { ...workflows, cacheSize: perPartition }),
      onStopped: (reason, error) => this.onStopped(p, epoch, reason, error),
      ...(agent === undefined
        ? {}
        : {
            mayWrite: () => this.#agent?.holdsLease() ?? true,
            types: agent.types,
            carryCalls: () => agent.everyNodeHas(LOCK_OPS),
            releaseWithCalls: () => agent.everyNodeHas(RELEASE_OPS),
          }),
      recentReplies: this.#recentReplies.get(p) ?? new RecentReplies(),
      metrics,
    }
    this.#recentReplies.set(p, options.recentReplies!)
    const partition = await Partition.start(nc, hub, p, options)
    if (this.#stopped) {
      await partition.close()
      return
    }
    this.#running.set(p, partition)
    metrics.gained()
  }

  /**
   * Before a start: the hub this node opened must still be there. Deleted under the node (`basalt
   * hub delete --force`) and created again, its new log would take this node's claim at an epoch
   * of the old hub and fence the new hub's rightful owners. Throws `HubNotFoundError` (and tells
   * the node) when it is gone; when NATS cannot tell, the start goes ahead and fails on its own.
   */
  async #checkHub(): Promise<void> {
    // bounded: while a cluster elects a leader for the metadata stream, a start must not wait on it
    const unanswered = new Promise<'same'>((resolve) => setTimeout(resolve, HUB_CHECK_MS, 'same').unref())
    const first = await Promise.race([hubFate(this.deps.hub, 0).catch(() => 'same' as const), unanswered])
    if (first === 'same') return
    const fate = await hubFate(this.deps.hub).catch(() => 'same' as const) // confirmed
    if (fate === 'same') return
    this.deps.onHubGone(fate)
    throw new HubNotFoundError(this.deps.hub.names.hub)
  }

  /**
   * Partition p (at `epoch`) stopped by itself: fenced by a newer owner (never run it at that
   * epoch again; ask placement for a fresh one if it still gives p to this node) or failed
   * (restart it from its log after {@link #restartDelay}).
   */
  onStopped(p: number, epoch: number, reason: 'fenced' | 'failed', error: Error): void {
    if (this.#running.get(p)?.options.epoch === epoch) this.#running.delete(p)
    this.deps.metrics.lost()
    if (this.#stopped) return
    const agent = this.#agent
    const { logger } = this.deps.settings
    if (reason === 'fenced') {
      this.#fenced.set(p, Math.max(epoch, this.#fenced.get(p) ?? 0))
      logger.warn('partition taken over by a newer owner; stopped it here', { p, error: error.message })
      // If placement still gives p to this node at that epoch, nobody else runs it: the newer epoch
      // came from outside placement (a static claim). Ask for a fresh epoch rather than leave p
      // unserved; the assignment's watch then starts it again.
      void agent?.renew(p, epoch).catch(() => {})
      this.reconcile()
      return
    }
    // An internal failure: never continue on suspect state; recover from the log — after a delay
    // that doubles while the partition keeps failing, so a failure that recurs is never retried
    // in a tight loop — with a fresh epoch when placement gives one (else the same epoch: the new
    // run's token tells its records apart).
    this.#failures++
    this.#afterDelay(
      p,
      () => {
        if (agent !== undefined) {
          // (once renewed, the assignment's watch brings the new epoch and the next step starts it)
          void agent
            .renew(p, epoch)
            .catch(() => false)
            .then((renewed) => {
              if (!renewed) this.reconcile()
            })
          return
        }
        claimPartition(assignmentStore(this.deps.hub.metaKv), p, this.deps.nodeId)
          .then((next) => this.start(p, next))
          .catch((err: unknown) => {
            if (err instanceof FencedError) return
            logger.error('partition restart failed', { p, error: String(err) })
            this.onStopped(p, epoch, 'failed', err as Error)
          })
      },
      refusedByPermissions(error) ? PERMISSION_RETRY_MS : undefined,
    )
  }

  /**
   * Runs `then` after p's next restart delay ({@link #restartDelay}); until then a reconcile step
   * does not start p ({@link #backoff}). Returns the delay.
   */
  #afterDelay(p: number, then: () => void, capMs?: number): number {
    const delayMs = this.#restartDelay(p, capMs)
    this.#backoff.set(p, Date.now() + delayMs)
    const timer = setTimeout(() => {
      this.#restarts.delete(timer)
      this.#backoff.delete(p)
      then()
    }, delayMs)
    this.#restarts.add(timer)
    return delayMs
  }

  /**
   * Delay before restarting a failed partition: 200 ms, doubled for every failure that follows
   * the previous one within a minute, at most 30 s (or `capMs`).
   */
  #restartDelay(p: number, capMs = 30_000): number {
    const now = Date.now()
    const last = this.#lastFailure.get(p)
    const doubled = last !== undefined && now - last.at < 60_000 ? last.delayMs * 2 : 200
    const delayMs = Math.min(doubled, capMs, 30_000)
    this.#lastFailure.set(p, { at: now, delayMs })
    return delayMs
  }
}
