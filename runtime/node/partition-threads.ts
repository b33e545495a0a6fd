/**
 * Partition threads: a node with `workers > 1` runs its partitions on that many worker threads
 * (`node:worker_threads`), so that one node process uses every core. This is the main thread's
 * side: it starts the threads, decides which thread runs which partition (the least loaded, ties
 * broken towards thread `p mod N`, so a partition restarted on a fresh node lands where it ran
 * before), asks a thread to start or stop a partition with its epoch, and hears back when a
 * partition stopped by itself (fenced, failed) or when a whole thread died. Placement stays on
 * the main thread: one agent, one heartbeat, one assignment per node (runtime/node/node.ts).
 *
 * Threads rather than processes: one process to supervise and to stop, cheaper starts, and a
 * partition is already self-contained (its own mailbox consumer, commit log, snapshots and
 * caches), so a thread needs nothing from the main thread but its orders and two flags.
 * Each thread has its own NATS connection and imports the registry from a module itself
 * (classes and functions cannot cross threads); see partition-thread-main.ts for its side.
 *
 * Messages between the two sides are plain data (structured clone): `ToThread` and `FromThread`
 * (partition-thread-protocol.ts). The main thread shares one `Int32Array` of flags with every
 * thread: whether this node still holds its placement lease (snapshot writes wait while it does
 * not), whether calls may travel with lock requests, and whether calls may carry a section's
 * release (every node of the hub runs them, placement/registry.ts).
 *
 * A hang watchdog: every thread bumps its own counter in a shared `Int32Array` from its event loop
 * (no message per beat); a thread whose counter has not moved for `hangTimeoutMs` — user code
 * stuck in a synchronous endless loop — is terminated (`worker.terminate()` stops even that) and
 * logged as an error naming its partitions. Its partitions then go the way of any thread death,
 * so crash counting (runtime/partition/crash-count.ts) dead-letters the message that hung it.
 */
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import {
  BadInputError,
  ErrorCode,
  FencedError,
  fromErrorInfo,
  IllegalStateError,
  type ErrorInfo,
} from '../../actors/index.ts'
import type { ActivityTask } from '../../actors/wire/index.ts'
import { ThreadMetrics, type NodeRecorder } from '../metrics/index.ts'
import { emptyPartitionStats, type PartitionStats } from '../partition/index.ts'
import type { Logger } from '../util/index.ts'
import { resolveTsx } from './load-module.ts'
import {
  BEAT_MS,
  type FromThread,
  type PartitionCounters,
  type ThreadSetup,
  type ToThread,
} from './partition-thread-protocol.ts'

/** What the node needs of a partition it runs, in this thread (a `Partition`) or in another. */
export interface RunningPartition {
  readonly p: number
  readonly options: { readonly epoch: number }
  readonly stats: PartitionStats
  readonly cachedEntities: number
  /** Stops gracefully (in-flight commits complete; with `snapshot`, a final snapshot first). */
  close(snapshot?: boolean): Promise<void>
  /** Stops at once, committing nothing more (the server is gone). */
  abandon(): void
}

/** How long a scrape waits for a thread's fresh report before it reads the last one, in ms. */
export const REPORT_TIMEOUT_MS = 250

/** What the node hears from its threads. */
export interface ThreadEvents {
  logger: Logger
  /** A partition stopped by itself in its thread (the node's failure and fencing path). */
  stopped(p: number, epoch: number, reason: 'fenced' | 'failed', error: Error): void
  /** A thread died with this partition running on it: handled as a failure of the partition. */
  lost(p: number, epoch: number, error: Error): void
  /** An activity a thread offloads to the hub's work queue (the main thread's `ActivityWorkers`). */
  offload?(task: ActivityTask): void
  /** Counters a thread posted (called every `statsIntervalMs` per thread). */
  counters?(thread: number, partitions: PartitionCounters[]): void
  /**
   * The node's recorder: what the threads record is added into it (runtime/metrics/threads.ts),
   * and a scrape first asks every live thread for a fresh report.
   */
  metrics?: NodeRecorder
}

/** Which thread runs which partition, at one moment. */
export interface ThreadView {
  thread: number
  partitions: number[]
}

/** A partition running on a partition thread, as the main thread sees it. */
class RemotePartition implements RunningPartition {
  stats: PartitionStats = emptyPartitionStats()
  cachedEntities = 0
  readonly options: { readonly epoch: number }

  constructor(
    readonly thread: PartitionThread,
    readonly p: number,
    epoch: number,
  ) {
    this.options = { epoch }
  }

  async close(snapshot = false): Promise<void> {
    if (this.thread.running.get(this.p) === this) this.thread.running.delete(this.p)
    if (this.thread.exited) return
    await this.thread.request({ t: 'close', id: 0, p: this.p, snapshot }).catch(() => {})
  }

