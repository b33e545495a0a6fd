/**
 * One seeded chaos run (issue 9): a hub on one nats-server, or on a 3-server cluster with
 * `replicas: 3`, served by three node processes (heartbeat 250 ms, lease 1 s, dynamic placement);
 * a client in this process that sends `add` signals over 200 tallies and starts orchestrations
 * (an activity then an entity call; a `ctx.lock` critical section on two tallies) at a steady
 * rate; and faults drawn from the seed (test/chaos/plan.ts): a node SIGKILLed and replaced every
 * 2–4 s, a node SIGSTOPped 2–5 s (past its lease) and continued, the server (on R3: one member)
 * SIGKILLed and restarted on its store.
 *
 * When the faults end (the last one reverted: paused nodes continued, servers up again) the run
 * measures how long until every partition is served again (one read query per partition, each
 * given 2 s, all answered in one sweep), sends one call per partition as a barrier
 * (answered only once everything sent before it to that partition was processed), drains (every
 * instance that exists completes, every lock is released) and checks exactly what the hub holds
 * against what the client sent (test/chaos/ledger.ts): an acknowledged send must have been applied
 * exactly once; a send whose promise rejected (its outcome is unknown) may have been applied once
 * or not at all, never twice — each send carries its own id, so this is checked per send, not by
 * totals. Then the tallies are read again a second later: nothing may change after the drain.
 * What the run found comes back as a summary (its fields and printing: test/chaos/report.ts).
 *
 * Replay a seed with `CHAOS_SEED=<seed> npx vitest run test/chaos.test.ts`, or with
 * `npm run soak -- --start-seed <seed> --seeds 1 --mode single|r3`.
 */
import { partitionOf } from '../../actors/ids.ts'
import type { NatsConnection } from '@nats-io/transport-node'
import { Client } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { startNatsCluster } from '../tooling/nats-cluster.ts'
import { startNatsServer, type NatsServer } from '../../runtime/dev/nats-server.ts'
import { isExact, Ledger, type Observed, type StartRecord } from './ledger.ts'
import {
  below,
  countFaults,
  mulberry32,
  planFaults,
  type FaultEvent,
  type Rng,
  type StreamKind,
} from './plan.ts'
import {
  callUntilAnswered,
  describeTally,
  drainInstances,
  heldLocks,
  readInstances,
  readTallies,
  sweep,
  within,
} from './checks.ts'
import { diagnose, streamsKept } from './diagnose.ts'
import { NodeSlots } from './processes.ts'
import { replayCommand, type ChaosSummary } from './report.ts'
import { chaosCarried, chaosEffect, chaosLocked, chaosReleasing, Tally } from './workload.ts'

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  seed: number
  mode: 'single' | 'r3'
  /** How long faults (and the workload) go on, in ms. */
  durationMs: number
  /** Signals per second (default 400 on one server, 200 on R3, as in issue 9). */
  signalsPerSecond?: number
  /** Orchestration starts per second (default 10 on one server, 5 on R3). */
  startsPerSecond?: number
  /** How long after the faults all partitions must be served again, in ms (default 60,000). */
  livenessTimeoutMs?: number
  /** How long the drain may take, in ms (default 60,000). */
  drainTimeoutMs?: number
  /** On R3, also ask a stream leader to step down every 3–6 s (default false; `npm run soak -- --stepdowns`). */
  stepdowns?: boolean
  /** Keep the nodes' last output lines in the summary even when the run passed (default false). */
  keepTails?: boolean
  /** Progress lines (fault events, phases); default none. */
  log?: (line: string) => void
}

const SIGNAL_KEYS = 200
const EFFECT_KEYS = 50
const LOCK_KEYS = 6
const TICK_MS = 50

/** Resolves after `ms`; used to pace the workload and the fault plan, never to wait for state. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

/** The servers of a run. */
interface Servers {
  urls: string[]
  members: NatsServer[]
  dispose(): Promise<void>
}

