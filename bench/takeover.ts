/**
 * `takeover`: how long a node's partitions are unavailable when the node dies (SIGKILL) or leaves
 * (SIGTERM), with nodes as separate processes at the default placement settings (heartbeat 1 s,
 * lease 3 s).
 *
 * Three node processes serve a fresh hub; one `Counter` per partition gets a known number of
 * signals first. Then, `--kills` times: the placement is settled, a victim is picked (the leader on
 * even runs, a non-leader on odd ones), its partitions are noted and it is SIGKILLed at t0; from t0
 * on, each of those partitions' counters is called (`get()` needs a commit, so an answer means the
 * partition runs again; another call goes out every {@link PROBE_EVERY_MS} until one answers). The
 * take-over time is t0 until the last of them answered. A replacement node is started and the
 * placement settles before the next run. Graceful moves then do the same with SIGTERM, except that
 * a call counts only once the partition's new owner has appended its claim to the commit log (the
 * leaving node keeps answering until it has closed the partition), so the figure is t0 until the
 * survivors answer for every one of its partitions. Every answer must read the known count.
 */
import { performance } from 'node:perf_hooks'
import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream'
import { partitionOf } from '../actors/index.ts'
import type { PlacementTable } from '../placement/index.ts'
import { Client, type EntityHandle } from '../runtime/index.ts'
import { decode, type Hub } from '../runtime/internal.ts'
import { NodeCluster } from './cluster.ts'
import { quantile, round, VerificationError, type BenchContext } from './common.ts'
import { Counter } from './entities.ts'

/** Node processes serving the hub. */
const NODES = 3
/** Partitions of the hub unless `--partitions` says otherwise. */
const DEFAULT_PARTITIONS = 12
/** Signals each counter receives before the first kill. */
const SIGNALS_PER_COUNTER = 25
/** While a victim's partition has not answered, another call goes out this often. */
const PROBE_EVERY_MS = 100
/** A partition that has not answered this long after t0 fails the benchmark. */
const ANSWER_DEADLINE_MS = 60_000
/** The placement settings the node processes run with (their defaults; reported in params). */
const PLACEMENT_DEFAULTS = { heartbeatMs: 1000, leaseMs: 3000 }

/** One kill (or graceful stop) and what it cost. */
interface Run {
  /** When the signal was sent (`performance.now()`, the clock of the `--node-logs` files). */
  t0: number
  victim: string
  leader: boolean
  partitions: number[]
  /** From t0 until the first / last of the victim's partitions answered, in ms. */
  firstMs: number
  lastMs: number
  /** From t0 until each partition's new owner appended its first record (its claim), in ms. */
  claimsMs: Array<number | undefined>
}