  abandon(): void {
    if (this.thread.running.get(this.p) === this) this.thread.running.delete(this.p)
    this.thread.post({ t: 'abandon' })
  }
}

/** One worker thread and the requests waiting on its replies. */
class PartitionThread {
  readonly running = new Map<number, RemotePartition>()
  /** Partitions being started here, by partition, with their epoch. */
  readonly starting = new Map<number, number>()
  readonly #pending = new Map<number, { resolve(): void; reject(err: Error): void }>()
  #nextId = 1
  exited = false
  /** Whether the thread connected and loaded its registry. */
  started = false
  /** The last beat of its event loop seen (see the hang watchdog), and when it was seen. */
  lastBeat = -1
  lastBeatAt = Date.now()
  /** Set when the watchdog terminated the thread: why it ended. */
  hung: Error | undefined
  readonly ready: Promise<void>

  constructor(
    readonly index: number,
    readonly worker: Worker,
    onMessage: (thread: PartitionThread, msg: FromThread) => void,
    onExit: (thread: PartitionThread, error: Error) => void,
  ) {
    let lastError: Error | undefined
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: FromThread) => {
        if (msg.t === 'ready') {
          this.started = true
          this.lastBeatAt = Date.now()
          resolve()
        } else if (msg.t === 'setupFailed') reject(revive(msg.error, -1))
        else if (msg.t === 'reply') this.#settle(msg)
        else onMessage(this, msg)
      })
      worker.on('error', (err) => {
        lastError = err
      })
      worker.on('exit', (code) => {
        this.exited = true
        const error =
          this.hung ??
          lastError ??
          new IllegalStateError(`partition thread ${index} exited (code ${code}) while it ran partitions`)
        reject(error)
        for (const waiter of this.#pending.values()) waiter.reject(error)
        this.#pending.clear()
        onExit(this, error)
      })
    })
    this.ready.catch(() => {}) // awaited by whoever starts partitions here
  }

  get load(): number {
    return this.running.size + this.starting.size
  }

  post(msg: ToThread): void {
    if (!this.exited) this.worker.postMessage(msg)
  }

  /** Sends an order and resolves on the thread's reply (rejects with its error, or if it dies). */
  request(msg: ToThread & { id: number }): Promise<void> {
    if (this.exited) return Promise.reject(new IllegalStateError(`partition thread ${this.index} is gone`))
    const id = this.#nextId++
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...msg, id })
    })
  }

  #settle(msg: { id: number; error?: ErrorInfo }): void {
    const waiter = this.#pending.get(msg.id)
    this.#pending.delete(msg.id)
    if (msg.error === undefined) waiter?.resolve()
    else waiter?.reject(revive(msg.error, -1))
  }
}

/** The partition threads of one node. */
export class PartitionThreads {
  readonly #threads: PartitionThread[] = []
  #stopping = false
  readonly #flags: Int32Array
  #respawn: NodeJS.Timeout | undefined
  /** Event-loop beats of the threads, one slot per thread index (see the hang watchdog). */
  readonly #beats: Int32Array
  #watchdog: NodeJS.Timeout | undefined
  /** Starts waiting for a thread to be spawned (none was alive). */
  readonly #spawnWaiters: Array<() => void> = []
  /** Where the threads' reports go (absent: not recorded). */
  readonly #metrics: ThreadMetrics | undefined

  private constructor(
    readonly setup: Omit<ThreadSetup, 'index'>,
    readonly events: ThreadEvents,
  ) {
    this.#flags = new Int32Array(setup.flags)
    this.#beats = new Int32Array(setup.beats)
    const hang = setup.hangTimeoutMs
    if (hang > 0) {
      this.#watchdog = setInterval(() => this.#watch(hang), Math.max(BEAT_MS, Math.min(1000, hang / 4)))
      this.#watchdog.unref()
    }
    const recorder = events.metrics
    if (recorder !== undefined) {
      this.#metrics = new ThreadMetrics(recorder)
      recorder.refresh = () => this.#report()
    }
  }