async function startServers(mode: 'single' | 'r3'): Promise<Servers> {
  if (mode === 'single') {
    const server = await startNatsServer()
    return { urls: [server.url], members: [server], dispose: () => server.dispose() }
  }
  const cluster = await startNatsCluster(3)
  return { urls: cluster.urls, members: cluster.servers, dispose: () => cluster.dispose() }
}

/** One key per partition, found by hashing `live-0`, `live-1`, … with {@link partitionOf}. */
export function keyPerPartition(partitions: number): string[] {
  const keys: Array<string | undefined> = new Array<string | undefined>(partitions)
  let found = 0
  for (let i = 0; found < partitions; i++) {
    const key = `live-${i}`
    const p = partitionOf(key, partitions)
    if (keys[p] === undefined) {
      keys[p] = key
      found++
    }
  }
  return keys as string[]
}

/** Runs one chaos scenario; never throws for what it finds (see `ok`), only for set-up failures. */
export async function runChaos(opts: ChaosOptions): Promise<ChaosSummary> {
  const log = opts.log ?? ((): void => {})
  const r3 = opts.mode === 'r3'
  const partitions = r3 ? 8 : 16
  const faultRng = mulberry32(opts.seed)
  const workRng = mulberry32(opts.seed ^ 0x9e3779b9)
  const plan = planFaults(faultRng, {
    durationMs: opts.durationMs,
    servers: r3 ? 3 : 1,
    stepdowns: opts.stepdowns === true,
  })
  const hub = `chaos${opts.seed}`.replace(/[^A-Za-z0-9_-]/g, '_')
  const t0 = Date.now()
  const servers = await startServers(opts.mode)
  // (on one server the streams are cut every second: the cuts run through every fault of the plan;
  // on R3 not, as by default: CHAOS_TRIM_MS sets an interval for both, 0 for none, to compare; an
  // R3 hub is cut only through nats-server 2.9.18 or later, older ones replay purges wrongly)
  const nodeOptions = {
    partitions,
    replicas: r3 ? 3 : 1,
    heartbeatMs: 250,
    leaseMs: 1_000,
    streamTrimIntervalMs: Number(process.env['CHAOS_TRIM_MS'] ?? (r3 ? 0 : 1_000)),
  }
  const slots = new NodeSlots(
    3,
    (name) => [servers.urls.join(','), hub, JSON.stringify({ ...nodeOptions, nodeId: name })],
    t0,
  )
  let client: Client | undefined
  let checker: Client | undefined
  let probe: Client | undefined
  try {
    await waitUntil(
      () => slots.slots.every((n) => n.ready),
      60_000,
      'the first three nodes to print ready',
      () => slots.tails(20),
    )
    client = await Client.connect({ servers: servers.urls, hub })
    // reads and waits after the barrier go through a client of their own: the workload client
    // remembers outcomes that came with start replies, and the check must ask the hub
    checker = await Client.connect({ servers: servers.urls, hub, queryTimeoutMs: 5_000 })
    // liveness reads give up after 2 s, so a sweep measures serving to within about 2 s
    probe = await Client.connect({ servers: servers.urls, hub, queryTimeoutMs: 2_000 })
    log(
      `seed ${opts.seed} ${opts.mode}: nodes ready after ${Date.now() - t0} ms; faults for ${opts.durationMs} ms`,
    )
    return await runPhases(opts, {
      plan,
      workRng,
      servers,
      slots,
      client,
      checker,
      probe,
      partitions,
      hub,
      log,
    })
  } finally {
    await client?.close().catch(() => undefined)
    await checker?.close().catch(() => undefined)
    await probe?.close().catch(() => undefined)
    await slots.close()
    await servers.dispose()
  }
}