/** Runs the `takeover` benchmark (see the module comment). */
export async function runTakeover(ctx: BenchContext): Promise<void> {
  const { kills } = ctx.options
  const partitions = ctx.options.partitions ?? DEFAULT_PARTITIONS
  const cluster = await NodeCluster.forBench(ctx, partitions)
  const hub = cluster.options.hub
  let client: Client | undefined
  let watch: LogWatch | undefined
  try {
    let started = 0
    const startNode = () => cluster.start(`n${++started}`)
    ctx.log(`takeover: ${NODES} node processes on hub ${hub} (${partitions} partitions, default placement)`)
    await Promise.all(Array.from({ length: NODES }, startNode))
    await cluster.waitSettled(`takeover: ${NODES} nodes starting`)
    const c = (client = await Client.connect({ servers: ctx.url, hub }))
    const w = (watch = await LogWatch.start(cluster.nc, await cluster.hub()))
    const counters = probeKeys(partitions).map((key) => c.entity(Counter, key))
    await Promise.all(
      counters.flatMap((counter) => Array.from({ length: SIGNALS_PER_COUNTER }, () => counter.signal.add(1))),
    )
    await checkCounters(counters, 'before the kills')

    const measure = async (kind: 'SIGKILL' | 'SIGTERM', i: number): Promise<Run> => {
      const label = `${kind === 'SIGKILL' ? 'kill' : 'graceful stop'} ${i + 1}/${kills}`
      const table = await cluster.waitSettled(`takeover: before ${label}`)
      const run = await moveOnce(cluster, w, counters, table, kind, i, label)
      const claims = run.claimsMs.map((ms) => (ms === undefined ? '?' : ms.toFixed(0))).join(', ')
      ctx.log(
        `takeover: ${label} at ${run.t0.toFixed(0)} ms: ${run.victim}${run.leader ? ' (leader)' : ''} ` +
          `owned [${run.partitions.join(',')}]; ` +
          `first answer ${run.firstMs.toFixed(0)} ms, last ${run.lastMs.toFixed(0)} ms (claims at ${claims} ms)`,
      )
      await startNode()
      return run
    }
    const crash: Run[] = []
    for (let i = 0; i < kills; i++) crash.push(await measure('SIGKILL', i))
    const graceful: Run[] = []
    for (let i = 0; i < kills; i++) graceful.push(await measure('SIGTERM', i))
    await cluster.waitSettled('takeover: after the last run')
    await checkCounters(counters, 'after the kills')

    const params = { nodes: NODES, partitions, ...PLACEMENT_DEFAULTS }
    const ms = (runs: Run[], pick: (r: Run) => number) => runs.map((r) => round(pick(r), 1))
    const crashParams = {
      ...params,
      kills,
      runs_ms: ms(crash, (r) => r.lastMs),
      first_ms: ms(crash, (r) => r.firstMs),
      leader_killed: crash.map((r) => r.leader),
    }
    ctx.emit('crash_takeover_p50_ms', round(quantile(crashParams.runs_ms, 0.5), 1), 'ms', crashParams)
    ctx.emit('crash_takeover_max_ms', Math.max(...crashParams.runs_ms), 'ms', crashParams)
    ctx.emit('crash_first_answer_p50_ms', round(quantile(crashParams.first_ms, 0.5), 1), 'ms', crashParams)
    const movedParams = {
      ...params,
      runs: kills,
      runs_ms: ms(graceful, (r) => r.lastMs),
      leader_stopped: graceful.map((r) => r.leader),
    }
    ctx.emit('graceful_move_p50_ms', round(quantile(movedParams.runs_ms, 0.5), 1), 'ms', movedParams)
    ctx.emit('graceful_move_max_ms', Math.max(...movedParams.runs_ms), 'ms', movedParams)
  } finally {
    watch?.stop()
    await client?.close()
    await cluster.close()
    await ctx.dropHub(hub).catch((err: unknown) => ctx.log(`takeover: deleting hub ${hub}: ${String(err)}`))
  }
}

/**
 * Stops the run's victim with `signal` at t0 and waits until every partition it owned answers a
 * call (after SIGTERM: a call sent once the new owner's claim is in the log). Checks that a node
 * that was sent SIGTERM exits 0.
 */
async function moveOnce(
  cluster: NodeCluster,
  watch: LogWatch,
  counters: Array<EntityHandle<Counter>>,
  table: PlacementTable,
  signal: 'SIGKILL' | 'SIGTERM',
  i: number,
  label: string,
): Promise<Run> {
  const victim = pickVictim(table, i)
  const owned = table.assignments.filter((a) => a.node === victim)
  const node = cluster.nodes.get(victim)!
  const t0 = performance.now()
  node.kill(signal)
  const answered = await Promise.all(
    owned.map(async ({ p, epoch }) => {
      const what = `${label}: partition ${p} of ${victim}`
      if (signal === 'SIGTERM') await watch.waitNewer(p, epoch, what, t0 + ANSWER_DEADLINE_MS)
      return firstAnswer(counters[p]!, what, t0 + ANSWER_DEADLINE_MS)
    }),
  )
  const exit = await node.exited
  if (signal === 'SIGTERM' && exit.code !== 0)
    throw new VerificationError(
      `${label}: node ${victim} exited with ${exit.signal ?? `code ${String(exit.code)}`} after SIGTERM, expected code 0`,
    )
  return {
    t0,
    victim,
    leader: table.leader === victim,
    partitions: owned.map((a) => a.p),
    firstMs: Math.min(...answered) - t0,
    lastMs: Math.max(...answered) - t0,
    claimsMs: owned.map(({ p, epoch }) => {
      const at = watch.newerAt(p, epoch)
      return at === undefined ? undefined : at - t0
    }),
  }
}

/** The leader on even runs, else the first other node (by id) that owns partitions. */
function pickVictim(table: PlacementTable, i: number): string {
  const owners = [...new Set(table.assignments.map((a) => a.node!))].sort()
  const leader = table.leader!
  if (i % 2 === 0) return leader
  return owners.find((id) => id !== leader) ?? leader
}