  /**
   * Starts `count` threads and resolves once each has connected and loaded the registry. Rejects
   * (having terminated them all) with the first thread's setup error, e.g. `BadInputError` for a
   * registry module that cannot be loaded.
   */
  static async start(
    count: number,
    setup: Omit<ThreadSetup, 'index'>,
    events: ThreadEvents,
  ): Promise<PartitionThreads> {
    const threads = new PartitionThreads(setup, events)
    for (let i = 0; i < count; i++) threads.#threads.push(threads.#spawn(i))
    try {
      await Promise.all(threads.#threads.map((t) => t.ready))
    } catch (err) {
      await threads.stop()
      throw err
    }
    return threads
  }

  /** Number of threads. */
  get count(): number {
    return this.#threads.length
  }

  /** Tells every thread whether the node holds its placement lease (read before snapshot writes). */
  setLease(holds: boolean): void {
    Atomics.store(this.#flags, 0, holds ? 1 : 0)
  }

  /** Tells every thread whether calls may travel with lock requests (every node runs them). */
  setCarryCalls(on: boolean): void {
    Atomics.store(this.#flags, 1, on ? 1 : 0)
  }

  /** Tells every thread whether calls may carry the release of a section (every node runs it). */
  setReleaseWithCalls(on: boolean): void {
    Atomics.store(this.#flags, 2, on ? 1 : 0)
  }

  /** Tells every thread which registry names the hub knows (for messages of types run elsewhere). */
  hubNames(names: string[]): void {
    for (const t of this.#threads) t.post({ t: 'hubNames', names })
  }

  /**
   * Starts partition `p` at `epoch` on the least loaded live thread. Rejects with what the thread's
   * `Partition.start` threw (`FencedError` included), or `IllegalStateError` if the thread died.
   */
  async startPartition(p: number, epoch: number): Promise<RunningPartition> {
    let thread = this.#pick(p)
    while (thread === undefined) {
      // every thread died and none is back yet: wait for the next one rather than fail at once
      // (the node retries a failed start straight away, which would spin until then)
      if (this.#stopping) throw new IllegalStateError('the partition threads are stopping')
      await new Promise<void>((resolve) => this.#spawnWaiters.push(resolve))
      thread = this.#pick(p)
    }
    thread.starting.set(p, epoch)
    try {
      await thread.ready
      await thread.request({ t: 'start', id: 0, p, epoch })
    } catch (err) {
      throw err instanceof Error && (err as { code?: unknown }).code === ErrorCode.Fenced
        ? withMessage(new FencedError(p, ''), err.message)
        : err
    } finally {
      thread.starting.delete(p)
    }
    const partition = new RemotePartition(thread, p, epoch)
    thread.running.set(p, partition)
    return partition
  }

  /** Which thread runs which partition now (as the main thread knows it). */
  view(): ThreadView[] {
    return this.#threads.map((t) => ({
      thread: t.index,
      partitions: [...t.running.keys()].sort((a, b) => a - b),
    }))
  }

  /** Terminates thread `index` as a crash would (tests: its partitions must come back). */
  async terminate(index: number): Promise<void> {
    await this.#threads[index]?.worker.terminate()
  }

  /** Stops every partition at once in every thread (the server is gone). */
  abandon(): void {
    for (const t of this.#threads) {
      t.running.clear()
      t.post({ t: 'abandon' })
    }
  }

  /** Closes every thread's connection and terminates the threads (their partitions closed first). */
  async stop(): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#respawn)
    clearInterval(this.#watchdog)
    for (const wake of this.#spawnWaiters.splice(0)) wake()
    await Promise.all(
      this.#threads.map(async (t) => {
        if (t.exited) return
        await Promise.race([
          t.request({ t: 'shutdown', id: 0 }).catch(() => {}),
          new Promise((resolve) => setTimeout(resolve, 5000).unref()),
        ])
        await t.worker.terminate()
      }),
    )
  }

  /**
   * Asks every live thread for a fresh report and resolves once each posted it, or after
   * {@link REPORT_TIMEOUT_MS} (a thread busy or dying is read from its last report).
   */
  async #report(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, REPORT_TIMEOUT_MS)
    })
    const live = this.#threads.filter((t) => t.started && !t.exited)
    await Promise.race([
      Promise.all(live.map((t) => t.request({ t: 'report', id: 0 }).catch(() => {}))),
      timeout,
    ])
    clearTimeout(timer)
  }

  /**
   * The hang watchdog: terminates a started thread whose event-loop beat has not moved for
   * `hangTimeoutMs`; its exit then restarts it and fails its partitions over (see {@link #onExit}).
   */
  #watch(hangTimeoutMs: number): void {
    const now = Date.now()
    for (const t of this.#threads) {
      if (!t.started || t.exited || t.hung !== undefined) continue
      const beat = Atomics.load(this.#beats, t.index)
      if (beat !== t.lastBeat) {
        t.lastBeat = beat
        t.lastBeatAt = now
        continue
      }
      const silentMs = now - t.lastBeatAt
      if (silentMs < hangTimeoutMs) continue
      t.hung = new IllegalStateError(
        `partition thread ${t.index} hung: its event loop did not answer for ${silentMs} ms (hangTimeoutMs ${hangTimeoutMs}); terminated`,
      )
      this.events.logger.error('partition thread hung; terminating it', {
        thread: t.index,
        partitions: [...t.running.keys()].sort((a, b) => a - b),
        silentMs,
        hangTimeoutMs,
      })
      void t.worker.terminate()
    }
  }