/** Polls `ready` every 50 ms until true; throws naming `what` after `timeoutMs`. */
async function waitUntil(
  ready: () => boolean,
  timeoutMs: number,
  what: string,
  detail?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ready()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail?.() ?? ''}`)
    await sleep(50)
  }
}

interface RunContext {
  plan: FaultEvent[]
  workRng: Rng
  servers: Servers
  slots: NodeSlots
  client: Client
  checker: Client
  probe: Client
  partitions: number
  hub: string
  log: (line: string) => void
}

async function runPhases(opts: ChaosOptions, run: RunContext): Promise<ChaosSummary> {
  const { client, checker, probe, log } = run
  const ledger = new Ledger(run.partitions)
  const rejections: Record<string, number> = {}
  const inFlight = new Set<Promise<unknown>>()
  const track = (promise: Promise<unknown>): void => {
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }
  const reject = (err: unknown): void => {
    const name = (err as Error)?.name ?? 'Error'
    rejections[name] = (rejections[name] ?? 0) + 1
  }

  // ---- faults and workload
  let stop = false
  const workload = runWorkload(opts, run, ledger, track, reject, () => stop)
  await runFaults(run)
  stop = true
  await workload
  run.slots.resumeAll()
  const faultsEnded = Date.now()
  log(`faults over; ${inFlight.size} sends in flight`)

  // ---- liveness: every partition answers a read in one sweep
  const liveKeys = keyPerPartition(run.partitions)
  const livenessTimeout = opts.livenessTimeoutMs ?? 60_000
  let unserved = await sweep(probe, liveKeys)
  while (unserved.length > 0 && Date.now() - faultsEnded < livenessTimeout)
    unserved = await sweep(probe, liveKeys)
  const servedAgainMs = unserved.length === 0 ? Date.now() - faultsEnded : undefined
  log(`all partitions served again after ${servedAgainMs ?? 'never'} ms`)

  // ---- drain
  const drainStart = Date.now()
  const drainDeadline = drainStart + (opts.drainTimeoutMs ?? 60_000)
  const failures: string[] = []
  await within(
    Promise.allSettled([...inFlight]),
    Math.max(1, drainDeadline - Date.now()),
    'client sends to settle',
  ).catch((err: Error) => failures.push(`${err.message} (${inFlight.size} still in flight)`))
  // barrier: a call answered per partition means everything sent before it there was processed
  // (a call whose reply was lost is asked again: any answered call is a barrier)
  const lostReplies = { count: 0 }
  const barrier = await Promise.all(
    liveKeys.map((key) => callUntilAnswered(client, key, drainDeadline, lostReplies)),
  )
  barrier.forEach((answered, p) => {
    if (!answered)
      failures.push(`barrier on partition ${p}: no call to ${liveKeys[p]} answered before the drain deadline`)
  })
  const starts = [...ledger.starts.values()]
  const drained = await drainInstances(checker, starts, drainDeadline)
  const locksHeld = await heldLocks(checker, ledger, drainDeadline, lostReplies)
  // reads are tried three times, once only when partitions were not served again (they would
  // only time out, and the run has failed anyway)
  const attempts = servedAgainMs === undefined ? 1 : 3
  const first = await readTallies(checker, ledger.tallyKeys(), attempts)
  const drainMs = Date.now() - drainStart
  log(`drained in ${drainMs} ms`)

  // ---- nothing may change after the drain; the second reads are the ones checked
  await sleep(1_000)
  const tallies = await readTallies(checker, ledger.tallyKeys(), attempts)
  for (const [key, state] of tallies) {
    if (!first.has(key)) continue // the first read failed (e.g. the partition restarted): nothing to compare
    const before = first.get(key)
    if ((before?.n ?? 0) !== (state?.n ?? 0) || (before?.dn ?? 0) !== (state?.dn ?? 0)) {
      failures.push(
        `${key} (p${partitionOf(key, run.partitions)}) changed after the drain: ${describeTally(before)} -> ${describeTally(state)}`,
      )
    }
  }
  const instances = await readInstances(checker, starts, attempts)
  for (const start of starts) {
    // an instance unreadable in either read has nothing to compare (unreadable ones are listed below)
    if (!drained.has(start.instanceId) || !instances.has(start.instanceId)) continue
    const before = drained.get(start.instanceId)
    const after = instances.get(start.instanceId)
    if (before?.status !== after?.status) {
      failures.push(
        `${start.instanceId} (p${partitionOf(start.instanceId, run.partitions)}) changed after the drain: ${before?.status ?? 'none'} -> ${after?.status ?? 'none'}`,
      )
    }
  }
  const unreadable = (what: string, ids: string[]): void => {
    if (ids.length === 0) return
    const where = ids.map((id) => `${id} (p${partitionOf(id, run.partitions)})`)
    failures.push(`${ids.length} ${what} could not be read: ${where.slice(0, 30).join(', ')}`)
  }
  unreadable(
    'tallies',
    ledger.tallyKeys().filter((key) => !tallies.has(key)),
  )
  unreadable(
    'instances',
    starts.map((start) => start.instanceId).filter((id) => !instances.has(id)),
  )
  // served at the end too (a partition must miss three sweeps in a row to count as unserved)
  let finalUnserved = await sweep(probe, liveKeys)
  for (let i = 1; i < 3 && finalUnserved.length > 0; i++) finalUnserved = await sweep(probe, liveKeys)
  if (finalUnserved.length > 0) failures.push(`partitions not served at the end: ${finalUnserved.join(', ')}`)

  const observed: Observed = { tallies, instances, locksHeld }
  const verdict = ledger.check(observed)
  if (servedAgainMs === undefined) {
    failures.push(`partitions ${unserved.join(', ')} not served ${livenessTimeout} ms after the faults ended`)
  }
  const cap = (kind: string, lines: string[]): void => {
    for (const line of lines.slice(0, 40)) failures.push(`${kind}: ${line}`)
    if (lines.length > 40) failures.push(`${kind}: … and ${lines.length - 40} more`)
  }
  cap('lost', verdict.lost)
  cap('duplicated', verdict.duplicated)
  cap('phantom', verdict.phantom)
  cap('unfinished', verdict.unfinished)
  cap('lock held', verdict.locksHeld)
  const ok = failures.length === 0 && isExact(verdict)
  return {
    seed: opts.seed,
    mode: opts.mode,
    durationMs: opts.durationMs,
    ...countFaults(run.plan),
    nodeExits: run.slots.exitsByThemselves,
    verdict,
    lost: verdict.lost.length,
    duplicated: verdict.duplicatedCount,
    servedAgainMs,
    unserved,
    drainMs,
    rejections,
    callsAskedAgain: lostReplies.count,
    streamsKept: await streamsKept(checker),
    failures,
    ok,
    replay: replayCommand(opts.seed, opts.mode),
    nodeTails: ok && opts.keepTails !== true ? '' : run.slots.tails(25),
    hubState: ok ? '' : await diagnose(checker),
  }
}

/** Sends signals and starts at a steady rate until `stopped()`. */
async function runWorkload(
  opts: ChaosOptions,
  run: RunContext,
  ledger: Ledger,
  track: (p: Promise<unknown>) => void,
  reject: (err: unknown) => void,
  stopped: () => boolean,
): Promise<void> {
  const r3 = opts.mode === 'r3'
  const signalRate = opts.signalsPerSecond ?? (r3 ? 200 : 400)
  const startRate = opts.startsPerSecond ?? (r3 ? 5 : 10)
  const rng = run.workRng
  let signalCredit = 0
  let startCredit = 0
  let instances = 0
  const begin = Date.now()
  for (let tick = 1; !stopped(); tick++) {
    signalCredit += (signalRate * TICK_MS) / 1000
    startCredit += (startRate * TICK_MS) / 1000
    for (; signalCredit >= 1; signalCredit--) {
      const key = `s-${below(rng, SIGNAL_KEYS)}`
      const id = ledger.signal(key)
      track(
        run.client
          .entity(Tally, key)
          .signal.add(id)
          .then(
            () => ledger.settleSignal(key, id, 'acked'),
            (err: unknown) => {
              ledger.settleSignal(key, id, 'unknown')
              reject(err)
            },
          ),
      )
    }
    for (; startCredit >= 1; startCredit--) {
      const n = ++instances
      let record: StartRecord
      let started: Promise<string>
      if (rng() < 0.7) {
        record = ledger.effectStart(`e-${n}`, `o-${below(rng, EFFECT_KEYS)}`)
        started = run.client.start(
          chaosEffect,
          { key: record.keys[0]!, id: record.id },
          { instanceId: record.instanceId },
        )
      } else {
        const a = below(rng, LOCK_KEYS)
        const b = (a + 1 + below(rng, LOCK_KEYS - 1)) % LOCK_KEYS
        record = ledger.lockedStart(`l-${n}`, [`lk-${a}`, `lk-${b}`])
        // a third of locked starts carry their first call with the lock request, a third their
        // release with their last call
        started = run.client.start(
          [chaosCarried, chaosLocked, chaosReleasing][n % 3]!,
          { keys: [record.keys[0]!, record.keys[1]!], id: record.id },
          { instanceId: record.instanceId },
        )
      }
      track(
        started.then(
          () => (record.outcome = 'acked'),
          (err: unknown) => {
            record.outcome = 'unknown'
            reject(err)
          },
        ),
      )
    }
    await sleep(begin + tick * TICK_MS - Date.now())
  }
}

/** Carries out the fault plan; returns once every fault is reverted and every server is up. */
async function runFaults(run: RunContext): Promise<void> {
  const begin = Date.now()
  const restarts: Array<Promise<void>> = []
  const names = new HubNames(run.hub)
  const streams: Record<StreamKind, string> = {
    mailbox: names.mailboxStream,
    log: names.logStream,
    state: `KV_${names.stateBucket}`,
    meta: `KV_${names.metaBucket}`,
  }
  const nc = run.plan.some((e) => e.kind === 'stepdown')
    ? await connectTo(run.servers.urls, 'chaos-stepdowns')
    : undefined
  try {
    await carryOut(run, begin, restarts, streams, nc)
  } finally {
    if (nc !== undefined) await closeConnection(nc)
  }
  await Promise.all(restarts)
}

async function carryOut(
  run: RunContext,
  begin: number,
  restarts: Array<Promise<void>>,
  streams: Record<StreamKind, string>,
  nc: NatsConnection | undefined,
): Promise<void> {
  for (const event of run.plan) {
    await sleep(begin + event.at - Date.now())
    const at = `+${((Date.now() - begin) / 1000).toFixed(1)}s`
    switch (event.kind) {
      case 'kill':
        run.log(
          `${at} SIGKILL node ${run.slots.slots[event.slot]?.name} (slot ${event.slot}), start a replacement`,
        )
        run.slots.killAndReplace(event.slot)
        break
      case 'pause':
        run.log(`${at} SIGSTOP node ${run.slots.slots[event.slot]?.name}`)
        run.slots.slots[event.slot]?.pause()
        break
      case 'resume': {
        const node = run.slots.slots[event.slot]
        run.log(
          `${at} SIGCONT node ${node?.name}${node?.paused === true ? '' : ' (not paused: it was replaced)'}`,
        )
        node?.resume()
        break
      }
      case 'serverKill': {
        run.log(`${at} SIGKILL server ${event.member}`)
        await run.servers.members[event.member]?.stop('SIGKILL')
        break
      }
      case 'serverStart': {
        run.log(`${at} restart server ${event.member}`)
        const member = run.servers.members[event.member]
        if (member !== undefined) restarts.push(member.restart())
        break
      }
      case 'stepdown': {
        const stream = streams[event.stream]
        // (the request fails while a server is down or the stream has no leader: the fault is skipped)
        const answer = await nc
          ?.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 2_000 })
          .then(
            (m) => ((m.json() as { success?: boolean }).success === true ? 'done' : 'refused'),
            () => 'failed',
          )
        run.log(`${at} stream ${stream}: leader stepdown ${answer ?? 'skipped'}`)
        break
      }
      default: {
        const never: never = event
        throw new Error(`unknown fault ${JSON.stringify(never)}`)
      }
    }
  }
}