/** One counter key per partition, found by the client's own hashing. */
function probeKeys(partitions: number): string[] {
  return Array.from({ length: partitions }, (_, p) => {
    for (let j = 0; ; j++) {
      const key = `takeover-${p}-${j}`
      if (partitionOf(key, partitions) === p) return key
    }
  })
}

/** Every counter must read exactly the signals it was sent. */
async function checkCounters(counters: Array<EntityHandle<Counter>>, phase: string): Promise<void> {
  const values = await Promise.all(counters.map((c) => c.call.get()))
  const wrong = values.map((v, p) => [p, v] as const).filter(([, v]) => v !== SIGNALS_PER_COUNTER)
  if (wrong.length > 0)
    throw new VerificationError(
      `takeover: ${phase}: expected every counter at ${SIGNALS_PER_COUNTER}, found ` +
        wrong.map(([p, v]) => `partition ${p}: ${v}`).join(', '),
    )
}

/**
 * Calls `counter.get()` now and again every {@link PROBE_EVERY_MS} until one call answers; resolves
 * with the time of that answer. A wrong value is a {@link VerificationError}; no answer by
 * `deadline` (a `performance.now()` time) fails naming `what` and the last call error.
 */
function firstAnswer(counter: EntityHandle<Counter>, what: string, deadline: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false
    let lastError: unknown = 'none'
    const finish = (settle: () => void) => {
      if (done) return
      done = true
      clearInterval(again)
      clearTimeout(expiry)
      settle()
    }
    const issue = () => {
      counter.call.get().then(
        (value) => {
          const at = performance.now()
          finish(() =>
            value === SIGNALS_PER_COUNTER
              ? resolve(at)
              : reject(
                  new VerificationError(`${what}: get() answered ${value}, expected ${SIGNALS_PER_COUNTER}`),
                ),
          )
        },
        (err: unknown) => {
          lastError = err
        },
      )
    }
    const again = setInterval(issue, PROBE_EVERY_MS)
    const expiry = setTimeout(
      () =>
        finish(() =>
          reject(new Error(`${what}: no answer by the deadline (last call error: ${String(lastError)})`)),
        ),
      Math.max(0, deadline - performance.now()),
    )
    issue()
  })
}

/**
 * Watches every append to the hub's commit log (an ordered consumer from "now"), remembering when
 * a record of a higher epoch first appeared per partition: the new owner's claim.
 */
class LogWatch {
  /** Per partition: epochs seen, each with when its first record arrived. */
  readonly #seen = new Map<number, Map<number, number>>()
  readonly #waiters = new Set<() => void>()

  private constructor(readonly messages: ConsumerMessages) {}

  static async start(nc: Parameters<typeof jetstream>[0], hub: Hub): Promise<LogWatch> {
    const consumer = await jetstream(nc).consumers.get(hub.names.logStream, {
      filter_subjects: `${hub.names.hub}.log.>`,
      deliver_policy: DeliverPolicy.New,
    })
    const watch = new LogWatch(await consumer.consume())
    void watch.#pump(`${hub.names.hub}.log.`)
    return watch
  }

  /** When the first record of an epoch above `epoch` arrived on partition p (performance.now()). */
  newerAt(p: number, epoch: number): number | undefined {
    let first: number | undefined
    for (const [e, at] of this.#seen.get(p) ?? [])
      if (e > epoch && (first === undefined || at < first)) first = at
    return first
  }

  /** Resolves once a record of an epoch above `epoch` is in partition p's log. */
  waitNewer(p: number, epoch: number, what: string, deadline: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const at = this.newerAt(p, epoch)
        const late = performance.now() > deadline
        if (at === undefined && !late) return
        this.#waiters.delete(check)
        clearInterval(timer)
        if (at !== undefined) resolve(at)
        else reject(new Error(`${what}: no record of an epoch above ${epoch} in the log by the deadline`))
      }
      const timer = setInterval(check, 100)
      this.#waiters.add(check)
      check()
    })
  }

  stop(): void {
    this.messages.stop()
  }

  async #pump(prefix: string): Promise<void> {
    try {
      for await (const m of this.messages) {
        const at = performance.now()
        const p = Number(m.subject.slice(prefix.length))
        const { e } = decode(m.data, `commit record ${m.seq}`) as { e?: unknown }
        if (typeof e !== 'number') continue
        const epochs = this.#seen.get(p) ?? new Map<number, number>()
        this.#seen.set(p, epochs)
        if (!epochs.has(e)) epochs.set(e, at)
        for (const w of [...this.#waiters]) w()
      }
    } catch {
      // stopped
    }
  }
}