  /** The least loaded live thread (ties: thread `p mod N`); undefined when none is alive. */
  #pick(p: number): PartitionThread | undefined {
    const alive = this.#threads.filter((t) => !t.exited)
    if (alive.length === 0) return undefined
    const least = Math.min(...alive.map((t) => t.load))
    const preferred = this.#threads[p % this.#threads.length]!
    if (!preferred.exited && preferred.load === least) return preferred
    return alive.find((t) => t.load === least)!
  }

  #spawn(index: number): PartitionThread {
    const { entry, eval: isCode } = threadEntry()
    const worker = new Worker(entry, {
      eval: isCode,
      workerData: { ...this.setup, index } satisfies ThreadSetup,
      execArgv: process.execArgv.filter((a) => !a.startsWith('--inspect')),
      name: `basalt-partitions-${index}`,
    })
    return new PartitionThread(
      index,
      worker,
      (thread, msg) => this.#onMessage(thread, msg),
      (thread, error) => this.#onExit(thread, error),
    )
  }

  #replace(index: number): void {
    if (this.#stopping) return
    const next = this.#spawn(index)
    this.#threads[index] = next
    for (const wake of this.#spawnWaiters.splice(0)) wake()
    next.ready.catch((err: unknown) =>
      this.events.logger.error('partition thread failed to start', { thread: index, error: String(err) }),
    )
  }

  #onMessage(thread: PartitionThread, msg: FromThread): void {
    switch (msg.t) {
      case 'stopped': {
        const running = thread.running.get(msg.p)
        if (running?.options.epoch === msg.epoch) thread.running.delete(msg.p)
        this.events.stopped(msg.p, msg.epoch, msg.reason, revive(msg.error, msg.p))
        return
      }
      case 'log':
        this.events.logger[msg.level](msg.message, { thread: thread.index, ...msg.fields })
        return
      case 'offload':
        this.events.offload?.(msg.task)
        return
      case 'stats':
        for (const c of msg.partitions) {
          const running = thread.running.get(c.p)
          if (running?.options.epoch !== c.epoch) continue
          running.stats = c.stats
          running.cachedEntities = c.cached
        }
        if (this.#threads[thread.index] === thread && !thread.exited) {
          this.#metrics?.absorb(thread.index, msg.metrics)
        }
        this.events.counters?.(thread.index, msg.partitions)
        return
      case 'ready':
      case 'setupFailed':
      case 'reply':
        return // handled by the thread itself
      default: {
        const never: never = msg
        throw new IllegalStateError(`unknown message from a partition thread: ${JSON.stringify(never)}`)
      }
    }
  }

  /** A thread ended: unless the node is stopping, its partitions fail over and a new thread takes its place. */
  #onExit(thread: PartitionThread, error: Error): void {
    if (this.#stopping || this.#threads[thread.index] !== thread) return
    this.#metrics?.exited(thread.index)
    const lost = [...thread.running.values()]
    thread.running.clear()
    this.events.logger.error('partition thread died; restarting it and its partitions', {
      thread: thread.index,
      partitions: lost.map((r) => r.p),
      error: String(error),
    })
    if (thread.started) this.#replace(thread.index)
    else {
      // it died before it was ready (no connection, a registry that no longer loads): not in a loop
      this.#respawn = setTimeout(() => this.#replace(thread.index), 1000)
      this.#respawn.unref()
    }
    for (const r of lost) this.events.lost(r.p, r.options.epoch, error)
  }
}

/**
 * The thread's entry: the built JavaScript beside this file, or — run from the TypeScript sources
 * — a two-line bootstrap that imports the TypeScript entry through tsx's `tsImport` (Node 20 does
 * not apply a loader given by `--import` to a worker thread's modules).
 */
function threadEntry(): { entry: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts'))
    return { entry: new URL('./partition-thread-main.js', import.meta.url), eval: false }
  const here = path.dirname(fileURLToPath(import.meta.url))
  const tsx = resolveTsx(here) ?? resolveTsx(process.cwd())
  if (tsx === undefined) {
    throw new BadInputError(
      'worker threads run from the TypeScript sources need tsx (npm install --save-dev tsx), or run the built package',
    )
  }
  const entry = new URL('./partition-thread-main.ts', import.meta.url).href
  const api = JSON.stringify(pathToFileURL(tsx).href)
  return {
    entry: `import { tsImport } from ${api}\nawait tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)})`,
    eval: true,
  }
}

/** Rebuilds an error that crossed from a thread (a fenced partition stays a `FencedError`). */
function revive(info: ErrorInfo, p: number): Error {
  if (info.code === ErrorCode.Fenced) return withMessage(new FencedError(p, ''), info.message)
  return fromErrorInfo(info)
}

function withMessage<E extends Error>(err: E, message: string): E {
  err.message = message
  return err
}
