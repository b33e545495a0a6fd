/**
 * A Basalt node: connects to NATS, opens (or creates) the hub, takes its partitions and runs them.
 * For now one node owns every partition (single-node placement); each start claims fresh epochs,
 * so an older process still running on the same hub is fenced out by the commit log.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { BadInputError, ConnectionError, FencedError, IllegalStateError } from '../actors/errors.ts'
import {
  isActivityDefinition,
  isOrchestrationDefinition,
  type ActivityDefinition,
  type OrchestrationDefinition,
} from '../actors/orchestration/index.ts'
import { ActivityPool } from './activities.ts'
import { Client } from './client.ts'
import { ActivityWorkers } from './workers.ts'
import { InstanceHost, type Workflows } from './instances.ts'
import { EntityRegistry, type EntityClass } from '../entities/index.ts'
import { claimPartition, type Assignment, type AssignmentStore } from '../placement/index.ts'
import { decode, encode } from './codec.ts'
import { ensureHub, type Hub, type HubOptions } from './hub.ts'
import { consoleLogger, type Logger } from './logger.ts'
import { Partition, type PartitionOptions } from './partition.ts'
import type { KV } from '@nats-io/kv'
import { isFencingRejection } from './storage.ts'

/** Options of {@link Node.start}. */
export interface NodeOptions extends HubOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[]
  /** Hub name: letters, digits, `_` and `-`. */
  hub: string
  /** Entity classes, orchestrations and activities this node runs. */
  registry: Array<RegistryItem>
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
  /** Most mailbox messages per processing step (default 1,000). */
  maxBatch?: number
  /** Snapshot after this many records (default 1,000)... */
  snapshotRecords?: number
  /** ...or this long after the first unsnapshotted record, in ms (default 2,000). */
  snapshotIntervalMs?: number
  /** Only these partitions (default: all). */
  partitionsToRun?: number[]
  /** Where logs go (default: stderr, info included). */
  logger?: Logger
}

