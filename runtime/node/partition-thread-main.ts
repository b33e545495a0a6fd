/**
 * The entry of a partition thread (see partition-threads.ts for the main thread's side): connects
 * to NATS on its own connection, opens the hub, imports the registry from its module, then starts
 * and stops partitions as the main thread orders, with the epochs placement gave. It reports a
 * partition that stopped by itself (fenced, failed) so the node's restart and renew logic applies,
 * posts its partitions' counters and its metrics recorder's report (runtime/metrics/threads.ts)
 * every `statsIntervalMs` and when a scrape asks, sends its log lines to the node's
 * logger, and hands activities to offload to the main thread (which owns the node's
 * `ActivityWorkers`); activities that stay local run in this thread's own pool.
 *
 * Only started as a worker thread; it does nothing when imported otherwise.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import { toErrorInfo } from '../../actors/index.ts'
import { EntityRegistry } from '../../entities/index.ts'
import { HubTypes } from '../../placement/index.ts'
import { ActivityPool } from '../activities/index.ts'
import { NodeRecorder, threadReport } from '../metrics/index.ts'
import { InstanceHost, type Workflows } from '../instances/index.ts'
import {
  BlobStore,
  closeConnection,
  connectTo,
  ensureHub,
  type Hub,
  type NatsConnection,
} from '../nats/index.ts'
import { Partition, RecentReplies } from '../partition/index.ts'
import type { Logger } from '../util/index.ts'
import {
  BEAT_MS,
  type FromThread,
  type PartitionCounters,
  type ThreadSetup,
  type ToThread,
} from './partition-thread-protocol.ts'
import { loadRegistry, splitRegistry } from './registry-module.ts'
import { watchUncaughtErrors } from './uncaught-errors.ts'

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const post = (msg: FromThread) => port.postMessage(msg)
  void runThread(workerData as ThreadSetup, post, (handler) => port.on('message', handler))
}

/** Runs one partition thread until the main thread terminates it. */
async function runThread(
  setup: ThreadSetup,
  post: (msg: FromThread) => void,
  listen: (handler: (msg: ToThread) => void) => void,
): Promise<void> {
  const logger = threadLogger(post)
  let nc: NatsConnection
  let hub: Hub
  let registry: EntityRegistry
  let workflows: Workflows
  try {
    const split = splitRegistry(await loadRegistry(setup.registryModule, setup.cwd))
    registry = new EntityRegistry(split.entities, { operationTimeoutMs: setup.entityOperationTimeoutMs })
    const threshold = setup.offloadThreshold
    // (with no orchestration too: see PartitionOptions.instances)
    workflows = {
      orchestrations: new Map(split.orchestrations.map((o) => [o.name, o])),
      activities: new ActivityPool(split.activities, setup.activityConcurrency, setup.activityTimeoutMs),
      alwaysReplay: setup.alwaysReplay,
      cacheSize: setup.cacheSize,
      ...(threshold === undefined
        ? {}
        : { offload: { threshold, publish: (task) => post({ t: 'offload', task }) } }),
    }
    nc = await connectTo(
      { ...setup.connection, name: `${setup.connection.name ?? 'basalt-node'} thread ${setup.index}` },
      'basalt-node',
    )
    hub = await ensureHub(nc, setup.hub, setup.hubOptions)
  } catch (err) {
    post({ t: 'setupFailed', error: toErrorInfo(err) })
    return
  }
  const flags = new Int32Array(setup.flags) // [0]: the node holds its lease, [1]: calls may travel with locks, [2]: and carry releases
  // the beat of this thread's event loop: the main thread terminates the thread when it stops
  // (a synchronous endless loop in user code), see partition-threads.ts
  const beats = new Int32Array(setup.beats)
  setInterval(() => Atomics.add(beats, setup.index, 1), BEAT_MS).unref()
  let hubNames: string[] = []
  const types = setup.dynamic ? new HubTypes(setup.registryNames, () => hubNames) : undefined
  const blobs = new BlobStore(nc, hub.jsm, hub.names, {
    threshold: setup.blobThresholdBytes,
    ceiling: setup.maxValueBytes,
  })
  const partitions = new Map<number, Partition>()
  const recentReplies = new Map<number, RecentReplies>()
  // what this thread's partitions count; the main thread adds it into the node's (threads.ts)
  const metrics = new NodeRecorder()
  const pool = workflows.activities

  const start = async (p: number, epoch: number): Promise<void> => {
    const replies = recentReplies.get(p) ?? new RecentReplies()
    recentReplies.set(p, replies)
    const partition = await Partition.start(nc, hub, p, {
      registry,
      epoch,
      logger,
      pipelining: setup.pipelining,
      localDelivery: setup.localDelivery,
      cacheSize: setup.cacheSize,
      maxBatch: setup.maxBatch,
      snapshotRecords: setup.snapshotRecords,
      snapshotIntervalMs: setup.snapshotIntervalMs,
      ...(setup.keepIdleLogMs === undefined ? {} : { keepIdleLogMs: setup.keepIdleLogMs }),
      blobs,
      recentReplies: replies,
      metrics,
      instances: (port) => new InstanceHost(port, workflows),
      ...(setup.dynamic
        ? {
            mayWrite: () => Atomics.load(flags, 0) === 1,
            carryCalls: () => Atomics.load(flags, 1) === 1,
            releaseWithCalls: () => Atomics.load(flags, 2) === 1,
          }
        : {}),
      ...(types === undefined ? {} : { types }),
      onStopped: (reason, error) => {
        if (partitions.get(p)?.options.epoch === epoch) partitions.delete(p)
        post({ t: 'stopped', p, epoch, reason, error: toErrorInfo(error) })
      },
    })
    partitions.set(p, partition)
  }

  /** Partitions being closed gracefully (an abandon stops them too: their close may wait on a gone log). */
  const closing = new Set<Partition>()
  const close = async (p: number, snapshot: boolean): Promise<void> => {
    const partition = partitions.get(p)
    partitions.delete(p)
    recentReplies.delete(p) // the next owner answers for p
    if (partition === undefined) return
    closing.add(partition)
    await partition.close(snapshot).finally(() => closing.delete(partition))
  }

  const reply = (id: number, work: Promise<void>) =>
    void work.then(
      () => post({ t: 'reply', id }),
      (err: unknown) => post({ t: 'reply', id, error: toErrorInfo(err) }),
    )

  listen((msg) => {
    switch (msg.t) {
      case 'start':
        return reply(msg.id, start(msg.p, msg.epoch))
      case 'close':
        return reply(msg.id, close(msg.p, msg.snapshot))
      case 'abandon':
        for (const partition of [...partitions.values(), ...closing]) partition.abandon()
        partitions.clear()
        // what the partitions said last (queries told to ask again) leaves if the server is there
        void Promise.race([nc.flush(), new Promise((resolve) => setTimeout(resolve, 500))])
          .catch(() => {})
          .then(() => nc.close())
          .catch(() => {})
        return
      case 'shutdown':
        return reply(
          msg.id,
          Promise.all([...partitions.keys()].map((p) => close(p, false))).then(() => closeConnection(nc)),
        )
      case 'hubNames':
        hubNames = msg.names
        return
      case 'report':
        report()
        post({ t: 'reply', id: msg.id })
        return
      default: {
        const never: never = msg
        logger.error('unknown order from the main thread', { order: JSON.stringify(never) })
      }
    }
  })

  function report(): void {
    const counters: PartitionCounters[] = []
    for (const partition of partitions.values()) {
      counters.push({
        p: partition.p,
        epoch: partition.options.epoch,
        stats: { ...partition.stats },
        cached: partition.cachedEntities,
      })
    }
    const activities = { queued: pool.backlog, running: pool.running }
    post({ t: 'stats', partitions: counters, metrics: threadReport(metrics, activities) })
  }
  setInterval(report, setup.statsIntervalMs).unref()
  if (setup.handleUncaughtErrors) {
    // (for the thread's life: nothing to remove)
    watchUncaughtErrors({
      logger,
      failPartitions: (err) => {
        for (const partition of partitions.values()) partition.fail(err)
      },
    })
  }

  post({ t: 'ready' })
}

/** A logger whose lines go to the node's own logger on the main thread. */
function threadLogger(post: (msg: FromThread) => void): Logger {
  const send = (level: 'info' | 'warn' | 'error') => (message: string, fields?: Record<string, unknown>) => {
    try {
      post({ t: 'log', level, message, ...(fields === undefined ? {} : { fields }) })
    } catch {
      // a field that cannot be cloned: send the fields as text
      let text: string
      try {
        text = JSON.stringify(fields)
      } catch {
        text = String(fields)
      }
      post({ t: 'log', level, message, fields: { fields: text } })
    }
  }
  return { info: send('info'), warn: send('warn'), error: send('error') }
}