/** A running node. */
export class Node {
  readonly partitions = new Map<number, Partition>()
  #stopped = false
  readonly #restarts = new Set<NodeJS.Timeout>()

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly nodeId: string,
    readonly registry: EntityRegistry,
    readonly workflows: Workflows,
    readonly workers: ActivityWorkers | undefined,
    readonly options: Required<
      Pick<NodeOptions, 'pipelining' | 'cacheSize' | 'maxBatch' | 'snapshotRecords' | 'snapshotIntervalMs'>
    > & { logger: Logger },
  ) {}

  /**
   * Connects, opens or creates the hub, and starts (recovers) the node's partitions. Throws
   * {@link ConnectionError} naming the URL when NATS cannot be reached, and `BadInputError` for a
   * bad hub name or registry.
   *
   * @example
   * const node = await Node.start({ servers: 'nats://127.0.0.1:4222', hub: 'demo', registry: [Counter] })
   */
  static async start(options: NodeOptions): Promise<Node> {
    const { entities, orchestrations, activities } = splitRegistry(options.registry)
    const registry = new EntityRegistry(entities)
    const workflows: Workflows = {
      orchestrations: new Map(orchestrations.map((o) => [o.name, o])),
      activities: new ActivityPool(activities, options.activityConcurrency ?? 100),
      alwaysReplay: options.alwaysReplay ?? false,
      cacheSize: 0,
    }
    const nc = await connectTo(options.servers, `basalt-node`)
    let workers: ActivityWorkers | undefined
    try {
      const hub = await ensureHub(nc, options.hub, options)
      if (activities.length > 0) {
        const logger = options.logger ?? consoleLogger(`basalt[${options.hub}]`)
        const client = await Client.connect({ servers: options.servers, hub: options.hub })
        workers = await ActivityWorkers.start(nc, hub, workflows.activities, client, logger)
        const w = workers
        workflows.offload = { threshold: options.offloadThreshold ?? 200, publish: (task) => w.publish(task) }
      }
      const node = new Node(
        nc,
        hub,
        options.nodeId ?? `node-${process.pid}-${nc.info?.client_id ?? 0}`,
        registry,
        workflows,
        workers,
        {
          pipelining: options.pipelining ?? true,
          cacheSize: options.cacheSize ?? 100_000,
          maxBatch: options.maxBatch ?? 1000,
          snapshotRecords: options.snapshotRecords ?? 1000,
          snapshotIntervalMs: options.snapshotIntervalMs ?? 2000,
          logger: options.logger ?? consoleLogger(`basalt[${options.hub}]`),
        },
      )
      const all = Array.from({ length: hub.meta.partitions }, (_, p) => p)
      await Promise.all((options.partitionsToRun ?? all).map((p) => node.#startPartition(p)))
      return node
    } catch (err) {
      await workers?.stop()
      await workers?.client.close()
      await nc.close().catch(() => {})
      throw err
    }
  }

  /** The hub's partition count. */
  get partitionCount(): number {
    return this.hub.meta.partitions
  }

  /**
   * Stops the node: partitions finish their in-flight commits and stop; with `snapshot`, each
   * writes a final snapshot first. Idempotent.
   */
  async stop(options: { snapshot?: boolean } = {}): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    for (const t of this.#restarts) clearTimeout(t)
    await this.workers?.stop()
    await Promise.all([...this.partitions.values()].map((p) => p.close(options.snapshot ?? false)))
    this.partitions.clear()
    await this.workers?.client.close()
    await closeConnection(this.nc)
  }

  /** Records committed, messages processed and snapshots taken, summed over partitions. */
  stats(): { records: number; messages: number; snapshots: number; deadLetters: number; cached: number } {
    const total = { records: 0, messages: 0, snapshots: 0, deadLetters: 0, cached: 0 }
    for (const p of this.partitions.values()) {
      total.records += p.stats.records
      total.messages += p.stats.messages
      total.snapshots += p.stats.snapshots
      total.deadLetters += p.stats.deadLetters
      total.cached += p.cachedEntities
    }
    return total
  }

  async #startPartition(p: number): Promise<void> {
    if (this.#stopped) throw new IllegalStateError('node is stopped')
    const epoch = await claimPartition(assignmentStore(this.hub.metaKv), p, this.nodeId)
    const perPartition = Math.max(16, Math.ceil(this.options.cacheSize / this.hub.meta.partitions))
    const options: PartitionOptions = {
      ...this.options,
      registry: this.registry,
      epoch,
      cacheSize: perPartition,
      ...(this.workflows.orchestrations.size === 0
        ? {}
        : {
            instances: (port: Partition) =>
              new InstanceHost(port, { ...this.workflows, cacheSize: perPartition }),
          }),
      onStopped: (reason, error) => this.#onStopped(p, reason, error),
    }
    const partition = await Partition.start(this.nc, this.hub, p, options)
    this.partitions.set(p, partition)
  }

  #onStopped(p: number, reason: 'fenced' | 'failed', error: Error): void {
    this.partitions.delete(p)
    if (this.#stopped) return
    if (reason === 'fenced') {
      this.options.logger.warn('partition taken over by a newer owner; not restarting', {
        p,
        error: error.message,
      })
      return
    }
    // An internal failure: never continue on suspect state; recover from the log.
    const timer = setTimeout(() => {
      this.#restarts.delete(timer)
      this.#startPartition(p).catch((err: unknown) => {
        if (err instanceof FencedError) return
        this.options.logger.error('partition restart failed', { p, error: String(err) })
        this.#onStopped(p, 'failed', err as Error)
      })
    }, 200)
    this.#restarts.add(timer)
  }
}

/**
 * Drains a connection, and closes it when draining fails (e.g. the server is gone), so that a
 * stopped node or client never keeps reconnecting in the background.
 */
export async function closeConnection(nc: NatsConnection): Promise<void> {
  await nc.drain().catch(() => {})
  if (!nc.isClosed()) await nc.close().catch(() => {})
}

/** What a node's registry may hold. */
export type RegistryItem = EntityClass<any> | OrchestrationDefinition<any, any> | ActivityDefinition<any, any>

/** Sorts a registry into entity classes, orchestrations and activities; rejects anything else. */
export function splitRegistry(items: RegistryItem[]): {
  entities: Array<EntityClass<any>>
  orchestrations: Array<OrchestrationDefinition<any, any>>
  activities: Array<ActivityDefinition<any, any>>
} {
  const entities: Array<EntityClass<any>> = []
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

/** Connects to NATS; the error names the URL(s) when the server cannot be reached. */
export async function connectTo(servers: string | string[], name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250 })
  } catch (err) {
    const list = Array.isArray(servers) ? servers.join(', ') : servers
    throw new ConnectionError(`cannot reach NATS at ${list}: ${(err as Error).message}`, { cause: err })
  }
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
        if (isFencingRejection(err)) return false
        throw err
      }
    },
  }
}
